// Package grpctun is the gRPC (HTTP/2 over TLS) implementation of the agent
// tunnel (ARCHITECTURE §4).
//
// The agent Dials the gateway and holds one Control stream; for each session
// the gateway sends OpenStream on it, and the agent opens a new Session
// stream whose first frame names the session. HTTP/2 gives every session its
// own flow-control window, so a slow session never stalls another. Data is
// chunked into frames of at most transport.MaxFrameData bytes, so no gRPC
// message-size cap limits what a session carries.
//
// The gateway side is Server (NewServer, Serve); the agent side is Dial.
package grpctun
