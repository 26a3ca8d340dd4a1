package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one schema step. Versions are strictly increasing; a released
// migration is never edited, only followed by a new one.
type migration struct {
	version int
	sql     string
}

// migrationLock is the key of the transaction-level advisory lock held while
// migrating ("sluice" in ASCII). Advisory locks are per database.
const migrationLock int64 = 0x736c75696365

var migrations = []migration{
	{1, `
CREATE TABLE users (
	name          text COLLATE "C" PRIMARY KEY,
	password_hash text NOT NULL DEFAULT '',
	groups        text[] NOT NULL DEFAULT '{}',
	created_at    timestamptz NOT NULL
);
CREATE TABLE tokens (
	id         text COLLATE "C" PRIMARY KEY,
	user_name  text COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	name       text NOT NULL DEFAULT '',
	hash       text NOT NULL UNIQUE,
	expires_at timestamptz NOT NULL,
	created_at timestamptz NOT NULL,
	revoked    boolean NOT NULL DEFAULT false
);
CREATE INDEX tokens_user ON tokens(user_name, created_at);
CREATE TABLE agents (
	name       text COLLATE "C" PRIMARY KEY,
	key_hash   text NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE TABLE connections (
	name       text COLLATE "C" PRIMARY KEY,
	agent      text NOT NULL,
	type       text NOT NULL,
	target     text NOT NULL,
	policy     jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
CREATE TABLE sessions (
	id            text COLLATE "C" PRIMARY KEY,
	user_name     text NOT NULL,
	connection    text NOT NULL,
	protocol      text NOT NULL,
	client_addr   text NOT NULL,
	token_id      text NOT NULL DEFAULT '',
	rule_name     text NOT NULL DEFAULT '',
	recording_key text NOT NULL DEFAULT '',
	start_at      timestamptz NOT NULL,
	end_at        timestamptz NOT NULL,
	bytes_in      bigint NOT NULL,
	bytes_out     bigint NOT NULL,
	outcome       text NOT NULL,
	error         text NOT NULL,
	denials       bigint NOT NULL DEFAULT 0,
	last_denial   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_start ON sessions(start_at DESC, id DESC);
CREATE INDEX sessions_user_start ON sessions(user_name, start_at DESC);
CREATE INDEX sessions_connection_start ON sessions(connection, start_at DESC);
CREATE TABLE user_groups (
	name        text COLLATE "C" PRIMARY KEY,
	description text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL
);
CREATE TABLE access_rules (
	name              text COLLATE "C" PRIMARY KEY,
	groups            text[] NOT NULL DEFAULT '{}',
	connections       text[] NOT NULL DEFAULT '{}',
	policy            jsonb NOT NULL DEFAULT '{}',
	require_review    boolean NOT NULL DEFAULT false,
	review_statements text[] NOT NULL DEFAULT '{}',
	max_session       bigint NOT NULL DEFAULT 0,
	hours             text NOT NULL DEFAULT '',
	created_at        timestamptz NOT NULL,
	updated_at        timestamptz NOT NULL
);
CREATE TABLE reviews (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind           text NOT NULL,
	user_name      text NOT NULL,
	connection     text NOT NULL,
	session_id     text NOT NULL,
	statement_text text NOT NULL,
	statement_hash text NOT NULL,
	reason         text NOT NULL,
	status         text NOT NULL,
	decider        text NOT NULL,
	decision_note  text NOT NULL,
	grant_until    timestamptz NOT NULL,
	created_at     timestamptz NOT NULL,
	decided_at     timestamptz NOT NULL
);
CREATE INDEX reviews_status ON reviews(status, id);
CREATE INDEX reviews_grant ON reviews(user_name, connection, status, kind);
CREATE TABLE statements (
	session_id     text COLLATE "C" NOT NULL,
	seq            bigint NOT NULL,
	at             timestamptz NOT NULL,
	duration       bigint NOT NULL,
	statement_text text NOT NULL,
	params         text NOT NULL,
	row_count      bigint NOT NULL,
	outcome        text NOT NULL,
	error          text NOT NULL,
	rule_name      text NOT NULL,
	PRIMARY KEY (session_id, seq)
);
CREATE TABLE webhooks (
	name       text COLLATE "C" PRIMARY KEY,
	url        text NOT NULL,
	secret     text NOT NULL,
	format     text NOT NULL,
	events     text[] NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL
);
CREATE TABLE dead_letters (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	webhook    text COLLATE "C" NOT NULL REFERENCES webhooks(name) ON DELETE CASCADE,
	event      text NOT NULL,
	payload    bytea NOT NULL,
	attempts   bigint NOT NULL,
	last_error text NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE INDEX dead_letters_webhook ON dead_letters(webhook, id);
CREATE TABLE recording_chunks (
	session_id  text COLLATE "C" NOT NULL,
	seq         bigint NOT NULL,
	blob_key    text NOT NULL,
	size        bigint NOT NULL,
	sha256      text NOT NULL,
	prev_sha256 text NOT NULL,
	at          timestamptz NOT NULL,
	PRIMARY KEY (session_id, seq)
);
`},
}

// migrate applies every migration of list not yet recorded in
// schema_migrations, all in one transaction that first takes the advisory
// lock: a second gateway migrating the same database waits for the first
// and then finds nothing left to do. DDL is transactional in PostgreSQL, so
// a failed migration leaves the schema as it was.
func migrate(ctx context.Context, pool *pgxpool.Pool, list []migration, now time.Time) error {
	prev := 0
	for _, m := range list {
		if m.version <= prev {
			return fmt.Errorf("migration %d out of order", m.version)
		}
		prev = m.version
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		done := map[int]bool{}
		for _, v := range applied {
			done[int(v)] = true
			if int(v) > prev {
				return fmt.Errorf("database schema version %d is newer than this binary (%d)", v, prev)
			}
		}
		for _, m := range list {
			if done[m.version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %d: %w", m.version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES ($1, $2)`, m.version, now); err != nil {
				return fmt.Errorf("migration %d: record: %w", m.version, err)
			}
		}
		return nil
	})
}
