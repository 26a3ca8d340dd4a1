package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/blob"
	"github.com/sluice-gw/sluice/control/blob/fs"
	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/webhook"
	"github.com/sluice-gw/sluice/engine"
)

// The services the API reaches through Config interfaces, built on the real
// packages where they exist: engine.Sessions (kill), control/recording over
// a filesystem blob store (recordings), webhook.Dispatcher (redelivery) and
// the store's DecideReview (reviews).

var (
	_ Killer  = (*engine.Sessions)(nil)
	_ Revoker = store.Store(nil)
)

// liveSessions registers sessions in a real engine.Sessions and keeps the
// cause each was ended with.
type liveSessions struct {
	*engine.Sessions
	mu     sync.Mutex
	causes map[string]error
}

func newLiveSessions() *liveSessions {
	return &liveSessions{Sessions: engine.NewSessions(), causes: map[string]error{}}
}

func (l *liveSessions) start(id string) {
	ctx, cancel := context.WithCancelCause(context.Background())
	remove := l.Add(&engine.Session{ID: id}, cancel)
	go func() {
		<-ctx.Done()
		l.mu.Lock()
		l.causes[id] = context.Cause(ctx)
		l.mu.Unlock()
		remove()
	}()
}

func (l *liveSessions) cause(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.causes[id]
}

// storeDecider is a Decider over the store's atomic DecideReview; it refuses
// self-approval the way control/review is expected to.
type storeDecider struct {
	st  store.Store
	now func() time.Time
}

func (d storeDecider) Decide(ctx context.Context, id int64, approve bool, decider, note string, grant time.Duration) (store.Review, error) {
	r, err := d.st.GetReview(ctx, id)
	if err != nil {
		return store.Review{}, err
	}
	if r.User == decider {
		return store.Review{}, engine.Deny("you cannot decide your own review")
	}
	status, until := store.ReviewRejected, time.Time{}
	if approve {
		if grant == 0 {
			grant = time.Hour
		}
		status, until = store.ReviewApproved, d.now().Add(grant)
	}
	return d.st.DecideReview(ctx, id, status, decider, note, until, d.now())
}

// recordings is the Recordings adapter over control/recording.
type recordings struct {
	blobRoot string
	blob     blob.Store
	manifest recording.Manifest
	rec      *recording.Recorder
}

func newRecordings(t *testing.T) *recordings {
	t.Helper()
	root := t.TempDir()
	b, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	m := &recording.MemoryManifest{}
	rec, err := recording.New(recording.Options{Blob: b, Manifest: m, FlushInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close(context.Background()) })
	return &recordings{blobRoot: root, blob: b, manifest: m, rec: rec}
}

func (r *recordings) Read(ctx context.Context, id string, w io.Writer) error {
	return recording.Read(ctx, r.blob, r.manifest, id, w)
}

func (r *recordings) Verify(ctx context.Context, id string) (any, error) {
	return recording.Verify(ctx, r.blob, r.manifest, id)
}

// record writes a recording of session id: the client sends q, the server
// answers a; closed unless open.
func (r *recordings) record(t *testing.T, id, q, a string, open bool) *recording.Writer {
	t.Helper()
	w, err := r.rec.Start(id)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := w.Write(recording.ClientToServer, at, []byte(q)); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(recording.ServerToClient, at.Add(time.Millisecond), []byte(a)); err != nil {
		t.Fatal(err)
	}
	if open {
		r.rec.Flush()
		// Wait until the flushed chunk is in the manifest.
		for i := 0; ; i++ {
			rows, _ := r.manifest.ListRecordingChunks(context.Background(), id)
			if len(rows) > 0 {
				break
			}
			if i > 500 {
				t.Fatal("flushed chunk never reached the manifest")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return w
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return nil
}

// redeliverer is the Redeliverer adapter over a real webhook.Dispatcher
// whose endpoints are the store's webhooks.
type redeliverer struct {
	d *webhook.Dispatcher
}

func newRedeliverer(t *testing.T, st store.Store) *redeliverer {
	t.Helper()
	endpoints := func(ctx context.Context) ([]webhook.Endpoint, error) {
		list, err := st.ListWebhooks(ctx)
		if err != nil {
			return nil, err
		}
		var eps []webhook.Endpoint
		for _, w := range list {
			eps = append(eps, webhook.Endpoint{Name: w.Name, URL: w.URL, Secret: w.Secret, Format: w.Format, Events: w.Events})
		}
		return eps, nil
	}
	d, err := webhook.New(context.Background(), webhook.Config{Endpoints: endpoints, DeadLetters: &webhook.MemoryDeadLetters{},
		AllowHTTP: true, ReloadInterval: -1, MaxAttempts: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return &redeliverer{d: d}
}

func (r *redeliverer) Redeliver(ctx context.Context, dl store.DeadLetter) error {
	if err := r.d.Reload(ctx); err != nil {
		return err
	}
	return r.d.Redeliver(ctx, webhook.DeadLetter{ID: dl.ID, Webhook: dl.Webhook, EventType: dl.Event,
		Payload: dl.Payload, Attempts: dl.Attempts, LastError: dl.LastError, CreatedAt: dl.CreatedAt})
}

// receiver is a webhook receiver that answers status and keeps the bodies
// it got.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	bodies []string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{status: http.StatusOK}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(b))
		st := rc.status
		rc.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.bodies)
}

func (rc *receiver) answer(status int) {
	rc.mu.Lock()
	rc.status = status
	rc.mu.Unlock()
}

// services is every optional service, wired.
type services struct {
	live  *liveSessions
	recs  *recordings
	redel *redeliverer
}

// newFullEnv is newEnv with every optional service wired to a real peer.
func newFullEnv(t *testing.T, mod func(*Config)) (*env, *services) {
	t.Helper()
	sv := &services{live: newLiveSessions(), recs: newRecordings(t)}
	e := newEnv(t, func(c *Config) {
		sv.redel = newRedeliverer(t, c.Store)
		c.Killer = sv.live
		c.Decider = storeDecider{st: c.Store, now: c.Clock}
		c.Recordings = sv.recs
		c.Redeliverer = sv.redel
		c.WebhookAllowHTTP = true
		if mod != nil {
			mod(c)
		}
	})
	return e, sv
}
