package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/storetest"
	"github.com/sluice-gw/sluice/engine"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "sluice.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluice.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
	var busy int
	if err := s.db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != int(busyTimeout.Milliseconds()) {
		t.Fatalf("busy_timeout %d, %v", busy, err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Fatalf("user lost: %v", err)
	}
	var n, v int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || v != migrations[len(migrations)-1].version {
		t.Fatalf("schema_migrations: %d rows, version %d", n, v)
	}
}

func TestMigrationsOrderedAndNewerSchemaRejected(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluice.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, s.db, []migration{{2, "SELECT 1"}, {1, "SELECT 1"}}, 0); err == nil {
		t.Fatal("out-of-order migrations accepted")
	}
	extra := append(append([]migration{}, migrations...), migration{migrations[len(migrations)-1].version + 1, `CREATE TABLE later (x INTEGER)`})
	if err := migrate(ctx, s.db, extra, 0); err != nil {
		t.Fatalf("new migration: %v", err)
	}
	if err := migrate(ctx, s.db, extra, 0); err != nil {
		t.Fatalf("re-run is not idempotent: %v", err)
	}
	s.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("opened a database with a newer schema")
	}
}

func TestOpenBadPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "dir")
	if _, err := Open(filepath.Join(dir, "x.db")); err == nil {
		t.Fatal("opened a database in a missing directory")
	}
}

func TestMigrationGivesExistingConnectionsAnEmptyPolicy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluice.db")
	// A database at schema version 1, with a connection written then.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, migrations[:1], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO connections VALUES ('old', 'a1', 'postgres', 'x', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer s.Close()
	c, err := s.GetConnection(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if c.Target != "x" || !reflect.DeepEqual(c.Policy, engine.Policy{}) {
		t.Fatalf("migrated connection: %+v", c)
	}
	p := engine.Policy{Masking: &engine.MaskingPolicy{Detectors: []string{"email"}, Style: "redact"}}
	c.Policy = p
	if err := s.PutConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c, err = s.GetConnection(ctx, "old"); err != nil || !reflect.DeepEqual(c.Policy, p) {
		t.Fatalf("after update: %+v, %v", c.Policy, err)
	}
}
