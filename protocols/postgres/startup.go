package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Start-up packet codes (protocol §55.7, "StartupMessage" and friends).
const (
	codeProtocol30  = 196608   // 3.0
	codeCancel      = 80877102 // CancelRequest
	codeSSLRequest  = 80877103
	codeGSSENCReq   = 80877104
	maxStartupBytes = 10000 // the server's own MAX_STARTUP_PACKET_LENGTH
)

// startupPacket is one packet a client may send before authentication.
type startupPacket struct {
	code   uint32
	params map[string]string // StartupMessage only, in no particular order
	minor  uint16            // requested protocol minor version
	// CancelRequest only
	pid    uint32
	secret []byte
}

func (p *startupPacket) isStartup() bool { return p.code>>16 == 3 }

var errBadStartup = errors.New("invalid startup packet")

// readStartup reads one start-up packet, never trusting the length beyond
// maxStartupBytes. buf is scratch space of at least maxStartupBytes.
func readStartup(r io.Reader, buf []byte) (*startupPacket, error) {
	if _, err := io.ReadFull(r, buf[:8]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(buf[:4]))
	if n < 8 || n > maxStartupBytes {
		return nil, fmt.Errorf("%w: length %d", errBadStartup, n)
	}
	if _, err := io.ReadFull(r, buf[8:n]); err != nil {
		return nil, err
	}
	return parseStartup(buf[:n])
}

// parseStartup decodes a whole start-up packet including its length word.
func parseStartup(b []byte) (*startupPacket, error) {
	if len(b) < 8 || int(binary.BigEndian.Uint32(b)) != len(b) {
		return nil, fmt.Errorf("%w: bad length", errBadStartup)
	}
	p := &startupPacket{code: binary.BigEndian.Uint32(b[4:8])}
	body := b[8:]
	switch {
	case p.code == codeSSLRequest || p.code == codeGSSENCReq:
		if len(body) != 0 {
			return nil, fmt.Errorf("%w: trailing bytes", errBadStartup)
		}
	case p.code == codeCancel:
		// 3.0 clients send a 4-byte key; 3.2 allows up to 256 bytes.
		if len(body) < 8 || len(body) > 4+256 {
			return nil, fmt.Errorf("%w: cancel request of %d bytes", errBadStartup, len(b))
		}
		p.pid = binary.BigEndian.Uint32(body)
		p.secret = append([]byte(nil), body[4:]...)
	case p.isStartup():
		p.minor = uint16(p.code)
		p.params = make(map[string]string)
		for {
			k, rest, ok := cstring(body)
			if !ok {
				return nil, fmt.Errorf("%w: unterminated parameter", errBadStartup)
			}
			if k == "" {
				if len(rest) != 0 {
					return nil, fmt.Errorf("%w: bytes after terminator", errBadStartup)
				}
				break
			}
			v, rest2, ok := cstring(rest)
			if !ok {
				return nil, fmt.Errorf("%w: parameter %q has no value", errBadStartup, k)
			}
			p.params[k] = v
			body = rest2
		}
	default:
		return nil, fmt.Errorf("%w: unsupported protocol %d.%d", errBadStartup, p.code>>16, p.code&0xffff)
	}
	return p, nil
}

func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
