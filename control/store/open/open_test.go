package open

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/postgres"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/internal/scratchpg"
)

func roundTrip(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.PutUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestSQLite(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []string{"", "sqlite"} {
		dir := t.TempDir()
		s, err := Open(ctx, spec, dir)
		if err != nil {
			t.Fatalf("spec %q: %v", spec, err)
		}
		if _, ok := s.(*sqlite.Store); !ok {
			t.Fatalf("spec %q: %T, want *sqlite.Store", spec, s)
		}
		roundTrip(t, s)
		s.Close()
		if _, err := os.Stat(filepath.Join(dir, "sluice.db")); err != nil {
			t.Fatalf("spec %q: database file: %v", spec, err)
		}
	}
	if _, err := Open(ctx, "", ""); err == nil {
		t.Fatal("sqlite without a data directory accepted")
	}
	if _, err := Open(ctx, "sqlite", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("sqlite in a missing directory accepted")
	}
}

func TestPostgres(t *testing.T) {
	srv := scratchpg.MustStart(t, scratchpg.Options{})
	ctx := context.Background()
	if err := srv.CreateUser(ctx, "gw", "gw-secret", ""); err != nil {
		t.Fatal(err)
	}
	for i, scheme := range []string{"postgres", "postgresql", "PostgreSQL"} {
		db := "gw" + string(rune('a'+i))
		if err := srv.CreateDatabase(ctx, db, "gw"); err != nil {
			t.Fatal(err)
		}
		spec := scheme + strings.TrimPrefix(srv.URL("gw", "gw-secret", db), "postgres")
		s, err := Open(ctx, spec, "")
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if _, ok := s.(*postgres.Store); !ok {
			t.Fatalf("%s: %T, want *postgres.Store", scheme, s)
		}
		roundTrip(t, s)
		s.Close()
	}
	// A wrong password fails without showing the one given.
	_, err := Open(ctx, srv.URL("gw", "wrong-pw-123", "gwa"), t.TempDir())
	if err == nil || strings.Contains(err.Error(), "wrong-pw-123") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestUnsupported(t *testing.T) {
	for _, spec := range []string{"mysql://u:topsecret@h/db", "sqlite3", "/var/lib/sluice/x.db", "postgres:/x", "SQLITE"} {
		_, err := Open(context.Background(), spec, t.TempDir())
		if err == nil {
			t.Fatalf("spec %q accepted", spec)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Fatalf("spec %q: error shows the password: %v", spec, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for spec, want := range map[string]string{
		"":       "",
		"sqlite": "sqlite",
		"postgres://gw:s3cret@db.internal:5432/sluice?sslmode=verify-full": "postgres://gw:xxxxx@db.internal:5432/sluice?sslmode=verify-full",
		"postgres://gw@db/sluice":                    "postgres://gw@db/sluice",
		"postgresql://db/sluice?password=s3cret&x=1": "postgresql://db/sluice?password=xxxxx&x=1",
		"postgres://gw:s3cret@db:bad port/x":         "postgres://<invalid>",
		"not a url \x7f":                             "<invalid>",
	} {
		if got := Redact(spec); got != want {
			t.Errorf("Redact(%q) = %q, want %q", spec, got, want)
		}
	}
}
