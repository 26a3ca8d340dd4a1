package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/engine"
)

// Options tunes a Sink or a StatementSink. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the records held in memory; default 4096.
	QueueSize int
	// HighWater is the queue depth from which Admit refuses new sessions;
	// default 3/4 of QueueSize. The rest is headroom for the records of
	// sessions already running.
	HighWater int
	// MaxStall is how long an offer waits for room in a full queue
	// (backpressure on the session) before the record is lost, counted and
	// logged; default 250ms.
	MaxStall time.Duration
	// BatchSize bounds the records of one transaction; default 1024.
	BatchSize int
	// Linger is how long the writer waits after a record arrives for more
	// to join its transaction; default 10ms, negative: none. One commit and
	// one wake-up per linger instead of per record keeps audit cheap for
	// sessions running thousands of statements a second.
	Linger time.Duration
	// WriteTimeout bounds one write attempt; default 10s.
	WriteTimeout time.Duration
	// Attempts is how often a batch is tried before its records are lost;
	// default 3. RetryBackoff is the wait before the second attempt,
	// doubled for each further one; default 100ms.
	Attempts     int
	RetryBackoff time.Duration

	Logger     *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // nil: metrics kept but not registered
	// Notifier receives webhook events (session.started, session.ended,
	// statement.denied); nil sends none.
	Notifier Notifier

	// StatementSink only:
	//
	// Sessions resolves a statement's session to its user and connection for
	// statement.denied events (a *Sink is one); nil: events name the
	// session only.
	Sessions SessionLookup
	// MaxTextBytes cuts a statement's Text and Params to this many bytes
	// each (marked "…[cut N bytes]"), bounding the queue's memory; default
	// 8 KiB. The session recording keeps the full bytes.
	MaxTextBytes int
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.HighWater <= 0 || o.HighWater > o.QueueSize {
		o.HighWater = o.QueueSize / 4 * 3
		if o.HighWater == 0 {
			o.HighWater = o.QueueSize
		}
	}
	if o.MaxStall <= 0 {
		o.MaxStall = 250 * time.Millisecond
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1024
	}
	if o.Linger == 0 {
		o.Linger = 10 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxTextBytes <= 0 {
		o.MaxTextBytes = 8 << 10
	}
	return o
}

// spool is a bounded queue drained by one writer goroutine in batches, one
// transaction per batch (group commit). It is the common part of Sink and
// StatementSink.
type spool[T any] struct {
	name  string // "sessions" or "statements": log and metric label
	opts  Options
	log   *slog.Logger
	m     *metrics
	write func(context.Context, []T) error
	attrs func(T) []any // identifies a record in log lines

	mu     sync.RWMutex // guards closed against the send in offer
	closed bool
	ch     chan T
	done   chan struct{}

	full    atomic.Bool // Admit is refusing (for log transitions)
	dropped atomic.Uint64
	failed  atomic.Uint64
	written atomic.Uint64
}

func newSpool[T any](name string, opts Options, write func(context.Context, []T) error, attrs func(T) []any) *spool[T] {
	s := &spool[T]{
		name:  name,
		opts:  opts,
		log:   opts.Logger,
		write: write,
		attrs: attrs,
		ch:    make(chan T, opts.QueueSize),
		done:  make(chan struct{}),
	}
	s.m = newMetrics(opts.Registerer, name, func() float64 { return float64(len(s.ch)) })
	go s.run()
	return s
}

// Messages of the errors Admit returns (a fresh *engine.Error each time).
const (
	msgSpoolFull   = "audit spool is full: new sessions are refused"
	msgSpoolClosed = "audit is closed: new sessions are refused"
)

// Admit implements engine.AuditGate: it refuses a new session while the
// queue is at or above its high-water mark, or closed.
func (s *spool[T]) Admit() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return &engine.Error{Code: engine.CodeShutdown, Message: msgSpoolClosed}
	}
	depth := len(s.ch)
	if depth >= s.opts.HighWater {
		s.m.refused.Inc()
		if s.full.CompareAndSwap(false, true) {
			s.log.Error("audit spool is full: refusing new sessions", "sink", s.name, "queued", depth, "high_water", s.opts.HighWater)
		}
		return &engine.Error{Code: engine.CodeInternal, Message: msgSpoolFull}
	}
	if s.full.CompareAndSwap(true, false) {
		s.log.Info("audit spool below its high-water mark: admitting new sessions again", "sink", s.name, "queued", depth)
	}
	return nil
}

// offer queues r. When the queue is full it waits up to MaxStall for room
// (backpressure on the caller), then loses r, counting and logging it.
func (s *spool[T]) offer(r T) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.lose(r, "closed", s.m.lostClosed)
		return
	}
	select {
	case s.ch <- r:
		return
	default:
	}
	s.m.waited.Inc()
	t := time.NewTimer(s.opts.MaxStall)
	defer t.Stop()
	select {
	case s.ch <- r:
	case <-t.C:
		s.lose(r, "queue_full", s.m.lostFull)
	}
}

func (s *spool[T]) lose(r T, reason string, c prometheus.Counter) {
	c.Inc()
	n := s.dropped.Add(1)
	s.log.Error("audit record lost", append([]any{"sink", s.name, "reason", reason, "lost_total", n}, s.attrs(r)...)...)
}

// close stops accepting records, commits everything queued and waits for
// the writer. Idempotent.
func (s *spool[T]) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	s.mu.Unlock()
	<-s.done
}

// run is the single writer: it blocks for the first record, then takes
// whatever else is already queued, up to BatchSize, and commits it at once.
// Under load batches grow by themselves; when idle each record is written
// alone without waiting for a timer.
func (s *spool[T]) run() {
	defer close(s.done)
	batch := make([]T, 0, s.opts.BatchSize)
	for r := range s.ch {
		batch = append(batch[:0], r)
		if s.opts.Linger > 0 {
			time.Sleep(s.opts.Linger)
		}
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
		s.commit(batch)
	}
}

// commit writes batch, retrying with backoff; after the last attempt its
// records are lost, counted and logged.
func (s *spool[T]) commit(batch []T) {
	backoff := s.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
		err := s.write(ctx, batch)
		cancel()
		if err == nil {
			s.written.Add(uint64(len(batch)))
			s.m.written.Add(float64(len(batch)))
			return
		}
		if attempt >= s.opts.Attempts {
			n := s.failed.Add(uint64(len(batch)))
			s.m.lostWrite.Add(float64(len(batch)))
			s.log.Error("audit batch lost: the store rejected it", "sink", s.name, "records", len(batch),
				"attempts", attempt, "failed_total", n, "err", err)
			return
		}
		s.log.Warn("audit batch write failed; retrying", "sink", s.name, "records", len(batch), "attempt", attempt, "err", err)
		time.Sleep(backoff)
		backoff *= 2
	}
}
