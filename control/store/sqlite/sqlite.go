package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-gw/sluice/control/store"

	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// busyTimeout is how long a writer waits for another writer's lock.
const busyTimeout = 5 * time.Second

// Store is a store.Store on one SQLite file.
type Store struct {
	db *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path, switches it to WAL
// mode and applies pending migrations.
func Open(path string) (*Store, error) {
	return OpenContext(context.Background(), path)
}

// OpenContext is Open with a context bounding the migrations.
func OpenContext(ctx context.Context, path string) (*Store, error) {
	// Pragmas run on every new pooled connection. _txlock=immediate makes
	// write transactions take the lock at BEGIN, so they wait on the busy
	// timeout instead of failing with SQLITE_BUSY on a read-to-write upgrade.
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		path, busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := migrate(ctx, db, migrations, time.Now().UnixNano()); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// exec runs a statement that must touch a row, else ErrNotFound.
func (s *Store) execOne(ctx context.Context, what, q string, args ...any) error {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

func notFound(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Users.

func (s *Store) PutUser(ctx context.Context, u store.User) error {
	gj, err := encodeList(u.Groups)
	if err != nil {
		return fmt.Errorf("put user %s: %w", u.Name, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO users(name, password_hash, groups_json, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, groups_json = excluded.groups_json`,
		u.Name, u.PasswordHash, gj, toNanos(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("put user %s: %w", u.Name, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func scanUser(r scanner) (store.User, error) {
	var u store.User
	var gj string
	var created int64
	if err := r.Scan(&u.Name, &u.PasswordHash, &gj, &created); err != nil {
		return u, err
	}
	var err error
	if u.Groups, err = decodeList(gj); err != nil {
		return u, fmt.Errorf("groups of %s: %w", u.Name, err)
	}
	u.CreatedAt = fromNanos(created)
	return u, nil
}

func (s *Store) GetUser(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT name, password_hash, groups_json, created_at FROM users WHERE name = ?`, name))
	if err != nil {
		return store.User{}, notFound("get user "+name, err)
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, s.db, "list users", scanUser, `SELECT name, password_hash, groups_json, created_at FROM users ORDER BY name`)
}

func (s *Store) DeleteUser(ctx context.Context, name string) error {
	// Tokens go with the user through ON DELETE CASCADE.
	return s.execOne(ctx, "delete user "+name, `DELETE FROM users WHERE name = ?`, name)
}

// list runs q and scans every row with scan; it never returns a nil slice.
func list[T any](ctx context.Context, db querier, what string, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Tokens.

func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	// DO NOTHING covers both unique keys (id and hash); a missing user
	// still fails on the foreign key.
	res, err := s.db.ExecContext(ctx, `INSERT INTO tokens(id, user_name, name, hash, expires_at, created_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		t.ID, t.UserName, t.Name, t.Hash, toNanos(t.ExpiresAt), toNanos(t.CreatedAt), t.Revoked)
	if err != nil {
		return fmt.Errorf("create token for %s: %w", t.UserName, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create token for %s: %w", t.UserName, err)
	} else if n == 0 {
		return fmt.Errorf("create token for %s: duplicate id or hash: %w", t.UserName, store.ErrConflict)
	}
	return nil
}

const tokenCols = `id, user_name, name, hash, expires_at, created_at, revoked`

func scanToken(r scanner) (store.Token, error) {
	var t store.Token
	var exp, created int64
	if err := r.Scan(&t.ID, &t.UserName, &t.Name, &t.Hash, &exp, &created, &t.Revoked); err != nil {
		return t, err
	}
	t.ExpiresAt, t.CreatedAt = fromNanos(exp), fromNanos(created)
	return t, nil
}

func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if err != nil {
		return store.Token{}, notFound("get token", err)
	}
	return t, nil
}

func (s *Store) ListTokens(ctx context.Context, user string) ([]store.Token, error) {
	return list(ctx, s.db, "list tokens of "+user, scanToken,
		`SELECT `+tokenCols+` FROM tokens WHERE user_name = ? ORDER BY created_at, id`, user)
}

func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.execOne(ctx, "revoke token "+id, `UPDATE tokens SET revoked = 1 WHERE id = ?`, id)
}

// Agents.

func (s *Store) PutAgent(ctx context.Context, a store.Agent) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO agents(name, key_hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET key_hash = excluded.key_hash`, a.Name, a.KeyHash, toNanos(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("put agent %s: %w", a.Name, err)
	}
	return nil
}

func scanAgent(r scanner) (store.Agent, error) {
	var a store.Agent
	var created int64
	if err := r.Scan(&a.Name, &a.KeyHash, &created); err != nil {
		return a, err
	}
	a.CreatedAt = fromNanos(created)
	return a, nil
}

func (s *Store) GetAgent(ctx context.Context, name string) (store.Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, `SELECT name, key_hash, created_at FROM agents WHERE name = ?`, name))
	if err != nil {
		return store.Agent{}, notFound("get agent "+name, err)
	}
	return a, nil
}

func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	return list(ctx, s.db, "list agents", scanAgent, `SELECT name, key_hash, created_at FROM agents ORDER BY name`)
}

func (s *Store) DeleteAgent(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete agent "+name, `DELETE FROM agents WHERE name = ?`, name)
}

// Connections.

func (s *Store) PutConnection(ctx context.Context, c store.Connection) error {
	pj, err := json.Marshal(c.Policy)
	if err != nil {
		return fmt.Errorf("put connection %s: policy: %w", c.Name, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO connections(name, agent, type, target, policy_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET agent = excluded.agent, type = excluded.type, target = excluded.target,
			policy_json = excluded.policy_json, updated_at = excluded.updated_at`,
		c.Name, c.Agent, c.Type, c.Target, string(pj), toNanos(c.CreatedAt), toNanos(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put connection %s: %w", c.Name, err)
	}
	return nil
}

const connCols = `name, agent, type, target, policy_json, created_at, updated_at`

func scanConn(r scanner) (store.Connection, error) {
	var c store.Connection
	var pj string
	var created, updated int64
	if err := r.Scan(&c.Name, &c.Agent, &c.Type, &c.Target, &pj, &created, &updated); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(pj), &c.Policy); err != nil {
		return c, fmt.Errorf("policy of connection %s: %w", c.Name, err)
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

func (s *Store) GetConnection(ctx context.Context, name string) (store.Connection, error) {
	c, err := scanConn(s.db.QueryRowContext(ctx, `SELECT `+connCols+` FROM connections WHERE name = ?`, name))
	if err != nil {
		return store.Connection{}, notFound("get connection "+name, err)
	}
	return c, nil
}

func (s *Store) ListConnections(ctx context.Context) ([]store.Connection, error) {
	return list(ctx, s.db, "list connections", scanConn, `SELECT `+connCols+` FROM connections ORDER BY name`)
}

func (s *Store) DeleteConnection(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete connection "+name, `DELETE FROM connections WHERE name = ?`, name)
}

// Sessions.

func (s *Store) WriteSessions(ctx context.Context, batch []store.Session) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write sessions: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO sessions(`+sessionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET user_name = excluded.user_name, connection = excluded.connection,
			protocol = excluded.protocol, client_addr = excluded.client_addr, token_id = excluded.token_id,
			rule_name = excluded.rule_name, recording_key = excluded.recording_key, start_at = excluded.start_at,
			end_at = excluded.end_at, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out,
			outcome = excluded.outcome, error = excluded.error, denials = excluded.denials, last_denial = excluded.last_denial`)
	if err != nil {
		return fmt.Errorf("write sessions: prepare: %w", err)
	}
	defer stmt.Close()
	for _, r := range batch {
		if _, err := stmt.ExecContext(ctx, r.ID, r.User, r.Connection, r.Protocol, r.ClientAddr,
			r.TokenID, r.Rule, r.RecordingKey, toNanos(r.Start), toNanos(r.End), r.BytesIn, r.BytesOut, r.Outcome, r.Error, r.Denials, r.LastDenial); err != nil {
			return fmt.Errorf("write session %s: %w", r.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write sessions: commit: %w", err)
	}
	return nil
}

const sessionCols = `id, user_name, connection, protocol, client_addr, token_id, rule_name, recording_key,
	start_at, end_at, bytes_in, bytes_out, outcome, error, denials, last_denial`

func scanSession(r scanner) (store.Session, error) {
	var x store.Session
	var start, end int64
	if err := r.Scan(&x.ID, &x.User, &x.Connection, &x.Protocol, &x.ClientAddr, &x.TokenID, &x.Rule, &x.RecordingKey, &start, &end,
		&x.BytesIn, &x.BytesOut, &x.Outcome, &x.Error, &x.Denials, &x.LastDenial); err != nil {
		return x, err
	}
	x.Start, x.End = fromNanos(start), fromNanos(end)
	return x, nil
}

func (s *Store) ListSessions(ctx context.Context, limit int) ([]store.Session, error) {
	if limit <= 0 {
		return []store.Session{}, nil
	}
	return list(ctx, s.db, "list sessions", scanSession,
		`SELECT `+sessionCols+` FROM sessions ORDER BY start_at DESC, id DESC LIMIT ?`, limit)
}

// QuerySessions implements store.Store.
func (s *Store) QuerySessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	var w where
	w.eq("user_name", f.User)
	w.eq("connection", f.Connection)
	w.eq("outcome", f.Outcome)
	if !f.Since.IsZero() {
		w.add("start_at >= ?", toNanos(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("start_at < ?", toNanos(f.Until))
	}
	return list(ctx, s.db, "query sessions", scanSession,
		`SELECT `+sessionCols+` FROM sessions`+w.sql()+` ORDER BY start_at DESC, id DESC LIMIT ?`,
		append(w.args, limitOr(f.Limit))...)
}

// GetSession implements store.Store.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return store.Session{}, notFound("get session "+id, err)
	}
	return x, nil
}

// where builds a WHERE clause from conditions joined by AND.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, arg)
}

// eq adds col = v unless v is empty (empty matches anything).
func (w *where) eq(col, v string) {
	if v != "" {
		w.add(col+" = ?", v)
	}
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// limitOr maps a zero or negative limit to store.DefaultLimit.
func limitOr(n int) int {
	if n <= 0 {
		return store.DefaultLimit
	}
	return n
}

// encodeList returns l as a JSON array, "[]" for nil.
func encodeList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// decodeList parses a JSON array of strings, never returning nil.
func decodeList(s string) ([]string, error) {
	l := []string{}
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if l == nil {
		l = []string{}
	}
	return l, nil
}
