package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

func webhookName(w store.Webhook) string    { return w.Name }
func deadLetterID(d store.DeadLetter) int64 { return d.ID }

func testWebhooks(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetWebhook(ctx, "slack")
	notFound(t, "get missing", err)
	notFound(t, "delete missing", s.DeleteWebhook(ctx, "slack"))

	slack := store.Webhook{Name: "slack", URL: "https://hooks.example/T1", Secret: "s3cret", Format: store.WebhookSlack,
		Events: []string{"session.start", "review.pending"}, CreatedAt: t0}
	must(t, "put slack", s.PutWebhook(ctx, slack))
	must(t, "put all", s.PutWebhook(ctx, store.Webhook{Name: "all", URL: "http://siem.internal/in", Format: store.WebhookJSON, CreatedAt: t0}))
	got, err := s.GetWebhook(ctx, "slack")
	must(t, "get", err)
	sameRecord(t, "get", got, slack)
	got.Events[0] = "changed"
	again, err := s.GetWebhook(ctx, "slack")
	must(t, "get again", err)
	sameRecord(t, "stored webhook aliased", again, slack)
	got, err = s.GetWebhook(ctx, "all")
	must(t, "get all", err)
	sameRecord(t, "nil events", got, store.Webhook{Name: "all", URL: "http://siem.internal/in", Format: store.WebhookJSON, Events: []string{}, CreatedAt: t0})

	upd := store.Webhook{Name: "slack", URL: "https://hooks.example/T2", Format: store.WebhookJSON, CreatedAt: t0.Add(time.Hour)}
	must(t, "update", s.PutWebhook(ctx, upd))
	got, err = s.GetWebhook(ctx, "slack")
	must(t, "get updated", err)
	upd.CreatedAt, upd.Events = t0, []string{}
	sameRecord(t, "updated", got, upd)

	list, err := s.ListWebhooks(ctx)
	order(t, "list", list, err, webhookName, "all", "slack")
	must(t, "delete", s.DeleteWebhook(ctx, "all"))
	_, err = s.GetWebhook(ctx, "all")
	notFound(t, "get deleted", err)
	list, err = s.ListWebhooks(ctx)
	order(t, "list after delete", list, err, webhookName, "slack")
}

func testDeadLetters(t *testing.T, s store.Store) {
	ctx := context.Background()
	notFound(t, "add for missing webhook", s.AddDeadLetter(ctx, &store.DeadLetter{Webhook: "a", Event: "e", CreatedAt: t0}))
	notFound(t, "delete missing", s.DeleteDeadLetter(ctx, 1))
	for _, name := range []string{"a", "b"} {
		must(t, "put webhook", s.PutWebhook(ctx, store.Webhook{Name: name, URL: "http://x/" + name, Format: store.WebhookJSON, CreatedAt: t0}))
	}
	d1 := &store.DeadLetter{ID: 77, Webhook: "a", Event: "review.pending", Payload: []byte{'{', 0, 1, 0xff, '}'}, Attempts: 5,
		LastError: "503 Service Unavailable", CreatedAt: t0}
	d2 := &store.DeadLetter{Webhook: "b", Event: "session.end", Attempts: 1, CreatedAt: t0.Add(time.Second)}
	d3 := &store.DeadLetter{Webhook: "a", Event: "session.start", Payload: []byte(`{"a":1}`), Attempts: 2, CreatedAt: t0.Add(2 * time.Second)}
	for i, d := range []*store.DeadLetter{d1, d2, d3} {
		must(t, "add", s.AddDeadLetter(ctx, d))
		if d.ID != int64(i+1) {
			t.Fatalf("dead letter %d: id %d", i, d.ID)
		}
	}
	list := func(webhook string, limit int, want ...int64) []store.DeadLetter {
		t.Helper()
		l, err := s.ListDeadLetters(ctx, webhook, limit)
		order(t, "list "+webhook, l, err, deadLetterID, want...)
		return l
	}
	l := list("", 0, 3, 2, 1)
	sameRecord(t, "d1", l[2], *d1)
	want2 := *d2
	want2.Payload = []byte{}
	sameRecord(t, "d2 (nil payload)", l[1], want2)
	list("a", 0, 3, 1)
	list("a", 1, 3)
	list("", 2, 3, 2)
	list("zzz", 0)

	must(t, "delete", s.DeleteDeadLetter(ctx, 1))
	notFound(t, "delete again", s.DeleteDeadLetter(ctx, 1))
	list("a", 0, 3)
	// A webhook takes its dead letters with it.
	must(t, "delete webhook", s.DeleteWebhook(ctx, "a"))
	list("", 0, 2)
	list("a", 0)
	notFound(t, "delete letter of deleted webhook", s.DeleteDeadLetter(ctx, 3))
	// IDs are never reused.
	d4 := &store.DeadLetter{Webhook: "b", Event: "x", CreatedAt: t0}
	must(t, "add after deletes", s.AddDeadLetter(ctx, d4))
	if d4.ID != 4 {
		t.Fatalf("id after deletes: %d, want 4", d4.ID)
	}
	// A re-created webhook does not inherit its predecessor's letters.
	must(t, "put a again", s.PutWebhook(ctx, store.Webhook{Name: "a", URL: "http://x/a", Format: store.WebhookJSON, CreatedAt: t0}))
	list("a", 0)
	list("", 0, 4, 2)
}
