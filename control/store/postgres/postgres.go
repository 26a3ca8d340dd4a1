package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-gw/sluice/control/store"
)

// Store is a store.Store on one PostgreSQL database. Several Stores, in one
// process or in many gateway replicas, may share the database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or a keyword/value
// string, with pgxpool's pool_* parameters if wanted), checks it answers and
// applies pending migrations. ctx bounds the connection and the migrations.
// Errors never contain the DSN's password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err) // pgconn redacts the password
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := migrate(ctx, pool, migrations, time.Now()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close implements store.Store. It waits for borrowed connections to return.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// utc normalises scanned times: pgx returns them in time.Local.
func utc(ts ...*time.Time) {
	for _, t := range ts {
		*t = t.UTC()
	}
}

// list returns l, or an empty slice for nil.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// execOne runs a statement that must touch a row, else ErrNotFound.
func (s *Store) execOne(ctx context.Context, what, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

func notFound(what string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// pgCode returns the SQLSTATE of a server error, "" for other errors.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const fkViolation = "23503"

// querier is the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// list runs q and scans every row with scan; it never returns a nil slice.
func list[T any](ctx context.Context, db querier, what string, scan func(pgx.Row) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, q, args...)
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

// where builds a WHERE clause from conditions joined by AND, numbering the
// placeholders ($1, $2, ...) in the order they are added.
type where struct {
	conds []string
	args  []any
}

// add adds cond, in which "?" stands for the next placeholder.
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1))
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

// limit appends a LIMIT for n (DefaultLimit when n <= 0).
func (w *where) limit(n int) string {
	if n <= 0 {
		n = store.DefaultLimit
	}
	w.args = append(w.args, n)
	return " LIMIT $" + strconv.Itoa(len(w.args))
}

// lastByKey returns batch without the records a later record of the same
// key replaces, sorted by key: batches written in key order take their row
// locks in one order, so concurrent batches cannot deadlock.
func lastByKey[T any, K comparable](batch []T, key func(T) K, less func(a, b T) int) []T {
	seen := make(map[K]bool, len(batch))
	out := make([]T, 0, len(batch))
	for i := len(batch) - 1; i >= 0; i-- {
		if k := key(batch[i]); !seen[k] {
			seen[k] = true
			out = append(out, batch[i])
		}
	}
	slices.SortFunc(out, less)
	return out
}

// writeBatch sends one statement per record in one transaction, failing on
// the first error (whose message names the record by what).
func (s *Store) writeBatch(ctx context.Context, op string, n int, queue func(b *pgx.Batch), check func(i int, tag pgconn.CommandTag, err error) error) error {
	if n == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		queue(b)
		br := tx.SendBatch(ctx, b)
		for i := range n {
			tag, err := br.Exec()
			if err := check(i, tag, err); err != nil {
				br.Close()
				return err
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Users.

func (s *Store) PutUser(ctx context.Context, u store.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users(name, password_hash, groups, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, groups = excluded.groups`,
		u.Name, u.PasswordHash, nonNil(u.Groups), u.CreatedAt)
	if err != nil {
		return fmt.Errorf("put user %s: %w", u.Name, err)
	}
	return nil
}

const userCols = `name, password_hash, groups, created_at`

func scanUser(r pgx.Row) (store.User, error) {
	var u store.User
	if err := r.Scan(&u.Name, &u.PasswordHash, &u.Groups, &u.CreatedAt); err != nil {
		return u, err
	}
	u.Groups = nonNil(u.Groups)
	utc(&u.CreatedAt)
	return u, nil
}

func (s *Store) GetUser(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	if err != nil {
		return store.User{}, notFound("get user "+name, err)
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, s.pool, "list users", scanUser, `SELECT `+userCols+` FROM users ORDER BY name`)
}

func (s *Store) DeleteUser(ctx context.Context, name string) error {
	// Tokens go with the user through ON DELETE CASCADE.
	return s.execOne(ctx, "delete user "+name, `DELETE FROM users WHERE name = $1`, name)
}

// Tokens.

func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	// DO NOTHING covers both unique keys (id and hash); a missing user
	// still fails on the foreign key.
	tag, err := s.pool.Exec(ctx, `INSERT INTO tokens(`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT DO NOTHING`,
		t.ID, t.UserName, t.Name, t.Hash, t.ExpiresAt, t.CreatedAt, t.Revoked)
	if err != nil {
		return fmt.Errorf("create token for %s: %w", t.UserName, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create token for %s: duplicate id or hash: %w", t.UserName, store.ErrConflict)
	}
	return nil
}

const tokenCols = `id, user_name, name, hash, expires_at, created_at, revoked`

func scanToken(r pgx.Row) (store.Token, error) {
	var t store.Token
	if err := r.Scan(&t.ID, &t.UserName, &t.Name, &t.Hash, &t.ExpiresAt, &t.CreatedAt, &t.Revoked); err != nil {
		return t, err
	}
	utc(&t.ExpiresAt, &t.CreatedAt)
	return t, nil
}

func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1`, hash))
	if err != nil {
		return store.Token{}, notFound("get token", err)
	}
	return t, nil
}

func (s *Store) ListTokens(ctx context.Context, user string) ([]store.Token, error) {
	return list(ctx, s.pool, "list tokens of "+user, scanToken,
		`SELECT `+tokenCols+` FROM tokens WHERE user_name = $1 ORDER BY created_at, id`, user)
}

func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.execOne(ctx, "revoke token "+id, `UPDATE tokens SET revoked = true WHERE id = $1`, id)
}

// Agents.

func (s *Store) PutAgent(ctx context.Context, a store.Agent) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO agents(name, key_hash, created_at) VALUES ($1, $2, $3)
		ON CONFLICT(name) DO UPDATE SET key_hash = excluded.key_hash`, a.Name, a.KeyHash, a.CreatedAt)
	if err != nil {
		return fmt.Errorf("put agent %s: %w", a.Name, err)
	}
	return nil
}

func scanAgent(r pgx.Row) (store.Agent, error) {
	var a store.Agent
	if err := r.Scan(&a.Name, &a.KeyHash, &a.CreatedAt); err != nil {
		return a, err
	}
	utc(&a.CreatedAt)
	return a, nil
}

func (s *Store) GetAgent(ctx context.Context, name string) (store.Agent, error) {
	a, err := scanAgent(s.pool.QueryRow(ctx, `SELECT name, key_hash, created_at FROM agents WHERE name = $1`, name))
	if err != nil {
		return store.Agent{}, notFound("get agent "+name, err)
	}
	return a, nil
}

func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	return list(ctx, s.pool, "list agents", scanAgent, `SELECT name, key_hash, created_at FROM agents ORDER BY name`)
}

func (s *Store) DeleteAgent(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete agent "+name, `DELETE FROM agents WHERE name = $1`, name)
}

// Connections.

func (s *Store) PutConnection(ctx context.Context, c store.Connection) error {
	pj, err := json.Marshal(c.Policy)
	if err != nil {
		return fmt.Errorf("put connection %s: policy: %w", c.Name, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO connections(`+connCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT(name) DO UPDATE SET agent = excluded.agent, type = excluded.type, target = excluded.target,
			policy = excluded.policy, updated_at = excluded.updated_at`,
		c.Name, c.Agent, c.Type, c.Target, string(pj), c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return fmt.Errorf("put connection %s: %w", c.Name, err)
	}
	return nil
}

const connCols = `name, agent, type, target, policy, created_at, updated_at`

func scanConn(r pgx.Row) (store.Connection, error) {
	var c store.Connection
	var pj string
	if err := r.Scan(&c.Name, &c.Agent, &c.Type, &c.Target, &pj, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(pj), &c.Policy); err != nil {
		return c, fmt.Errorf("policy of connection %s: %w", c.Name, err)
	}
	utc(&c.CreatedAt, &c.UpdatedAt)
	return c, nil
}

func (s *Store) GetConnection(ctx context.Context, name string) (store.Connection, error) {
	c, err := scanConn(s.pool.QueryRow(ctx, `SELECT `+connCols+` FROM connections WHERE name = $1`, name))
	if err != nil {
		return store.Connection{}, notFound("get connection "+name, err)
	}
	return c, nil
}

func (s *Store) ListConnections(ctx context.Context) ([]store.Connection, error) {
	return list(ctx, s.pool, "list connections", scanConn, `SELECT `+connCols+` FROM connections ORDER BY name`)
}

func (s *Store) DeleteConnection(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete connection "+name, `DELETE FROM connections WHERE name = $1`, name)
}
