package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-gw/sluice/control/store"
)

// Sessions.

const sessionCols = `id, user_name, connection, protocol, client_addr, token_id, rule_name, recording_key,
	start_at, end_at, bytes_in, bytes_out, outcome, error, denials, last_denial`

// WriteSessions implements store.Store.
func (s *Store) WriteSessions(ctx context.Context, batch []store.Session) error {
	batch = lastByKey(batch, func(x store.Session) string { return x.ID },
		func(a, b store.Session) int { return cmp.Compare(a.ID, b.ID) })
	return s.writeBatch(ctx, "write sessions", len(batch), func(b *pgx.Batch) {
		for _, r := range batch {
			b.Queue(`INSERT INTO sessions(`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
				ON CONFLICT(id) DO UPDATE SET user_name = excluded.user_name, connection = excluded.connection,
					protocol = excluded.protocol, client_addr = excluded.client_addr, token_id = excluded.token_id,
					rule_name = excluded.rule_name, recording_key = excluded.recording_key, start_at = excluded.start_at,
					end_at = excluded.end_at, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out,
					outcome = excluded.outcome, error = excluded.error, denials = excluded.denials, last_denial = excluded.last_denial`,
				r.ID, r.User, r.Connection, r.Protocol, r.ClientAddr, r.TokenID, r.Rule, r.RecordingKey, r.Start, r.End,
				r.BytesIn, r.BytesOut, r.Outcome, r.Error, r.Denials, r.LastDenial)
		}
	}, func(i int, _ pgconn.CommandTag, err error) error {
		if err != nil {
			return fmt.Errorf("session %s: %w", batch[i].ID, err)
		}
		return nil
	})
}

func scanSession(r pgx.Row) (store.Session, error) {
	var x store.Session
	if err := r.Scan(&x.ID, &x.User, &x.Connection, &x.Protocol, &x.ClientAddr, &x.TokenID, &x.Rule, &x.RecordingKey,
		&x.Start, &x.End, &x.BytesIn, &x.BytesOut, &x.Outcome, &x.Error, &x.Denials, &x.LastDenial); err != nil {
		return x, err
	}
	utc(&x.Start, &x.End)
	return x, nil
}

// ListSessions implements store.Store.
func (s *Store) ListSessions(ctx context.Context, limit int) ([]store.Session, error) {
	if limit <= 0 {
		return []store.Session{}, nil
	}
	return list(ctx, s.pool, "list sessions", scanSession,
		`SELECT `+sessionCols+` FROM sessions ORDER BY start_at DESC, id DESC LIMIT $1`, limit)
}

// QuerySessions implements store.Store.
func (s *Store) QuerySessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	var w where
	w.eq("user_name", f.User)
	w.eq("connection", f.Connection)
	w.eq("outcome", f.Outcome)
	if !f.Since.IsZero() {
		w.add("start_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("start_at < ?", f.Until)
	}
	q := `SELECT ` + sessionCols + ` FROM sessions` + w.sql() + ` ORDER BY start_at DESC, id DESC` + w.limit(f.Limit)
	return list(ctx, s.pool, "query sessions", scanSession, q, w.args...)
}

// GetSession implements store.Store.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return store.Session{}, notFound("get session "+id, err)
	}
	return x, nil
}

// Statements.

type stmtKey struct {
	session string
	seq     int64
}

func compareStmt(a, b store.Statement) int {
	return cmp.Or(cmp.Compare(a.SessionID, b.SessionID), cmp.Compare(a.Seq, b.Seq))
}

const statementCols = `session_id, seq, at, duration, statement_text, params, row_count, outcome, error, rule_name`

// WriteStatements implements store.Store.
func (s *Store) WriteStatements(ctx context.Context, batch []store.Statement) error {
	batch = lastByKey(batch, func(x store.Statement) stmtKey { return stmtKey{x.SessionID, x.Seq} }, compareStmt)
	return s.writeBatch(ctx, "write statements", len(batch), func(b *pgx.Batch) {
		for _, x := range batch {
			b.Queue(`INSERT INTO statements(`+statementCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
				ON CONFLICT(session_id, seq) DO UPDATE SET at = excluded.at, duration = excluded.duration,
					statement_text = excluded.statement_text, params = excluded.params, row_count = excluded.row_count,
					outcome = excluded.outcome, error = excluded.error, rule_name = excluded.rule_name`,
				x.SessionID, x.Seq, x.At, int64(x.Duration), x.Text, x.Params, x.Rows, x.Outcome, x.Error, x.Rule)
		}
	}, func(i int, _ pgconn.CommandTag, err error) error {
		if err != nil {
			return fmt.Errorf("statement %s/%d: %w", batch[i].SessionID, batch[i].Seq, err)
		}
		return nil
	})
}

func scanStatement(r pgx.Row) (store.Statement, error) {
	var x store.Statement
	var dur int64
	if err := r.Scan(&x.SessionID, &x.Seq, &x.At, &dur, &x.Text, &x.Params, &x.Rows, &x.Outcome, &x.Error, &x.Rule); err != nil {
		return x, err
	}
	x.Duration = time.Duration(dur)
	utc(&x.At)
	return x, nil
}

// ListStatements implements store.Store.
func (s *Store) ListStatements(ctx context.Context, sessionID string, limit int) ([]store.Statement, error) {
	var w where
	w.add("session_id = ?", sessionID)
	q := `SELECT ` + statementCols + ` FROM statements` + w.sql() + ` ORDER BY seq` + w.limit(limit)
	return list(ctx, s.pool, "list statements of "+sessionID, scanStatement, q, w.args...)
}

// Recording chunks.

const chunkCols = `session_id, seq, blob_key, size, sha256, prev_sha256, at`

// AddRecordingChunks implements store.Store. ON CONFLICT DO NOTHING turns a
// duplicate into "0 rows" (also when a concurrent batch inserted the key and
// committed first), which fails and so rolls back the whole batch.
func (s *Store) AddRecordingChunks(ctx context.Context, batch []store.RecordingChunk) error {
	batch = slices.Clone(batch)
	slices.SortStableFunc(batch, func(a, b store.RecordingChunk) int {
		return cmp.Or(cmp.Compare(a.SessionID, b.SessionID), cmp.Compare(a.Seq, b.Seq))
	})
	return s.writeBatch(ctx, "add recording chunks", len(batch), func(b *pgx.Batch) {
		for _, c := range batch {
			b.Queue(`INSERT INTO recording_chunks(`+chunkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
				c.SessionID, c.Seq, c.Key, c.Size, c.SHA256, c.PrevSHA256, c.At)
		}
	}, func(i int, tag pgconn.CommandTag, err error) error {
		c := batch[i]
		if err != nil {
			return fmt.Errorf("chunk %s/%d: %w", c.SessionID, c.Seq, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("chunk %s/%d: duplicate: %w", c.SessionID, c.Seq, store.ErrConflict)
		}
		return nil
	})
}

func scanChunk(r pgx.Row) (store.RecordingChunk, error) {
	var c store.RecordingChunk
	if err := r.Scan(&c.SessionID, &c.Seq, &c.Key, &c.Size, &c.SHA256, &c.PrevSHA256, &c.At); err != nil {
		return c, err
	}
	utc(&c.At)
	return c, nil
}

// ListRecordingChunks implements store.Store.
func (s *Store) ListRecordingChunks(ctx context.Context, sessionID string) ([]store.RecordingChunk, error) {
	return list(ctx, s.pool, "list recording chunks of "+sessionID, scanChunk,
		`SELECT `+chunkCols+` FROM recording_chunks WHERE session_id = $1 ORDER BY seq`, sessionID)
}
