package agent

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
)

// echo is a protocol upstream that echoes one stream.
type echo struct{}

func (echo) Name() string { return "echo" }
func (echo) ServeStream(ctx context.Context, s transport.Stream, h transport.Header) {
	io.Copy(s, s)
	s.CloseWrite()
	s.Close()
}

// TestRedialsAfterFailuresAndDrops: the gateway is away for the first dials,
// then the tunnel drops once; the agent keeps coming back and serves streams.
func TestRedialsAfterFailuresAndDrops(t *testing.T) {
	var dials atomic.Int32
	gwSides := make(chan transport.Tunnel, 4)
	dial := func(ctx context.Context) (transport.Tunnel, error) {
		if dials.Add(1) <= 2 {
			return nil, errors.New("connection refused")
		}
		gw, ag := memtun.Pair()
		gwSides <- gw
		return ag, nil
	}
	a, err := New(Config{Name: "t", Dial: dial, Protocols: protocols.Upstreams{"echo": echo{}}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	roundTrip := func(gw transport.Tunnel) {
		octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ocancel()
		s, err := gw.OpenStream(octx, transport.Header{SessionID: "s", Kind: transport.KindSession, Protocol: "echo"})
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte("ping"))
		s.CloseWrite()
		b, _ := io.ReadAll(s)
		s.Close()
		if string(b) != "ping" {
			t.Fatalf("echo returned %q", b)
		}
	}
	first := waitTunnel(t, gwSides)
	roundTrip(first)
	first.Close() // the tunnel drops
	second := waitTunnel(t, gwSides)
	roundTrip(second)
	if n := dials.Load(); n < 4 {
		t.Fatalf("%d dials, want at least 4 (2 failures, first tunnel, redial)", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func waitTunnel(t *testing.T, c chan transport.Tunnel) transport.Tunnel {
	t.Helper()
	select {
	case gw := <-c:
		return gw
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not (re)dial")
		return nil
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for range 1000 {
		if j := jitter(100 * time.Millisecond); j < 50*time.Millisecond || j > 100*time.Millisecond {
			t.Fatalf("jitter %v outside [50ms, 100ms]", j)
		}
	}
}
