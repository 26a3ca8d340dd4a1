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
	var code, text []byte
	for f := msg[5:]; len(f) > 1; {
		end := bytes.IndexByte(f[1:], 0)
		if end < 0 {
			break
		}
		switch f[0] {
		case 'C':
			code = f[1 : 1+end]
		case 'M':
			text = f[1 : 1+end]
		}
		f = f[2+end:]
	}
	if string(code) != "42501" {
		return msg, nil
	}
	switch {
	case bytes.HasPrefix(text, []byte("statement denied")):
		w.m.Denials.WithLabelValues("guardrail").Inc()
	case bytes.HasPrefix(text, []byte("masking:")):
		w.m.Denials.WithLabelValues("masking").Inc()
	default:
		return msg, nil
	}
	w.sess.Denied(string(text))
	return msg, nil
}
