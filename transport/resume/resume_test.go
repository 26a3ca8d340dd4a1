package resume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is a gateway and an agent joined by a tunnel the test can cut and
// restore, with a Hub on the gateway side as in production.
type world struct {
	t     *testing.T
	hub   *transport.Hub
	d     *Dispatcher
	reg   *Registry
	serve func(s *Stream, h transport.Header)

	mu     sync.Mutex
	buffer int // per stream direction in the tunnel; 0: 32 KiB
	agent  transport.Tunnel
	// wrap, if set, wraps each gateway-side tunnel (tests that watch the
	// streams under the resume layer).
	wrap   func(transport.Tunnel) transport.Tunnel
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWorld(t *testing.T, o Options, serve func(s *Stream, h transport.Header)) *world {
	return newWorldWrapped(t, o, serve, nil)
}

func newWorldWrapped(t *testing.T, o Options, serve func(s *Stream, h transport.Header), wrap func(transport.Tunnel) transport.Tunnel) *world {
	o.Logger = quiet()
	w := &world{t: t, hub: transport.NewHub(), serve: serve, buffer: 32 << 10, wrap: wrap}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.d = NewDispatcher(w.hub, o)
	w.reg = NewRegistry(o)
	w.connect()
	t.Cleanup(func() {
		w.cancel()
		w.mu.Lock()
		w.reg.CloseAll("test over")
		if w.agent != nil {
			w.agent.Close()
		}
		w.mu.Unlock()
		w.wg.Wait()
	})
	return w
}

// connect brings up a new tunnel and an accept loop on it.
func (w *world) connect() {
	w.mu.Lock()
	gw, ag := memtun.PairWith(memtun.Options{Buffer: w.buffer})

	w.agent = ag
	reg := w.reg
	if w.wrap != nil {
		gw = w.wrap(gw)
	}
	w.mu.Unlock()
	w.hub.Register("a", gw)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			u, h, err := ag.AcceptStream(w.ctx)
			if err != nil {
				return
			}
			switch h.Kind {
			case KindResume:
				go reg.Resume(u, h)
			case KindResumable:
				s, h := reg.Accept(u, h)
				w.wg.Add(1)
				go func() { defer w.wg.Done(); w.serve(s, h) }()
			default:
				u.Close()
			}
		}
	}()
}

// agentUp reports whether the current tunnel is up.
func (w *world) agentUp() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.agent.Done():
		return false
	default:
		return true
	}
}

// cut drops the tunnel (both ends see it fail).
func (w *world) cut() {
	w.mu.Lock()
	ag := w.agent
	w.mu.Unlock()
	ag.Close()
}

func (w *world) open() *Stream {
	w.t.Helper()
	s, err := w.d.Open(context.Background(), "a", transport.Header{SessionID: fmt.Sprint(rand.Uint64()), Kind: transport.KindSession, Protocol: "test"})
	if err != nil {
		w.t.Fatal(err)
	}
	rs := s.(*Stream)
	w.waitAgentHasID(rs.ID())
	return rs
}

// waitAgentHasID waits until the agent has accepted session id: a session
// opened just before a cut may never have reached the agent (then it is
// rightly lost), which tests of replay must rule out.
func (w *world) waitAgentHasID(id string) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		reg := w.reg
		w.mu.Unlock()
		reg.mu.Lock()
		_, ok := reg.streams[id]
		reg.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the agent never accepted session %s", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// echo ends like the protocols do: CloseWrite, then wait for the peer to
// close (a Close drops what the peer has not acknowledged).
func echo(s *Stream, _ transport.Header) {
	defer s.Close()
	if _, err := io.Copy(s, s); err == nil {
		s.CloseWrite()
		io.Copy(io.Discard, s)
	}
}

