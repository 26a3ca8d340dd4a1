package fs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/sluice-gw/sluice/control/blob/internal/keys"
)

// tmpPrefix starts the names of files being written. Keys cannot have a
// segment starting with '.', so List never mistakes one for an object.
const tmpPrefix = ".tmp-"

// Store is a blob.Store over a directory. Close it when done.
type Store struct {
	root *os.Root
}

// New opens (creating it 0700 if needed) the directory dir as a store.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("blob/fs: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob/fs: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("blob/fs: open %s: %w", dir, err)
	}
	return &Store{root: root}, nil
}

// Dir returns the root directory's name as given to New.
func (s *Store) Dir() string { return s.root.Name() }

// Close releases the root directory.
func (s *Store) Close() error { return s.root.Close() }

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte) (err error) {
	if err := keys.Validate(key); err != nil {
		return err
	}
	if len(data) > keys.MaxObjectSize {
		return fmt.Errorf("blob/fs: put %s: %d bytes: %w", key, len(data), keys.ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob/fs: put %s: %w", key, err)
	}
	dir := path.Dir(key)
	if dir != "." {
		if err := s.root.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("blob/fs: put %s: mkdir: %w", key, err)
		}
	}
	tmp := path.Join(dir, tmpPrefix+rand.Text())
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("blob/fs: put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			s.root.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("blob/fs: put %s: write: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob/fs: put %s: fsync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("blob/fs: put %s: close: %w", key, err)
	}
	if err := s.root.Rename(tmp, key); err != nil {
		return fmt.Errorf("blob/fs: put %s: rename: %w", key, err)
	}
	// The rename is durable only once the directory entry is.
	if err := s.syncDir(dir); err != nil {
		return fmt.Errorf("blob/fs: put %s: fsync directory: %w", key, err)
	}
	return nil
}

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := keys.Validate(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob/fs: get %s: %w", key, err)
	}
	f, err := s.root.Open(key)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("blob/fs: get %s: %w", key, keys.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob/fs: get %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("blob/fs: get %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		// A directory is a key prefix, not an object.
		return nil, fmt.Errorf("blob/fs: get %s: not a file: %w", key, keys.ErrNotFound)
	}
	if fi.Size() > keys.MaxObjectSize {
		return nil, fmt.Errorf("blob/fs: get %s: %d bytes: %w", key, fi.Size(), keys.ErrTooLarge)
	}
	// Read at most one byte past the limit: the file may grow after Stat.
	data, err := io.ReadAll(io.LimitReader(f, keys.MaxObjectSize+1))
	if err != nil {
		return nil, fmt.Errorf("blob/fs: get %s: %w", key, err)
	}
	if len(data) > keys.MaxObjectSize {
		return nil, fmt.Errorf("blob/fs: get %s: %w", key, keys.ErrTooLarge)
	}
	return data, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := keys.Validate(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob/fs: delete %s: %w", key, err)
	}
	fi, err := s.root.Lstat(key)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blob/fs: delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a prefix, not an object: there is no object to delete
	}
	if err := s.root.Remove(key); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("blob/fs: delete %s: %w", key, err)
	}
	return nil
}

// List implements blob.Store. It walks only the directory the prefix's
// complete segments name.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := keys.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	out := []string{}
	err := iofs.WalkDir(s.root.FS(), start, func(name string, d iofs.DirEntry, err error) error {
		if err != nil {
			if name == start && errors.Is(err, iofs.ErrNotExist) {
				return iofs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == start {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return iofs.SkipDir
			}
			return nil // a Put in progress, or a file that is not ours
		}
		if d.IsDir() {
			// Prune directories that cannot hold a match.
			if !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return iofs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(name, prefix) && keys.Validate(name) == nil {
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob/fs: list %q: %w", prefix, err)
	}
	slices.Sort(out)
	return out, nil
}
