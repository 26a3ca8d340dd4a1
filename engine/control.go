package engine

import (
	"context"
	"sync"
	"time"
)

// Reviewer holds sessions and statements for just-in-time approval. The
// control plane implements it; frontends call it before dispatch (sessions
// with Plan.RequireReview) and before forwarding a statement whose kind is in
// Plan.ReviewStatements.
//
// Both calls block until a decision, ctx's end, or the review's own timeout.
// They call notify at most once, before waiting, with a message for the
// client (a Postgres NoticeResponse); when a live grant already covers the
// request they return nil without notifying. A rejection is an *Error with
// CodeDenied, a timeout one with CodeReviewTimeout.
type Reviewer interface {
	AwaitSession(ctx context.Context, s *Session, notify func(msg string)) error
	// AwaitStatement: the approval is bound to StatementHash(text, params),
	// so only that exact statement runs on it.
	AwaitStatement(ctx context.Context, s *Session, kind, text string, params [][]byte, notify func(msg string)) error
}

// StatementRecord is the audit view of one statement.
type StatementRecord struct {
	SessionID string
	Seq       int64 // per session, from 1
	At        time.Time
	Duration  time.Duration
	Text      string
	Params    string // already masked per the session's policy
	Rows      int64  // rows affected or returned; -1 unknown
	Outcome   string // "ok", "error", "denied", "pending_review", "rejected"
	Error     string
	Rule      string // the rule that denied it, if any
}

// StatementSink receives statement records. Like AuditSink it must return at
// once: the sink batches off the data path.
type StatementSink interface {
	Statement(r StatementRecord)
}

// AuditGate is implemented by audit sinks that can refuse new sessions. A
// frontend (or the wiring) calls Admit before a session starts and refuses
// the session with the returned *Error when it is non-nil: the audit spool
// is too full to promise the session's records (fail closed).
type AuditGate interface {
	Admit() error
}

// Recorder records sessions' traffic on the gateway.
//
// Start fails (the session is refused, fail closed) when the recorder cannot
// take another session. A SessionRecording's Write must be called before the
// bytes are forwarded; once it returns an error the session must end.
type Recorder interface {
	Start(sessionID string) (SessionRecording, error)
}

// SessionRecording is one session's recording.
type SessionRecording interface {
	Write(d Direction, at time.Time, p []byte) error
	Close() error
}

// Sessions tracks the gateway's live sessions so that the control plane can
// end them (token revoked, admin kill, grant expired). Safe for concurrent use.
type Sessions struct {
	mu   sync.Mutex
	live map[string]liveSession
}

type liveSession struct {
	s      *Session
	cancel context.CancelCauseFunc
}

// NewSessions returns an empty registry.
func NewSessions() *Sessions { return &Sessions{live: make(map[string]liveSession)} }

// Add registers s; cancel ends it with a cause (an *Error the frontend
// renders natively). The returned func unregisters it.
func (r *Sessions) Add(s *Session, cancel context.CancelCauseFunc) (remove func()) {
	r.mu.Lock()
	r.live[s.ID] = liveSession{s, cancel}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.live, s.ID)
		r.mu.Unlock()
	}
}

// End ends session id with cause; false when it is not live here.
func (r *Sessions) End(id string, cause error) bool {
	r.mu.Lock()
	l, ok := r.live[id]
	r.mu.Unlock()
	if ok {
		l.cancel(cause)
	}
	return ok
}

// EndWhere ends every live session match selects and returns how many.
func (r *Sessions) EndWhere(match func(*Session) bool, cause error) int {
	r.mu.Lock()
	var hit []liveSession
	for _, l := range r.live {
		if match(l.s) {
			hit = append(hit, l)
		}
	}
	r.mu.Unlock()
	for _, l := range hit {
		l.cancel(cause)
	}
	return len(hit)
}

// Len is the number of live sessions.
func (r *Sessions) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}
