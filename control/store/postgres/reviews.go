package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-gw/sluice/control/store"
)

// CreateReview implements store.Store; the ID comes from the table's
// identity sequence.
func (s *Store) CreateReview(ctx context.Context, r *store.Review) error {
	status := r.Status
	if status == "" {
		status = store.ReviewPending
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO reviews(kind, user_name, connection, session_id, statement_text, statement_hash,
		reason, status, decider, decision_note, grant_until, created_at, decided_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		r.Kind, r.User, r.Connection, r.SessionID, r.Statement, r.StatementHash, r.Reason, status, r.Decider, r.DecisionNote,
		r.GrantUntil, r.CreatedAt, r.DecidedAt).Scan(&id)
	if err != nil {
		return fmt.Errorf("create review for %s: %w", r.User, err)
	}
	r.ID, r.Status = id, status
	return nil
}

const reviewCols = `id, kind, user_name, connection, session_id, statement_text, statement_hash, reason, status,
	decider, decision_note, grant_until, created_at, decided_at`

func scanReview(r pgx.Row) (store.Review, error) {
	var x store.Review
	if err := r.Scan(&x.ID, &x.Kind, &x.User, &x.Connection, &x.SessionID, &x.Statement, &x.StatementHash, &x.Reason,
		&x.Status, &x.Decider, &x.DecisionNote, &x.GrantUntil, &x.CreatedAt, &x.DecidedAt); err != nil {
		return x, err
	}
	utc(&x.GrantUntil, &x.CreatedAt, &x.DecidedAt)
	return x, nil
}

// GetReview implements store.Store.
func (s *Store) GetReview(ctx context.Context, id int64) (store.Review, error) {
	r, err := scanReview(s.pool.QueryRow(ctx, `SELECT `+reviewCols+` FROM reviews WHERE id = $1`, id))
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
	q := `SELECT ` + reviewCols + ` FROM reviews` + w.sql() + ` ORDER BY id DESC` + w.limit(f.Limit)
	return list(ctx, s.pool, "list reviews", scanReview, q, w.args...)
}

// decisions are the statuses DecideReview may set.
var decisions = map[string]bool{store.ReviewApproved: true, store.ReviewRejected: true, store.ReviewExpired: true}

// DecideReview implements store.Store with one conditional UPDATE. Under
// READ COMMITTED a second concurrent UPDATE of the row waits for the first
// to commit, re-checks status = 'pending' on the new row version and
// updates nothing: exactly one decider wins, across replicas too.
func (s *Store) DecideReview(ctx context.Context, id int64, status, decider, note string, grantUntil, at time.Time) (store.Review, error) {
	what := fmt.Sprintf("decide review %d", id)
	if !decisions[status] {
		return store.Review{}, fmt.Errorf("%s: invalid decision %q", what, status)
	}
	r, err := scanReview(s.pool.QueryRow(ctx, `UPDATE reviews SET status = $1, decider = $2, decision_note = $3, grant_until = $4, decided_at = $5
		WHERE id = $6 AND status = $7 RETURNING `+reviewCols,
		status, decider, note, grantUntil, at, id, store.ReviewPending))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Review{}, fmt.Errorf("%s: %w", what, err)
	}
	var current string
	if err := s.pool.QueryRow(ctx, `SELECT status FROM reviews WHERE id = $1`, id).Scan(&current); err != nil {
		return store.Review{}, notFound(what, err)
	}
	return store.Review{}, fmt.Errorf("%s: already %s: %w", what, current, store.ErrConflict)
}

// ActiveGrant implements store.Store.
func (s *Store) ActiveGrant(ctx context.Context, user, connection string, now time.Time) (store.Review, error) {
	r, err := scanReview(s.pool.QueryRow(ctx, `SELECT `+reviewCols+` FROM reviews
		WHERE user_name = $1 AND connection = $2 AND status = $3 AND kind = $4 AND grant_until > $5
		ORDER BY grant_until DESC, id DESC LIMIT 1`,
		user, connection, store.ReviewApproved, store.ReviewSession, now))
	if err != nil {
		return store.Review{}, notFound("active grant of "+user+" on "+connection, err)
	}
	return r, nil
}
