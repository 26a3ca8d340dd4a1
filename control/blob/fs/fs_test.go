package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-gw/sluice/control/blob"
	"github.com/sluice-gw/sluice/control/blob/blobtest"
	"github.com/sluice-gw/sluice/control/blob/fs"
)

var _ blob.Store = (*fs.Store)(nil)

func newStore(t *testing.T) *fs.Store {
	t.Helper()
	s, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

func TestPermissions(t *testing.T) {
	s := newStore(t)
	if err := s.Put(context.Background(), "rec/s1/0001", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{
		"":            0o700,
		"rec":         0o700,
		"rec/s1":      0o700,
		"rec/s1/0001": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(s.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%q: mode %v, want %v", name, got, want)
		}
	}
}

// A symbolic link planted inside the root must not let any operation reach
// the directory it points to, even with a valid key.
func TestSymlinkEscape(t *testing.T) {
	s := newStore(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.Dir(), "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if b, err := s.Get(ctx, "link/victim"); err == nil {
		t.Fatalf("read %q through a symlink out of the root", b)
	}
	if err := s.Put(ctx, "link/planted", []byte("x")); err == nil {
		t.Fatal("wrote through a symlink out of the root")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file appeared outside the root: %v", err)
	}
	if err := s.Delete(ctx, "link/victim"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "victim")); err != nil {
			t.Fatalf("deleted a file outside the root: %v", err)
		}
	}
	ks, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 0 {
		t.Fatalf("list followed a symlink out of the root: %q", ks)
	}
}

// A Put interrupted by a crash leaves a temporary file: it is not an object.
func TestLeftoverTempFileIsNotAnObject(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "r/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "r", ".tmp-crashed"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := s.List(ctx, "r/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ks, []string{"r/a"}) {
		t.Fatalf("list = %q", ks)
	}
}

func TestOversizeFileOnDisk(t *testing.T) {
	s := newStore(t)
	f, err := os.Create(filepath.Join(s.Dir(), "huge"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: costs no disk.
	if err := f.Truncate(blob.MaxObjectSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Get(context.Background(), "huge"); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("get of an oversize file: %v, want ErrTooLarge", err)
	}
}
