package tunneltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/transport"
)

// Options are what a tunnel under test must be built with.
type Options struct {
	// Filter is the agent's stream filter (refusals are tested with it).
	Filter transport.StreamFilter
}

// NewPair builds a connected tunnel: the gateway's end and the agent's end.
// It registers its own cleanup with t.
type NewPair func(t *testing.T, o Options) (gw, agent transport.Tunnel)

// Connection names the echo agent understands.
const (
	ConnEcho    = "echo"    // echo bytes until EOF, then CloseWrite
	ConnSink    = "sink"    // never read
	ConnRefused = "refused" // refused by the filter
)

// Run runs the conformance tests.
func Run(t *testing.T, newPair NewPair) {
	t.Run("EchoSmall", func(t *testing.T) { testEcho(t, newPair, []int{5}) })
	t.Run("EchoLarge", func(t *testing.T) {
		if testing.Short() {
			t.Skip("short")
		}
		testEchoLarge(t, newPair, 50<<20)
	})
	t.Run("ManyStreams", func(t *testing.T) { testMany(t, newPair) })
	t.Run("CloseWriteEOF", func(t *testing.T) { testCloseWrite(t, newPair) })
	t.Run("StreamClose", func(t *testing.T) { testStreamClose(t, newPair) })
	t.Run("TunnelCloseGateway", func(t *testing.T) { testTunnelClose(t, newPair, true) })
	t.Run("TunnelCloseAgent", func(t *testing.T) { testTunnelClose(t, newPair, false) })
	t.Run("Refused", func(t *testing.T) { testRefused(t, newPair) })
	t.Run("OpenTimeout", func(t *testing.T) { testOpenTimeout(t, newPair) })
	t.Run("StalledReader", func(t *testing.T) { testStalled(t, newPair) })
}

// filter refuses ConnRefused.
func filter(h transport.Header) error {
	if h.Connection == ConnRefused {
		return errors.New("no such connection")
	}
	return nil
}

// agent serves streams on a until it closes; it returns the streams it
// accepted so tests can inspect them.
type agent struct {
	mu      sync.Mutex
	streams map[string]transport.Stream
}

func startAgent(t *testing.T, a transport.Tunnel) *agent {
	ag := &agent{streams: map[string]transport.Stream{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			s, h, err := a.AcceptStream(ctx)
			if err != nil {
				return
			}
			ag.mu.Lock()
			ag.streams[h.SessionID] = s
			ag.mu.Unlock()
			switch h.Connection {
			case ConnEcho:
				go func() {
					defer s.Close()
					if _, err := io.Copy(s, s); err != nil {
						return
					}
					s.CloseWrite()
				}()
			case ConnSink:
			default:
				s.Close()
			}
		}
	}()
	return ag
}

