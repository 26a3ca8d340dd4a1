package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sluice-gw/sluice/control/blob"
)

// Run runs the suite. newStore must return a fresh, empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"GetMissing", testGetMissing},
		{"Delete", testDelete},
		{"List", testList},
		{"InvalidKeys", testInvalidKeys},
		{"TooLarge", testTooLarge},
		{"CallerOwnsBuffers", testBuffers},
		{"ConcurrentPutGet", testConcurrent},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, data); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

func list(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	ks, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	if ks == nil {
		t.Fatalf("list %q: nil slice, want an empty one", prefix)
	}
	return ks
}

func testPutGet(t *testing.T, s blob.Store) {
	for _, tc := range []struct {
		key  string
		data []byte
	}{
		{"a", []byte("x")},
		{"rec/0123abcd/0000000000000000", bytes.Repeat([]byte{0, 1, 2, 255}, 70000)},
		{"deep/er/and/deeper/k.bin", []byte{}},
		{"Mixed_Case-1.2", []byte("hello")},
	} {
		put(t, s, tc.key, tc.data)
		if got := get(t, s, tc.key); !bytes.Equal(got, tc.data) {
			t.Errorf("get %s: %d bytes, want the %d put", tc.key, len(got), len(tc.data))
		}
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	put(t, s, "k/v", []byte("first, longer value"))
	put(t, s, "k/v", []byte("second"))
	if got := get(t, s, "k/v"); string(got) != "second" {
		t.Fatalf("after overwrite got %q", got)
	}
	if ks := list(t, s, ""); !slices.Equal(ks, []string{"k/v"}) {
		t.Fatalf("list after overwrite = %q: a temporary file or old version shows", ks)
	}
}

func testGetMissing(t *testing.T, s blob.Store) {
	put(t, s, "dir/present", []byte("x"))
	for _, key := range []string{"missing", "dir/missing", "dir", "nodir/x"} {
		_, err := s.Get(context.Background(), key)
		if !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("get %s: %v, want ErrNotFound", key, err)
		}
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "d/one", []byte("1"))
	put(t, s, "d/two", []byte("2"))
	if err := s.Delete(ctx, "d/one"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "d/one"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if got := get(t, s, "d/two"); string(got) != "2" {
		t.Fatalf("delete touched a neighbour: %q", got)
	}
	if err := s.Delete(ctx, "d/one"); err != nil {
		t.Fatalf("delete of a missing key: %v, want nil", err)
	}
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("delete of a never-written key: %v, want nil", err)
	}
	if ks := list(t, s, ""); !slices.Equal(ks, []string{"d/two"}) {
		t.Fatalf("list = %q", ks)
	}
}

func testList(t *testing.T, s blob.Store) {
	all := []string{"a/b/c", "a/b/d", "a/bc", "a/c", "ab", "b/1/2/3/4", "z"}
	// Put in reverse to show List sorts.
	for i := len(all) - 1; i >= 0; i-- {
		put(t, s, all[i], []byte(all[i]))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a", []string{"a/b/c", "a/b/d", "a/bc", "a/c", "ab"}},
		{"a/", []string{"a/b/c", "a/b/d", "a/bc", "a/c"}},
		{"a/b", []string{"a/b/c", "a/b/d", "a/bc"}},
		{"a/b/", []string{"a/b/c", "a/b/d"}},
		{"a/b/c", []string{"a/b/c"}},
		{"b/1/2", []string{"b/1/2/3/4"}},
		{"nothing", []string{}},
		{"nothing/here/", []string{}},
	} {
		if got := list(t, s, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("list %q = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	bad := []string{"", "/abs", "a//b", "a/", "../x", "a/../../x", "./a", "a/./b", "..", ".", ".hidden", "a/.tmp-1",
		"a\\b", "a b", "a\x00b", "ä", "a?b", "a%2F..", string(make([]byte, 600))}
	for _, key := range bad {
		if err := s.Put(ctx, key, []byte("x")); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("put %q: %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("get %q: %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("delete %q: %v, want ErrInvalidKey", key, err)
		}
	}
	for _, p := range []string{"/", "/a", "..", "../", "a//", "a/../"} {
		if _, err := s.List(ctx, p); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("list %q: %v, want ErrInvalidKey", p, err)
		}
	}
	if ks := list(t, s, ""); len(ks) != 0 {
		t.Fatalf("invalid keys left objects: %q", ks)
	}
}

func testTooLarge(t *testing.T, s blob.Store) {
	err := s.Put(context.Background(), "big", make([]byte, blob.MaxObjectSize+1))
	if !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("put of MaxObjectSize+1 bytes: %v, want ErrTooLarge", err)
	}
	if _, err := s.Get(context.Background(), "big"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("a refused put left an object: %v", err)
	}
}

func testBuffers(t *testing.T, s blob.Store) {
	data := []byte("original")
	put(t, s, "buf", data)
	copy(data, "XXXXXXXX") // the store must not have kept data
	got := get(t, s, "buf")
	if string(got) != "original" {
		t.Fatalf("store kept the caller's buffer: %q", got)
	}
	copy(got, "YYYYYYYY") // nor may it hand out its own
	if again := get(t, s, "buf"); string(again) != "original" {
		t.Fatalf("store handed out its own buffer: %q", again)
	}
}

// testConcurrent has readers race writers on one key: every read must be
// one whole version, never a mix or a prefix.
func testConcurrent(t *testing.T, s blob.Store) {
	const versions, size = 20, 64 << 10
	val := func(v int) []byte { return bytes.Repeat([]byte{byte('a' + v)}, size+v) }
	put(t, s, "race/k", val(0))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; v < versions; v++ {
			if err := s.Put(context.Background(), "race/k", val(v)); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range versions {
				b, err := s.Get(context.Background(), "race/k")
				if err != nil {
					errs <- err
					return
				}
				v := len(b) - size
				if v < 0 || v >= versions || !bytes.Equal(b, val(v)) {
					errs <- fmt.Errorf("read a partial or mixed object: %d bytes", len(b))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testCanceled(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "c", []byte("x")); err == nil {
		t.Error("put with a canceled context succeeded")
	}
	if ks := list(t, s, ""); len(ks) != 0 {
		t.Errorf("canceled put left %q", ks)
	}
}
