package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pump relays protocol messages from src to dst.
//
// It frames every message (type byte + length) so it always knows where the
// stream is, enforces the per-message cap before forwarding any byte of an
// oversize message, and writes all complete messages of one read with one
// write: a pipelined batch stays one write, and it flushes exactly when the
// next read would block. Messages nobody inspects are never decoded. A message
// larger than the buffer is streamed through in buffer-sized pieces, so the
// cap costs no memory.
type pump struct {
	src io.Reader
	dst io.Writer
	buf []byte // owned by the caller, len > 5
	max int    // largest accepted message length word
	n   *atomic.Int64

	// midMessage is true while part of a message has been written to dst, so
	// an error message must not be injected into the stream.
	midMessage bool

	// insp, if set, sees whole messages of the types it wants; they are
	// buffered up to maxInspect bytes (the buffer grows from pool as needed).
	insp       inspector
	maxInspect int
	grow       func(n int) []byte // returns a buffer of at least n bytes
	release    func(b []byte)     // takes back a grown buffer
	base       []byte             // the normal-size buffer while p.buf is grown
	out        []byte             // batch being rebuilt after a replacement
	scratch    []byte             // replacement space handed to the inspector

	// Metrics, all optional. clock times statements: requests start it on
	// the client's side (requests true), ReadyForQuery stops it.
	clock    *stmtClock
	requests bool
	overhead prometheus.Observer // time from a read returning to its batch's write returning
	bytes    prometheus.Counter
	now      time.Time // when the current batch's read returned

	// more, if set, reads what src already has queued without waiting.
	more func([]byte) int

	// gate, if set, is held around every write to dst, and for the whole of
	// a message streamed through in pieces: whoever else writes to dst (a
	// notice to the client) takes it too and so writes at a message boundary.
	gate *sync.Mutex
}

// errHold, returned by an inspector that is also a holder, asks the pump to
// forward the messages before this one and then call hold for it.
var errHold = errors.New("hold")

// holder is an inspector that may hold a message before it is forwarded (a
// statement waiting for its review, or for room to track it).
type holder interface {
	// hold is called, with the messages framed before msg already written,
	// after inspect returned errHold for msg. It may block; it answers like
	// inspect (and never with errHold).
	hold(msg []byte, out []byte) ([]byte, error)
}

// errMessageTooLarge is returned, before any byte of the message is
// forwarded, when a message's length word exceeds the cap.
type errMessageTooLarge struct{ size, max int }

func (e *errMessageTooLarge) Error() string {
	return fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", e.size, e.max)
}

// writeError marks a failure of the destination, as opposed to the source.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// run relays until src ends. A clean end of src at a message boundary
// returns nil.
func (p *pump) run() error {
	end := 0 // p.buf[:end] holds unforwarded bytes, starting at a message boundary
	defer p.shrink(0)
	for {
		if p.base != nil && end <= len(p.base) &&
			(end < 5 || 1+int(binary.BigEndian.Uint32(p.buf[1:5])) <= len(p.base)) {
			p.shrink(end) // the pending message fits the normal buffer again
		}
		nr, rerr := p.src.Read(p.buf[end:])
		end += nr
		if p.more != nil && nr >= streamingRead && rerr == nil {
			for len(p.buf)-end >= streamingRead {
				m := p.more(p.buf[end:])
				if m <= 0 {
					break
				}
				end += m
			}
		}
		if p.clock != nil || p.overhead != nil {
			p.now = time.Now()
		}
		i, err := p.frame(end)
		if err != nil {
			return err
		}
		buf := p.buf
		if end-i >= 5 {
			typ := buf[i]
			total := 1 + int(binary.BigEndian.Uint32(buf[i+1:i+5]))
			var repl []byte
			replace := false
			if p.insp != nil && total-1 > p.maxInspect && p.insp.wants(typ) {
				r, pass, err := p.insp.tooLarge(buf[i:end], total, p.scratch[:0])
				if err != nil {
					return err
				}
				repl, replace = r, !pass
			}
			switch {
			case p.insp != nil && p.insp.wants(typ) && total > len(buf) && total-1 <= p.maxInspect:
				// A wanted message bigger than the buffer: grow to hold it whole.
				nb := p.grow(total)
				end = copy(nb, buf[i:end])
				if p.base == nil {
					p.base = p.buf
				} else {
					p.release(p.buf)
				}
				p.buf = nb
				i = 0
			case replace:
				if err := p.write(repl); err != nil {
					return err
				}
				rest := total - (end - i)
				end = 0
				if err := p.discard(rest); err != nil {
					return err
				}
			case total > len(buf):
				// A message bigger than the buffer that nobody inspects:
				// forward what we have and stream the rest of it through.
				p.observe(buf[i : i+5])
				if err := p.passThrough(buf[i:end], total-(end-i)); err != nil {
					return err
				}
				end = 0
			default:
				end = copy(buf, buf[i:end])
			}
		} else {
			end = copy(buf, buf[i:end])
		}
		if rerr != nil {
			if rerr == io.EOF {
				if end != 0 {
					return io.ErrUnexpectedEOF
				}
				return nil
			}
			return rerr
		}
	}
}