func (ag *agent) stream(t *testing.T, id string) transport.Stream {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ag.mu.Lock()
		s := ag.streams[id]
		ag.mu.Unlock()
		if s != nil {
			return s
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("agent never accepted %s", id)
	return nil
}

var seq atomic.Uint64

func header(conn string) transport.Header {
	return transport.Header{
		SessionID: "s" + strconv.FormatUint(seq.Add(1), 10), Kind: transport.KindSession,
		Connection: conn, Protocol: "test", Target: "t", User: "u", Params: map[string]string{"k": "v"},
	}
}

func open(t *testing.T, gw transport.Tunnel, conn string) (transport.Stream, transport.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := header(conn)
	s, err := gw.OpenStream(ctx, h)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, h
}

// echo writes data in writes of the given sizes, then CloseWrite, and checks
// the echo.
func echo(s transport.Stream, data []byte, sizes []int) error {
	werr := make(chan error, 1)
	go func() {
		p := data
		for i := 0; len(p) > 0; i++ {
			n := min(sizes[i%len(sizes)], len(p))
			if _, err := s.Write(p[:n]); err != nil {
				werr <- err
				return
			}
			p = p[n:]
		}
		werr <- s.CloseWrite()
	}()
	want := sha256.Sum256(data)
	h := sha256.New()
	n, err := io.Copy(h, s)
	if err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("echo mismatch: got %d bytes, want %d", n, len(data))
	}
	return nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

func testEcho(t *testing.T, newPair NewPair, sizes []int) {
	gw, a := newPair(t, Options{Filter: filter})
	startAgent(t, a)
	s, _ := open(t, gw, ConnEcho)
	if err := echo(s, []byte("hello"), sizes); err != nil {
		t.Fatal(err)
	}
}

func testEchoLarge(t *testing.T, newPair NewPair, n int) {
	gw, a := newPair(t, Options{Filter: filter})
	startAgent(t, a)
	s, _ := open(t, gw, ConnEcho)
	// Mixed sizes, including writes larger than one frame.
	if err := echo(s, randBytes(n), []int{1, 32 << 10, 3<<20 + 7, 100, 1 << 20}); err != nil {
		t.Fatal(err)
	}
}

func testMany(t *testing.T, newPair NewPair) {
	gw, a := newPair(t, Options{Filter: filter})
	startAgent(t, a)
	data := randBytes(256 << 10)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := gw.OpenStream(ctx, header(ConnEcho))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if err := echo(s, data, []int{4096, 70000}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testCloseWrite(t *testing.T, newPair NewPair) {
	gw, a := newPair(t, Options{Filter: filter})
	ag := startAgent(t, a)
	s, h := open(t, gw, ConnSink)
	as := ag.stream(t, h.SessionID)
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(as)
	if err != nil || string(got) != "ping" {
		t.Fatalf("agent read %q, %v; want ping, nil", got, err)
	}
	if _, err := as.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after EOF: %v, want io.EOF", err)
	}
	// The other direction still works after one side's CloseWrite.
	if _, err := as.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := as.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(s)
	if err != nil || string(got) != "pong" {
		t.Fatalf("gateway read %q, %v; want pong, nil", got, err)
	}
	as.Close()
	s.Close()
}

func testStreamClose(t *testing.T, newPair NewPair) {
	gw, a := newPair(t, Options{Filter: filter})
	ag := startAgent(t, a)
	s, h := open(t, gw, ConnSink)
	as := ag.stream(t, h.SessionID)
	errc := make(chan error, 1)
	go func() {
		_, err := as.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if err == nil || err == io.EOF {
			t.Fatalf("peer Read after Close: %v, want an error", err)
		}
		if errors.Is(err, transport.ErrTunnelClosed) {
			t.Fatalf("stream close reported as tunnel close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("peer Read still blocked after Close")
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	// The tunnel lives on.
	s2, _ := open(t, gw, ConnEcho)
	if err := echo(s2, []byte("still up"), []int{3}); err != nil {
		t.Fatal(err)
	}
}

func testTunnelClose(t *testing.T, newPair NewPair, gatewayCloses bool) {
	gw, a := newPair(t, Options{Filter: filter})
	ag := startAgent(t, a)
	s, h := open(t, gw, ConnSink)
	as := ag.stream(t, h.SessionID)
	readErr := func(s transport.Stream) chan error {
		c := make(chan error, 1)
		go func() {
			_, err := s.Read(make([]byte, 10))
			c <- err
		}()
		return c
	}
	gwErr, agErr := readErr(s), readErr(as)
	time.Sleep(10 * time.Millisecond)
	if gatewayCloses {
		gw.Close()
	} else {
		a.Close()
	}
	for side, c := range map[string]chan error{"gateway": gwErr, "agent": agErr} {
		select {
		case err := <-c:
			if !errors.Is(err, transport.ErrTunnelClosed) {
				t.Errorf("%s stream Read: %v, want ErrTunnelClosed", side, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s stream Read still blocked after tunnel close", side)
		}
	}
	for side, tun := range map[string]transport.Tunnel{"gateway": gw, "agent": a} {
		select {
		case <-tun.Done():
			if !errors.Is(tun.Err(), transport.ErrTunnelClosed) {
				t.Errorf("%s Err() = %v, want ErrTunnelClosed", side, tun.Err())
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s tunnel not done after close", side)
		}
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write on a closed tunnel's stream succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := gw.OpenStream(ctx, header(ConnEcho)); !errors.Is(err, transport.ErrTunnelClosed) {
		t.Errorf("OpenStream on closed tunnel: %v, want ErrTunnelClosed", err)
	}
}

func testRefused(t *testing.T, newPair NewPair) {
	gw, a := newPair(t, Options{Filter: filter})
	startAgent(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := gw.OpenStream(ctx, header(ConnRefused))
	if !errors.Is(err, transport.ErrStreamRefused) {
		t.Fatalf("OpenStream: %v, want ErrStreamRefused", err)
	}
	s, _ := open(t, gw, ConnEcho)
	if err := echo(s, []byte("after refusal"), []int{100}); err != nil {
		t.Fatal(err)
	}
}

func testOpenTimeout(t *testing.T, newPair NewPair) {
	gw, _ := newPair(t, Options{Filter: filter}) // nobody accepts
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := gw.OpenStream(ctx, header(ConnEcho)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenStream: %v, want context.DeadlineExceeded", err)
	}
}

func testStalled(t *testing.T, newPair NewPair) {
	gw, a := newPair(t, Options{Filter: filter})
	startAgent(t, a)
	stalled, _ := open(t, gw, ConnSink)
	blocked := make(chan struct{})
	go func() {
		// Far more than any window: this writer must block, not buffer.
		buf := make([]byte, 1<<20)
		for i := 0; i < 256; i++ {
			if _, err := stalled.Write(buf); err != nil {
				break
			}
		}
		close(blocked)
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-blocked:
		t.Fatal("writer to a stalled reader was never blocked (unbounded buffering?)")
	default:
	}
	s, _ := open(t, gw, ConnEcho)
	done := make(chan error, 1)
	go func() { done <- echo(s, randBytes(4<<20), []int{64 << 10}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled stream blocked another stream")
	}
	stalled.Close()
	<-blocked
}
