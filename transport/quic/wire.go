package quictun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/sluice-gw/sluice/transport"
)

// Control-stream messages: type byte, 4-byte big-endian length, payload.
const (
	msgHello   byte = 1 // agent → gateway: JSON hello
	msgWelcome byte = 2 // gateway → agent: empty
	msgPing    byte = 3 // gateway → agent: id, sent (unix ns), 8 bytes each
	msgPong    byte = 4 // agent → gateway: the ping echoed
)

// Session-stream prologue: the gateway's header frame (frameHeader, 4-byte
// length, encoded header), answered by replyAccept, or by replyRefuse, a
// 2-byte length and the reason.
const (
	frameHeader byte = 1
	replyAccept byte = 0
	replyRefuse byte = 1
)

// hello is the agent's first control message.
type hello struct {
	Name    string `json:"name"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"`
}

func appendMsg(b []byte, typ byte, payload []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// readMsg reads one length-prefixed message of at most max payload bytes.
func readMsg(r io.Reader, max int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > uint32(max) {
		return 0, nil, fmt.Errorf("message of %d bytes exceeds the %d byte limit", n, max)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], p, nil
}

func appendPing(b []byte, typ byte, id, sent uint64) []byte {
	b = append(b, typ, 0, 0, 0, 16)
	b = binary.BigEndian.AppendUint64(b, id)
	return binary.BigEndian.AppendUint64(b, sent)
}

func parsePing(p []byte) (id, sent uint64, ok bool) {
	if len(p) < 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]), true
}

var errHeaderTooBig = fmt.Errorf("quictun: stream header exceeds %d bytes", maxHeaderSize)

// headerFrame encodes h as a complete header frame: every string and the
// policy as uvarint length + bytes, params as a count and sorted pairs.
func headerFrame(h transport.Header) ([]byte, error) {
	size := 5 + 10*8 + len(h.SessionID) + len(h.Kind) + len(h.Connection) + len(h.Protocol) +
		len(h.Target) + len(h.User) + len(h.Policy)
	for k, v := range h.Params {
		size += 20 + len(k) + len(v)
	}
	if len(h.Policy) > maxHeaderSize {
		return nil, errHeaderTooBig
	}
	b := make([]byte, 5, size)
	b[0] = frameHeader
	for _, s := range []string{h.SessionID, h.Kind, h.Connection, h.Protocol, h.Target, h.User} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(h.Params)))
	keys := make([]string, 0, len(h.Params))
	for k := range h.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, h.Params[k])
	}
	b = binary.AppendUvarint(b, uint64(len(h.Policy)))
	b = append(b, h.Policy...)
	if len(b)-5 > maxHeaderSize {
		return nil, errHeaderTooBig
	}
	binary.BigEndian.PutUint32(b[1:5], uint32(len(b)-5))
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadHeader = errors.New("quictun: malformed stream header")

// decoder reads the fields headerFrame wrote; the first failure sticks.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errBadHeader
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.p)) {
		d.err = errBadHeader
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes()) }

// decodeHeader decodes a header frame's payload.
func decodeHeader(p []byte) (transport.Header, error) {
	d := &decoder{p: p}
	var h transport.Header
	h.SessionID = d.string()
	h.Kind = d.string()
	h.Connection = d.string()
	h.Protocol = d.string()
	h.Target = d.string()
	h.User = d.string()
	n := d.uvarint()
	if n > uint64(len(d.p))/2 { // each pair takes at least two bytes
		return h, errBadHeader
	}
	if n > 0 {
		h.Params = make(map[string]string, n)
		for range n {
			k := d.string()
			h.Params[k] = d.string()
		}
	}
	if pol := d.bytes(); len(pol) > 0 {
		h.Policy = pol
	}
	if d.err != nil {
		return transport.Header{}, d.err
	}
	if len(d.p) != 0 || h.SessionID == "" {
		return transport.Header{}, errBadHeader
	}
	return h, nil
}

// readHeader reads the gateway's header frame from a new stream, exactly
// (no read-ahead into session data).
func readHeader(r io.Reader) (transport.Header, error) {
	typ, p, err := readMsg(r, maxHeaderSize)
	if err != nil {
		return transport.Header{}, err
	}
	if typ != frameHeader {
		return transport.Header{}, errBadHeader
	}
	return decodeHeader(p)
}

func refusal(reason string) []byte {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	b := []byte{replyRefuse}
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	return append(b, reason...)
}

// readReply reads the agent's answer to a header frame: nil for accept, an
// error wrapping transport.ErrStreamRefused for a refusal.
func readReply(r io.Reader) error {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	switch b[0] {
	case replyAccept:
		return nil
	case replyRefuse:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint16(l[:])
		if n > maxReasonLen {
			return errors.New("quictun: refusal reason too long")
		}
		reason := make([]byte, n)
		if _, err := io.ReadFull(r, reason); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", transport.ErrStreamRefused, reason)
	default:
		return fmt.Errorf("quictun: unexpected reply byte %#x", b[0])
	}
}
