package blob

import (
	"context"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gw/sluice/control/blob/fs"
	"github.com/sluice-gw/sluice/control/blob/s3"
)

func TestOpenFilesystem(t *testing.T) {
	dir := t.TempDir()
	for _, spec := range []string{
		filepath.Join(dir, "plain"),
		"file://" + filepath.Join(dir, "url"),
		"file://localhost" + filepath.Join(dir, "localhost"),
	} {
		st, err := Open(spec, Credentials{})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		f, ok := st.(*fs.Store)
		if !ok {
			t.Fatalf("%s: got %T, want *fs.Store", spec, st)
		}
		if err := st.Put(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(f.Dir(), dir) {
			t.Fatalf("%s: rooted at %s", spec, f.Dir())
		}
		st.(io.Closer).Close()
	}
}

func TestParseS3(t *testing.T) {
	u := mustURL(t, "s3://recs/sluice/prod/?endpoint=127.0.0.1:9000&region=eu-west-1&tls=false&path_style=true")
	cfg, err := parseS3(u)
	if err != nil {
		t.Fatal(err)
	}
	want := s3.DefaultConfig()
	want.Endpoint, want.Bucket, want.Region, want.Prefix, want.TLS, want.PathStyle = "127.0.0.1:9000", "recs", "eu-west-1", "sluice/prod", false, true
	if cfg != want {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	def, err := parseS3(mustURL(t, "s3://bucket"))
	if err != nil {
		t.Fatal(err)
	}
	if def.Endpoint != "s3.amazonaws.com" || def.Region != "us-east-1" || !def.TLS || def.PathStyle || def.Prefix != "" {
		t.Fatalf("defaults: %+v", def)
	}
}

func TestOpenS3(t *testing.T) {
	st, err := Open("s3://b/p?endpoint=127.0.0.1:1&tls=false", Credentials{AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*s3.Store); !ok {
		t.Fatalf("got %T, want *s3.Store", st)
	}
	if _, err := Open("s3://b?endpoint=127.0.0.1:1", Credentials{AccessKey: "only-half"}); err == nil {
		t.Fatal("accepted an access key without a secret")
	}
}

func TestOpenRejects(t *testing.T) {
	for _, spec := range []string{
		"",
		"ftp://host/x",
		"file://host/dir",
		"file://",
		"s3://",
		"s3://b?endpoint=https://x",
		"s3://b?regoin=eu",
		"s3://b?tls=maybe",
		"s3://b?tls=true&tls=false",
		"s3://b/../up",
		"s3://AKID:SECRET@bucket/p",
	} {
		st, err := Open(spec, Credentials{})
		if err == nil {
			t.Errorf("Open(%q) accepted (%T)", spec, st)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Open(%q): error leaks the secret: %v", spec, err)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
