package resume

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/transport"
)

// watchTunnel wraps a gateway-side tunnel so the test sees every stream the
// resume layer runs on.
type watchTunnel struct {
	transport.Tunnel
	wrap func(transport.Stream) transport.Stream
}

func (t *watchTunnel) OpenStream(ctx context.Context, h transport.Header) (transport.Stream, error) {
	s, err := t.Tunnel.OpenStream(ctx, h)
	if err != nil {
		return nil, err
	}
	return t.wrap(s), nil
}

// oneReader is a transport.Stream that records a second Read running while
// another is in progress: transport.Stream allows one reader (the gRPC
// stream keeps reader-owned state without a lock).
type oneReader struct {
	transport.Stream
	in      atomic.Int32
	overlap *atomic.Bool
}

func (s *oneReader) Read(p []byte) (int, error) {
	if s.in.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.in.Add(-1)
	return s.Stream.Read(p)
}

// TestCloseReadsAlone: closing a stream while its reader waits (the relay's
// down side waits in Read when the client leaves) must not read the stream
// under it from a second goroutine.
func TestCloseReadsAlone(t *testing.T) {
	var overlap atomic.Bool
	wrap := func(tun transport.Tunnel) transport.Tunnel {
		return &watchTunnel{tun, func(s transport.Stream) transport.Stream { return &oneReader{Stream: s, overlap: &overlap} }}
	}
	w := newWorldWrapped(t, Options{Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		io.Copy(io.Discard, s)
		s.Close()
	}, wrap)
	for range 20 {
		s := w.open()
		if _, err := s.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			io.Copy(io.Discard, s)
		}()
		time.Sleep(5 * time.Millisecond) // the reader waits in the stream under s
		s.Close()
		<-readDone
	}
	// The closing goroutines finish once the agent side has closed.
	time.Sleep(50 * time.Millisecond)
	if overlap.Load() {
		t.Fatal("two goroutines read the stream under a resumable stream at once")
	}
}

// TestCloseAfterEOFReadsAlone: after the peer's end of data, drain reads
// the stream; a Close then must not start a second reader.
func TestCloseAfterEOFReadsAlone(t *testing.T) {
	var overlap atomic.Bool
	wrap := func(tun transport.Tunnel) transport.Tunnel {
		return &watchTunnel{tun, func(s transport.Stream) transport.Stream { return &oneReader{Stream: s, overlap: &overlap} }}
	}
	w := newWorldWrapped(t, Options{Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		io.Copy(s, s)
		s.CloseWrite()
		<-s.Done() // until the gateway closes
	}, wrap)
	for range 20 {
		s := w.open()
		s.Write([]byte("ping"))
		s.CloseWrite()
		if b, err := io.ReadAll(s); err != nil || string(b) != "ping" {
			t.Fatalf("read %q, %v", b, err)
		}
		time.Sleep(5 * time.Millisecond) // drain waits in the stream under s
		s.Close()
	}
	time.Sleep(50 * time.Millisecond)
	if overlap.Load() {
		t.Fatal("two goroutines read the stream under a resumable stream at once")
	}
}

// TestCloseReasonWhileWriting: an agent that ends a session while its
// writer is busy (a long result, the usual case at shutdown) still tells
// the gateway why, after the frame in progress.
func TestCloseReasonWhileWriting(t *testing.T) {
	closing := make(chan struct{})
	w := newWorld(t, Options{Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			buf := make([]byte, 64<<10)
			for {
				if _, err := s.Write(buf); err != nil {
					return
				}
			}
		}()
		<-closing
		time.Sleep(20 * time.Millisecond) // the writer waits on flow control
		s.CloseWithReason("agent a is shutting down")
		<-wrote
	})
	s := w.open()
	defer s.Close()
	// Let the agent fill the tunnel, then close while its writer waits.
	time.Sleep(20 * time.Millisecond)
	close(closing)
	time.Sleep(60 * time.Millisecond)
	_, err := io.Copy(io.Discard, s)
	var e *Error
	if !errors.As(err, &e) || e.Cause != ErrClosedByPeer || e.Reason != "agent a is shutting down" {
		t.Fatalf("gateway read %v, want the agent's reason", err)
	}
}

// TestGapTellsAgent: when the gateway cannot resume (its replay buffer
// overflowed), the agent's side of the session ends at once, not after the
// agent's own grace period with the upstream connection held open.
func TestGapTellsAgent(t *testing.T) {
	const window = 64 << 10
	release := make(chan struct{})
	agentEnd := make(chan error, 1)
	w := newWorld(t, Options{Window: window, Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		<-release
		_, err := io.Copy(io.Discard, s)
		agentEnd <- err
	})
	w.buffer = 1 << 20
	w.cut()
	w.connect()
	s := w.open()
	defer s.Close()
	if _, err := s.Write(make([]byte, 8*window)); err != nil {
		t.Fatal(err)
	}
	w.cut()
	w.connect()
	_, err := s.Read(make([]byte, 1))
	close(release)
	if !errors.Is(err, ErrReplayGap) {
		t.Fatalf("got %v, want a replay gap", err)
	}
	select {
	case err := <-agentEnd:
		if !errors.Is(err, ErrClosedByPeer) {
			t.Fatalf("agent side ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent still holds the session after the gateway gave up on it")
	}
}

// blockingOpener holds resume opens until released.
type blockingOpener struct {
	next    Opener
	mu      sync.Mutex
	hold    chan struct{}
	waiting chan struct{}
}

func (b *blockingOpener) Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error) {
	b.mu.Lock()
	hold, waiting := b.hold, b.waiting
	b.mu.Unlock()
	if h.Kind == KindResume && hold != nil {
		select {
		case waiting <- struct{}{}:
		default:
		}
		<-hold
	}
	return b.next.Open(ctx, agent, h)
}

// TestEndAgentDuringResume: a session ended (agent removed) while its resume
// attempt is under way is not counted as lost by the resume, and the agent
// is told at once.
func TestEndAgentDuringResume(t *testing.T) {
	agentEnd := make(chan error, 1)
	w := newWorld(t, Options{Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		_, err := io.Copy(io.Discard, s)
		agentEnd <- err
	})
	bo := &blockingOpener{next: w.hub}
	w.d.next = bo
	s := w.open()
	defer s.Close()
	go io.Copy(io.Discard, s)
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	bo.mu.Lock()
	bo.hold, bo.waiting = make(chan struct{}), make(chan struct{}, 1)
	bo.mu.Unlock()
	w.cut()
	w.connect()
	select {
	case <-bo.waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("no resume attempt")
	}
	w.d.EndAgent("a", "agent a was removed")
	close(bo.hold)
	select {
	case err := <-agentEnd:
		if !errors.Is(err, ErrClosedByPeer) {
			t.Fatalf("agent side ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent still holds the session the gateway ended")
	}
	c, _ := w.d.sh.o.Metrics.Resumes.GetMetricWithLabelValues("lost")
	if v := counterValue(c); v != 0 {
		t.Fatalf("resumes{result=lost} = %v for a session the gateway ended itself", v)
	}
}
