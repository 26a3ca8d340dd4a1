package webhook

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// Errors of the Dispatcher.
var (
	ErrClosed          = errors.New("webhook dispatcher is closed")
	ErrUnknownEndpoint = errors.New("no such webhook endpoint")
	errRemoved         = errors.New("webhook endpoint removed")                  // a worker's stop cause
	errAborted         = errors.New("aborted: the dispatcher's Close timed out") // cause of attempts cut short
)

// Dispatcher delivers events to the configured endpoints.
//
// Contract:
//   - Notify never blocks on the network or the store and never fails the
//     caller. It may be called from any goroutine, also after Close.
//   - Every event offered to an endpoint that wants its type ends in exactly
//     one of: delivered (a 2xx, possibly after retries, possibly more than
//     once: at least once), the dead-letter list, or, only when the endpoint's
//     queue and the dead-letter spill are both full, the dead-letter store
//     fails, or Notify is called after Close, sluice_webhook_events_lost_total
//     and an error log line. Nothing is dropped silently.
//   - Each endpoint has one worker and one queue of Config.QueueSize events,
//     delivered in order; a slow endpoint delays only its own queue. Memory is
//     bounded by endpoints × QueueSize + SpillSize events, each with its
//     Data's strings cut to MaxValueBytes.
//   - The body of an event is rendered once, in the endpoint's format at the
//     first attempt; retries resend the same bytes (with a fresh timestamp and
//     signature) to the endpoint's current URL with its current secret.
//   - Close stops the workers: attempts in flight finish (or are aborted when
//     Close's context ends), then what is still queued or waiting to retry
//     goes to the dead-letter list. Endpoints removed by a reload are drained
//     the same way.
//
// The Dispatcher owns its goroutines (one per endpoint, one dead-letter
// writer, one reloader); Close ends them all.
type Dispatcher struct {
	cfg       Config
	client    *http.Client
	ownClient bool
	log       *slog.Logger
	m         *metrics

	reloadMu sync.Mutex // serialises reloads: fetch and apply

	mu      sync.RWMutex       // guards the fields below; Notify holds it to read while it sends
	closed  bool               // set once by Close; no queue send and no new worker after it
	workers map[string]*worker // the live endpoints by name (kept after Close for Redeliver)

	// abort cancels attempts in flight; Close calls it when its context ends.
	abortCtx context.Context
	abort    context.CancelCauseFunc
	wg       sync.WaitGroup // every worker, removed ones included

	spill      chan spilled // overflow of the queues, on its way to DeadLetters
	spillDone  chan struct{}
	stopReload context.CancelFunc
	reloadDone chan struct{}
	closeDone  chan struct{}
}

// spilled is an event that found its endpoint's queue full.
type spilled struct {
	ep Endpoint
	ev Event
}

// New validates cfg, loads the endpoints once and starts the workers. It
// fails when cfg is invalid or the first load fails; invalid endpoints are
// logged and skipped (see Reload), not fatal.
func New(ctx context.Context, cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Dispatcher{
		cfg:        cfg,
		log:        cfg.Logger,
		m:          newMetrics(cfg.Registerer),
		workers:    map[string]*worker{},
		spill:      make(chan spilled, cfg.SpillSize),
		spillDone:  make(chan struct{}),
		reloadDone: make(chan struct{}),
		closeDone:  make(chan struct{}),
	}
	if cfg.Client != nil {
		c := *cfg.Client
		d.client = &c
	} else {
		d.client = &http.Client{}
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			d.client.Transport = t.Clone()
			d.ownClient = true
		}
	}
	d.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d.abortCtx, d.abort = context.WithCancelCause(context.Background())

	if err := d.reload(ctx); err != nil && !errors.Is(err, ErrInvalidEndpoint) {
		d.abort(err)
		return nil, err
	}
	go d.writeSpill()
	rctx, stop := context.WithCancel(context.Background())
	d.stopReload = stop
	go d.reloadEvery(rctx)
	return d, nil
}

