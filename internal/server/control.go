package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-gw/sluice/control/audit"
	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/blob"
	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/review"
	"github.com/sluice-gw/sluice/control/store"
	storeopen "github.com/sluice-gw/sluice/control/store/open"
	"github.com/sluice-gw/sluice/control/webhook"
)

// webhookEndpoints reads the configured webhooks from the store.
func webhookEndpoints(st store.Store) webhook.Endpoints {
	return func(ctx context.Context) ([]webhook.Endpoint, error) {
		ws, err := st.ListWebhooks(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]webhook.Endpoint, 0, len(ws))
		for _, w := range ws {
			out = append(out, webhook.Endpoint{Name: w.Name, URL: w.URL, Secret: w.Secret, Format: w.Format, Events: w.Events})
		}
		return out, nil
	}
}

// deadLetters stores undeliverable webhook events. The store keeps one
// event column: it holds "TYPE ID" so a redelivery keeps the event's ID
// (receivers de-duplicate on it).
type deadLetters struct{ st store.Store }

func (d deadLetters) AddDeadLetter(ctx context.Context, dl webhook.DeadLetter) error {
	return d.st.AddDeadLetter(ctx, &store.DeadLetter{
		Webhook:   dl.Webhook,
		Event:     dl.EventType + " " + dl.EventID,
		Payload:   dl.Payload,
		Attempts:  dl.Attempts,
		LastError: dl.LastError,
		CreatedAt: dl.CreatedAt,
	})
}

// toWebhookDeadLetter is the inverse, for redelivery.
func toWebhookDeadLetter(d store.DeadLetter) webhook.DeadLetter {
	typ, id, _ := strings.Cut(d.Event, " ")
	return webhook.DeadLetter{ID: d.ID, Webhook: d.Webhook, EventType: typ, EventID: id, Payload: d.Payload,
		Attempts: d.Attempts, LastError: d.LastError, CreatedAt: d.CreatedAt}
}

// redeliverer retries one dead letter by hand (the API forgets it on success).
type redeliverer struct{ d *webhook.Dispatcher }

func (r redeliverer) Redeliver(ctx context.Context, d store.DeadLetter) error {
	return r.d.Redeliver(ctx, toWebhookDeadLetter(d))
}

// recordings reads and verifies session recordings for the API.
type recordings struct {
	blobs    blob.Store
	manifest recording.Manifest
}

func (r recordings) Read(ctx context.Context, id string, w io.Writer) error {
	return recording.Read(ctx, r.blobs, r.manifest, id, w)
}

func (r recordings) Verify(ctx context.Context, id string) (any, error) {
	return recording.Verify(ctx, r.blobs, r.manifest, id)
}

// ControlPlane is everything the gateway builds on its store.
type ControlPlane struct {
	Store      store.Store
	Auth       *auth.Service
	Sessions   *audit.Sink
	Statements *audit.StatementSink
	Gates      audit.Gates
	Reviews    *review.Service
	Webhooks   *webhook.Dispatcher
	Recorder   *recording.Recorder // nil: recordings off
	Blobs      blob.Store
	Manifest   audit.Manifest
}

// startControl opens the store and starts the services over it. finals
// receives the closers in the order they must run once every session has
// ended: recordings and audit flush first, the store last.
func startControl(ctx context.Context, cfg GatewayConfig, g *Gateway, log *slog.Logger) (*ControlPlane, []func(), error) {
	var finals []func()
	fail := func(err error) (*ControlPlane, []func(), error) {
		for i := len(finals) - 1; i >= 0; i-- {
			finals[i]()
		}
		return nil, nil, err
	}
	c := &ControlPlane{}
	st, err := storeopen.Open(ctx, cfg.Store, cfg.DataDir)
	if err != nil {
		return fail(fmt.Errorf("open store (SLUICE_STORE=%s): %w", storeopen.Redact(cfg.Store), err))
	}
	c.Store = st
	finals = append(finals, func() { st.Close() })

	c.Auth = auth.NewService(st, auth.Options{Logger: log, Sessions: g.Sessions, DefaultTTL: cfg.TokenTTL, MaxTTL: cfg.TokenMaxTTL})
	created, err := c.Auth.Bootstrap(ctx, cfg.DataDir)
	if err != nil {
		return fail(fmt.Errorf("bootstrap: %w", err))
	}
	if created {
		log.Info("created user admin", "token_file", filepath.Join(cfg.DataDir, "admin.token"))
	}

	c.Webhooks, err = webhook.New(ctx, webhook.Config{
		Endpoints:   webhookEndpoints(st),
		DeadLetters: deadLetters{st},
		Registerer:  g.Registry,
		Logger:      log.With("component", "webhooks"),
		AllowHTTP:   cfg.WebhookAllowHTTP,
	})
	if err != nil {
		return fail(fmt.Errorf("webhooks: %w", err))
	}
	wh := c.Webhooks
	// Webhooks go after the audit sinks, which notify them.
	finals = append([]func(){func() {
		cctx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		wh.Close(cctx)
	}}, finals...)

	c.Sessions = audit.New(st, audit.Options{Logger: log, Registerer: g.Registry, Notifier: wh})
	c.Statements = audit.NewStatementSink(st, audit.Options{Logger: log, Registerer: g.Registry, Notifier: wh, Sessions: c.Sessions})
	sessions, statements := c.Sessions, c.Statements
	finals = append([]func(){func() { statements.Close() }, func() { sessions.Close() }}, finals...)
	c.Gates = audit.Gates{c.Sessions, c.Statements}

	recDir := cfg.Recordings
	if recDir == "" {
		recDir = filepath.Join(cfg.DataDir, "recordings")
	}
	if cfg.Recordings != "off" {
		if !strings.Contains(recDir, "://") {
			if err := os.MkdirAll(recDir, 0o700); err != nil {
				return fail(fmt.Errorf("recordings dir: %w", err))
			}
		}
		c.Blobs, err = blob.Open(recDir, blob.Credentials{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: os.Getenv("AWS_SESSION_TOKEN")})
		if err != nil {
			return fail(fmt.Errorf("recordings (SLUICE_RECORDINGS): %w", err))
		}
		c.Manifest = audit.NewManifest(st)
		c.Recorder, err = recording.New(recording.Options{Blob: c.Blobs, Manifest: c.Manifest, SpoolBytes: cfg.RecordingSpool, Registerer: g.Registry, Logger: log.With("component", "recording")})
		if err != nil {
			return fail(fmt.Errorf("recorder: %w", err))
		}
		rec := c.Recorder
		finals = append([]func(){func() {
			cctx, done := context.WithTimeout(context.Background(), 30*time.Second)
			defer done()
			rec.Close(cctx)
		}}, finals...)
	}

	c.Reviews = review.New(st, review.Options{Logger: log, Notifier: wh, Timeout: cfg.ReviewTimeout})
	go c.Auth.WatchRevocations(ctx, g.Sessions, 0)
	return c, finals, nil
}
