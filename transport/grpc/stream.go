package grpctun

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-gw/sluice/proto/tunnelpb"
	"github.com/sluice-gw/sluice/transport"
)

var (
	errPeerClosed  = errors.New("stream closed by peer")
	errUnsupported = errors.New("grpctun: not supported on this side of the tunnel")
)

// frameStream is what client and server gRPC streams have in common.
type frameStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// stream is one session's transport.Stream over one gRPC bidi stream.
type stream struct {
	fs         frameStream
	release    func(graceful bool) // ends the RPC (cancel on the agent, handler return on the gateway)
	tunnelGone func() bool         // reports whether the whole tunnel failed

	wmu     sync.Mutex
	wf      tunnelpb.Frame // reused for every send
	wclosed bool

	// Reader-owned.
	rf   tunnelpb.Frame
	rbuf []byte
	rerr error

	wdone     atomic.Bool // our close_write was sent
	graceful  atomic.Bool // closed after both directions ended cleanly
	closed    atomic.Bool
	closeOnce sync.Once
	done      chan struct{} // closed by Close
}

func newStream(fs frameStream, release func(graceful bool), tunnelGone func() bool) *stream {
	return &stream{fs: fs, release: release, tunnelGone: tunnelGone, done: make(chan struct{})}
}

// Read returns data from received frames, keeping what does not fit in p
// for the next Read.
func (s *stream) Read(p []byte) (int, error) {
	for len(s.rbuf) == 0 {
		if s.rerr != nil {
			return 0, s.rerr
		}
		if s.closed.Load() {
			return 0, io.ErrClosedPipe
		}
		s.rf.Reset()
		if err := s.fs.RecvMsg(&s.rf); err != nil {
			if err == io.EOF {
				s.rerr = io.EOF
			} else {
				s.rerr = s.mapErr(err)
			}
			continue
		}
		s.rbuf = s.rf.Data
		s.rf.Data = nil
		switch {
		case s.rf.Error != "":
			s.rerr = fmt.Errorf("%w: %s", errPeerClosed, s.rf.Error)
		case s.rf.CloseWrite:
			s.rerr = io.EOF
		}
	}
	n := copy(p, s.rbuf)
	s.rbuf = s.rbuf[n:]
	return n, nil
}

// WriteTo writes received data straight to w, frame by frame, without the
// copy a Read into a separate buffer costs (io.Copy uses it).
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(s.rbuf) == 0 {
			// Read with an empty p fills rbuf or returns the error.
			if _, err := s.Read(nil); err != nil {
				if err == io.EOF {
					return total, nil
				}
				return total, err
			}
			continue
		}
		n, err := w.Write(s.rbuf)
		total += int64(n)
		s.rbuf = s.rbuf[n:]
		if err != nil {
			return total, err
		}
	}
}

// Write sends p as frames of at most transport.MaxFrameData bytes.
func (s *stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return 0, io.ErrClosedPipe
	}
	n := 0
	for len(p) > 0 {
		c := min(len(p), transport.MaxFrameData)
		s.wf.Data = p[:c]
		err := s.fs.SendMsg(&s.wf)
		s.wf.Data = nil
		if err != nil {
			return n, s.mapErr(err)
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// CloseWrite tells the peer no more data follows; its Read returns io.EOF.
func (s *stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return nil
	}
	s.wclosed = true
	s.wf.CloseWrite = true
	err := s.fs.SendMsg(&s.wf)
	s.wf.CloseWrite = false
	if err != nil {
		return s.mapErr(err)
	}
	s.wdone.Store(true)
	return nil
}

// Close ends the RPC in both directions. After CloseWrite the end is
// graceful: data already written is still delivered, then the peer's Read
// returns io.EOF (a final error message is never lost). Without CloseWrite it
// is an abort: data not yet delivered is lost and the peer's Read fails.
func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		// No lock: a Write blocked on flow control must not delay Close.
		g := s.wdone.Load()
		s.graceful.Store(g)
		s.closed.Store(true)
		close(s.done)
		s.release(g)
	})
	return nil
}

func (s *stream) mapErr(err error) error {
	if s.closed.Load() {
		return io.ErrClosedPipe
	}
	if s.tunnelGone() {
		return fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err)
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return fmt.Errorf("%w: %v", transport.ErrTunnelClosed, status.Convert(err).Message())
	case codes.Canceled, codes.Aborted:
		return errPeerClosed
	}
	if err == io.EOF {
		return errPeerClosed
	}
	return err
}
