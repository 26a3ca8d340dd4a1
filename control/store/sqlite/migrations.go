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

// Times are stored as Unix nanoseconds (INTEGER), 0 for the zero time;
// durations as nanoseconds.
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
	// Token labels; who and what admitted a session, where it is recorded;
	// indexes for the session queries.
	{4, `
ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN token_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN rule_name TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN recording_key TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_user_start ON sessions(user_name, start_at DESC);
CREATE INDEX sessions_connection_start ON sessions(connection, start_at DESC);
`},
	// Groups and access rules. Lists are JSON arrays, durations nanoseconds.
	{5, `
CREATE TABLE user_groups (
	name        TEXT PRIMARY KEY,
	description TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
);
CREATE TABLE access_rules (
	name                   TEXT PRIMARY KEY,
	groups_json            TEXT NOT NULL DEFAULT '[]',
	connections_json       TEXT NOT NULL DEFAULT '[]',
	policy_json            TEXT NOT NULL DEFAULT '{}',
	require_review         INTEGER NOT NULL DEFAULT 0,
	review_statements_json TEXT NOT NULL DEFAULT '[]',
	max_session            INTEGER NOT NULL DEFAULT 0,
	hours                  TEXT NOT NULL DEFAULT '',
	created_at             INTEGER NOT NULL,
	updated_at             INTEGER NOT NULL
);
`},
	// Just-in-time reviews. AUTOINCREMENT: an ID is never reused.
	{6, `
CREATE TABLE reviews (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	kind           TEXT NOT NULL,
	user_name      TEXT NOT NULL,
	connection     TEXT NOT NULL,
	session_id     TEXT NOT NULL,
	statement_text TEXT NOT NULL,
	statement_hash TEXT NOT NULL,
	reason         TEXT NOT NULL,
	status         TEXT NOT NULL,
	decider        TEXT NOT NULL,
	decision_note  TEXT NOT NULL,
	grant_until    INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	decided_at     INTEGER NOT NULL
);
CREATE INDEX reviews_status ON reviews(status, id);
CREATE INDEX reviews_grant ON reviews(user_name, connection, status, kind);
`},
	// Per-statement audit.
	{7, `
CREATE TABLE statements (
	session_id     TEXT NOT NULL,
	seq            INTEGER NOT NULL,
	at             INTEGER NOT NULL,
	duration       INTEGER NOT NULL,
	statement_text TEXT NOT NULL,
	params         TEXT NOT NULL,
	row_count      INTEGER NOT NULL,
	outcome        TEXT NOT NULL,
	error          TEXT NOT NULL,
	rule_name      TEXT NOT NULL,
	PRIMARY KEY (session_id, seq)
);
`},
	// Webhooks and their dead letters (deleted with the webhook).
	{8, `
CREATE TABLE webhooks (
	name        TEXT PRIMARY KEY,
	url         TEXT NOT NULL,
	secret      TEXT NOT NULL,
	format      TEXT NOT NULL,
	events_json TEXT NOT NULL DEFAULT '[]',
	created_at  INTEGER NOT NULL
);
CREATE TABLE dead_letters (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook    TEXT NOT NULL REFERENCES webhooks(name) ON DELETE CASCADE,
	event      TEXT NOT NULL,
	payload    BLOB NOT NULL,
	attempts   INTEGER NOT NULL,
	last_error TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX dead_letters_webhook ON dead_letters(webhook, id);
`},
	// Recording manifests.
	{9, `
CREATE TABLE recording_chunks (
	session_id  TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	blob_key    TEXT NOT NULL,
	size        INTEGER NOT NULL,
	sha256      TEXT NOT NULL,
	prev_sha256 TEXT NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (session_id, seq)
);
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
