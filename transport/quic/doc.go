// Package quictun is the QUIC implementation of the agent tunnel
// (ARCHITECTURE §4), on quic-go.
//
// The agent Dials one QUIC connection (TLS 1.3, ALPN "sluice-tunnel/1", the
// gateway's CA pinned by the sha256 of its DER exactly as with grpcs). Its
// first and only client-initiated stream is the control stream: the agent
// sends hello{name, key, version}; the gateway checks it with the injected
// transport.AgentVerifier and answers welcome, or closes the connection with
// application error codeAuth. The gateway then pings on the control stream
// (the agent pongs) to measure RTT and notice a stuck agent.
//
// For each session the gateway opens one server-initiated bidirectional QUIC
// stream and writes a length-prefixed header frame (a compact binary encoding
// of transport.Header, Policy included, capped at maxHeaderSize). The agent
// answers with one byte (accept) or a refusal carrying a reason, after which
// the stream carries the session's bytes as they are: QUIC streams are byte
// streams with their own flow control, so there is no framing on the data
// path.
//
// CloseWrite sends the QUIC FIN. Close after CloseWrite is graceful (the
// data already written is still delivered; the read side sends STOP_SENDING);
// Close without CloseWrite resets both directions. Stream errors after the
// connection is gone wrap transport.ErrTunnelClosed; a peer's reset of one
// stream does not.
//
// # Limits (see options.go)
//
// QUIC charges a stream's unread data to its connection's flow-control
// window too, so a stalled session pins part of the tunnel's window until it
// reads again. Each stream's receive window starts at 512 KiB and auto-tunes
// up to 2 MiB only while the application reads it quickly (a stalled stream
// is never tuned up); the connection window is a fixed 64 MiB. So 128
// stalled sessions (32 that had grown to the maximum window) fit before
// other sessions on the same tunnel slow down, and one tunnel makes its
// receiver buffer at most 64 MiB per direction.
// The agent accepts at most 8192 concurrent session streams (the gateway's
// OpenStream waits for credit, bounded by its context); the gateway accepts
// exactly one client-initiated stream (the control stream) and no
// unidirectional streams. QUIC keep-alives go out every 10 s, and a
// connection with no traffic for 30 s is dead; independently the gateway
// drops an agent that answers no control ping for three ping intervals.
//
// The gateway side is Server (NewServer, Serve on a UDP socket); the agent
// side is Dial.
package quictun
