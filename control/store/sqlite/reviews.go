package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

// CreateReview implements store.Store.
func (s *Store) CreateReview(ctx context.Context, r *store.Review) error {
	status := r.Status
	if status == "" {
		status = store.ReviewPending
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO reviews(kind, user_name, connection, session_id, statement_text, statement_hash,
		reason, status, decider, decision_note, grant_until, created_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Kind, r.User, r.Connection, r.SessionID, r.Statement, r.StatementHash, r.Reason, status, r.Decider, r.DecisionNote,
		toNanos(r.GrantUntil), toNanos(r.CreatedAt), toNanos(r.DecidedAt))
	if err != nil {
		return fmt.Errorf("create review for %s: %w", r.User, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("create review for %s: %w", r.User, err)
	}
	r.ID, r.Status = id, status
	return nil
}

const reviewCols = `id, kind, user_name, connection, session_id, statement_text, statement_hash, reason, status,
	decider, decision_note, grant_until, created_at, decided_at`

func scanReview(r scanner) (store.Review, error) {
	var x store.Review
	var grant, created, decided int64
	if err := r.Scan(&x.ID, &x.Kind, &x.User, &x.Connection, &x.SessionID, &x.Statement, &x.StatementHash, &x.Reason,
		&x.Status, &x.Decider, &x.DecisionNote, &grant, &created, &decided); err != nil {
		return x, err
	}
	x.GrantUntil, x.CreatedAt, x.DecidedAt = fromNanos(grant), fromNanos(created), fromNanos(decided)
	return x, nil
}

// GetReview implements store.Store.
func (s *Store) GetReview(ctx context.Context, id int64) (store.Review, error) {
	r, err := scanReview(s.db.QueryRowContext(ctx, `SELECT `+reviewCols+` FROM reviews WHERE id = ?`, id))
	if err != nil {
		return store.Review{}, notFound(fmt.Sprintf("get review %d", id), err)
	}
	return r, nil
}

// ListReviews implements store.Store.
func (s *Store) ListReviews(ctx context.Context, f store.ReviewFilter) ([]store.Review, error) {
	var w where
	w.eq("status", f.Status)
	w.eq("user_name", f.User)
	w.eq("connection", f.Connection)
	w.eq("kind", f.Kind)
	return list(ctx, s.db, "list reviews", scanReview,
		`SELECT `+reviewCols+` FROM reviews`+w.sql()+` ORDER BY id DESC LIMIT ?`, append(w.args, limitOr(f.Limit))...)
}

// decisions are the statuses DecideReview may set.
var decisions = map[string]bool{store.ReviewApproved: true, store.ReviewRejected: true, store.ReviewExpired: true}

// DecideReview implements store.Store with one conditional UPDATE: of two
// concurrent deciders the second finds the row no longer pending.
func (s *Store) DecideReview(ctx context.Context, id int64, status, decider, note string, grantUntil, at time.Time) (store.Review, error) {
	what := fmt.Sprintf("decide review %d", id)
	if !decisions[status] {
		return store.Review{}, fmt.Errorf("%s: invalid decision %q", what, status)
	}
	r, err := scanReview(s.db.QueryRowContext(ctx, `UPDATE reviews SET status = ?, decider = ?, decision_note = ?, grant_until = ?, decided_at = ?
		WHERE id = ? AND status = ? RETURNING `+reviewCols,
		status, decider, note, toNanos(grantUntil), toNanos(at), id, store.ReviewPending))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Review{}, fmt.Errorf("%s: %w", what, err)
	}
	var current string
	if err := s.db.QueryRowContext(ctx, `SELECT status FROM reviews WHERE id = ?`, id).Scan(&current); err != nil {
		return store.Review{}, notFound(what, err)
	}
	return store.Review{}, fmt.Errorf("%s: already %s: %w", what, current, store.ErrConflict)
}

// ActiveGrant implements store.Store.
func (s *Store) ActiveGrant(ctx context.Context, user, connection string, now time.Time) (store.Review, error) {
	r, err := scanReview(s.db.QueryRowContext(ctx, `SELECT `+reviewCols+` FROM reviews
		WHERE user_name = ? AND connection = ? AND status = ? AND kind = ? AND grant_until > ?
		ORDER BY grant_until DESC, id DESC LIMIT 1`,
		user, connection, store.ReviewApproved, store.ReviewSession, toNanos(now)))
	if err != nil {
		return store.Review{}, notFound("active grant of "+user+" on "+connection, err)
	}
	return r, nil
}
