package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDeliverySignedAndVerified(t *testing.T) {
	rc := newReceiver(t, "s3cret", nil)
	h := start(t, Config{Client: clientFor(t, rc)}, Endpoint{Name: "a", URL: rc.url(), Secret: "s3cret"})

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.d.Notify(Event{Type: SessionStarted, At: at, Data: map[string]any{KeyUser: "alice", KeyConnection: "prod-db"}})
	waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
	h.close(t)

	attempts, got, sigErrs := rc.stats()
	if attempts != 1 || len(sigErrs) != 0 {
		t.Fatalf("%d attempts, signature errors %v", attempts, sigErrs)
	}
	g := got[0]
	if g.Event != SessionStarted || g.ContentType != "application/json" || g.ID == "" || g.Path != "/hook" {
		t.Fatalf("headers: %+v", g)
	}
	var e Event
	if err := json.Unmarshal(g.Body, &e); err != nil {
		t.Fatalf("body is not an Event: %v: %s", err, g.Body)
	}
	if e.ID != g.ID || e.Type != SessionStarted || !e.At.Equal(at) || e.Data[KeyUser] != "alice" {
		t.Fatalf("body %+v does not match headers %+v", e, g)
	}
	// The receiver's check can fail: a wrong secret or one changed byte is refused.
	if err := Verify("other", g.TS, g.Sig, g.Body, time.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong secret: %v", err)
	}
	tampered := bytes.Replace(g.Body, []byte("alice"), []byte("mallory"), 1)
	if err := Verify("s3cret", g.TS, g.Sig, tampered, time.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if h.result("a", resultOK) != 1 || len(h.dl.List("")) != 0 {
		t.Fatalf("ok=%d dead=%d", h.result("a", resultOK), len(h.dl.List("")))
	}
}

// A flaky endpoint fails the first two attempts, then answers 200: the event
// is delivered exactly once successfully, after exactly three attempts.
func TestRetriesUntilDelivered(t *testing.T) {
	modes := map[string]func(w http.ResponseWriter, r *http.Request){
		"500": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		"connection closed": func(w http.ResponseWriter, r *http.Request) {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		},
		"timeout": func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	}
	for name, fail := range modes {
		t.Run(name, func(t *testing.T) {
			rc := newReceiver(t, "k", func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n <= 2 {
					fail(w, r)
					return false
				}
				return true
			})
			h := start(t, Config{Client: clientFor(t, rc), AttemptTimeout: 200 * time.Millisecond},
				Endpoint{Name: "flaky", URL: rc.url(), Secret: "k"})
			h.d.Notify(ev(SessionEnded, 1))
			waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
			h.close(t)

			attempts, got, sigErrs := rc.stats()
			if attempts != 3 || len(got) != 1 || len(sigErrs) != 0 {
				t.Fatalf("attempts %d, delivered %d, signature errors %v", attempts, len(got), sigErrs)
			}
			if got[0].ID != "session.ended-1" {
				t.Fatalf("delivery id %q", got[0].ID)
			}
			if ok, retry, failed := h.result("flaky", resultOK), h.result("flaky", resultRetry), h.result("flaky", resultFailed); ok != 1 || retry != 2 || failed != 0 {
				t.Fatalf("ok %d retry %d failed %d", ok, retry, failed)
			}
			// Jitter fixed at 0.5: b/2 + b/4 with b = 1s, 2s.
			if w := h.sl.recorded(); !slices.Equal(w, []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond}) {
				t.Fatalf("backoff waits %v", w)
			}
			if n := len(h.dl.List("")); n != 0 {
				t.Fatalf("%d dead letters", n)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	rc := newReceiver(t, "k", func(n int, w http.ResponseWriter, r *http.Request) bool {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2: // a receiver asking for an hour gets the backoff cap
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3: // an HTTP-date in the past: no extra wait
			w.Header().Set("Retry-After", "Mon, 02 Jan 2006 15:04:05 GMT")
			w.WriteHeader(http.StatusRequestTimeout)
		default:
			return true
		}
		return false
	})
	h := start(t, Config{Client: clientFor(t, rc), MaxBackoff: 30 * time.Second},
		Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	h.d.Notify(ev(ReviewRequested, 1))
	waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
	h.close(t)
	// Backoffs with jitter 0.5 are 0.75s, 1.5s, 3s; Retry-After wins when longer.
	want := []time.Duration{7 * time.Second, 30 * time.Second, 3 * time.Second}
	if w := h.sl.recorded(); !slices.Equal(w, want) {
		t.Fatalf("waits %v, want %v", w, want)
	}
}

// Answers that cannot get better are not retried; those that can are, up to
// MaxAttempts. Redirects are not followed.
func TestStatusClassification(t *testing.T) {
	for _, tc := range []struct {
		status   int
		attempts int
		reason   string
	}{
		{400, 1, reasonRejected}, {401, 1, reasonRejected}, {403, 1, reasonRejected}, {404, 1, reasonRejected},
		{410, 1, reasonRejected}, {422, 1, reasonRejected}, {301, 1, reasonRejected}, {302, 1, reasonRejected},
		{307, 1, reasonRejected}, {308, 1, reasonRejected},
		{408, 2, reasonExhausted}, {429, 2, reasonExhausted}, {500, 2, reasonExhausted}, {502, 2, reasonExhausted},
		{503, 2, reasonExhausted}, {504, 2, reasonExhausted},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rc := newReceiver(t, "k", func(n int, w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/hook" {
					return true // the redirect target: reaching it is a failure of the test
				}
				if tc.status >= 300 && tc.status < 400 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				return false
			})
			h := start(t, Config{Client: clientFor(t, rc), MaxAttempts: 2}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
			h.d.Notify(ev(StatementDenied, 1))
			waitFor(t, "the dead letter", func() bool { return len(h.dl.List("a")) == 1 })
			h.close(t)
			attempts, got, _ := rc.stats()
			dl := h.dl.List("a")[0]
			if attempts != tc.attempts || len(got) != 0 || dl.Attempts != tc.attempts || h.deadReason("a", tc.reason) != 1 {
				t.Fatalf("attempts %d (dead letter says %d), delivered %d, %s=%d: %+v",
					attempts, dl.Attempts, len(got), tc.reason, h.deadReason("a", tc.reason), dl)
			}
			if !strings.Contains(dl.LastError, fmt.Sprint(tc.status)) {
				t.Fatalf("LastError %q does not name the status", dl.LastError)
			}
		})
	}
}

func TestPermanentFailureDeadLettersAtOnce(t *testing.T) {
	rc := newReceiver(t, "k", func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "unknown field \"data\"\x00\x1b[31m", http.StatusBadRequest)
		return false
	})
	h := start(t, Config{Client: clientFor(t, rc)}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	e := ev(ReviewDecided, 1)
	h.d.Notify(e)
	waitFor(t, "the dead letter", func() bool { return len(h.dl.List("a")) == 1 })
	h.close(t)

	dl := h.dl.List("a")[0]
	attempts, _, _ := rc.stats()
	if attempts != 1 || dl.Attempts != 1 || len(h.sl.recorded()) != 0 {
		t.Fatalf("attempts %d, dead letter attempts %d, waits %v", attempts, dl.Attempts, h.sl.recorded())
	}
	if !strings.Contains(dl.LastError, "400 Bad Request") || !strings.Contains(dl.LastError, `unknown field "data"`) || strings.ContainsAny(dl.LastError, "\x00\x1b") {
		t.Fatalf("LastError %q", dl.LastError)
	}
	// The payload is the exact body the receiver was sent, ready to resend.
	want, _ := Render(FormatJSON, h.d.prepare(e))
	if dl.Webhook != "a" || dl.EventType != ReviewDecided || dl.EventID != e.ID || !bytes.Equal(dl.Payload, want) {
		t.Fatalf("dead letter %+v, payload %s, want %s", dl, dl.Payload, want)
	}
	if h.result("a", resultFailed) != 1 || h.result("a", resultDeadLetter) != 1 || h.deadReason("a", reasonRejected) != 1 {
		t.Fatal("metrics do not count the failure")
	}
}

