// Package fs is the filesystem blob.Store, the default: objects are files
// under one root directory, written to a temporary file, fsynced and renamed
// into place (then the directory is fsynced), so a reader never sees a
// partial object and an acknowledged Put survives a crash. Directories are
// created 0700 and files 0600. All access goes through an os.Root, so
// neither a crafted key nor a symbolic link planted in the tree can reach
// outside the root; keys are validated before that as well.
//
// fs imports only control/blob/internal/keys; it satisfies blob.Store.
package fs
