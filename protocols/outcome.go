package protocols

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/transport/resume"
)

// AgentLost is the client's error when the stream from the agent fails:
// the resume layer says why (grace period over, agent restarted, agent
// shutting down); other failures are a plain "agent disconnected".
func AgentLost(agent string, err error) *engine.Error {
	var re *resume.Error
	if errors.As(err, &re) {
		if errors.Is(err, resume.ErrClosedByPeer) && strings.Contains(re.Reason, "shutting down") {
			return &engine.Error{Code: engine.CodeShutdown, Message: "terminating connection: " + re.Reason, Err: err}
		}
		return &engine.Error{Code: engine.CodeAgentLost, Message: "agent " + agent + " disconnected: " + re.Reason, Err: err}
	}
	return &engine.Error{Code: engine.CodeAgentLost, Message: "agent " + agent + " disconnected", Err: err}
}

// Outcome is the audit outcome of a session that ran: ok, agent_lost (the
// tunnel or agent went away for good), ended (by the control plane),
// shutdown, or error.
func Outcome(err error) string {
	var e *engine.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e) && e.Code == engine.CodeAgentLost:
		return "agent_lost"
	case errors.As(err, &e) && e.Code == engine.CodeSessionEnded:
		return "ended"
	case errors.As(err, &e) && e.Code == engine.CodeShutdown:
		return "shutdown"
	}
	return "error"
}

// RefusalReason is the metrics label of a refused session (a fixed set).
func RefusalReason(c engine.Code) string {
	switch c {
	case engine.CodeAuthFailed:
		return "auth_failed"
	case engine.CodeUnknownConnection:
		return "unknown_connection"
	case engine.CodeDenied:
		return "denied"
	case engine.CodeAgentOffline, engine.CodeAgentLost:
		return "agent_offline"
	case engine.CodeTooLarge, engine.CodeProtocol:
		return "protocol_error"
	case engine.CodeUpstream:
		return "upstream_error"
	case engine.CodeShutdown:
		return "shutdown"
	case engine.CodeReviewTimeout:
		return "review_timeout"
	}
	return "internal_error"
}

// NewSessionID returns a random session id (24 hex digits).
func NewSessionID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}
