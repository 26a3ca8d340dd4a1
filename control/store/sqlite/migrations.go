package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migration is one schema step. Versions are strictly increasing; a released
// migration is never edited, only followed by a new one.
type migration struct {
	version int
	sql     string
}

// Times are stored as Unix nanoseconds (INTEGER), 0 for the zero time.
var migrations = []migration{
	{1, `
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL DEFAULT '',
	groups_json   TEXT NOT NULL DEFAULT '[]',
	created_at    INTEGER NOT NULL
);
CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	hash       TEXT NOT NULL UNIQUE,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens(user_name);
CREATE TABLE agents (
	name       TEXT PRIMARY KEY,
	key_hash   TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE connections (
	name       TEXT PRIMARY KEY,
	agent      TEXT NOT NULL,
	type       TEXT NOT NULL,
	target     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE sessions (
	id          TEXT PRIMARY KEY,
	user_name   TEXT NOT NULL,
	connection  TEXT NOT NULL,
	protocol    TEXT NOT NULL,
	client_addr TEXT NOT NULL,
	start_at    INTEGER NOT NULL,
	end_at      INTEGER NOT NULL,
	bytes_in    INTEGER NOT NULL,
	bytes_out   INTEGER NOT NULL,
	outcome     TEXT NOT NULL,
	error       TEXT NOT NULL
);
CREATE INDEX sessions_start ON sessions(start_at DESC);
`},
	// Per-connection data-plane policy (engine.Policy as JSON); existing
	// connections get the empty policy.
	{2, `
ALTER TABLE connections ADD COLUMN policy_json TEXT NOT NULL DEFAULT '{}';
`},
	// Guardrail and masking denials per session.
	{3, `
ALTER TABLE sessions ADD COLUMN denials INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_denial TEXT NOT NULL DEFAULT '';
`},
}

// migrate applies every migration not yet recorded in schema_migrations,
// each in its own (immediate) transaction together with its record, so two
// processes opening the same file cannot apply one twice.
func migrate(ctx context.Context, db *sql.DB, list []migration, now int64) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	prev := 0
	for _, m := range list {
		if m.version <= prev {
			return fmt.Errorf("migration %d out of order", m.version)
		}
		prev = m.version
		if err := apply(ctx, db, m, now); err != nil {
			return fmt.Errorf("migration %d: %w", m.version, err)
		}
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > prev {
		return fmt.Errorf("database schema version %d is newer than this binary (%d)", current, prev)
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, m migration, now int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, m.version, now); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