func TestEndpointDownIsDeadLettered(t *testing.T) {
	rc := newReceiver(t, "k", nil)
	client := clientFor(t, rc)
	url := rc.srv.URL + "/services/T000/B000/XXXSECRETXXX"
	rc.srv.Close() // the port now refuses connections

	h := start(t, Config{Client: client, MaxAttempts: 3}, Endpoint{Name: "down", URL: url, Secret: "k"})
	h.d.Notify(ev(SessionStarted, 1))
	waitFor(t, "the dead letter", func() bool { return len(h.dl.List("down")) == 1 })
	h.close(t)

	dl := h.dl.List("down")[0]
	if dl.Attempts != 3 || len(h.sl.recorded()) != 2 || h.deadReason("down", reasonExhausted) != 1 {
		t.Fatalf("dead letter %+v, waits %v", dl, h.sl.recorded())
	}
	if h.result("down", resultRetry) != 2 || h.result("down", resultFailed) != 1 {
		t.Fatalf("retry %d failed %d", h.result("down", resultRetry), h.result("down", resultFailed))
	}
	// The error names the host, never the path (a Slack URL's credential).
	if !strings.Contains(dl.LastError, "POST "+rc.srv.URL) || strings.Contains(dl.LastError, "XXXSECRETXXX") {
		t.Fatalf("LastError %q", dl.LastError)
	}
}

