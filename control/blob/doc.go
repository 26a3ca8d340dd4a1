// Package blob defines Store, the object store that session recordings (and
// later other large, write-once artefacts) are kept in, and Open, which
// builds one from a spec: a directory (package blob/fs, the default) or an
// S3-compatible bucket (package blob/s3). Package blob/blobtest is the
// conformance suite every implementation passes.
//
// blob imports only its own sub-packages; it knows nothing of recordings.
package blob
