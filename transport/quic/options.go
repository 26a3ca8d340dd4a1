package quictun

import (
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sluice-gw/sluice/transport"
)

// ALPN is the TLS application protocol of the tunnel.
const ALPN = "sluice-tunnel/1"

const (
	// Flow control. QUIC charges unread stream data to the connection
	// window, and quic-go only grows a window when the application reads,
	// so a session whose reader stalls pins its stream's unread bytes of the
	// connection window for as long as it stalls. Hence:
	//   - a stream window starts at streamWindowInit and auto-tunes up to
	//     streamWindowMax only while it is read fast (a stalled stream never
	//     grows), bounding per-session throughput at streamWindowMax per RTT
	//     (2 MiB / 50 ms = 40 MiB/s) and per-session buffering likewise;
	//   - the connection window is fixed (no auto-tuning from a small start)
	//     at connWindow: connWindow/streamWindowInit = 128 stalled sessions
	//     (32 that had grown to the maximum) fit before the other sessions
	//     on the tunnel slow down. It also caps what one tunnel can make its
	//     receiver buffer, per direction.
	streamWindowInit = 512 << 10
	streamWindowMax  = 2 << 20
	connWindow       = 64 << 20

	keepAlivePeriod  = 10 * time.Second // keep NAT bindings and the idle timer alive
	maxIdleTimeout   = 30 * time.Second // a silent peer is dead after this
	handshakeTimeout = 10 * time.Second

	maxControlFrame = 64 << 10                        // hello, welcome, ping, pong
	maxHeaderSize   = transport.MaxFrameData + 64<<10 // a session header, Policy included
	maxReasonLen    = 1024                            // a refusal's reason

	defaultHelloWait  = 10 * time.Second
	defaultPingEvery  = 10 * time.Second
	defaultHeaderWait = 10 * time.Second // agent: header of a new stream
	defaultMaxPending = 1024
	defaultMaxStreams = 8192
)

// Connection close codes (QUIC application error codes).
const (
	codeClosed      quic.ApplicationErrorCode = 0x0 // closed by either side
	codeAuth        quic.ApplicationErrorCode = 0x1 // agent authentication failed
	codeProtocol    quic.ApplicationErrorCode = 0x2 // malformed or unexpected control message
	codePingTimeout quic.ApplicationErrorCode = 0x3 // agent stopped answering pings
	codeShutdown    quic.ApplicationErrorCode = 0x4 // gateway shutting down
)

// Stream reset codes.
const (
	streamAbort   quic.StreamErrorCode = 0x1 // Close without CloseWrite, or OpenStream gave up
	streamRefused quic.StreamErrorCode = 0x2 // the agent refused the stream
	streamDone    quic.StreamErrorCode = 0x3 // graceful Close: no more reading
	streamBadHdr  quic.StreamErrorCode = 0x4 // malformed header frame
)

func baseConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           handshakeTimeout,
		MaxIdleTimeout:                 maxIdleTimeout,
		KeepAlivePeriod:                keepAlivePeriod,
		InitialStreamReceiveWindow:     streamWindowInit,
		MaxStreamReceiveWindow:         streamWindowMax,
		InitialConnectionReceiveWindow: connWindow,
		MaxConnectionReceiveWindow:     connWindow,
		MaxIncomingUniStreams:          -1,
	}
}

// serverConfig: the agent may open exactly one stream, its control stream.
func serverConfig() *quic.Config {
	c := baseConfig()
	c.MaxIncomingStreams = 1
	return c
}

// clientConfig: the gateway may open up to maxStreams concurrent sessions.
func clientConfig(maxStreams int64) *quic.Config {
	c := baseConfig()
	c.MaxIncomingStreams = maxStreams
	return c
}