// A stuck endpoint delays neither another endpoint nor Notify's caller, and
// every event ends delivered or dead-lettered: none is lost.
func TestSlowEndpointIsolatedAndNothingLost(t *testing.T) {
	release := make(chan struct{})
	slow := newReceiver(t, "k", block(t, release))
	fast := newReceiver(t, "k", nil)
	h := start(t, Config{Client: clientFor(t, slow, fast), QueueSize: 4, AttemptTimeout: time.Minute},
		Endpoint{Name: "slow", URL: slow.url(), Secret: "k"}, Endpoint{Name: "fast", URL: fast.url(), Secret: "k"})

	const total = 100
	h.d.Notify(ev(SessionStarted, 0))
	slow.waitEntered(t) // slow's worker is now stuck in its first attempt
	waitFor(t, "the fast endpoint's delivery while the slow one is stuck", func() bool { return fast.delivered() == 1 })

	notified := make(chan struct{})
	go func() {
		defer close(notified)
		for i := 1; i < total; i++ {
			h.d.Notify(ev(SessionStarted, i))
		}
	}()
	select {
	case <-notified:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked behind a stuck endpoint")
	}
	close(release)

	for _, name := range []string{"slow", "fast"} {
		rc := map[string]*receiver{"slow": slow, "fast": fast}[name]
		waitFor(t, name+"'s events to settle", func() bool { return rc.delivered()+len(h.dl.List(name)) == total })
	}
	h.close(t)

	for name, rc := range map[string]*receiver{"slow": slow, "fast": fast} {
		_, got, sigErrs := rc.stats()
		seen := map[string]int{}
		for _, g := range got {
			seen[g.ID]++
		}
		for _, dl := range h.dl.List(name) {
			seen[dl.EventID]++
			if dl.LastError == "" || dl.Payload == nil {
				t.Errorf("%s: dead letter without error or payload: %+v", name, dl)
			}
		}
		for i := range total {
			if id := ev(SessionStarted, i).ID; seen[id] != 1 {
				t.Errorf("%s: event %s accounted for %d times", name, id, seen[id])
			}
		}
		if len(sigErrs) != 0 || h.lost(name, reasonSpillFull) != 0 || h.lost(name, reasonStore) != 0 {
			t.Errorf("%s: signature errors %v, lost %d", name, sigErrs, h.lost(name, reasonSpillFull))
		}
	}
	// slow's queue held 4 while its worker was stuck in event 0: the other 95 overflowed.
	if n := h.deadReason("slow", reasonQueueFull); n != total-1-4 || n != len(h.dl.List("slow")) {
		t.Fatalf("slow: %d queue_full dead letters, %d in the list", n, len(h.dl.List("slow")))
	}
	if q := value(h.d.m.queue.WithLabelValues("slow")); q != 0 {
		t.Fatalf("queue gauge %v after close", q)
	}
}

