package mysql

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
	"github.com/sluice-gw/sluice/transport/resume"
)

func relayFrontend(t *testing.T) *Frontend {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := NewFrontend(cfg, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func relaySession() *engine.Session {
	return &engine.Session{ID: "s", Protocol: Name, Plan: &engine.Plan{Agent: "a", Connection: "c"}}
}

// streamPair returns both ends of one memtun stream.
func streamPair(t *testing.T) (gwSide, agentSide transport.Stream) {
	t.Helper()
	gw, ag := memtun.Pair()
	t.Cleanup(func() { gw.Close() })
	got := make(chan transport.Stream, 1)
	go func() {
		s, _, err := ag.AcceptStream(context.Background())
		if err == nil {
			got <- s
		}
		close(got)
	}()
	s, err := gw.OpenStream(context.Background(), transport.Header{SessionID: "s", Kind: transport.KindSession})
	if err != nil {
		t.Fatal(err)
	}
	return s, <-got
}

func readClientPacket(t *testing.T, c net.Conn) ([]byte, byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, seq, _, err := readPacket(c, nil, 1<<20)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	return p, seq
}

func writePacket(t *testing.T, w io.Writer, seq byte, payload []byte) {
	t.Helper()
	b, _ := appendPacket(nil, seq, payload)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestAgentLostErrSequence: when the agent is lost while a command waits for
// its answer, the client's ERR packet is that answer (sequence id 1), not a
// packet numbered after the previous command's answer, which the client
// would reject as out of order without showing the error.
func TestAgentLostErrSequence(t *testing.T) {
	f := relayFrontend(t)
	cli, srv := net.Pipe()
	defer cli.Close()
	gwS, agS := streamPair(t)
	ready, _ := appendPacket(nil, 2, okPayload(statusAutocommit))
	res := make(chan error, 1)
	go func() { res <- f.relay(context.Background(), srv, gwS, relaySession(), ready) }()
	readClientPacket(t, cli) // the login OK

	// A command with a multi-packet answer: a result set of one column and
	// one row, sequence ids 1..5.
	writePacket(t, cli, 0, append([]byte{comQuery}, "SELECT 1"...))
	if _, _, _, err := readPacket(agS, nil, 1<<20); err != nil {
		t.Fatal(err)
	}
	var answer []byte
	for i, p := range [][]byte{{1}, columnDef("", "1", 8), {0xfe, 0, 0, 2, 0}, {1, '1'}, {0xfe, 0, 0, 2, 0}} {
		answer, _ = appendPacket(answer, byte(i+1), p)
	}
	agS.Write(answer)
	for range 5 {
		readClientPacket(t, cli)
	}

	// The next command is pending when the agent goes away.
	writePacket(t, cli, 0, append([]byte{comQuery}, "SELECT SLEEP(60)"...))
	if _, _, _, err := readPacket(agS, nil, 1<<20); err != nil {
		t.Fatal(err)
	}
	agS.Close()
	p, seq := readClientPacket(t, cli)
	if len(p) == 0 || p[0] != 0xff {
		t.Fatalf("client got %x, want an ERR packet", p)
	}
	if seq != 1 {
		t.Fatalf("ERR packet has sequence id %d, want 1 (the answer to the pending command)", seq)
	}
	if err := <-res; protocols.Outcome(err) != "agent_lost" {
		t.Fatalf("relay returned %v", err)
	}
}

// writeFailStream is a stream whose writes fail with a resume error while
// its reader waits (the writer notices the end first).
type writeFailStream struct {
	once    sync.Once
	closed  chan struct{}
	err     error
	readErr bool // reads fail with err too, at once
}

func (s *writeFailStream) Read(p []byte) (int, error) {
	if s.readErr {
		return 0, s.err
	}
	<-s.closed
	return 0, io.ErrClosedPipe
}
func (s *writeFailStream) Write(p []byte) (int, error) { return 0, s.err }
func (s *writeFailStream) CloseWrite() error           { return nil }
func (s *writeFailStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// TestAgentLostOnWrite: the session's stream fails for good (resume grace
// over) and the request side notices first: the client is still told the
// agent was lost, and the session's outcome says so.
func TestAgentLostOnWrite(t *testing.T) {
	f := relayFrontend(t)
	cli, srv := net.Pipe()
	defer cli.Close()
	st := &writeFailStream{closed: make(chan struct{}), err: &resume.Error{Cause: resume.ErrGraceExpired, Reason: "the tunnel to agent a was down for more than 30s"}}
	ready, _ := appendPacket(nil, 2, okPayload(statusAutocommit))
	res := make(chan error, 1)
	go func() { res <- f.relay(context.Background(), srv, st, relaySession(), ready) }()
	readClientPacket(t, cli)
	writePacket(t, cli, 0, append([]byte{comQuery}, "SELECT 1"...))
	p, seq := readClientPacket(t, cli)
	if len(p) == 0 || p[0] != 0xff || seq != 1 {
		t.Fatalf("client got %x (seq %d), want an ERR packet with sequence id 1", p, seq)
	}
	err := <-res
	if protocols.Outcome(err) != "agent_lost" || !errors.Is(err, resume.ErrGraceExpired) {
		t.Fatalf("relay returned %v (outcome %s)", err, protocols.Outcome(err))
	}
}

type okAuth struct{}

func (okAuth) Authenticate(ctx context.Context, user, secret string) (engine.Identity, error) {
	return engine.Identity{User: user}, nil
}
func (okAuth) Authorize(ctx context.Context, id engine.Identity, connection, protocol string) (*engine.Plan, error) {
	return &engine.Plan{Connection: connection, Protocol: protocol, Agent: "a"}, nil
}

// refusingDispatcher opens streams the agent ends at once with reason, as a
// draining agent does.
type refusingDispatcher struct{ reason string }

func (d refusingDispatcher) Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error) {
	return &writeFailStream{closed: make(chan struct{}), err: &resume.Error{Cause: resume.ErrClosedByPeer, Reason: d.reason}, readErr: true}, nil
}

// TestDrainingAgentAtLogin: a session the agent refuses because it is
// shutting down is answered with the shutdown error, as PostgreSQL's
// frontend does, not as an upstream login that got no answer.
func TestDrainingAgentAtLogin(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.AllowPlaintextPassword = true
	f, err := NewFrontend(cfg, okAuth{}, okAuth{}, nil, refusingDispatcher{"agent a is shutting down"})
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := net.Pipe()
	defer cli.Close()
	go f.ServeConn(context.Background(), srv)
	readClientPacket(t, cli) // greeting
	writePacket(t, cli, 1, clientHandshake("alice", "db", pluginClear, []byte("token\x00"), nil))
	p, _ := readClientPacket(t, cli)
	code, _, msg, ok := parseErr(p)
	if !ok || code != erServerShutdown {
		t.Fatalf("client got code %d %q, want ER_SERVER_SHUTDOWN", code, msg)
	}
}
