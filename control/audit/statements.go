package audit

import (
	"fmt"
	"unicode/utf8"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// StatementSink is an engine.StatementSink that group-commits statement
// records into a store (store.WriteStatements), off the data path, with the
// same contract as Sink: bounded queue, backpressure up to MaxStall, then
// counted and logged loss; Admit refuses new sessions above the high-water
// mark; Close flushes.
//
// Text and Params are cut to Options.MaxTextBytes each so the queue's
// memory is bounded (QueueSize × 2 × MaxTextBytes at most, 64 MiB with the
// defaults). Records with Outcome "denied" are also sent to the Notifier as
// statement.denied events.
type StatementSink struct {
	sp       *spool[store.Statement]
	notify   Notifier
	sessions SessionLookup
	maxText  int
}

var (
	_ engine.StatementSink = (*StatementSink)(nil)
	_ engine.AuditGate     = (*StatementSink)(nil)
)

// NewStatementSink starts a StatementSink writing to st.
func NewStatementSink(st store.Store, opts Options) *StatementSink {
	opts = opts.withDefaults()
	s := &StatementSink{notify: opts.Notifier, sessions: opts.Sessions, maxText: opts.MaxTextBytes}
	s.sp = newSpool("statements", opts, st.WriteStatements, func(r store.Statement) []any {
		return []any{"session", r.SessionID, "seq", r.Seq, "outcome", r.Outcome}
	})
	return s
}

// Statement implements engine.StatementSink.
func (s *StatementSink) Statement(r engine.StatementRecord) {
	if r.Outcome == store.StatementDenied && s.notify != nil {
		s.notify.Notify(statementEvent(r, s.sessions))
	}
	rec := store.Statement(r)
	rec.Text = cut(rec.Text, s.maxText)
	rec.Params = cut(rec.Params, s.maxText)
	s.sp.offer(rec)
}

// cut returns s cut to at most max bytes plus a marker saying how much was
// cut, at a rune boundary.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + fmt.Sprintf("…[cut %d bytes]", len(s)-i)
}

// Admit implements engine.AuditGate.
func (s *StatementSink) Admit() error { return s.sp.Admit() }

// Depth is the number of records queued now.
func (s *StatementSink) Depth() int { return len(s.sp.ch) }

// Dropped returns how many records were lost because the queue stayed full
// or the sink was closed.
func (s *StatementSink) Dropped() uint64 { return s.sp.dropped.Load() }

// Failed returns how many records were lost because the store rejected
// their batch on every attempt.
func (s *StatementSink) Failed() uint64 { return s.sp.failed.Load() }

// Written returns how many records were committed.
func (s *StatementSink) Written() uint64 { return s.sp.written.Load() }

// Close flushes queued records and stops the writer. It is idempotent.
func (s *StatementSink) Close() error {
	s.sp.close()
	return nil
}