func TestCloseFinishesInFlightAndDeadLettersQueued(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, "k", block(t, release))
	h := start(t, Config{Client: clientFor(t, rc), AttemptTimeout: time.Minute}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	for i := range 5 {
		h.d.Notify(ev(SessionStarted, i))
	}
	rc.waitEntered(t)

	closed := make(chan error, 1)
	go func() { closed <- h.d.Close(context.Background()) }()
	h.d.mu.RLock()
	w := h.d.workers["a"]
	h.d.mu.RUnlock()
	waitFor(t, "Close to stop the worker", func() bool { return w.stopCtx.Err() != nil })
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while an attempt was in flight", err)
	default:
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}

	attempts, got, _ := rc.stats()
	if attempts != 1 || len(got) != 1 || got[0].ID != ev(SessionStarted, 0).ID {
		t.Fatalf("attempts %d, delivered %v", attempts, got)
	}
	dls := h.dl.List("a")
	if len(dls) != 4 || h.deadReason("a", reasonClosed) != 4 {
		t.Fatalf("%d dead letters, %d counted closed", len(dls), h.deadReason("a", reasonClosed))
	}
	for i, dl := range dls {
		e := ev(SessionStarted, i+1)
		want, _ := Render(FormatJSON, h.d.prepare(e))
		if dl.EventID != e.ID || dl.Attempts != 0 || !strings.Contains(dl.LastError, "closed") || !bytes.Equal(dl.Payload, want) {
			t.Fatalf("dead letter %d: %+v", i, dl)
		}
	}
}