// Notify offers ev to every endpoint that wants its type. It fills an empty
// ID and a zero At, copies Data's top level and cuts its long strings, then
// queues the event without blocking; a full queue sends it to the dead-letter
// list instead.
func (d *Dispatcher) Notify(ev Event) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	prepared := false
	for _, w := range d.workers {
		ep := w.ep.Load()
		if !ep.wants(ev.Type) {
			continue
		}
		if !prepared { // only for an event someone wants
			ev, prepared = d.prepare(ev), true
		}
		if d.closed {
			d.lose(ep.Name, ev, reasonClosed, ErrClosed)
			continue
		}
		w.m.queue.Inc()
		select {
		case w.queue <- ev:
			continue
		default:
			w.m.queue.Dec()
		}
		select {
		case d.spill <- spilled{ep: *ep, ev: ev}:
		default:
			d.lose(ep.Name, ev, reasonSpillFull, errors.New("queue and dead-letter spill are full"))
		}
	}
}

func (d *Dispatcher) prepare(ev Event) Event {
	if ev.ID == "" {
		ev.ID = rand.Text()
	}
	if ev.At.IsZero() {
		ev.At = d.cfg.Clock()
	}
	if ev.Data != nil {
		data := make(map[string]any, len(ev.Data))
		for k, v := range ev.Data {
			if s, ok := v.(string); ok && len(s) > d.cfg.MaxValueBytes {
				v = cutBytes(s, d.cfg.MaxValueBytes)
			}
			data[k] = v
		}
		ev.Data = data
	}
	return ev
}

// cutBytes returns s cut to at most max bytes (at a rune boundary) with "…"
// (3 bytes) in the place of what was cut.
func cutBytes(s string, max int) string {
	i := max - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// lose logs and counts an event that could not even be dead-lettered.
func (d *Dispatcher) lose(endpoint string, ev Event, reason string, err error) {
	d.m.lost.WithLabelValues(endpoint, reason).Inc()
	d.log.Error("webhook event lost", "endpoint", endpoint, "event", ev.Type, "delivery", ev.ID, "reason", reason, "err", err)
}

// writeSpill is the one goroutine that dead-letters overflowing events, so
// Notify's caller never waits on the store.
func (d *Dispatcher) writeSpill() {
	defer close(d.spillDone)
	for s := range d.spill {
		d.bury(s.ep, s.ev, nil, 0, "queue full: the endpoint is slower than the events", reasonQueueFull)
	}
}

// bury puts ev for ep in the dead-letter list. body nil renders it in ep's
// format.
func (d *Dispatcher) bury(ep Endpoint, ev Event, body []byte, attempts int, lastErr, reason string) {
	if body == nil {
		var err error
		if body, err = Render(ep.Format, ev); err != nil {
			lastErr, reason = err.Error(), reasonUnrenderable
		}
	}
	dl := DeadLetter{
		Webhook:   ep.Name,
		EventType: ev.Type,
		EventID:   ev.ID,
		Payload:   body,
		Attempts:  attempts,
		LastError: lastErr,
		CreatedAt: d.cfg.Clock(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.StoreTimeout)
	defer cancel()
	if err := d.cfg.DeadLetters.AddDeadLetter(ctx, dl); err != nil {
		d.lose(ep.Name, ev, reasonStore, fmt.Errorf("add dead letter (%s: %s): %w", reason, lastErr, err))
		return
	}
	d.m.deliveries.WithLabelValues(ep.Name, resultDeadLetter).Inc()
	d.m.deadLetters.WithLabelValues(ep.Name, reason).Inc()
	d.log.Warn("webhook event dead-lettered", "endpoint", ep.Name, "url", where(ep.URL), "event", ev.Type,
		"delivery", ev.ID, "reason", reason, "attempts", attempts, "err", lastErr)
}

// Reload re-reads the endpoints and applies them: new ones get a worker,
// changed ones take effect at their next attempt, removed ones stop (their
// in-flight attempt finishes; their queue goes to the dead-letter list).
// Invalid endpoints are skipped and reported in the error (wrapping
// ErrInvalidEndpoint) while the valid ones are applied; when the source
// itself fails, the current set stays and its error is returned.
func (d *Dispatcher) Reload(ctx context.Context) error { return d.reload(ctx) }

func (d *Dispatcher) reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	eps, err := d.cfg.Endpoints(ctx)
	if err != nil {
		d.m.reloads.WithLabelValues("error").Inc()
		d.log.Error("webhook endpoints not loaded; keeping the current ones", "err", err)
		return fmt.Errorf("webhook: load endpoints: %w", err)
	}
	valid := map[string]Endpoint{}
	var bad []error
	for _, ep := range eps {
		if err := ep.Validate(d.cfg.AllowHTTP); err != nil {
			bad = append(bad, err)
			continue
		}
		if _, dup := valid[ep.Name]; dup {
			bad = append(bad, fmt.Errorf("webhook %q: %w: the name is used twice", ep.Name, ErrInvalidEndpoint))
			continue
		}
		if ep.Format == "" {
			ep.Format = FormatJSON
		}
		ep.Events = slices.Clone(ep.Events)
		valid[ep.Name] = ep
	}

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	for name, w := range d.workers {
		if _, ok := valid[name]; !ok {
			delete(d.workers, name)
			w.stop(errRemoved)
		}
	}
	for name, ep := range valid {
		if w, ok := d.workers[name]; ok {
			w.ep.Store(&ep)
			continue
		}
		d.workers[name] = d.startWorker(ep)
	}
	d.mu.Unlock()

	if len(bad) > 0 {
		err := errors.Join(bad...)
		d.m.reloads.WithLabelValues("invalid").Inc()
		d.log.Error("webhook endpoints skipped", "skipped", len(bad), "loaded", len(valid), "err", err)
		return err
	}
	d.m.reloads.WithLabelValues("ok").Inc()
	return nil
}

func (d *Dispatcher) reloadEvery(ctx context.Context) {
	defer close(d.reloadDone)
	if d.cfg.ReloadInterval < 0 {
		return
	}
	t := time.NewTicker(d.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = d.reload(ctx) // logged and counted inside
		}
	}
}

