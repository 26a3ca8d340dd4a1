package sqlite

import (
	"context"
	"fmt"

	"github.com/sluice-gw/sluice/control/store"
)

// PutWebhook implements store.Store.
func (s *Store) PutWebhook(ctx context.Context, w store.Webhook) error {
	ej, err := encodeList(w.Events)
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", w.Name, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO webhooks(name, url, secret, format, events_json, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET url = excluded.url, secret = excluded.secret, format = excluded.format,
			events_json = excluded.events_json`,
		w.Name, w.URL, w.Secret, w.Format, ej, toNanos(w.CreatedAt))
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", w.Name, err)
	}
	return nil
}

const webhookCols = `name, url, secret, format, events_json, created_at`

func scanWebhook(r scanner) (store.Webhook, error) {
	var w store.Webhook
	var ej string
	var created int64
	if err := r.Scan(&w.Name, &w.URL, &w.Secret, &w.Format, &ej, &created); err != nil {
		return w, err
	}
	var err error
	if w.Events, err = decodeList(ej); err != nil {
		return w, fmt.Errorf("events of webhook %s: %w", w.Name, err)
	}
	w.CreatedAt = fromNanos(created)
	return w, nil
}

// GetWebhook implements store.Store.
func (s *Store) GetWebhook(ctx context.Context, name string) (store.Webhook, error) {
	w, err := scanWebhook(s.db.QueryRowContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE name = ?`, name))
	if err != nil {
		return store.Webhook{}, notFound("get webhook "+name, err)
	}
	return w, nil
}

// ListWebhooks implements store.Store.
func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	return list(ctx, s.db, "list webhooks", scanWebhook, `SELECT `+webhookCols+` FROM webhooks ORDER BY name`)
}

// DeleteWebhook implements store.Store; its dead letters go with it
// through ON DELETE CASCADE, in the same statement.
func (s *Store) DeleteWebhook(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete webhook "+name, `DELETE FROM webhooks WHERE name = ?`, name)
}

// AddDeadLetter implements store.Store. The INSERT ... SELECT inserts
// nothing when the webhook is missing, which is ErrNotFound.
func (s *Store) AddDeadLetter(ctx context.Context, d *store.DeadLetter) error {
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO dead_letters(webhook, event, payload, attempts, last_error, created_at)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM webhooks WHERE name = ?)`,
		d.Webhook, d.Event, payload, d.Attempts, d.LastError, toNanos(d.CreatedAt), d.Webhook)
	if err != nil {
		return fmt.Errorf("add dead letter for %s: %w", d.Webhook, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add dead letter for %s: %w", d.Webhook, err)
	} else if n == 0 {
		return fmt.Errorf("add dead letter: webhook %s: %w", d.Webhook, store.ErrNotFound)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("add dead letter for %s: %w", d.Webhook, err)
	}
	d.ID = id
	return nil
}

const deadLetterCols = `id, webhook, event, payload, attempts, last_error, created_at`

func scanDeadLetter(r scanner) (store.DeadLetter, error) {
	var d store.DeadLetter
	var created int64
	if err := r.Scan(&d.ID, &d.Webhook, &d.Event, &d.Payload, &d.Attempts, &d.LastError, &created); err != nil {
		return d, err
	}
	if d.Payload == nil {
		d.Payload = []byte{}
	}
	d.CreatedAt = fromNanos(created)
	return d, nil
}

// ListDeadLetters implements store.Store.
func (s *Store) ListDeadLetters(ctx context.Context, webhook string, limit int) ([]store.DeadLetter, error) {
	var w where
	w.eq("webhook", webhook)
	return list(ctx, s.db, "list dead letters", scanDeadLetter,
		`SELECT `+deadLetterCols+` FROM dead_letters`+w.sql()+` ORDER BY id DESC LIMIT ?`, append(w.args, limitOr(limit))...)
}

// DeleteDeadLetter implements store.Store.
func (s *Store) DeleteDeadLetter(ctx context.Context, id int64) error {
	return s.execOne(ctx, fmt.Sprintf("delete dead letter %d", id), `DELETE FROM dead_letters WHERE id = ?`, id)
}
