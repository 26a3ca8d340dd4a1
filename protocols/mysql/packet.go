package mysql

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxPart is the largest payload of one physical packet; a part of exactly
// this size is continued by the next one (a final part may be empty).
const maxPart = 0xffffff

// errPacketTooLarge is returned, before any byte of the packet is forwarded
// when possible, when a logical packet exceeds the cap.
type errPacketTooLarge struct{ size, max int }

func (e *errPacketTooLarge) Error() string {
	return fmt.Sprintf("packet of %d bytes or more exceeds the limit of %d bytes", e.size, e.max)
}

// writeError marks a failure of the destination, as opposed to the source.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

var errMalformed = errors.New("malformed packet")

// readHeader reads one physical packet header.
func readHeader(r io.Reader, hdr *[4]byte) (n int, seq byte, err error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	return int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16, hdr[3], nil
}

// readPacket reads one logical packet (joining continuation parts) into
// buf[:0], growing it up to max bytes. It returns the payload, the sequence
// id of the first part and the number of parts. A packet longer than max is
// an *errPacketTooLarge; the stream is then no longer at a boundary.
func readPacket(r io.Reader, buf []byte, limit int) (payload []byte, seq byte, parts int, err error) {
	var hdr [4]byte
	payload = buf[:0]
	for {
		n, s, err := readHeader(r, &hdr)
		if err != nil {
			if parts > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, parts, err
		}
		if parts == 0 {
			seq = s
		}
		parts++
		if len(payload)+n > limit {
			return nil, seq, parts, &errPacketTooLarge{size: len(payload) + n, max: limit}
		}
		// Grow with the bytes that arrive, never to the claimed length at once.
		for left := n; left > 0; {
			step := min(left, 64<<10)
			start := len(payload)
			if cap(payload) < start+step {
				grown := make([]byte, start, max(2*cap(payload), start+step))
				copy(grown, payload)
				payload = grown
			}
			payload = payload[:start+step]
			if _, err := io.ReadFull(r, payload[start:]); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, seq, parts, err
			}
			left -= step
		}
		if n < maxPart {
			return payload, seq, parts, nil
		}
	}
}

// appendPacket frames payload as one logical packet starting at sequence id
// seq, splitting it at 16 MiB. It returns the next sequence id.
func appendPacket(dst []byte, seq byte, payload []byte) ([]byte, byte) {
	for {
		n := min(len(payload), maxPart)
		dst = append(dst, byte(n), byte(n>>8), byte(n>>16), seq)
		dst = append(dst, payload[:n]...)
		seq++
		payload = payload[n:]
		if n < maxPart {
			return dst, seq
		}
	}
}

// partsOf is how many physical packets a payload of n bytes takes.
func partsOf(n int) int { return n/maxPart + 1 }

// relayer reads physical packets from src and writes to dst, flushing when
// src has nothing more buffered, so a batch stays one write.
type relayer struct {
	src *bufio.Reader
	dst *bufio.Writer
	n   *atomic.Int64
	hdr [4]byte

	// overhead, when set, observes each batch's time inside this process:
	// from the read that brought its first packet returning (clock is the
	// timedReader under src) to the flush that wrote it returning. Batches
	// that waited for more input mid-packet are not observed.
	overhead prometheus.Observer
	clock    *timedReader
	batchAt  time.Time
	waited   bool
}

func (r *relayer) header() (int, byte, error) {
	if r.src.Buffered() == 0 {
		if err := r.flush(); err != nil {
			return 0, 0, err
		}
	}
	n, seq, err := readHeader(r.src, &r.hdr)
	if r.clock != nil && r.batchAt.IsZero() {
		r.batchAt = r.clock.at
	}
	return n, seq, err
}

func (r *relayer) flush() error {
	if r.dst.Buffered() == 0 {
		r.batchAt, r.waited = time.Time{}, false
		return nil
	}
	if err := r.dst.Flush(); err != nil {
		return &writeError{err}
	}
	if r.overhead != nil && !r.batchAt.IsZero() && !r.waited {
		r.overhead.Observe(time.Since(r.batchAt).Seconds())
	}
	r.batchAt, r.waited = time.Time{}, false
	return nil
}

func (r *relayer) write(b []byte) error {
	if _, err := r.dst.Write(b); err != nil {
		return &writeError{err}
	}
	r.n.Add(int64(len(b)))
	return nil
}