func TestCloseTimeoutAbortsInFlight(t *testing.T) {
	rc := newReceiver(t, "k", block(t, nil)) // never answers
	h := start(t, Config{Client: clientFor(t, rc), AttemptTimeout: time.Minute}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	h.d.Notify(ev(SessionStarted, 0))
	h.d.Notify(ev(SessionStarted, 1))
	rc.waitEntered(t)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	dls := h.dl.List("a")
	if len(dls) != 2 {
		t.Fatalf("%d dead letters: %+v", len(dls), dls)
	}
	// Event 0 was aborted in flight (one attempt), event 1 drained from the queue.
	slices.SortFunc(dls, func(a, b DeadLetter) int { return strings.Compare(a.EventID, b.EventID) })
	if dls[0].Attempts != 1 || !strings.Contains(dls[0].LastError, "aborted") || dls[1].Attempts != 0 {
		t.Fatalf("dead letters %+v", dls)
	}
}

// A worker waiting to retry stops waiting at Close.
func TestCloseInterruptsBackoff(t *testing.T) {
	rc := newReceiver(t, "k", func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(500); return false })
	h := start(t, Config{Client: clientFor(t, rc), Sleep: sleep, InitialBackoff: time.Hour, MaxBackoff: time.Hour},
		Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	h.d.Notify(ev(SessionStarted, 0))
	waitFor(t, "the first failed attempt", func() bool { return h.result("a", resultRetry) == 1 })
	h.close(t) // fails the test if the hour-long wait were kept
	dls := h.dl.List("a")
	if len(dls) != 1 || dls[0].Attempts != 1 || !strings.Contains(dls[0].LastError, "500") || !strings.Contains(dls[0].LastError, "closed") {
		t.Fatalf("dead letters %+v", dls)
	}
}

func TestEventTypeFilter(t *testing.T) {
	some := newReceiver(t, "k", nil)
	all := newReceiver(t, "k", nil)
	h := start(t, Config{Client: clientFor(t, some, all)},
		Endpoint{Name: "some", URL: some.url(), Secret: "k", Events: []string{ReviewRequested, StatementDenied}},
		Endpoint{Name: "all", URL: all.url(), Secret: "k"})
	types := []string{SessionStarted, ReviewRequested, SessionEnded, StatementDenied, ReviewDecided}
	for i, typ := range types {
		h.d.Notify(ev(typ, i))
	}
	waitFor(t, "all deliveries", func() bool { return all.delivered() == 5 && some.delivered() == 2 })
	h.close(t)
	_, got, _ := some.stats()
	if got[0].Event != ReviewRequested || got[1].Event != StatementDenied {
		t.Fatalf("filtered endpoint got %s, %s", got[0].Event, got[1].Event)
	}
	if attempts, _, _ := some.stats(); attempts != 2 || len(h.dl.List("")) != 0 {
		t.Fatalf("%d attempts, %d dead letters", attempts, len(h.dl.List("")))
	}
}

func TestSlackEndpoint(t *testing.T) {
	rc := newReceiver(t, "", nil) // Slack checks no signature: the secret is optional
	h := start(t, Config{Client: clientFor(t, rc)}, Endpoint{Name: "slack", URL: rc.url(), Format: FormatSlack})
	h.d.Notify(Event{Type: StatementDenied, Data: map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyRule: "no-drop", KeyStatement: "DROP TABLE users"}})
	waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
	h.close(t)
	_, got, _ := rc.stats()
	var msg struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(got[0].Body, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Text != "statement denied for alice on prod-db by rule no-drop: DROP TABLE users" || len(msg.Blocks) == 0 {
		t.Fatalf("slack body %s", got[0].Body)
	}
	if got[0].Sig != "" || got[0].ContentType != "application/json" {
		t.Fatalf("headers %+v", got[0])
	}
}

func TestRedeliver(t *testing.T) {
	var mu sync.Mutex
	accept := false
	rc := newReceiver(t, "k", func(n int, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if !accept {
			w.WriteHeader(http.StatusNotFound)
		}
		return accept
	})
	h := start(t, Config{Client: clientFor(t, rc)}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	e := ev(ReviewRequested, 3)
	h.d.Notify(e)
	waitFor(t, "the dead letter", func() bool { return len(h.dl.List("a")) == 1 })
	dl := h.dl.List("a")[0]

	ctx := context.Background()
	if err := h.d.Redeliver(ctx, dl); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("redeliver to a 404: %v", err)
	}
	mu.Lock()
	accept = true
	mu.Unlock()
	h.close(t) // Redeliver works after Close
	if err := h.d.Redeliver(ctx, dl); err != nil {
		t.Fatal(err)
	}
	_, got, sigErrs := rc.stats()
	if len(got) != 1 || got[0].ID != e.ID || got[0].Event != e.Type || !bytes.Equal(got[0].Body, dl.Payload) || len(sigErrs) != 0 {
		t.Fatalf("redelivered %+v, signature errors %v", got, sigErrs)
	}
	dl.Webhook = "gone"
	if err := h.d.Redeliver(ctx, dl); !errors.Is(err, ErrUnknownEndpoint) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

// mutableSource is an Endpoints whose answer the test changes.
type mutableSource struct {
	mu  sync.Mutex
	eps []Endpoint
	err error
}

func (s *mutableSource) set(err error, eps ...Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eps, s.err = eps, err
}

func (s *mutableSource) get(context.Context) ([]Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.eps), s.err
}

func TestReload(t *testing.T) {
	one, two, three := newReceiver(t, "k", nil), newReceiver(t, "k2", nil), newReceiver(t, "k", nil)
	src := &mutableSource{}
	src.set(nil, Endpoint{Name: "a", URL: one.url(), Secret: "k"})
	h := start(t, Config{Client: clientFor(t, one, two, three), Endpoints: src.get})

	h.d.Notify(ev(SessionStarted, 1))
	waitFor(t, "a's delivery", func() bool { return one.delivered() == 1 })

	// a moves to another URL with another secret; b is added; an invalid
	// one is reported and skipped.
	src.set(nil, Endpoint{Name: "a", URL: two.url(), Secret: "k2"}, Endpoint{Name: "b", URL: three.url(), Secret: "k"},
		Endpoint{Name: "bad", URL: "http://example.com/hook", Secret: "k"})
	if err := h.d.Reload(context.Background()); !errors.Is(err, ErrInvalidEndpoint) || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("reload: %v", err)
	}
	h.d.Notify(ev(SessionStarted, 2))
	waitFor(t, "the deliveries after reload", func() bool { return two.delivered() == 1 && three.delivered() == 1 })

	// A failing source keeps the current set.
	src.set(errors.New("database is down"))
	if err := h.d.Reload(context.Background()); err == nil || errors.Is(err, ErrInvalidEndpoint) {
		t.Fatalf("reload from a failing source: %v", err)
	}
	h.d.Notify(ev(SessionStarted, 3))
	waitFor(t, "the deliveries with the kept set", func() bool { return two.delivered() == 2 && three.delivered() == 2 })
	h.close(t)
	if _, _, e := two.stats(); len(e) != 0 {
		t.Fatalf("signature errors with the new secret: %v", e)
	}
	if one.delivered() != 1 || len(h.dl.List("")) != 0 {
		t.Fatalf("old URL got %d, dead letters %d", one.delivered(), len(h.dl.List("")))
	}
	if err := h.d.Reload(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("reload after close: %v", err)
	}
}

