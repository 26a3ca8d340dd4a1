package memtun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sluice-gw/sluice/transport"
)

// DefaultBuffer is the bytes each stream direction buffers by default.
const DefaultBuffer = 64 << 10

// Options tune a Pair.
type Options struct {
	Buffer int                    // bytes buffered per stream direction; 0 = DefaultBuffer
	Filter transport.StreamFilter // agent's filter; nil accepts every stream
}

var (
	errPeerClosed  = errors.New("memtun: stream closed by peer")
	errUnsupported = errors.New("memtun: not supported on this side of the tunnel")
)

// Pair returns the two ends of a new in-memory tunnel.
func Pair() (gatewaySide, agentSide transport.Tunnel) { return PairWith(Options{}) }

// PairWith is Pair with options.
func PairWith(o Options) (gatewaySide, agentSide transport.Tunnel) {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	c := &core{opts: o, accept: make(chan accepted), done: make(chan struct{}), streams: map[*stream]struct{}{}}
	return &end{c: c, gateway: true}, &end{c: c}
}

type accepted struct {
	s *stream
	h transport.Header
}

// core is the state both ends share.
type core struct {
	opts   Options
	accept chan accepted

	mu      sync.Mutex
	done    chan struct{}
	err     error
	streams map[*stream]struct{}
}

func (c *core) close(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	ss := c.streams
	c.streams = nil
	c.mu.Unlock()
	for s := range ss {
		s.in.failLocal(err, err)
		s.out.failLocal(err, err)
	}
}

// end is one side of the tunnel.
type end struct {
	c       *core
	gateway bool
}

func (e *end) OpenStream(ctx context.Context, h transport.Header) (transport.Stream, error) {
	if !e.gateway {
		return nil, errUnsupported
	}
	if f := e.c.opts.Filter; f != nil {
		if err := f(h); err != nil {
			return nil, fmt.Errorf("%w: %v", transport.ErrStreamRefused, err)
		}
	}
	a, b := newPipe(e.c.opts.Buffer), newPipe(e.c.opts.Buffer)
	gs := &stream{c: e.c, in: a, out: b}
	as := &stream{c: e.c, in: b, out: a}
	gs.peer, as.peer = as, gs
	e.c.mu.Lock()
	if e.c.err != nil {
		e.c.mu.Unlock()
		return nil, e.c.err
	}
	e.c.streams[gs] = struct{}{}
	e.c.streams[as] = struct{}{}
	e.c.mu.Unlock()
	select {
	case e.c.accept <- accepted{s: as, h: h}:
		return gs, nil
	case <-ctx.Done():
		gs.Close()
		as.Close()
		return nil, ctx.Err()
	case <-e.c.done:
		return nil, e.c.Err()
	}
}

func (e *end) AcceptStream(ctx context.Context) (transport.Stream, transport.Header, error) {
	if e.gateway {
		return nil, transport.Header{}, errUnsupported
	}
	select {
	case a := <-e.c.accept:
		return a.s, a.h, nil
	case <-ctx.Done():
		return nil, transport.Header{}, ctx.Err()
	case <-e.c.done:
		return nil, transport.Header{}, e.c.Err()
	}
}

func (e *end) Close() error {
	side := "agent"
	if e.gateway {
		side = "gateway"
	}
	e.c.close(fmt.Errorf("%w: closed by %s", transport.ErrTunnelClosed, side))
	return nil
}

func (e *end) Done() <-chan struct{} { return e.c.done }
func (e *end) Err() error            { return e.c.Err() }

func (c *core) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// stream is one end of a stream: it reads in and writes out.
type stream struct {
	c       *core
	in, out *pipe
	peer    *stream
	once    sync.Once
}

func (s *stream) Read(p []byte) (int, error)  { return s.in.read(p) }
func (s *stream) Write(p []byte) (int, error) { return s.out.write(p) }

func (s *stream) CloseWrite() error {
	s.out.closeWrite()
	return nil
}

func (s *stream) Close() error {
	s.once.Do(func() {
		s.in.failLocal(io.ErrClosedPipe, errPeerClosed)
		s.out.fail(errPeerClosed, io.ErrClosedPipe)
		s.c.mu.Lock()
		if s.c.streams != nil {
			delete(s.c.streams, s)
		}
		s.c.mu.Unlock()
	})
	return nil
}
