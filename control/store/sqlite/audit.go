package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

// WriteStatements implements store.Store.
func (s *Store) WriteStatements(ctx context.Context, batch []store.Statement) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write statements: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO statements(`+statementCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(session_id, seq) DO UPDATE SET at = excluded.at, duration = excluded.duration,
			statement_text = excluded.statement_text, params = excluded.params, row_count = excluded.row_count,
			outcome = excluded.outcome, error = excluded.error, rule_name = excluded.rule_name`)
	if err != nil {
		return fmt.Errorf("write statements: prepare: %w", err)
	}
	defer stmt.Close()
	for _, x := range batch {
		if _, err := stmt.ExecContext(ctx, x.SessionID, x.Seq, toNanos(x.At), int64(x.Duration), x.Text, x.Params,
			x.Rows, x.Outcome, x.Error, x.Rule); err != nil {
			return fmt.Errorf("write statement %s/%d: %w", x.SessionID, x.Seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write statements: commit: %w", err)
	}
	return nil
}

const statementCols = `session_id, seq, at, duration, statement_text, params, row_count, outcome, error, rule_name`

func scanStatement(r scanner) (store.Statement, error) {
	var x store.Statement
	var at, dur int64
	if err := r.Scan(&x.SessionID, &x.Seq, &at, &dur, &x.Text, &x.Params, &x.Rows, &x.Outcome, &x.Error, &x.Rule); err != nil {
		return x, err
	}
	x.At, x.Duration = fromNanos(at), time.Duration(dur)
	return x, nil
}

// ListStatements implements store.Store.
func (s *Store) ListStatements(ctx context.Context, sessionID string, limit int) ([]store.Statement, error) {
	return list(ctx, s.db, "list statements of "+sessionID, scanStatement,
		`SELECT `+statementCols+` FROM statements WHERE session_id = ? ORDER BY seq LIMIT ?`, sessionID, limitOr(limit))
}

// AddRecordingChunks implements store.Store.
func (s *Store) AddRecordingChunks(ctx context.Context, batch []store.RecordingChunk) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add recording chunks: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO recording_chunks(`+chunkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("add recording chunks: prepare: %w", err)
	}
	defer stmt.Close()
	for _, c := range batch {
		res, err := stmt.ExecContext(ctx, c.SessionID, c.Seq, c.Key, c.Size, c.SHA256, c.PrevSHA256, toNanos(c.At))
		if err != nil {
			return fmt.Errorf("add recording chunk %s/%d: %w", c.SessionID, c.Seq, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("add recording chunk %s/%d: %w", c.SessionID, c.Seq, err)
		} else if n == 0 {
			return fmt.Errorf("add recording chunk %s/%d: duplicate: %w", c.SessionID, c.Seq, store.ErrConflict)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add recording chunks: commit: %w", err)
	}
	return nil
}

const chunkCols = `session_id, seq, blob_key, size, sha256, prev_sha256, at`

func scanChunk(r scanner) (store.RecordingChunk, error) {
	var c store.RecordingChunk
	var at int64
	if err := r.Scan(&c.SessionID, &c.Seq, &c.Key, &c.Size, &c.SHA256, &c.PrevSHA256, &at); err != nil {
		return c, err
	}
	c.At = fromNanos(at)
	return c, nil
}

// ListRecordingChunks implements store.Store.
func (s *Store) ListRecordingChunks(ctx context.Context, sessionID string) ([]store.RecordingChunk, error) {
	return list(ctx, s.db, "list recording chunks of "+sessionID, scanChunk,
		`SELECT `+chunkCols+` FROM recording_chunks WHERE session_id = ? ORDER BY seq`, sessionID)
}