func TestPeriodicReload(t *testing.T) {
	rc := newReceiver(t, "k", nil)
	src := &mutableSource{}
	h := start(t, Config{Client: clientFor(t, rc), Endpoints: src.get, ReloadInterval: 5 * time.Millisecond})
	src.set(nil, Endpoint{Name: "late", URL: rc.url(), Secret: "k"})
	waitFor(t, "the reloader to pick the endpoint up", func() bool {
		h.d.mu.RLock()
		defer h.d.mu.RUnlock()
		return h.d.workers["late"] != nil
	})
	h.d.Notify(ev(SessionStarted, 0))
	waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
	h.close(t)
	if err := h.d.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRemovedEndpointIsDrained(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, "k", block(t, release))
	src := &mutableSource{}
	src.set(nil, Endpoint{Name: "r", URL: rc.url(), Secret: "k"})
	h := start(t, Config{Client: clientFor(t, rc), Endpoints: src.get, AttemptTimeout: time.Minute})
	for i := range 3 {
		h.d.Notify(ev(SessionStarted, i))
	}
	rc.waitEntered(t)
	src.set(nil)
	if err := h.d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.d.Notify(ev(SessionStarted, 3)) // no endpoint wants it any more
	close(release)
	waitFor(t, "the removed endpoint's queue in dead letters", func() bool { return len(h.dl.List("r")) == 2 })
	h.close(t)
	if rc.delivered() != 1 || h.deadReason("r", reasonRemoved) != 2 {
		t.Fatalf("delivered %d, removed %d", rc.delivered(), h.deadReason("r", reasonRemoved))
	}
}

// gatedDeadLetters holds every AddDeadLetter until gate is closed.
type gatedDeadLetters struct {
	MemoryDeadLetters
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedDeadLetters) AddDeadLetter(ctx context.Context, dl DeadLetter) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.MemoryDeadLetters.AddDeadLetter(ctx, dl)
}

// The only way to lose an event while running: its queue and the spill to
// the dead-letter store are both full. It is counted, one by one.
func TestLossIsCounted(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, "k", block(t, release))
	store := &gatedDeadLetters{entered: make(chan struct{}, 16), gate: make(chan struct{})}
	h := start(t, Config{Client: clientFor(t, rc), DeadLetters: store, QueueSize: 1, SpillSize: 1, AttemptTimeout: time.Minute},
		Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	open := sync.OnceFunc(func() { close(release); close(store.gate) })
	t.Cleanup(open) // before Close, also when the test fails early

	h.d.Notify(ev(SessionStarted, 0))
	rc.waitEntered(t)                 // 0 in flight
	h.d.Notify(ev(SessionStarted, 1)) // 1 queued
	h.d.Notify(ev(SessionStarted, 2)) // 2 spilled, its write held at the gate
	<-store.entered
	h.d.Notify(ev(SessionStarted, 3)) // 3 waits in the spill
	for i := 4; i < 10; i++ {
		h.d.Notify(ev(SessionStarted, i)) // lost
	}
	if n := h.lost("a", reasonSpillFull); n != 6 {
		t.Fatalf("%d lost, want 6", n)
	}
	open()
	waitFor(t, "the rest to settle", func() bool { return rc.delivered() == 2 && len(store.List("a")) == 2 })
	h.close(t)
	if rc.delivered() != 2 || len(store.List("a")) != 2 || h.lost("a", reasonSpillFull) != 6 {
		t.Fatalf("delivered %d, dead letters %d", rc.delivered(), len(store.List("a")))
	}
}

