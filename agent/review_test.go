package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
	"github.com/sluice-gw/sluice/transport/resume"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// hold is a protocol upstream that keeps its session until the stream or
// the agent's context ends, as the real ones do.
type hold struct{}

func (hold) Name() string { return "hold" }
func (hold) ServeStream(ctx context.Context, s transport.Stream, h transport.Header) {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	io.Copy(io.Discard, s)
	s.Close()
}

// idle is a protocol upstream whose session waits for the upstream (not
// reading the stream) until the stream or the agent's context ends.
type idle struct{}

func (idle) Name() string { return "idle" }
func (idle) ServeStream(ctx context.Context, s transport.Stream, h transport.Header) {
	select {
	case <-s.(*resume.Stream).Done():
	case <-ctx.Done():
	}
	s.Close()
}

// slowTunnel is the agent's end of a tunnel whose streams take a while to
// carry what the agent writes, like a network to the gateway.
type slowTunnel struct{ transport.Tunnel }

func (t *slowTunnel) AcceptStream(ctx context.Context) (transport.Stream, transport.Header, error) {
	s, h, err := t.Tunnel.AcceptStream(ctx)
	if err != nil {
		return nil, h, err
	}
	return slowStream{s}, h, nil
}

type slowStream struct{ transport.Stream }

func (s slowStream) Write(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Stream.Write(p)
}

// resumeWorld runs an agent with a resume registry behind a gateway-side
// Dispatcher.
func resumeWorld(t *testing.T, grace time.Duration) (*Agent, *resume.Dispatcher, *resume.Registry, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	hub := transport.NewHub()
	reg := resume.NewRegistry(resume.Options{Grace: grace, Logger: quiet()})
	dial := func(ctx context.Context) (transport.Tunnel, error) {
		gw, ag := memtun.Pair()
		hub.Register("a", gw)
		return &slowTunnel{ag}, nil
	}
	a, err := New(Config{Name: "a", Dial: dial, Protocols: protocols.Upstreams{"hold": hold{}, "idle": idle{}}, Resume: reg,
		Logger: quiet(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{}) // closed when Run returns
	go func() { a.Run(ctx); close(ran) }()
	t.Cleanup(func() {
		cancel()
		reg.CloseAll("test over")
		<-ran
	})
	deadline := time.Now().Add(5 * time.Second)
	for !hub.Online("a") {
		if time.Now().After(deadline) {
			t.Fatal("agent never came online")
		}
		time.Sleep(time.Millisecond)
	}
	d := resume.NewDispatcher(hub, resume.Options{Grace: grace, Logger: quiet()})
	return a, d, reg, cancel, ran
}

// TestShutdownTellsGateway: after the drain timeout, the sessions still
// running end with the agent's "shutting down" reason, which reaches the
// gateway before the process lets the tunnel go (as `sluice agent` does:
// Shutdown, then cancel Run's context).
func TestShutdownTellsGateway(t *testing.T) {
	for _, proto := range []string{"hold", "idle"} {
		t.Run(proto, func(t *testing.T) { testShutdownTellsGateway(t, proto) })
	}
}

func testShutdownTellsGateway(t *testing.T, proto string) {
	a, d, reg, cancel, ran := resumeWorld(t, 3*time.Second)
	s, err := d.Open(context.Background(), "a", transport.Header{SessionID: "s1", Kind: transport.KindSession, Protocol: proto})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for reg.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("session never reached the agent")
		}
		time.Sleep(time.Millisecond)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s)
		readErr <- err
	}()
	a.Shutdown(50 * time.Millisecond)
	cancel()
	<-ran
	select {
	case err := <-readErr:
		var e *resume.Error
		if !errors.As(err, &e) || e.Cause != resume.ErrClosedByPeer || !strings.Contains(e.Reason, "shutting down") {
			t.Fatalf("gateway read %v, want the agent's shutting-down reason", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway session never ended")
	}
}

// TestUnknownProtocolResumable: a resumable session for a protocol the
// agent does not serve ends with a reason saying so, not as a session the
// agent lost (the gateway would tell the client the agent restarted).
func TestUnknownProtocolResumable(t *testing.T) {
	_, d, _, _, _ := resumeWorld(t, 3*time.Second)
	s, err := d.Open(context.Background(), "a", transport.Header{SessionID: "s2", Kind: transport.KindSession, Protocol: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Read(make([]byte, 1))
	if errors.Is(err, resume.ErrSessionLost) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("gateway read %v, want a reason naming the protocol", err)
	}
}
