package quictun

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/sluice-gw/sluice/transport"
)

var (
	errPeerClosed  = errors.New("stream closed by peer")
	errUnsupported = errors.New("quictun: not supported on this side of the tunnel")
	// ErrAuthFailed is what Dial returns (wrapped) when the gateway rejects
	// the agent's name or key.
	ErrAuthFailed = errors.New("agent authentication failed")
)

// stream is one session's transport.Stream over one QUIC stream. QUIC
// already gives each stream its own flow control and in-order delivery, so
// data goes through unframed.
type stream struct {
	qs         *quic.Stream
	tunnelGone func() bool // reports whether the whole connection failed

	wmu     sync.Mutex // quic-go forbids Close concurrent with Write
	wclosed bool       // under wmu

	wdone     atomic.Bool // our FIN was sent
	closed    atomic.Bool
	closeOnce sync.Once
}

var _ transport.Stream = (*stream)(nil)

func newStream(qs *quic.Stream, gone func() bool) *stream {
	return &stream{qs: qs, tunnelGone: gone}
}

// Read reads session data; io.EOF after the peer's CloseWrite.
func (s *stream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	n, err := s.qs.Read(p)
	if err != nil && err != io.EOF {
		err = s.mapErr(err)
	}
	return n, err
}

// Write writes p whole, blocking on the stream's flow control.
func (s *stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed || s.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	n, err := s.qs.Write(p)
	if err != nil {
		err = s.mapErr(err)
	}
	return n, err
}

// CloseWrite sends the FIN: the peer reads the data written so far, then
// io.EOF.
func (s *stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return nil
	}
	s.wclosed = true
	if s.closed.Load() {
		return io.ErrClosedPipe
	}
	if err := s.qs.Close(); err != nil {
		return s.mapErr(err)
	}
	s.wdone.Store(true)
	return nil
}

// Close releases the stream. After CloseWrite it is graceful: what was
// written is still delivered (QUIC retransmits it until acknowledged) and
// only reading stops (STOP_SENDING, so a peer still writing gets an error).
// Without CloseWrite both directions are reset: undelivered data is lost
// and the peer's Read fails. Close never waits for a blocked Write.
func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.wdone.Load() {
			s.qs.CancelRead(streamDone)
			return
		}
		s.qs.CancelWrite(streamAbort)
		s.qs.CancelRead(streamAbort)
	})
	return nil
}

func (s *stream) mapErr(err error) error {
	if s.closed.Load() {
		return io.ErrClosedPipe
	}
	return mapStreamErr(err, s.tunnelGone)
}

// mapStreamErr sorts a quic-go stream error into a stream failure (the peer
// reset this stream) or a tunnel failure (wrapping transport.ErrTunnelClosed).
func mapStreamErr(err error, tunnelGone func() bool) error {
	var se *quic.StreamError
	switch {
	case tunnelGone():
		return fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err)
	case errors.As(err, &se):
		return fmt.Errorf("%w (code %d)", errPeerClosed, se.ErrorCode)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, quic.ErrStreamClosed):
		return err
	}
	// Anything else is a connection error (application close, idle timeout,
	// stateless reset, transport error).
	return fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err)
}