// Redeliver makes one attempt to send dl again, byte for byte, to its
// endpoint's current URL with its current secret, and returns nil when it
// was delivered. It records nothing: on success the caller deletes dl from
// the store; on failure dl stays where it is. An empty dl.EventID gets a new
// random one. Redeliver works after Close too.
func (d *Dispatcher) Redeliver(ctx context.Context, dl DeadLetter) error {
	d.mu.RLock()
	w := d.workers[dl.Webhook]
	d.mu.RUnlock()
	if w == nil {
		return fmt.Errorf("webhook: redeliver dead letter %d: %w %q", dl.ID, ErrUnknownEndpoint, dl.Webhook)
	}
	if dl.Payload == nil {
		return fmt.Errorf("webhook: redeliver dead letter %d to %q: it has no payload (%s)", dl.ID, dl.Webhook, dl.LastError)
	}
	id := dl.EventID
	if id == "" {
		id = rand.Text()
	}
	o := d.attempt(ctx, *w.ep.Load(), dl.EventType, id, dl.Payload, w.m)
	if o.err != nil {
		w.m.failed.Inc()
		return fmt.Errorf("webhook: redeliver dead letter %d to %q: %w", dl.ID, dl.Webhook, o.err)
	}
	w.m.ok.Inc()
	return nil
}

// Close stops the Dispatcher (see its contract). It returns ctx's error when
// ctx ended before the attempts in flight did; those are then aborted and
// dead-lettered too. It is idempotent; later calls wait for the first.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.closeDone
		return nil
	}
	d.closed = true
	ws := slices.Collect(maps.Values(d.workers))
	d.mu.Unlock()
	defer close(d.closeDone)

	d.stopReload()
	<-d.reloadDone
	for _, w := range ws {
		w.stop(ErrClosed)
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webhook: close: %w", ctx.Err())
		d.abort(errAborted)
		<-done
	}
	d.abort(ErrClosed)
	close(d.spill) // no sender left: Notify checks closed under mu
	<-d.spillDone
	if d.ownClient {
		d.client.CloseIdleConnections()
	}
	return err
}
