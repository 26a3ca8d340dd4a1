package resume

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gw/sluice/transport"
)

// Stream kinds the resume layer puts in transport.Header.Kind.
const (
	// KindResumable opens a session stream the agent wraps in a Stream.
	KindResumable = "session+resume"
	// KindResume re-attaches a session after its tunnel failed. Its Params
	// carry the bytes the gateway has received ("recv").
	KindResume = "resume"

	paramRecv  = "recv"
	paramClose = "close" // a close-only resume request: the session ended on the gateway
)

// Defaults for Options.
const (
	DefaultGrace  = 30 * time.Second
	DefaultWindow = 4 << 20
	// MaxFrameData bounds one data frame; larger writes are split.
	MaxFrameData = 256 << 10
	maxReason    = 1024
)

// Options tune both sides of the resume layer.
type Options struct {
	// Grace is how long a session waits for its tunnel to come back
	// (default 30 s). Negative disables resumption: streams pass through.
	Grace time.Duration
	// Window bounds each direction's replay buffer (default 4 MiB). While
	// the tunnel is down, a writer with Window unsent bytes waits.
	Window  int
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

func (o *Options) fill(side string) {
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Window < segSize {
		o.Window = segSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, side)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Causes of an *Error, for errors.Is.
var (
	// ErrGraceExpired: the tunnel stayed down longer than the grace period.
	ErrGraceExpired = errors.New("resume grace period expired")
	// ErrSessionLost: the agent no longer has the session (it restarted, or
	// ended the session while the tunnel was down).
	ErrSessionLost = errors.New("session lost on the agent")
	// ErrReplayGap: a replay buffer no longer holds what the peer needs.
	ErrReplayGap = errors.New("replay buffer does not cover the peer's position")
	// ErrClosedByPeer: the other side closed the stream, maybe with a reason.
	ErrClosedByPeer = errors.New("stream closed by peer")
	// ErrProtocol: the peer sent a malformed frame.
	ErrProtocol = errors.New("resume protocol error")
)

// Error ends a resumable stream for good. Its message is meant for the
// client's native error; Cause is one of the Err* values above. Errors that
// mean the agent is gone also match transport.ErrTunnelClosed.
type Error struct {
	Cause  error
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func (e *Error) Unwrap() []error {
	if e.Cause == ErrGraceExpired || e.Cause == ErrSessionLost {
		return []error{e.Cause, transport.ErrTunnelClosed}
	}
	return []error{e.Cause}
}

// errClosed is what Read and Write return after a local Close.
var errClosed = fmt.Errorf("resume: %w", net.ErrClosed)

// Frame types (see the package comment).
const (
	frameData   = 'D'
	frameAck    = 'A'
	frameFin    = 'F'
	frameClose  = 'X'
	frameHello  = 'R'
	dataHdrLen  = 13
	smallFrame  = 4 << 10
	ackFraction = 4 // a standalone ack goes out every Window/ackFraction bytes
)

// shared is the state the streams of one Dispatcher or Registry share.
type shared struct {
	o       Options
	segs    sync.Pool // *segment
	frames  sync.Pool // *[]byte of dataHdrLen+MaxFrameData
	ackEach uint64
}

func newShared(o Options, side string) *shared {
	o.fill(side)
	sh := &shared{o: o, ackEach: uint64(o.Window / ackFraction)}
	sh.segs.New = func() any { return new(segment) }
	sh.frames.New = func() any { b := make([]byte, 0, dataHdrLen+MaxFrameData); return &b }
	return sh
}

// Stream is a transport.Stream that survives the loss of the stream under it.
//
// It keeps transport.Stream's contract: one reader and one writer may run
// concurrently, Close may be called from any goroutine. While detached
// (its tunnel is gone), Read waits and Write buffers up to the window, then
// waits; both return an *Error once the session cannot be resumed.
type Stream struct {
	sh *shared
	id string
	// onLost is called (without locks) when the stream detaches.
	onLost func(s *Stream, gen uint64, err error)
	// onEnd is called once when the stream ends for good.
	onEnd func(s *Stream)

	mu       sync.Mutex
	cond     sync.Cond
	under    transport.Stream // nil while detached
	gen      uint64           // changes at every detach and attach
	err      error            // terminal
	ring     ring             // sent, unacknowledged
	recvd    uint64           // data bytes delivered to the reader
	finSent  bool
	lostAt   time.Time
	recvdA   atomic.Uint64 // recvd, for lock-free acks
	ackSentA atomic.Uint64
	done     chan struct{}
	ackc     chan struct{}

	// Writer side, under wmu: the underlying stream carries [.., wireEnd),
	// and the end of data once finWired.
	wmu      sync.Mutex
	wireEnd  uint64
	finWired bool
	small    [smallFrame]byte

	// rmu is held around every read of the stream under s: the reader
	// (Read, then drain) and a closing goroutine waiting for the peer's
	// close (goodbye) must not read it at once, as transport.Stream
	// allows one reader.
	rmu sync.Mutex

	// Reader side, owned by the goroutine reading.
	rgen uint64
	rem  int         // data bytes left in the current frame
	eof  atomic.Bool // the peer's end of data was read; set by the reader only
	hdr  [dataHdrLen]byte
}

var _ transport.Stream = (*Stream)(nil)

func newStream(sh *shared, id string, u transport.Stream) *Stream {
	s := &Stream{sh: sh, id: id, under: u, gen: 1, done: make(chan struct{}), ackc: make(chan struct{}, 1)}
	s.cond.L = &s.mu
	s.ring.pool = &sh.segs
	s.rgen = 1
	go s.ackLoop()
	return s
}

// ID is the session the stream belongs to.
func (s *Stream) ID() string { return s.id }

// Done is closed when the stream has ended for good.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is the reason the stream ended, once Done is closed.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// current waits until the stream is attached and returns the stream under
// it and its generation, or the terminal error.
func (s *Stream) current() (transport.Stream, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && s.under == nil {
		s.cond.Wait()
	}
	return s.under, s.gen, s.err
}

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if s.eof.Load() {
			return 0, io.EOF
		}
		u, gen, err := s.current()
		if err != nil {
			return 0, err
		}
		if gen != s.rgen { // re-attached: a partial frame is replayed whole
			s.rgen, s.rem = gen, 0
		}
		if s.rem == 0 {
			s.rmu.Lock()
			err := s.readFrame(u, gen)
			s.rmu.Unlock()
			if err != nil {
				s.failOrLose(gen, err)
			}
			if s.eof.Load() {
				go s.drain() // acks for our data still arrive after the peer's end
				return 0, io.EOF
			}
			continue
		}
		s.rmu.Lock()
		n, err := u.Read(p[:min(len(p), s.rem)])
		s.rmu.Unlock()
		if n > 0 {
			s.mu.Lock()
			if s.gen != gen { // detached meanwhile: the peer replays these
				s.mu.Unlock()
				continue
			}
			s.recvd += uint64(n)
			rv := s.recvd
			s.mu.Unlock()
			s.recvdA.Store(rv)
			s.rem -= n
			if rv-s.ackSentA.Load() >= s.sh.ackEach {
				select {
				case s.ackc <- struct{}{}:
				default:
				}
			}
			if err != nil {
				s.failOrLose(gen, err)
			}
			return n, nil
		}
		if err != nil {
			s.failOrLose(gen, err)
		}
	}
}

// drain keeps reading frames after the peer's end of data, so that acks and
// the peer's close still arrive while we write.
func (s *Stream) drain() {
	for {
		u, gen, err := s.current()
		if err != nil {
			return
		}
		if gen != s.rgen {
			s.rgen, s.rem = gen, 0
		}
		s.rmu.Lock()
		err = s.readFrame(u, gen)
		s.rmu.Unlock()
		if err != nil {
			s.failOrLose(gen, err)
			continue
		}
		if s.rem > 0 {
			s.fail(&Error{ErrProtocol, "session data after the end of data"})
		}
	}
}

// readFrame reads one frame header and handles it; a data frame leaves its
// length in s.rem. A returned *Error is terminal; other errors mean the
// stream under us failed.
func (s *Stream) readFrame(u transport.Stream, gen uint64) error {
	h := s.hdr[:]
	if _, err := io.ReadFull(u, h[:1]); err != nil {
		return err
	}
	switch h[0] {
	case frameData:
		if _, err := io.ReadFull(u, h[1:dataHdrLen]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(h[1:5])
		if n == 0 || n > MaxFrameData {
			return &Error{ErrProtocol, fmt.Sprintf("data frame of %d bytes", n)}
		}
		if s.eof.Load() {
			return &Error{ErrProtocol, "session data after the end of data"}
		}
		if err := s.acked(binary.BigEndian.Uint64(h[5:13]), gen); err != nil {
			return err
		}
		s.rem = int(n)
	case frameAck:
		if _, err := io.ReadFull(u, h[1:9]); err != nil {
			return err
		}
		return s.acked(binary.BigEndian.Uint64(h[1:9]), gen)
	case frameFin:
		if _, err := io.ReadFull(u, h[1:9]); err != nil {
			return err
		}
		end := binary.BigEndian.Uint64(h[1:9])
		s.mu.Lock()
		recvd := s.recvd
		s.mu.Unlock()
		if end != recvd {
			return &Error{ErrProtocol, fmt.Sprintf("end of data at %d, received %d", end, recvd)}
		}
		s.eof.Store(true)
	case frameClose:
		if _, err := io.ReadFull(u, h[1:3]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint16(h[1:3])
		if n > maxReason {
			return &Error{ErrProtocol, "close reason too long"}
		}
		reason := make([]byte, n)
		if _, err := io.ReadFull(u, reason); err != nil {
			return err
		}
		if n == 0 {
			return &Error{ErrClosedByPeer, "stream closed by peer"}
		}
		return &Error{ErrClosedByPeer, string(reason)}
	default:
		return &Error{ErrProtocol, fmt.Sprintf("unknown frame type %#x", h[0])}
	}
	return nil
}

// acked frees the replay buffer up to the peer's acknowledgement.
func (s *Stream) acked(to, gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || to <= s.ring.start {
		return nil
	}
	if to > s.ring.end {
		return &Error{ErrProtocol, fmt.Sprintf("ack of %d bytes, only %d sent", to, s.ring.end)}
	}
	s.ring.ack(to)
	s.cond.Broadcast()
	return nil
}

func (s *Stream) failOrLose(gen uint64, err error) {
	var e *Error
	if errors.As(err, &e) {
		if e.Cause == ErrProtocol {
			s.sh.o.Logger.Warn("resume: ending session", "session", s.id, "error", err)
		}
		s.fail(e)
		return
	}
	s.lose(gen, err)
}

// lose detaches the stream after the stream under it failed.
func (s *Stream) lose(gen uint64, cause error) {
	s.mu.Lock()
	if s.err != nil || s.gen != gen || s.under == nil {
		s.mu.Unlock()
		return
	}
	old := s.under
	s.under = nil
	s.gen++
	g := s.gen
	s.lostAt = s.sh.o.Now()
	s.mu.Unlock()
	old.Close()
	s.sh.o.Metrics.Detached.Inc()
	s.sh.o.Logger.Info("session stream lost, waiting to resume", "session", s.id, "error", cause, "grace", s.sh.o.Grace)
	if s.onLost != nil {
		s.onLost(s, g, cause)
	}
}

// fail ends the stream for good with err.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	u := s.under
	detached := u == nil
	s.under = nil
	s.gen++
	s.ring.release()
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.done)
	if u != nil {
		u.Close()
	}
	if detached {
		s.sh.o.Metrics.Detached.Dec()
	}
	if s.onEnd != nil {
		s.onEnd(s)
	}
}

// Write implements io.Writer. It returns once p is in the replay buffer and,
// while attached, written to the stream under it.
//
// While attached, Write never waits for acknowledgements: they travel behind
// data in the other direction, and waiting for them could deadlock two
// sides that each wait for the other to read. A replay buffer over Window
// forgets its oldest bytes instead; the session then survives a tunnel loss
// only if the peer had received them (else the resume fails with
// ErrReplayGap). While detached, Write waits for room: nothing can be sent.
func (s *Stream) Write(p []byte) (int, error) {
	written := 0
	window := s.sh.o.Window
	for len(p) > 0 {
		s.mu.Lock()
		for s.err == nil && !s.finSent && s.under == nil && s.ring.len() >= window {
			s.cond.Wait()
		}
		if s.err != nil || s.finSent {
			err := s.err
			s.mu.Unlock()
			if err == nil {
				err = errors.New("resume: write after CloseWrite")
			}
			return written, err
		}
		n := min(len(p), MaxFrameData, window)
		if s.under == nil {
			n = min(n, window-s.ring.len())
		} else if over := s.ring.len() + n - window; over > 0 {
			s.ring.ack(s.ring.start + uint64(over))
			s.sh.o.Metrics.Forgotten.Add(float64(over))
		}
		start := s.ring.end
		s.ring.append(p[:n])
		s.mu.Unlock()
		s.send(start, p[:n])
		p = p[n:]
		written += n
	}
	return written, nil
}

// send puts data, which sits at offset start, on the stream under s.
func (s *Stream) send(start uint64, data []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	u, gen := s.under, s.gen
	s.mu.Unlock()
	if u == nil {
		return // the replay after re-attaching sends it
	}
	if s.wireEnd > start { // a replay already sent (part of) it
		skip := s.wireEnd - start
		if skip >= uint64(len(data)) {
			return
		}
		data, start = data[skip:], s.wireEnd
	}
	if s.wireEnd != start {
		s.lose(gen, fmt.Errorf("resume: send gap at %d, wire at %d", start, s.wireEnd))
		return
	}
	if err := s.writeData(u, data); err != nil {
		s.lose(gen, err)
		return
	}
	s.wireEnd = start + uint64(len(data))
	// A CloseWrite that ran while this write was on its way to the wire
	// left the end of data to it.
	s.mu.Lock()
	fin, end := s.finSent, s.ring.end
	s.mu.Unlock()
	if fin && !s.finWired && s.wireEnd == end {
		if err := s.writeCtl(u, frameFin, end); err != nil {
			s.lose(gen, err)
			return
		}
		s.finWired = true
	}
}

// writeData writes data frames carrying the current ack; wmu is held.
func (s *Stream) writeData(u transport.Stream, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), MaxFrameData)
		var frame []byte
		var pooled *[]byte
		if n+dataHdrLen <= smallFrame {
			frame = s.small[:0]
		} else {
			pooled = s.sh.frames.Get().(*[]byte)
			frame = (*pooled)[:0]
		}
		ack := s.recvdA.Load()
		frame = append(frame, frameData, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(frame[1:5], uint32(n))
		binary.BigEndian.PutUint64(frame[5:13], ack)
		frame = append(frame, data[:n]...)
		_, err := u.Write(frame)
		if pooled != nil {
			s.sh.frames.Put(pooled)
		}
		if err != nil {
			return err
		}
		s.ackSentA.Store(ack)
		data = data[n:]
	}
	return nil
}

