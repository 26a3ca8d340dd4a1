package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/engine"
)

// fakeStore records batches; WriteSessions waits on gate when it is set.
type fakeStore struct {
	store.Store
	mu      sync.Mutex
	batches [][]store.Session
	gate    chan struct{}
	entered chan struct{}
	fail    bool
}

func (f *fakeStore) WriteSessions(ctx context.Context, b []store.Session) error {
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
	if f.fail {
		return errors.New("disk on fire")
	}
	f.batches = append(f.batches, append([]store.Session(nil), b...))
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

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := New(f, Options{QueueSize: 10, Logger: quiet})
	s.SessionStarted(rec(0))
	<-f.entered
	done := make(chan struct{})
	go func() {
		for i := 1; i <= 30; i++ {
			s.SessionStarted(rec(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SessionStarted blocked on a full queue")
	}
	if s.Dropped() != 20 {
		t.Fatalf("dropped %d, want 20", s.Dropped())
	}
	close(f.gate)
	s.Close()
	if records, _ := f.count(); records != 11 {
		t.Fatalf("%d records written, want 11", records)
	}
	s.SessionEnded(rec(99))
	if s.Dropped() != 21 {
		t.Fatalf("record after Close not counted as dropped: %d", s.Dropped())
	}
}

func TestStoreFailureCounted(t *testing.T) {
	f := &fakeStore{fail: true}
	s := New(f, Options{Logger: quiet})
	s.SessionStarted(rec(1))
	s.SessionEnded(rec(1))
	s.Close()
	if s.Failed() != 2 || s.Written() != 0 {
		t.Fatalf("failed %d written %d", s.Failed(), s.Written())
	}
}
