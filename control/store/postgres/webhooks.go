package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-gw/sluice/control/store"
)

// PutWebhook implements store.Store.
func (s *Store) PutWebhook(ctx context.Context, w store.Webhook) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO webhooks(`+webhookCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT(name) DO UPDATE SET url = excluded.url, secret = excluded.secret, format = excluded.format,
			events = excluded.events`,
		w.Name, w.URL, w.Secret, w.Format, nonNil(w.Events), w.CreatedAt)
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", w.Name, err)
	}
	return nil
}

const webhookCols = `name, url, secret, format, events, created_at`

func scanWebhook(r pgx.Row) (store.Webhook, error) {
	var w store.Webhook
	if err := r.Scan(&w.Name, &w.URL, &w.Secret, &w.Format, &w.Events, &w.CreatedAt); err != nil {
		return w, err
	}
	w.Events = nonNil(w.Events)
	utc(&w.CreatedAt)
	return w, nil
}

// GetWebhook implements store.Store.
func (s *Store) GetWebhook(ctx context.Context, name string) (store.Webhook, error) {
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE name = $1`, name))
	if err != nil {
		return store.Webhook{}, notFound("get webhook "+name, err)
	}
	return w, nil
}

// ListWebhooks implements store.Store.
func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	return list(ctx, s.pool, "list webhooks", scanWebhook, `SELECT `+webhookCols+` FROM webhooks ORDER BY name`)
}

// DeleteWebhook implements store.Store; its dead letters go with it
// through ON DELETE CASCADE, in the same statement.
func (s *Store) DeleteWebhook(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete webhook "+name, `DELETE FROM webhooks WHERE name = $1`, name)
}

// AddDeadLetter implements store.Store. The INSERT ... SELECT inserts
// nothing when the webhook is missing; a webhook deleted concurrently fails
// the foreign key instead. Both are ErrNotFound.
func (s *Store) AddDeadLetter(ctx context.Context, d *store.DeadLetter) error {
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO dead_letters(webhook, event, payload, attempts, last_error, created_at)
		SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM webhooks WHERE name = $1) RETURNING id`,
		d.Webhook, d.Event, nonNil(d.Payload), d.Attempts, d.LastError, d.CreatedAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) || pgCode(err) == fkViolation {
		return fmt.Errorf("add dead letter: webhook %s: %w", d.Webhook, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add dead letter for %s: %w", d.Webhook, err)
	}
	d.ID = id
	return nil
}

const deadLetterCols = `id, webhook, event, payload, attempts, last_error, created_at`

func scanDeadLetter(r pgx.Row) (store.DeadLetter, error) {
	var d store.DeadLetter
	if err := r.Scan(&d.ID, &d.Webhook, &d.Event, &d.Payload, &d.Attempts, &d.LastError, &d.CreatedAt); err != nil {
		return d, err
	}
	d.Payload = nonNil(d.Payload)
	utc(&d.CreatedAt)
	return d, nil
}

// ListDeadLetters implements store.Store.
func (s *Store) ListDeadLetters(ctx context.Context, webhook string, limit int) ([]store.DeadLetter, error) {
	var w where
	w.eq("webhook", webhook)
	q := `SELECT ` + deadLetterCols + ` FROM dead_letters` + w.sql() + ` ORDER BY id DESC` + w.limit(limit)
	return list(ctx, s.pool, "list dead letters", scanDeadLetter, q, w.args...)
}

// DeleteDeadLetter implements store.Store.
func (s *Store) DeleteDeadLetter(ctx context.Context, id int64) error {
	return s.execOne(ctx, fmt.Sprintf("delete dead letter %d", id), `DELETE FROM dead_letters WHERE id = $1`, id)
}
