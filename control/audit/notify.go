package audit

import (
	"fmt"

	"github.com/sluice-gw/sluice/control/webhook"
	"github.com/sluice-gw/sluice/engine"
)

// Notifier receives control-plane events; *webhook.Dispatcher is one.
// Notify must not block.
type Notifier interface {
	Notify(webhook.Event)
}

// SessionLookup resolves a live session's user and connection.
type SessionLookup interface {
	LookupSession(id string) (user, connection string, ok bool)
}

// sessionEvent is session.started (started) or session.ended for r. Its ID
// is derived from the session, so a re-emitted event is recognised.
func sessionEvent(r engine.SessionRecord, started bool) webhook.Event {
	data := map[string]any{
		webhook.KeyUser:       r.User,
		webhook.KeyConnection: r.Connection,
		webhook.KeyProtocol:   r.Protocol,
		webhook.KeySession:    r.ID,
		"client_addr":         r.ClientAddr,
	}
	if r.Rule != "" {
		data["access_rule"] = r.Rule
	}
	ev := webhook.Event{ID: "session.started." + r.ID, Type: webhook.SessionStarted, At: r.Start, Data: data}
	if !started {
		ev.ID, ev.Type, ev.At = "session.ended."+r.ID, webhook.SessionEnded, r.End
		data[webhook.KeyOutcome] = r.Outcome
		data["bytes_in"] = r.BytesIn
		data["bytes_out"] = r.BytesOut
		data["denials"] = r.Denials
		if r.Error != "" {
			data[webhook.KeyReason] = r.Error
		}
		if !r.End.IsZero() && !r.Start.IsZero() {
			data["duration_seconds"] = r.End.Sub(r.Start).Seconds()
		}
	}
	return ev
}

// statementEvent is statement.denied for r.
func statementEvent(r engine.StatementRecord, lookup SessionLookup) webhook.Event {
	data := map[string]any{
		webhook.KeySession:   r.SessionID,
		webhook.KeyStatement: r.Text,
		webhook.KeyRule:      r.Rule,
		webhook.KeyReason:    r.Error,
	}
	if lookup != nil {
		if user, conn, ok := lookup.LookupSession(r.SessionID); ok {
			data[webhook.KeyUser] = user
			data[webhook.KeyConnection] = conn
		}
	}
	return webhook.Event{ID: fmt.Sprintf("statement.denied.%s.%d", r.SessionID, r.Seq), Type: webhook.StatementDenied, At: r.At, Data: data}
}
