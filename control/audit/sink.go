package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Options tunes a Sink. Zero values take the defaults.
type Options struct {
	QueueSize    int           // records buffered before drops; default 4096
	BatchSize    int           // records per transaction at most; default 256
	WriteTimeout time.Duration // per batch; default 10s
	Logger       *slog.Logger  // default slog.Default()
}

// Sink is an engine.AuditSink that group-commits into a store.
//
// SessionStarted and SessionEnded never block. Close stops accepting records,
// writes everything queued and waits for the writer; records offered after
// Close are dropped and counted.
type Sink struct {
	st   store.Store
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex // guards closed against the send in offer
	closed bool
	ch     chan store.Session
	done   chan struct{}

	dropped atomic.Uint64
	failed  atomic.Uint64
	written atomic.Uint64
}

var _ engine.AuditSink = (*Sink)(nil)

// New starts a Sink writing to st.
func New(st store.Store, opts Options) *Sink {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Sink{
		st:   st,
		opts: opts,
		log:  opts.Logger,
		ch:   make(chan store.Session, opts.QueueSize),
		done: make(chan struct{}),
	}
	go s.run()
	return s
}

// SessionStarted implements engine.AuditSink.
func (s *Sink) SessionStarted(r engine.SessionRecord) { s.offer(r) }

// SessionEnded implements engine.AuditSink.
func (s *Sink) SessionEnded(r engine.SessionRecord) { s.offer(r) }

func (s *Sink) offer(r engine.SessionRecord) {
	rec := store.Session(r)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.drop(rec, "closed")
		return
	}
	select {
	case s.ch <- rec:
	default:
		s.drop(rec, "queue_full")
	}
}

func (s *Sink) drop(r store.Session, reason string) {
	n := s.dropped.Add(1)
	s.log.Warn("audit record dropped", "reason", reason, "session", r.ID, "outcome", r.Outcome, "dropped_total", n)
}

// Dropped returns how many records were dropped because the queue was full
// or the sink was closed.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// Failed returns how many records were lost because the store rejected
// their batch.
func (s *Sink) Failed() uint64 { return s.failed.Load() }

// Written returns how many records were committed.
func (s *Sink) Written() uint64 { return s.written.Load() }

// Close flushes queued records and stops the writer. It is idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	s.mu.Unlock()
	<-s.done
	return nil
}

// run is the single writer: it blocks for the first record, then takes
// whatever else is already queued, up to BatchSize, and commits it at once.
// Under load batches grow by themselves; when idle each record is written
// alone without waiting for a timer.
func (s *Sink) run() {
	defer close(s.done)
	batch := make([]store.Session, 0, s.opts.BatchSize)
	for r := range s.ch {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < s.opts.BatchSize {
			select {
			case r, ok := <-s.ch:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.write(batch)
	}
}

func (s *Sink) write(batch []store.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	if err := s.st.WriteSessions(ctx, batch); err != nil {
		n := s.failed.Add(uint64(len(batch)))
		s.log.Error("audit batch lost", "records", len(batch), "failed_total", n, "err", err)
		return
	}
	s.written.Add(uint64(len(batch)))
}
