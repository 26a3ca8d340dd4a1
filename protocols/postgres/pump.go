package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
	buf := p.buf
	end := 0 // buf[:end] holds unforwarded bytes, starting at a message boundary
	for {
		nr, rerr := p.src.Read(buf[end:])
		end += nr
		i := 0
		for end-i >= 5 {
			l := int(binary.BigEndian.Uint32(buf[i+1 : i+5]))
			if l < 4 || l > p.max {
				if err := p.write(buf[:i]); err != nil {
					return err
				}
				if l < 4 {
					return fmt.Errorf("invalid message length %d", l)
				}
				return &errMessageTooLarge{size: l, max: p.max}
			}
			if end-i < 1+l {
				break
			}
			i += 1 + l
		}
		if end-i >= 5 && 1+int(binary.BigEndian.Uint32(buf[i+1:i+5])) > len(buf) {
			// A message bigger than the buffer: forward what we have and
			// stream the rest of it through.
			total := 1 + int(binary.BigEndian.Uint32(buf[i+1:i+5]))
			rest := total - (end - i)
			p.midMessage = true
			if err := p.write(buf[:end]); err != nil {
				return err
			}
			end = 0
			if err := p.stream(rest); err != nil {
				return err
			}
			p.midMessage = false
		} else {
			if err := p.write(buf[:i]); err != nil {
				return err
			}
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
	if _, err := p.dst.Write(b); err != nil {
		return &writeError{err}
	}
	p.n.Add(int64(len(b)))
	return nil
}
