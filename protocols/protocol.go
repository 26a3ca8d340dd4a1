package protocols

import (
	"context"
	"fmt"
	"net"
	"sort"

	"github.com/sluice-gw/sluice/transport"
)

// Frontend is the gateway side of a protocol: it owns client connections.
//
// ServeConn handles one accepted client connection from start-up to end and
// always closes it. Every failure the client can be told about is answered
// in the protocol's own error format before the connection is closed.
type Frontend interface {
	Name() string
	ServeConn(ctx context.Context, c net.Conn)
}

// Upstream is the agent side of a protocol: it owns target connections.
//
// ServeStream handles one stream the gateway opened: it resolves h.Target,
// dials and authenticates to the target, reports the outcome on s in the
// protocol's own format, relays until either side ends, and closes s.
type Upstream interface {
	Name() string
	ServeStream(ctx context.Context, s transport.Stream, h transport.Header)
}

// Upstreams is the agent's registry of protocol upstream sides by name.
type Upstreams map[string]Upstream

// NewUpstreams builds a registry, rejecting duplicate names.
func NewUpstreams(us ...Upstream) (Upstreams, error) {
	r := make(Upstreams, len(us))
	for _, u := range us {
		if _, dup := r[u.Name()]; dup {
			return nil, fmt.Errorf("protocol %q registered twice", u.Name())
		}
		r[u.Name()] = u
	}
	return r, nil
}

// Names lists the registered protocols, sorted.
func (r Upstreams) Names() []string {
	n := make([]string, 0, len(r))
	for k := range r {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Dispatcher opens a session stream to the agent that serves a connection.
// transport.Hub implements it; an offline agent fails at once with an error
// wrapping transport.ErrAgentOffline.
type Dispatcher interface {
	Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error)
}
