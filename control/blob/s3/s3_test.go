package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-gw/sluice/control/blob"
	"github.com/sluice-gw/sluice/control/blob/blobtest"
	"github.com/sluice-gw/sluice/control/blob/s3"
)

var _ blob.Store = (*s3.Store)(nil)

const (
	accessKey = "AKIDSLUICETEST"
	secretKey = "not-a-real-secret"
)

// fakeS3 is an in-process gofakes3 server (a fake, see doc.go). It does not
// check signatures, so the handler records which access key each request
// was signed with.
type fakeS3 struct {
	backend  *s3mem.Backend
	srv      *httptest.Server
	unsigned atomic.Int64 // requests not signed with accessKey
	requests atomic.Int64
}

func startFake(t *testing.T, tls bool) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	h := gofakes3.New(f.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+accessKey+"/") {
			f.unsigned.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	if tls {
		f.srv = httptest.NewTLSServer(wrapped)
	} else {
		f.srv = httptest.NewServer(wrapped)
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) config(t *testing.T, bucket, prefix string) s3.Config {
	t.Helper()
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	cfg := s3.DefaultConfig()
	cfg.Endpoint = f.srv.Listener.Addr().String()
	cfg.Bucket = bucket
	cfg.Region = "us-east-1"
	cfg.AccessKey = accessKey
	cfg.SecretKey = secretKey
	cfg.Prefix = prefix
	cfg.PathStyle = true
	cfg.TLS = f.srv.TLS != nil
	if cfg.TLS {
		cfg.Transport = f.srv.Client().Transport
	}
	return cfg
}

func newStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    bool
		prefix string
	}{
		{"http", false, ""},
		{"http-prefix", false, "sluice/recs"},
		{"https-prefix", true, "sluice/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.tls)
			n := 0
			blobtest.Run(t, func(t *testing.T) blob.Store {
				n++
				return newStore(t, f.config(t, fmt.Sprintf("bucket-%d", n), tc.prefix))
			})
			if f.requests.Load() == 0 {
				t.Fatal("no request reached the server")
			}
			if u := f.unsigned.Load(); u != 0 {
				t.Fatalf("%d of %d requests were not signed with the configured access key", u, f.requests.Load())
			}
		})
	}
}

// The prefix keeps the store to its part of the bucket: its keys land under
// it, and objects outside it are neither listed nor reachable.
func TestPrefixIsolation(t *testing.T) {
	f := startFake(t, false)
	cfg := f.config(t, "shared", "sluice")
	s := newStore(t, cfg)
	ctx := context.Background()
	other := cfg
	other.Prefix = ""
	raw := newStore(t, other)
	if err := raw.Put(ctx, "foreign/x", []byte("not ours")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "recordings/s1/0", []byte("ours")); err != nil {
		t.Fatal(err)
	}
	if b, err := raw.Get(ctx, "sluice/recordings/s1/0"); err != nil || string(b) != "ours" {
		t.Fatalf("object under the prefix: %q, %v", b, err)
	}
	ks, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ks, []string{"recordings/s1/0"}) {
		t.Fatalf("list = %q", ks)
	}
	if _, err := s.Get(ctx, "foreign/x"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("get outside the prefix: %v, want ErrNotFound", err)
	}
}

// A missing bucket is a configuration error, not a missing object: it must
// not be reported as ErrNotFound (Verify would call every chunk missing).
func TestMissingBucketIsNotNotFound(t *testing.T) {
	f := startFake(t, false)
	cfg := f.config(t, "exists", "")
	cfg.Bucket = "absent"
	s := newStore(t, cfg)
	_, err := s.Get(context.Background(), "k")
	if err == nil || errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("get from a missing bucket: %v; want an error that is not ErrNotFound", err)
	}
	if err := s.Put(context.Background(), "k", []byte("x")); err == nil {
		t.Fatal("put to a missing bucket succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	good := s3.DefaultConfig()
	good.Endpoint, good.Bucket, good.Region = "s3.example.com", "b", "eu-west-1"
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*s3.Config){
		"no endpoint":     func(c *s3.Config) { c.Endpoint = "" },
		"scheme":          func(c *s3.Config) { c.Endpoint = "https://s3.example.com" },
		"path":            func(c *s3.Config) { c.Endpoint = "s3.example.com/x" },
		"no bucket":       func(c *s3.Config) { c.Bucket = "" },
		"no region":       func(c *s3.Config) { c.Region = "" },
		"half creds":      func(c *s3.Config) { c.AccessKey = "a" },
		"bad prefix":      func(c *s3.Config) { c.Prefix = "../up" },
		"negative tries":  func(c *s3.Config) { c.MaxRetries = -1 },
		"double slash":    func(c *s3.Config) { c.Prefix = "a//b" },
		"hidden segment":  func(c *s3.Config) { c.Prefix = ".x/" },
		"absolute prefix": func(c *s3.Config) { c.Prefix = "/a" },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if _, err := s3.New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}