// TestSurvivesCuts streams data both ways through several tunnel cuts: every
// byte arrives once, in order, and the end of data still arrives.
func TestSurvivesCuts(t *testing.T) {
	w := newWorld(t, Options{Grace: 10 * time.Second, Window: 256 << 10}, echo)
	s := w.open()
	defer s.Close()

	const total = 24 << 20
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	want := sha256.Sum256(data)

	got := make(chan [32]byte, 1)
	var n int64
	var readErr error
	go func() {
		h := sha256.New()
		n, readErr = io.Copy(h, s)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	// Cut the tunnel between writes, with data in flight both ways, and
	// write more while it is down.
	const cuts = 6
	part := total / cuts
	var reconnects sync.WaitGroup
	defer reconnects.Wait()
	for i := 0; i < cuts; i++ {
		chunk := data[i*part : (i+1)*part]
		if i == cuts-1 {
			chunk = data[i*part:]
		}
		for off := 0; off < len(chunk); {
			k := min(len(chunk)-off, 1+rand.IntN(200<<10))
			if _, err := s.Write(chunk[off : off+k]); err != nil {
				t.Fatalf("write: %v", err)
			}
			off += k
			if off > len(chunk)/2 && i < cuts-1 && w.agentUp() {
				w.cut()
				reconnects.Add(1)
				go func() {
					defer reconnects.Done()
					time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
					w.connect()
				}()
			}
		}
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	sum := <-got
	if readErr != nil || n != total || sum != want {
		t.Fatalf("read %d bytes (want %d), err %v, checksum match %v", n, total, readErr, sum == want)
	}
	if v := testutilValue(w.d.sh.o.Metrics); v < 1 {
		t.Fatalf("no resume counted (%v)", v)
	}
}

func testutilValue(m *Metrics) float64 {
	c, _ := m.Resumes.GetMetricWithLabelValues("ok")
	return counterValue(c)
}

// TestGraceExpires: a tunnel that stays down ends the session on both sides
// with an error that says why.
func TestGraceExpires(t *testing.T) {
	agentEnd := make(chan error, 1)
	w := newWorld(t, Options{Grace: 200 * time.Millisecond}, func(s *Stream, _ transport.Header) {
		_, err := io.Copy(io.Discard, s)
		agentEnd <- err
	})
	s := w.open()
	defer s.Close()
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	w.hub.Disconnect("a")
	_, err := s.Read(make([]byte, 10))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrGraceExpired) || !errors.Is(err, transport.ErrTunnelClosed) {
		t.Fatalf("read error %v, want grace expired", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrGraceExpired) {
		t.Fatalf("write after expiry: %v", err)
	}
	select {
	case err := <-agentEnd:
		if !errors.Is(err, ErrGraceExpired) {
			t.Fatalf("agent side ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent side never ended")
	}
	// The reader sees the error before fail has unregistered the session.
	deadline := time.Now().Add(5 * time.Second)
	for w.reg.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("registry still holds %d sessions", w.reg.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAgentRestarted: a new agent without the session refuses the resume and
// the session ends with ErrSessionLost at once, not after the grace period.
func TestAgentRestarted(t *testing.T) {
	w := newWorld(t, Options{Grace: time.Minute}, echo)
	s := w.open()
	defer s.Close()
	w.cut()
	w.mu.Lock()
	old := w.reg
	w.reg = NewRegistry(Options{Logger: quiet()})
	w.mu.Unlock()
	w.connect()
	start := time.Now()
	_, err := s.Read(make([]byte, 10))
	if !errors.Is(err, ErrSessionLost) || !errors.Is(err, transport.ErrTunnelClosed) {
		t.Fatalf("read error %v, want session lost", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("waited for the grace period instead of ending at once")
	}
	old.CloseAll("test over")
}

// TestCloseReason: the agent's reason reaches the gateway's reader.
func TestCloseReason(t *testing.T) {
	w := newWorld(t, Options{}, func(s *Stream, _ transport.Header) {
		buf := make([]byte, 4)
		io.ReadFull(s, buf)
		s.Write([]byte("bye!"))
		s.CloseWithReason("agent is shutting down")
	})
	s := w.open()
	defer s.Close()
	s.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "bye!" {
		t.Fatalf("read %q, %v", buf, err)
	}
	_, err := s.Read(buf)
	var e *Error
	if !errors.As(err, &e) || e.Cause != ErrClosedByPeer || e.Reason != "agent is shutting down" {
		t.Fatalf("got %v", err)
	}
}

// TestCloseEndsPeer: a gateway Close ends the agent's session at once (no
// waiting for a resume).
func TestCloseEndsPeer(t *testing.T) {
	ended := make(chan error, 1)
	w := newWorld(t, Options{}, func(s *Stream, _ transport.Header) {
		_, err := io.Copy(io.Discard, s)
		ended <- err
	})
	s := w.open()
	s.Write([]byte("x"))
	s.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, ErrClosedByPeer) {
			t.Fatalf("agent read %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent side did not end")
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
}

// TestDetachedWritesWait: while the tunnel is down a writer stops at the
// window, and goes on after the resume.
func TestDetachedWritesWait(t *testing.T) {
	const window = 64 << 10
	w := newWorld(t, Options{Window: window, Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		io.Copy(io.Discard, s)
	})
	s := w.open()
	defer s.Close()
	go io.Copy(io.Discard, s) // as a protocol's reader would: it notices the loss
	w.cut()
	waitDetached(t, s)
	done := make(chan int)
	go func() {
		n, _ := s.Write(make([]byte, 1<<20))
		done <- n
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		l := s.ring.len()
		s.mu.Unlock()
		if l > window {
			t.Fatalf("replay buffer holds %d bytes, window is %d", l, window)
		}
		if l == window {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("window never filled (%d)", l)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a detached write of 1 MiB finished with a 64 KiB window")
	default:
	}
	w.connect()
	if n := <-done; n != 1<<20 {
		t.Fatalf("wrote %d", n)
	}
}

func waitDetached(t *testing.T, s *Stream) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		d := s.under == nil
		s.mu.Unlock()
		if d {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("stream never detached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOverflowEndsResume: a writer whose unacknowledged bytes exceed the
// window (the transport buffers more than it) never waits for acks; the
// replay buffer forgets its oldest bytes, and a resume that needs them fails
// saying so.
func TestOverflowEndsResume(t *testing.T) {
	const window = 64 << 10
	release := make(chan struct{})
	w := newWorld(t, Options{Window: window, Grace: 10 * time.Second}, func(s *Stream, _ transport.Header) {
		<-release
		io.Copy(io.Discard, s)
	})
	w.buffer = 1 << 20
	w.cut()
	w.connect()
	s := w.open()
	defer s.Close()
	if _, err := s.Write(make([]byte, 8*window)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	l := s.ring.len()
	s.mu.Unlock()
	if l > window {
		t.Fatalf("replay buffer holds %d bytes, window is %d", l, window)
	}
	w.cut()
	w.connect()
	_, err := s.Read(make([]byte, 1))
	close(release)
	if !errors.Is(err, ErrReplayGap) || !strings.Contains(err.Error(), "overflowed") {
		t.Fatalf("got %v, want a replay gap", err)
	}
}

// TestDetachedWritesBuffer: writes while the tunnel is down are kept and
// delivered after the resume.
func TestDetachedWritesBuffer(t *testing.T) {
	w := newWorld(t, Options{Grace: 10 * time.Second}, echo)
	s := w.open()
	defer s.Close()
	w.cut()
	time.Sleep(20 * time.Millisecond)
	msg := bytes.Repeat([]byte("abc"), 1000)
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	w.connect()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %v", err)
	}
}

// TestCancelPassesThrough: non-session streams are not wrapped.
func TestCancelPassesThrough(t *testing.T) {
	gw, ag := memtun.Pair()
	defer gw.Close()
	hub := transport.NewHub()
	hub.Register("a", gw)
	d := NewDispatcher(hub, Options{Logger: quiet()})
	go func() {
		u, h, err := ag.AcceptStream(context.Background())
		if err == nil {
			if h.Kind != transport.KindCancel {
				u.Write([]byte("wrong kind"))
			}
			u.Close()
		}
	}()
	s, err := d.Open(context.Background(), "a", transport.Header{SessionID: "c", Kind: transport.KindCancel})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Stream); ok {
		t.Fatal("cancel stream was wrapped")
	}
	if b, _ := io.ReadAll(s); len(b) != 0 {
		t.Fatalf("agent saw %q", b)
	}
	s.Close()
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}
