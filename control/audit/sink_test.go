package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/engine"
)

// fakeStore records batches; writes wait on gate when it is set and fail
// while failures > 0 (counting down; -1: always).
type fakeStore struct {
	store.Store
	mu       sync.Mutex
	batches  [][]store.Session
	stmts    [][]store.Statement
	gate     chan struct{}
	entered  chan struct{}
	failures int
	attempts int
}

func (f *fakeStore) enter() error {
	if f.entered != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.failures != 0 {
		if f.failures > 0 {
			f.failures--
		}
		return errors.New("disk on fire")
	}
	return nil
}

func (f *fakeStore) WriteSessions(ctx context.Context, b []store.Session) error {
	if err := f.enter(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, append([]store.Session(nil), b...))
	return nil
}

func (f *fakeStore) WriteStatements(ctx context.Context, b []store.Statement) error {
	if err := f.enter(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stmts = append(f.stmts, append([]store.Statement(nil), b...))
	return nil
}

func (f *fakeStore) count() (records, batches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		records += len(b)
	}
	return records, len(f.batches)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func rec(i int) engine.SessionRecord {
	return engine.SessionRecord{ID: fmt.Sprintf("s%03d", i), User: "alice", Start: time.Unix(int64(i), 0).UTC(), Outcome: "running"}
}

func TestWritesToSQLiteAndCloseFlushes(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(st, Options{Logger: quiet})
	for i := range 100 {
		s.SessionStarted(rec(i))
	}
	end := rec(7)
	end.Outcome, end.End, end.BytesIn = "ok", time.Unix(99, 0).UTC(), 42
	s.SessionEnded(end)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close() // idempotent
	list, err := st.ListSessions(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 100 || s.Written() != 101 || s.Dropped() != 0 {
		t.Fatalf("%d sessions, written %d, dropped %d", len(list), s.Written(), s.Dropped())
	}
	for _, x := range list {
		if x.ID == "s007" && (x.Outcome != "ok" || x.BytesIn != 42) {
			t.Fatalf("end record not applied: %+v", x)
		}
	}
}

func TestGroupCommit(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := New(f, Options{BatchSize: 64, Logger: quiet})
	s.SessionStarted(rec(0))
	<-f.entered // the writer is now stuck in the first batch
	for i := 1; i <= 100; i++ {
		s.SessionStarted(rec(i))
	}
	close(f.gate)
	s.Close()
	records, batches := f.count()
	// 1 + 100 queued records: batches of at most 64 → exactly 3 transactions.
	if records != 101 || batches != 3 {
		t.Fatalf("%d records in %d batches, want 101 in 3", records, batches)
	}
	for _, b := range f.batches {
		if len(b) > 64 {
			t.Fatalf("batch of %d exceeds BatchSize", len(b))
		}
	}
}

// A full queue makes the caller wait for room instead of dropping: with a
// long MaxStall every record arrives once the store catches up.
func TestFullQueueBackpressure(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := New(f, Options{QueueSize: 10, MaxStall: time.Minute, Logger: quiet})
	s.SessionStarted(rec(0))
	<-f.entered // the writer holds record 0; the queue is empty
	for i := 1; i <= 10; i++ {
		s.SessionStarted(rec(i))
	}
	done := make(chan struct{})
	go func() {
		for i := 11; i <= 30; i++ {
			s.SessionStarted(rec(i)) // waits for room
		}
		close(done)
	}()
	close(f.gate)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("offers still blocked after the store caught up")
	}
	s.Close()
	if records, _ := f.count(); records != 31 || s.Dropped() != 0 {
		t.Fatalf("%d records written, %d dropped; want 31 and 0", records, s.Dropped())
	}
}

// Past MaxStall the record is lost, counted and logged, and the caller
// goes on.
func TestFullQueueLosesAfterStall(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	s := New(f, Options{QueueSize: 10, MaxStall: time.Millisecond, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.SessionStarted(rec(0))
	<-f.entered
	for i := 1; i <= 15; i++ {
		s.SessionStarted(rec(i))
	}
	if s.Dropped() != 5 {
		t.Fatalf("dropped %d, want 5", s.Dropped())
	}
	if got := counter(t, reg, "sluice_audit_records_lost_total", "sink", "sessions", "reason", "queue_full"); got != 5 {
		t.Fatalf("lost metric %v", got)
	}
	if got := counter(t, reg, "sluice_audit_spool_full_total", "sink", "sessions", "outcome", "waited"); got != 5 {
		t.Fatalf("waited metric %v", got)
	}
	if !strings.Contains(logs.String(), "audit record lost") || !strings.Contains(logs.String(), "session=s015") {
		t.Fatalf("loss not logged: %s", logs.String())
	}
	close(f.gate)
	s.Close()
	if records, _ := f.count(); records != 11 {
		t.Fatalf("%d records written, want 11", records)
	}
	s.SessionEnded(rec(99))
	if s.Dropped() != 6 || counter(t, reg, "sluice_audit_records_lost_total", "sink", "sessions", "reason", "closed") != 1 {
		t.Fatalf("record after Close not counted as lost: %d", s.Dropped())
	}
}

func TestAdmit(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	reg := prometheus.NewRegistry()
	s := New(f, Options{QueueSize: 8, HighWater: 4, Registerer: reg, Logger: quiet})
	var gate engine.AuditGate = s
	if err := gate.Admit(); err != nil {
		t.Fatal(err)
	}
	s.SessionStarted(rec(0))
	<-f.entered
	for i := 1; i <= 3; i++ {
		s.SessionStarted(rec(i))
	}
	if err := s.Admit(); err != nil {
		t.Fatalf("3 queued, high water 4: %v", err)
	}
	s.SessionStarted(rec(4))
	err := s.Admit()
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != engine.CodeInternal || e.Message != "audit spool is full: new sessions are refused" {
		t.Fatalf("4 queued: %v", err)
	}
	if s.Depth() != 4 || gauge(t, reg, "sluice_audit_queue_depth", "sink", "sessions") != 4 {
		t.Fatalf("depth %d", s.Depth())
	}
	if got := counter(t, reg, "sluice_audit_spool_full_total", "sink", "sessions", "outcome", "refused"); got != 1 {
		t.Fatalf("refused metric %v", got)
	}
	// Running sessions still get their records in above the mark.
	s.SessionEnded(rec(1))
	s.SessionEnded(rec(2))
	if s.Dropped() != 0 {
		t.Fatal("headroom above the high-water mark not used")
	}
	close(f.gate)
	deadline := time.Now().Add(30 * time.Second)
	for s.Depth() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Admit(); err != nil {
		t.Fatalf("drained: %v", err)
	}
	s.Close()
	if err := s.Admit(); !errors.As(err, &e) || e.Code != engine.CodeShutdown {
		t.Fatalf("after Close: %v", err)
	}
	ss := NewStatementSink(f, Options{Logger: quiet})
	defer ss.Close()
	if err := (Gates{nil, ss}).Admit(); err != nil {
		t.Fatalf("Gates: %v", err)
	}
	if err := (Gates{nil, ss, s}).Admit(); err == nil {
		t.Fatal("Gates admitted past a closed sink")
	}
}

func TestStoreFailureRetried(t *testing.T) {
	f := &fakeStore{failures: 2}
	s := New(f, Options{Logger: quiet, RetryBackoff: time.Millisecond})
	s.SessionStarted(rec(1))
	s.Close()
	if s.Failed() != 0 || s.Written() != 1 || f.attempts != 3 {
		t.Fatalf("failed %d written %d attempts %d", s.Failed(), s.Written(), f.attempts)
	}
}

func TestStoreFailureCounted(t *testing.T) {
	f := &fakeStore{failures: -1}
	reg := prometheus.NewRegistry()
	s := New(f, Options{Logger: quiet, RetryBackoff: time.Millisecond, Attempts: 2, Registerer: reg})
	s.SessionStarted(rec(1))
	s.SessionEnded(rec(1))
	s.Close()
	if s.Failed() != 2 || s.Written() != 0 {
		t.Fatalf("failed %d written %d", s.Failed(), s.Written())
	}
	if got := counter(t, reg, "sluice_audit_records_lost_total", "sink", "sessions", "reason", "write_failed"); got != 2 {
		t.Fatalf("metric %v", got)
	}
}