func (s *Stream) writeCtl(u transport.Stream, typ byte, v uint64) error {
	var b [9]byte
	b[0] = typ
	binary.BigEndian.PutUint64(b[1:], v)
	_, err := u.Write(b[:])
	return err
}

// ackLoop sends standalone acks when the reader asks, so a peer streaming to
// us with nothing coming back can free its replay buffer.
func (s *Stream) ackLoop() {
	for {
		select {
		case <-s.ackc:
		case <-s.done:
			return
		}
		s.wmu.Lock()
		s.mu.Lock()
		u, gen := s.under, s.gen
		s.mu.Unlock()
		ack := s.recvdA.Load()
		if u != nil && ack != s.ackSentA.Load() {
			if err := s.writeCtl(u, frameAck, ack); err != nil {
				s.wmu.Unlock()
				s.lose(gen, err)
				continue
			}
			s.ackSentA.Store(ack)
		}
		s.wmu.Unlock()
	}
}

// CloseWrite ends this direction's data; the peer's Read returns io.EOF once
// it has read everything before it, replays included.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if s.finSent {
		s.mu.Unlock()
		return nil
	}
	s.finSent = true
	end := s.ring.end
	s.cond.Broadcast()
	s.mu.Unlock()

	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	u, gen := s.under, s.gen
	s.mu.Unlock()
	if u == nil || s.wireEnd != end || s.finWired {
		// The replay after re-attaching sends it, or the write still on
		// its way to the wire (send), or it is out already.
		return nil
	}
	if err := s.writeCtl(u, frameFin, end); err != nil {
		s.lose(gen, err)
		return nil
	}
	s.finWired = true
	return nil
}

