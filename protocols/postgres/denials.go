package postgres

import (
	"bytes"

	"github.com/sluice-gw/sluice/engine"
)

// denialWatch records, on the gateway, the denials the agent reports to the
// client (ErrorResponse 42501 from guardrails or masking), so the session
// record names them. It only reads; messages pass unchanged.
type denialWatch struct {
	sess *engine.Session
	m    *Metrics
}

func (denialWatch) wants(typ byte) bool { return typ == 'E' }

func (denialWatch) tooLarge(head []byte, size int, out []byte) ([]byte, bool, error) {
	return nil, true, nil // a huge error message is not ours: let it through
}

func (w denialWatch) inspect(msg []byte, out []byte) ([]byte, error) {
	code, text := errorFields(msg[5:])
	watchDenial(w.sess, w.m, code, text)
	return msg, nil
}

// watchDenial records an ErrorResponse (its SQLSTATE and message) on the
// session when it is one of the agent's denials.
func watchDenial(sess *engine.Session, m *Metrics, code, text []byte) {
	if string(code) != "42501" {
		return
	}
	switch {
	case bytes.HasPrefix(text, []byte("statement denied")):
		m.Denials.WithLabelValues("guardrail").Inc()
	case bytes.HasPrefix(text, []byte("masking:")):
		m.Denials.WithLabelValues("masking").Inc()
	default:
		return
	}
	sess.Denied(string(text))
}