func TestStoreFailureAndNotifyAfterCloseAreCounted(t *testing.T) {
	rc := newReceiver(t, "k", func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(400); return false })
	store := &MemoryDeadLetters{Max: 1}
	h := start(t, Config{Client: clientFor(t, rc), DeadLetters: store}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	h.d.Notify(ev(SessionStarted, 0))
	h.d.Notify(ev(SessionStarted, 1))
	waitFor(t, "both failures", func() bool { return h.lost("a", reasonStore) == 1 && len(store.List("a")) == 1 })
	h.close(t)
	h.d.Notify(ev(SessionStarted, 2))
	if h.lost("a", reasonClosed) != 1 {
		t.Fatal("an event notified after Close is not counted")
	}
}

func TestNotifyCopiesAndBoundsData(t *testing.T) {
	rc := newReceiver(t, "k", nil)
	h := start(t, Config{Client: clientFor(t, rc), MaxValueBytes: 64}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	data := map[string]any{KeyStatement: strings.Repeat("é", 10000), KeyReview: 12}
	h.d.Notify(Event{Type: ReviewRequested, Data: data})
	data[KeyReview] = 13 // the caller's map is its own again
	waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
	h.close(t)
	_, got, _ := rc.stats()
	var e Event
	if err := json.Unmarshal(got[0].Body, &e); err != nil {
		t.Fatal(err)
	}
	s, _ := e.Data[KeyStatement].(string)
	if len(s) > 64 || !strings.HasSuffix(s, "…") || !strings.HasPrefix(s, "éé") || e.Data[KeyReview] != float64(12) {
		t.Fatalf("data %.80q… (%d bytes), review %v", s, len(s), e.Data[KeyReview])
	}
	if e.ID == "" || e.At.IsZero() {
		t.Fatalf("id %q at %v not filled", e.ID, e.At)
	}
}

func TestNewAndConfig(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "Endpoints is required") {
		t.Fatalf("empty config: %v", err)
	}
	bad := Config{Endpoints: Static(), DeadLetters: &MemoryDeadLetters{}, MaxAttempts: -1, InitialBackoff: time.Minute, MaxBackoff: time.Second}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "MaxAttempts is negative") || !strings.Contains(err.Error(), "MaxBackoff is below") {
		t.Fatalf("bad config: %v", err)
	}
	failing := func(context.Context) ([]Endpoint, error) { return nil, errors.New("no table") }
	if _, err := New(context.Background(), Config{Endpoints: failing, DeadLetters: &MemoryDeadLetters{}, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "no table") {
		t.Fatalf("failing source: %v", err)
	}
	// An invalid endpoint at start is skipped, not fatal.
	h := start(t, Config{}, Endpoint{Name: "x", URL: "ftp://example.com/", Secret: "k"})
	if len(h.d.workers) != 0 {
		t.Fatal("an invalid endpoint got a worker")
	}
	def := DefaultConfig()
	if err := def.Validate(); err == nil {
		t.Fatal("DefaultConfig without Endpoints and DeadLetters validates")
	}
	def.Endpoints, def.DeadLetters = Static(), &MemoryDeadLetters{}
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig with the required fields: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999999} {
		d := &Dispatcher{cfg: Config{InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute, Rand: func() float64 { return r }}}
		for n := 1; n <= 40; n++ {
			b := min(time.Second<<min(n-1, 20), 5*time.Minute)
			got := d.backoff(n, 0)
			if got < b/2 || got > b {
				t.Fatalf("rand %v attempt %d: %v outside [%v, %v]", r, n, got, b/2, b)
			}
		}
		if got := d.backoff(1, time.Hour); got != 5*time.Minute {
			t.Fatalf("Retry-After beyond the cap: %v", got)
		}
	}
}