// timedReader notes when a read last returned data.
type timedReader struct {
	r  io.Reader
	at time.Time
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.at = time.Now()
	}
	return n, err
}

// writeHeader writes a physical header.
func (r *relayer) writeHeader(n int, seq byte) error {
	return r.write([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq})
}

// copyN streams exactly n bytes of payload from src to dst.
func (r *relayer) copyN(n int) error {
	if n > r.src.Buffered() {
		r.waited = true
	}
	for n > 0 {
		b, err := r.src.Peek(min(n, r.src.Size()))
		if len(b) == 0 && err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(b) == 0 {
			b, err = r.src.Peek(1)
			if err != nil {
				if err == io.EOF {
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		if werr := r.write(b); werr != nil {
			return werr
		}
		r.src.Discard(len(b))
		n -= len(b)
	}
	return nil
}

// readFull reads exactly len(b) payload bytes.
func (r *relayer) readFull(b []byte) error {
	if len(b) > r.src.Buffered() {
		r.waited = true
	}
	if _, err := io.ReadFull(r.src, b); err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// discard skips n payload bytes.
func (r *relayer) discard(n int) error {
	if n > r.src.Buffered() {
		r.waited = true
	}
	if d, err := r.src.Discard(n); err != nil || d != n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// Length-encoded integers and strings (protocol basics).

// readLenEnc reads a length-encoded integer at b[0:]; null reports 0xfb.
func readLenEnc(b []byte) (v uint64, n int, null bool, ok bool) {
	if len(b) == 0 {
		return 0, 0, false, false
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1, false, true
	case c == 0xfb:
		return 0, 1, true, true
	case c == 0xfc:
		if len(b) < 3 {
			return 0, 0, false, false
		}
		return uint64(b[1]) | uint64(b[2])<<8, 3, false, true
	case c == 0xfd:
		if len(b) < 4 {
			return 0, 0, false, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, false, true
	case c == 0xfe:
		if len(b) < 9 {
			return 0, 0, false, false
		}
		var x uint64
		for i := 8; i >= 1; i-- {
			x = x<<8 | uint64(b[i])
		}
		return x, 9, false, true
	}
	return 0, 0, false, false // 0xff
}

// readLenEncString returns the string at b[0:] and the bytes it takes.
func readLenEncString(b []byte) (s []byte, n int, null bool, ok bool) {
	l, n, null, ok := readLenEnc(b)
	if !ok || null {
		return nil, n, null, ok
	}
	if uint64(len(b)-n) < l {
		return nil, 0, false, false
	}
	return b[n : n+int(l)], n + int(l), false, true
}

func appendLenEnc(dst []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(dst, byte(v))
	case v <= 0xffff:
		return append(dst, 0xfc, byte(v), byte(v>>8))
	case v <= 0xffffff:
		return append(dst, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	return append(dst, 0xfe, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

func appendLenEncString(dst, s []byte) []byte {
	return append(appendLenEnc(dst, uint64(len(s))), s...)
}

// isEOF reports an EOF packet (0xfe with fewer than 9 bytes); a longer 0xfe
// packet is a row or an OK-with-EOF-header, which we never negotiate.
func isEOF(p []byte) bool { return len(p) > 0 && p[0] == 0xfe && len(p) < 9 }

// eofStatus returns the status flags of an EOF packet.
func eofStatus(p []byte) uint16 {
	if len(p) < 5 {
		return 0
	}
	return uint16(p[3]) | uint16(p[4])<<8
}

// okStatus returns the status flags of an OK packet (0 if it has none).
func okStatus(p []byte) uint16 {
	s, _ := parseOKStatus(p)
	return s
}

// parseOKStatus returns the status flags of an OK packet: 0x00,
// affected_rows and last_insert_id (length-encoded), status (2 bytes).
func parseOKStatus(p []byte) (uint16, bool) {
	if len(p) < 1 || p[0] != 0x00 {
		return 0, false
	}
	_, n1, _, ok := readLenEnc(p[1:])
	if !ok {
		return 0, false
	}
	_, n2, _, ok := readLenEnc(p[1+n1:])
	if !ok {
		return 0, false
	}
	i := 1 + n1 + n2
	if len(p) < i+2 {
		return 0, false
	}
	return uint16(p[i]) | uint16(p[i+1])<<8, true
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}
