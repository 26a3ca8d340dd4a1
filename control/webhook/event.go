package webhook

import (
	"time"
)

// Event types. The set is closed: an Endpoint may only filter on these.
const (
	SessionStarted  = "session.started"
	SessionEnded    = "session.ended"
	ReviewRequested = "review.requested"
	ReviewDecided   = "review.decided"
	StatementDenied = "statement.denied"
)

// EventTypes returns every event type, in a fixed order.
func EventTypes() []string {
	return []string{SessionStarted, SessionEnded, ReviewRequested, ReviewDecided, StatementDenied}
}

// Keys of Event.Data used by the event types above (and read by the "slack"
// format). Values should be strings or numbers; other keys may be added
// freely and travel as they are in the "json" format.
const (
	KeyUser       = "user"       // who: the session's user or the review's requester
	KeyConnection = "connection" // connection name, e.g. "prod-db"
	KeyProtocol   = "protocol"   // "postgres", "mysql", "ssh", …
	KeySession    = "session"    // session id
	KeyOutcome    = "outcome"    // session.ended: "ok", "error", "killed", …
	KeyReview     = "review"     // review id
	KeyDecision   = "decision"   // review.decided: "approved", "rejected", "expired"
	KeyReviewer   = "reviewer"   // review.decided: who decided
	KeyStatement  = "statement"  // review.requested (statement reviews), statement.denied
	KeyRule       = "rule"       // statement.denied: the guardrail rule
	KeyReason     = "reason"     // free text: why a review was asked, decided or a statement denied
)

// Event is one control-plane event. Its JSON form is the body of the "json"
// format:
//
//	{"id":"…","type":"session.started","at":"2026-01-01T00:00:00Z","data":{"user":"alice",…}}
//
// ID identifies the event for receivers' de-duplication and is sent as
// X-Sluice-Delivery on every attempt; Notify fills a random one when it is
// empty, and At with the dispatcher's clock when it is zero. Callers that can
// derive a stable id (session id + type, review id + type) should, so that a
// re-emitted event is recognised too.
//
// Notify copies the top level of Data and cuts long string values (see
// Config.MaxValueBytes); values that are maps or slices must not be changed
// after Notify.
type Event struct {
	ID   string         `json:"id"`
	Type string         `json:"type"`
	At   time.Time      `json:"at"`
	Data map[string]any `json:"data,omitempty"`
}

func knownType(t string) bool {
	switch t {
	case SessionStarted, SessionEnded, ReviewRequested, ReviewDecided, StatementDenied:
		return true
	}
	return false
}
