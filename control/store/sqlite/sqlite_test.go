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

func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "sluice.db")
		a, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(path)
		if err != nil {
			a.Close()
			t.Fatal(err)
		}
		return a, b
	})
}

func TestMigrationKeepsTokensAndSessions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluice.db")
	// A database at schema version 3 with a token and a session.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, migrations[:3], 0); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO users(name, created_at) VALUES ('alice', 1)`,
		`INSERT INTO tokens(id, user_name, hash, expires_at, created_at) VALUES ('t1', 'alice', 'h1', 0, 1)`,
		`INSERT INTO sessions(id, user_name, connection, protocol, client_addr, start_at, end_at, bytes_in, bytes_out, outcome, error)
			VALUES ('s1', 'alice', 'db', 'postgres', 'x', 5, 0, 1, 2, 'ok', '')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer s.Close()
	tok, err := s.TokenByHash(ctx, "h1")
	if err != nil || tok.ID != "t1" || tok.Name != "" {
		t.Fatalf("migrated token: %+v, %v", tok, err)
	}
	x, err := s.GetSession(ctx, "s1")
	if err != nil || x.User != "alice" || x.BytesOut != 2 || x.TokenID != "" || x.Rule != "" || x.RecordingKey != "" {
		t.Fatalf("migrated session: %+v, %v", x, err)
	}
	if err := s.WriteSessions(ctx, []store.Session{{ID: "s1", TokenID: "t1", Rule: "r", RecordingKey: "k", Start: x.Start}}); err != nil {
		t.Fatal(err)
	}
	if x, err = s.GetSession(ctx, "s1"); err != nil || x.TokenID != "t1" || x.Rule != "r" || x.RecordingKey != "k" {
		t.Fatalf("after update: %+v, %v", x, err)
	}
}