// Close ends the stream in both directions; the peer's Read returns an
// *Error with ErrClosedByPeer.
func (s *Stream) Close() error { return s.CloseWithReason("") }

// CloseWithReason is Close with a reason the peer's error carries (e.g.
// "agent is shutting down").
func (s *Stream) CloseWithReason(reason string) error {
	s.closeWithReason(reason)
	return nil
}

// closeWithReason is CloseWithReason; the channel it returns is closed once
// the peer has been told (or that failed, at most ~5 s later), or is nil
// when there is nothing to wait for.
func (s *Stream) closeWithReason(reason string) <-chan struct{} {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil
	}
	s.err = errClosed
	u := s.under
	detached := u == nil
	s.under = nil
	s.gen++
	s.ring.release()
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.done)
	if detached {
		s.sh.o.Metrics.Detached.Dec()
	}
	var told chan struct{}
	if u != nil {
		told = make(chan struct{})
		// Tell the peer it is deliberate, without blocking the caller. A
		// write in progress finishes its frame first (the peer reads the
		// frames in order); one stalled on flow control for 5 s is cut
		// by closing the stream, and the peer then learns the session is
		// gone when it tries to resume.
		go func() {
			defer close(told)
			t := time.AfterFunc(5*time.Second, func() { u.Close() })
			defer t.Stop()
			s.wmu.Lock()
			_, err := u.Write(closeFrame(reason))
			if err == nil {
				u.CloseWrite()
			}
			s.wmu.Unlock()
			if err == nil {
				// Our reader may still be in the stream under s: wait
				// for it to let go rather than read beside it.
				s.rmu.Lock()
				goodbye(u)
				s.rmu.Unlock()
			}
			u.Close()
		}()
	}
	if s.onEnd != nil {
		s.onEnd(s)
	}
	return told
}

