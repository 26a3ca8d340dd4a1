package engine

import (
	"context"
	"sync/atomic"
	"time"
)

// Identity is an authenticated user.
type Identity struct {
	User    string
	Groups  []string
	TokenID string // the access token that proved it; revoking it ends the session
}

// Plan is what a user may do on one connection, resolved once at
// authorisation time so the data path never looks rules up.
type Plan struct {
	Connection string
	Protocol   string
	Agent      string        // the agent that serves the connection
	Target     string        // target reference, resolved by the agent only
	MaxSession time.Duration // 0: no limit
	Policy     Policy        // guardrails and masking, enforced by the agent
	// Rule names the access rule(s) that admitted the session ("a+b" when
	// several stacked), for audit.
	Rule string
	// RequireReview: the session waits for a just-in-time approval
	// (Reviewer.AwaitSession) before it is dispatched.
	RequireReview bool
	// ReviewStatements lists statement kinds that wait for a statement review
	// (Reviewer.AwaitStatement), e.g. "ddl", "delete", "write:payments".
	ReviewStatements []string
}

// Authenticator checks a user's secret (an access token) in the protocol's
// own authentication exchange. A failure is an *Error with CodeAuthFailed.
type Authenticator interface {
	Authenticate(ctx context.Context, user, secret string) (Identity, error)
}

// Authorizer decides whether id may use connection over protocol and returns
// the session's plan. Failures are *Error values (CodeUnknownConnection,
// CodeDenied, ...).
type Authorizer interface {
	Authorize(ctx context.Context, id Identity, connection, protocol string) (*Plan, error)
}

// AuditSink receives session records. Both calls must return at once: sinks
// batch their writes off the data path.
type AuditSink interface {
	SessionStarted(r SessionRecord)
	SessionEnded(r SessionRecord)
}

// SessionRecord is the audit view of one connection attempt.
type SessionRecord struct {
	ID         string
	User       string
	Connection string
	Protocol   string
	ClientAddr string
	Start      time.Time
	End        time.Time // zero while running
	BytesIn    int64     // client to upstream
	BytesOut   int64     // upstream to client
	Outcome    string    // "running", "ok", "error", "denied", "auth_failed"
	Error      string
	Denials    int64  // statements denied by guardrails or withheld by masking
	LastDenial string // the last such denial's message (names the rule)
	// TokenID is the access token that authenticated the session.
	TokenID string
	// Rule is the access rule that admitted the session.
	Rule string
	// RecordingKey says where the session's recording lives (opaque).
	RecordingKey string
}

// Session is one client session on the gateway.
type Session struct {
	ID         string
	Protocol   string
	ClientAddr string
	Start      time.Time
	Identity   Identity
	Plan       *Plan
	Requested  string // the connection the client asked for, before authorisation
	// RecordingKey says where the session's recording lives ("" when it is
	// not recorded). The frontend sets it at dispatch, after the session is
	// registered in Sessions: a Sessions match func must not read it.
	RecordingKey string

	BytesIn  atomic.Int64
	BytesOut atomic.Int64
	Denials  atomic.Int64

	lastDenial atomic.Pointer[string]
}

// Denied records a denial reported to the client in this session.
func (s *Session) Denied(message string) {
	s.Denials.Add(1)
	s.lastDenial.Store(&message)
}

// Record returns the audit record of s with the given outcome.
func (s *Session) Record(outcome string, err error, end time.Time) SessionRecord {
	r := SessionRecord{
		ID:         s.ID,
		User:       s.Identity.User,
		Protocol:   s.Protocol,
		ClientAddr: s.ClientAddr,
		Start:      s.Start,
		End:        end,
		BytesIn:    s.BytesIn.Load(),
		BytesOut:   s.BytesOut.Load(),
		Outcome:    outcome,
		Denials:    s.Denials.Load(),
		TokenID:    s.Identity.TokenID,
	}
	r.RecordingKey = s.RecordingKey
	if d := s.lastDenial.Load(); d != nil {
		r.LastDenial = *d
	}
	if s.Plan != nil {
		r.Connection = s.Plan.Connection
		r.Rule = s.Plan.Rule
	} else {
		r.Connection = s.Requested
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// NopAudit discards records; for tests and tools.
type NopAudit struct{}

func (NopAudit) SessionStarted(SessionRecord) {}
func (NopAudit) SessionEnded(SessionRecord)   {}
