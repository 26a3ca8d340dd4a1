package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

// Every worker, spill writer, reloader and test server ends with its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// receiver is a real HTTPS endpoint on 127.0.0.1 (httptest.NewTLSServer). It
// verifies the signature of every request it gets, counts attempts, and
// records the deliveries it answered with a 2xx.
type receiver struct {
	srv     *httptest.Server
	secret  string
	behave  func(n int, w http.ResponseWriter, r *http.Request) (delivered bool) // nil: 200
	entered chan int                                                             // attempt numbers, as they arrive

	mu       sync.Mutex
	attempts int
	got      []delivery
	sigErrs  []error
}

type delivery struct {
	Event, ID, TS, Sig, Path, ContentType string
	Body                                  []byte
}

func newReceiver(t *testing.T, secret string, behave func(n int, w http.ResponseWriter, r *http.Request) bool) *receiver {
	t.Helper()
	rc := &receiver{secret: secret, behave: behave, entered: make(chan int, 4096)}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/hook" }

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	d := delivery{
		Event: r.Header.Get(HeaderEvent), ID: r.Header.Get(HeaderDelivery), TS: r.Header.Get(HeaderTimestamp),
		Sig: r.Header.Get(HeaderSignature), Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Body: body,
	}
	rc.mu.Lock()
	rc.attempts++
	n := rc.attempts
	if rc.secret != "" {
		if err := Verify(rc.secret, d.TS, d.Sig, body, time.Now(), time.Minute); err != nil {
			rc.sigErrs = append(rc.sigErrs, err)
		}
	}
	rc.mu.Unlock()
	rc.entered <- n
	if rc.behave != nil && !rc.behave(n, w, r) {
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, d)
	rc.mu.Unlock()
}

func (rc *receiver) stats() (attempts int, got []delivery, sigErrs []error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts, slices.Clone(rc.got), slices.Clone(rc.sigErrs)
}

func (rc *receiver) delivered() int {
	_, got, _ := rc.stats()
	return len(got)
}

// waitEntered waits for the receiver's next request.
func (rc *receiver) waitEntered(t *testing.T) int {
	t.Helper()
	select {
	case n := <-rc.entered:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no request within 10s")
		return 0
	}
}

// clientFor trusts exactly the receivers' certificates.
func clientFor(t *testing.T, rcs ...*receiver) *http.Client {
	pool := x509.NewCertPool()
	for _, rc := range rcs {
		pool.AddCert(rc.srv.Certificate())
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// block is a handler that holds every request until release is closed (or
// the request or the test ends), then answers 200.
func block(t *testing.T, release <-chan struct{}) func(int, http.ResponseWriter, *http.Request) bool {
	return func(_ int, w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
			return true
		case <-r.Context().Done():
		case <-t.Context().Done():
		}
		return false
	}
}

// sleeper records the backoff waits and returns at once.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return context.Cause(ctx)
}

func (s *sleeper) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

type harness struct {
	d   *Dispatcher
	dl  *MemoryDeadLetters
	reg *prometheus.Registry
	sl  *sleeper
}

// start builds a Dispatcher for the test: in-memory dead letters, its own
// registry, a quiet log, recorded backoff waits, jitter fixed at 0.5 and no
// periodic reload, unless cfg says otherwise. Close runs at cleanup.
func start(t *testing.T, cfg Config, eps ...Endpoint) *harness {
	t.Helper()
	h := &harness{dl: &MemoryDeadLetters{}, reg: prometheus.NewRegistry(), sl: &sleeper{}}
	if cfg.Endpoints == nil {
		cfg.Endpoints = Static(eps...)
	}
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = h.dl
	}
	cfg.Registerer = h.reg
	cfg.Logger = quiet
	if cfg.Sleep == nil {
		cfg.Sleep = h.sl.sleep
	}
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 0.5 }
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = -1
	}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	t.Cleanup(func() { d.Close(context.Background()) })
	return h
}

func (h *harness) result(endpoint, result string) int {
	return int(value(h.d.m.deliveries.WithLabelValues(endpoint, result)))
}

func (h *harness) deadReason(endpoint, reason string) int {
	return int(value(h.d.m.deadLetters.WithLabelValues(endpoint, reason)))
}

func (h *harness) lost(endpoint, reason string) int {
	return int(value(h.d.m.lost.WithLabelValues(endpoint, reason)))
}

func (h *harness) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// waitFor polls cond until it holds; 10s is a liveness bound, not a
// performance expectation.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ev(typ string, i int) Event {
	return Event{ID: fmt.Sprintf("%s-%d", typ, i), Type: typ, At: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
		Data: map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyProtocol: "postgres"}}
}

// value reads a counter or a gauge.
func value(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	if c := pb.GetCounter(); c != nil {
		return c.GetValue()
	}
	return pb.GetGauge().GetValue()
}
