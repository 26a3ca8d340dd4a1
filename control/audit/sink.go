package audit

import (
	"sync"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Sink is an engine.AuditSink that group-commits session records into a
// store, an engine.AuditGate that refuses new sessions while its spool is
// too full, and a SessionLookup for the StatementSink.
//
// Contract:
//   - SessionStarted and SessionEnded return at once while the queue has
//     room; when it is full they wait up to Options.MaxStall for room
//     (backpressure), then the record is lost: counted
//     (sluice_audit_records_lost_total, Dropped) and logged at error level.
//     Nothing is dropped silently.
//   - Admit refuses new sessions (an *engine.Error, "audit spool is full:
//     new sessions are refused") from Options.HighWater queued records on,
//     so that the headroom above it takes the records of running sessions.
//     Callers check it before a session starts.
//   - A batch the store rejects is retried (Options.Attempts); its records
//     are lost, counted (Failed) and logged only after the last attempt.
//   - Close stops accepting records, writes everything queued and waits for
//     the writer; records offered after Close are lost and counted.
//   - Notifier (optional) gets session.started for every started session
//     and session.ended for every ended one except outcome "auth_failed"
//     (unauthenticated noise that a password spray would turn into a
//     webhook flood).
type Sink struct {
	sp     *spool[store.Session]
	notify Notifier

	mu   sync.Mutex
	live map[string]liveSession // started, not yet ended: for LookupSession
}

type liveSession struct{ user, connection string }

// maxLive bounds the live-session map (sessions beyond it are simply not
// resolvable by LookupSession).
const maxLive = 1 << 16

var (
	_ engine.AuditSink = (*Sink)(nil)
	_ engine.AuditGate = (*Sink)(nil)
	_ SessionLookup    = (*Sink)(nil)
)

// New starts a Sink writing to st.
func New(st store.Store, opts Options) *Sink {
	opts = opts.withDefaults()
	s := &Sink{notify: opts.Notifier, live: map[string]liveSession{}}
	s.sp = newSpool("sessions", opts, st.WriteSessions, func(r store.Session) []any {
		return []any{"session", r.ID, "user", r.User, "connection", r.Connection, "outcome", r.Outcome}
	})
	return s
}

// SessionStarted implements engine.AuditSink.
func (s *Sink) SessionStarted(r engine.SessionRecord) {
	s.mu.Lock()
	if len(s.live) < maxLive {
		s.live[r.ID] = liveSession{r.User, r.Connection}
	}
	s.mu.Unlock()
	s.sp.offer(store.Session(r))
	if s.notify != nil {
		s.notify.Notify(sessionEvent(r, true))
	}
}

// SessionEnded implements engine.AuditSink.
func (s *Sink) SessionEnded(r engine.SessionRecord) {
	s.mu.Lock()
	delete(s.live, r.ID)
	s.mu.Unlock()
	s.sp.offer(store.Session(r))
	if s.notify != nil && r.Outcome != "auth_failed" {
		s.notify.Notify(sessionEvent(r, false))
	}
}

// LookupSession implements SessionLookup for sessions started and not yet
// ended.
func (s *Sink) LookupSession(id string) (user, connection string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.live[id]
	return l.user, l.connection, ok
}

// Admit implements engine.AuditGate.
func (s *Sink) Admit() error { return s.sp.Admit() }

// Depth is the number of records queued now.
func (s *Sink) Depth() int { return len(s.sp.ch) }

// Dropped returns how many records were lost because the queue stayed full
// or the sink was closed.
func (s *Sink) Dropped() uint64 { return s.sp.dropped.Load() }

// Failed returns how many records were lost because the store rejected
// their batch on every attempt.
func (s *Sink) Failed() uint64 { return s.sp.failed.Load() }

// Written returns how many records were committed.
func (s *Sink) Written() uint64 { return s.sp.written.Load() }

// Close flushes queued records and stops the writer. It is idempotent.
func (s *Sink) Close() error {
	s.sp.close()
	return nil
}

// Gates combines audit gates: Admit returns the first refusal.
type Gates []engine.AuditGate

// Admit implements engine.AuditGate.
func (g Gates) Admit() error {
	for _, x := range g {
		if x == nil {
			continue
		}
		if err := x.Admit(); err != nil {
			return err
		}
	}
	return nil
}
