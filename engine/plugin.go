package engine

import "context"

// Direction of a message through the proxy.
type Direction uint8

const (
	ToUpstream Direction = iota // client → target
	ToClient                    // target → client
)

// Message is one framed wire message seen by the plugin chain.
//
// Raw is borrowed from the protocol's read buffer and is valid only until the
// plugin returns; a plugin that needs it later must copy it. Type is the
// protocol's own message type (a Postgres message byte, a MySQL command).
type Message struct {
	Dir  Direction
	Type byte
	Raw  []byte
}

// Next continues the chain with the (possibly rewritten) message.
type Next func(ctx context.Context, s *Session, m *Message) error

// Plugin inspects or rewrites messages in the data path.
//
// Requests walk the chain forwards and responses backwards (the onion), so an
// outer plugin (audit) sees what inner ones (masking) produced. A plugin
// forwards by calling next exactly once, drops a message by not calling it,
// and denies by returning an *Error from Deny, which the protocol renders
// natively while the session continues. Any other error ends the session.
// Handle must not block on the network: slow work (audit writes) is queued.
type Plugin interface {
	Name() string
	Handle(ctx context.Context, s *Session, m *Message, next Next) error
}
