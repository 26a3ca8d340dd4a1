package transport

import (
	"context"
	"errors"
	"io"
)

// Session stream kinds carried in Header.Kind.
const (
	KindSession = "session" // a client session: bytes relayed both ways
	KindCancel  = "cancel"  // a one-shot out-of-band request (Postgres CancelRequest)
)

// Header describes a stream when the gateway opens it. It travels once, before
// any data, and is everything the agent learns about the session.
type Header struct {
	SessionID  string            // gateway-assigned, unique
	Kind       string            // KindSession or KindCancel
	Connection string            // connection name
	Protocol   string            // protocol name, e.g. "postgres"
	Target     string            // target reference, resolved by the agent only
	User       string            // Sluice user, for the agent's logs
	Params     map[string]string // protocol-specific startup parameters
	Policy     []byte            // data-plane policy (engine.Policy as JSON), enforced by the agent
}

// Stream is one session's byte stream across the tunnel.
//
// Read and Write may be called concurrently by one reader and one writer.
// Write may split p into several frames but delivers it in order and whole;
// a Write of many small wire messages is sent as one frame where it fits, so
// callers should batch. CloseWrite signals end of data in this direction; the
// peer's Read then returns io.EOF. Close releases the stream in both
// directions, and the peer's pending Read returns an error. Errors returned
// after the tunnel itself fails wrap ErrTunnelClosed.
type Stream interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// Tunnel is one agent's connection to the gateway.
//
// The gateway calls OpenStream; the agent calls AcceptStream. A stream's
// failure never fails the tunnel; a tunnel's failure fails every stream on it.
// Done is closed when the tunnel is gone (Err then says why).
type Tunnel interface {
	OpenStream(ctx context.Context, h Header) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, Header, error)
	Close() error
	Done() <-chan struct{}
	Err() error
}

var (
	// ErrTunnelClosed reports that the whole tunnel is gone, not one stream.
	ErrTunnelClosed = errors.New("tunnel closed")
	// ErrAgentOffline reports that no tunnel of the named agent is connected.
	ErrAgentOffline = errors.New("agent offline")
)

// AgentVerifier checks an agent's name and key when it connects. It is
// implemented by the control plane and injected into tunnel servers.
type AgentVerifier func(ctx context.Context, name, key string) error

// ErrStreamRefused reports that the agent declined to open a stream (it does
// not serve the connection, or is too busy). The wrapping error has the
// agent's reason.
var ErrStreamRefused = errors.New("stream refused by agent")

// StreamFilter runs on the agent for each stream the gateway asks for, before
// the stream opens. A non-nil error refuses the stream: the gateway's
// OpenStream then fails with an error wrapping ErrStreamRefused and the
// filter's message. It must be fast and must not block.
type StreamFilter func(h Header) error

// MaxFrameData is the most data one tunnel frame carries. Writes are split
// into frames of at most this size, so no message-size cap limits a session.
const MaxFrameData = 1 << 20