// closeFrame encodes an 'X' frame.
func closeFrame(reason string) []byte {
	b := make([]byte, 3+len(reason))
	b[0] = frameClose
	binary.BigEndian.PutUint16(b[1:3], uint16(len(reason)))
	copy(b[3:], reason)
	return b
}

// goodbye ends our side of u after a final frame and a CloseWrite: closing
// at once could discard what we wrote, so it waits (bounded by the caller's
// timer) for the peer to close.
func goodbye(u transport.Stream) {
	var buf [512]byte
	for {
		if _, err := u.Read(buf[:]); err != nil {
			return
		}
	}
}

// attach puts u under a detached (or stale) stream after the peer said it has
// received peerRecv bytes, replays what the peer misses and resumes. With
// hello (the agent side) it first tells the peer what we have received. An
// error means u was not attached; a failure after attaching detaches s again
// through lose, like any loss.
func (s *Stream) attach(u transport.Stream, peerRecv uint64, hello bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	var stale transport.Stream
	if s.under != nil { // we had not noticed the loss yet
		stale = s.under
		s.under = nil
		s.gen++
		s.sh.o.Metrics.Detached.Inc()
	}
	if peerRecv < s.ring.start || peerRecv > s.ring.end {
		start, end := s.ring.start, s.ring.end
		s.mu.Unlock()
		if stale != nil {
			stale.Close()
		}
		e := &Error{ErrReplayGap, fmt.Sprintf("cannot resume: the replay buffer (%d bytes) overflowed before the tunnel dropped (the peer has received %d bytes, the buffer starts at %d of %d)", s.sh.o.Window, peerRecv, start, end)}
		s.fail(e)
		return e
	}
	s.ring.ack(peerRecv)
	replay := s.ring.copyFrom(peerRecv)
	end, fin, recvd := s.ring.end, s.finSent, s.recvd
	lostAt := s.lostAt
	// Attach before replaying: the peer replays to us at the same time,
	// so our reader must run or both sides could stall on full windows.
	// Writers wait on wmu until the replay is out.
	s.under = u
	s.gen++
	gen := s.gen
	s.cond.Broadcast()
	s.mu.Unlock()
	if stale != nil {
		stale.Close()
	}
	m := s.sh.o.Metrics
	m.Detached.Dec()
	err := func() error {
		if hello {
			if err := s.writeCtl(u, frameHello, recvd); err != nil {
				return err
			}
		}
		if err := s.writeData(u, replay); err != nil {
			return err
		}
		if fin {
			return s.writeCtl(u, frameFin, end)
		}
		return nil
	}()
	if err != nil {
		s.lose(gen, err) // detaches again and starts over
		return nil
	}
	s.wireEnd, s.finWired = end, fin
	m.Resumes.WithLabelValues("ok").Inc()
	m.Replayed.Add(float64(len(replay)))
	s.sh.o.Logger.Info("session stream resumed", "session", s.id, "replayed_bytes", len(replay),
		"down_for", s.sh.o.Now().Sub(lostAt).Round(time.Millisecond))
	return nil
}

// received is the count of data bytes delivered to the reader.
func (s *Stream) received() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recvd
}