// passThrough forwards head, the start of a message, and streams the rest
// bytes of it through.
func (p *pump) passThrough(head []byte, rest int) error {
	if p.gate != nil {
		p.gate.Lock()
		defer p.gate.Unlock()
	}
	p.midMessage = true
	if err := p.write(head); err != nil {
		return err
	}
	if err := p.stream(rest); err != nil {
		return err
	}
	p.midMessage = false
	return nil
}

// shrink goes back to the normal-size buffer after a large message,
// keeping the first end bytes; memory per session stays bounded.
func (p *pump) shrink(end int) {
	if p.base == nil {
		return
	}
	copy(p.base, p.buf[:end])
	p.release(p.buf)
	p.buf, p.base = p.base, nil
}

// frame forwards every complete message in p.buf[:end] (after inspection)
// with one write and returns the offset of the first incomplete one.
func (p *pump) frame(end int) (int, error) {
	buf := p.buf
	i := 0
	span := 0 // start of bytes not yet copied to p.out / written
	rebuilt := false
	for end-i >= 5 {
		l := int(binary.BigEndian.Uint32(buf[i+1 : i+5]))
		if l < 4 || l > p.max {
			if err := p.flush(buf, span, i, rebuilt); err != nil {
				return 0, err
			}
			if l < 4 {
				return 0, fmt.Errorf("invalid message length %d", l)
			}
			return 0, &errMessageTooLarge{size: l, max: p.max}
		}
		if end-i < 1+l {
			break
		}
		msg := buf[i : i+1+l]
		if p.clock != nil {
			p.observe(msg)
		}
		if p.insp != nil && p.insp.wants(msg[0]) {
			repl, err := p.insp.inspect(msg, p.scratch[:0])
			if err == errHold {
				// Forward what precedes msg, then wait for its decision.
				if err := p.flush(buf, span, i, rebuilt); err != nil {
					return 0, err
				}
				rebuilt, span = false, i
				repl, err = p.insp.(holder).hold(msg, p.scratch[:0])
				p.now = time.Now()
			}
			if err != nil {
				return 0, err
			}
			if len(repl) != len(msg) || (len(repl) > 0 && &repl[0] != &msg[0]) {
				// Replaced or dropped: rebuild this batch in p.out.
				if !rebuilt {
					p.out = p.out[:0]
					rebuilt = true
				}
				p.out = append(p.out, buf[span:i]...)
				p.out = append(p.out, repl...)
				span = i + 1 + l
				if cap(repl) > cap(p.scratch) {
					// Keep the grown scratch space. Only a replacement: an
					// in-place result is the read buffer itself.
					p.scratch = repl[:0]
				}
			}
		}
		i += 1 + l
	}
	err := p.flush(buf, span, i, rebuilt)
	if p.overhead != nil && i > 0 {
		p.overhead.Observe(time.Since(p.now).Seconds())
	}
	return i, err
}

// observe feeds the statement clock with one message (or, for a message
// streamed through, its header).
func (p *pump) observe(msg []byte) {
	if p.clock == nil {
		return
	}
	switch typ := msg[0]; {
	case p.requests && (typ == 'Q' || typ == 'S' || typ == 'F'):
		p.clock.start(p.now)
	case !p.requests && typ == 'Z' && len(msg) >= 6:
		p.clock.done(p.now, msg[5])
	}
}

func (p *pump) flush(buf []byte, span, i int, rebuilt bool) error {
	if !rebuilt {
		return p.write(buf[span:i])
	}
	p.out = append(p.out, buf[span:i]...)
	return p.write(p.out)
}

// discard skips exactly n more bytes of the current message.
func (p *pump) discard(n int) error {
	for n > 0 {
		chunk := p.buf
		if n < len(chunk) {
			chunk = chunk[:n]
		}
		nr, err := p.src.Read(chunk)
		n -= nr
		if err != nil && n > 0 {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// stream copies exactly n more bytes of the current message.
func (p *pump) stream(n int) error {
	for n > 0 {
		chunk := p.buf
		if n < len(chunk) {
			chunk = chunk[:n]
		}
		nr, err := p.src.Read(chunk)
		if nr > 0 {
			if werr := p.write(chunk[:nr]); werr != nil {
				return werr
			}
			n -= nr
		}
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			if n > 0 {
				return err
			}
		}
	}
	return nil
}

func (p *pump) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if p.gate != nil && !p.midMessage {
		p.gate.Lock()
		_, err := p.dst.Write(b)
		p.gate.Unlock()
		if err != nil {
			return &writeError{err}
		}
	} else if _, err := p.dst.Write(b); err != nil {
		return &writeError{err}
	}
	p.n.Add(int64(len(b)))
	if p.bytes != nil {
		p.bytes.Add(float64(len(b)))
	}
	return nil
}
