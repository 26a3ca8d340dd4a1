package quictun

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sluice-gw/sluice/transport"
)

// ClientConfig configures an agent's tunnel.
type ClientConfig struct {
	Addr string // gateway HOST:PORT (UDP)
	Name string // agent name
	Key  string // agent key
	// CAPin ("sha256:HEX" of the CA certificate's DER) pins the gateway's
	// CA: the server's presented chain must contain that certificate, and
	// the leaf must verify against it as the only root (and match Addr's
	// host). Empty uses TLS's system roots (or TLS.RootCAs).
	CAPin string
	// TLS, if set, is the base TLS config (e.g. ServerName, RootCAs).
	TLS *tls.Config
	// AgentVersion is announced in the hello.
	AgentVersion string
	// Filter, if set, can refuse streams before they open.
	Filter transport.StreamFilter
	// MaxPending caps streams the gateway opened but AcceptStream has not
	// taken yet; beyond it the agent refuses new ones as busy (default 1024).
	MaxPending int
	// MaxStreams caps concurrent session streams the gateway may open on
	// this connection (QUIC MaxIncomingStreams, default 8192).
	MaxStreams int64
	// Logger; nil discards.
	Logger *slog.Logger
}

// ConfigFromDSN returns the ClientConfig for a parsed quic:// DSN.
func ConfigFromDSN(d transport.DSN) (ClientConfig, error) {
	if d.Scheme != transport.SchemeQUIC {
		return ClientConfig{}, fmt.Errorf("quictun: scheme %q not supported", d.Scheme)
	}
	return ClientConfig{Addr: d.Addr, Name: d.Name, Key: d.Key, CAPin: d.CAPin}, nil
}

// Dial connects to the gateway, authenticates and returns the agent's end of
// the tunnel once the gateway has welcomed it. A wrong key fails here with an
// error wrapping ErrAuthFailed.
func Dial(ctx context.Context, cfg ClientConfig) (transport.Tunnel, error) {
	if cfg.Name == "" || cfg.Key == "" || cfg.Addr == "" {
		return nil, errors.New("quictun: ClientConfig needs Addr, Name and Key")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("quictun: address %q: %v", cfg.Addr, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = defaultMaxPending
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = defaultMaxStreams
	}
	tc, err := clientTLS(cfg, host)
	if err != nil {
		return nil, err
	}
	// DialAddr owns its UDP socket and closes it with the connection.
	conn, err := quic.DialAddr(ctx, cfg.Addr, tc, clientConfig(cfg.MaxStreams))
	if err != nil {
		return nil, fmt.Errorf("quictun: connect to %s: %w", cfg.Addr, err)
	}
	t := &ClientTunnel{
		cfg:     cfg,
		conn:    conn,
		pending: make(chan *pendingStream, cfg.MaxPending),
		done:    make(chan struct{}),
	}
	if err := t.handshake(ctx); err != nil {
		t.shutdown(fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err), codeProtocol, "handshake failed")
		return nil, fmt.Errorf("quictun: connect to %s: %w", cfg.Addr, err)
	}
	go t.watch()
	go t.controlLoop()
	go t.acceptLoop()
	return t, nil
}

// clientTLS builds the agent's TLS config, pinning the CA when asked.
func clientTLS(cfg ClientConfig, host string) (*tls.Config, error) {
	tc := &tls.Config{}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{ALPN}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if cfg.CAPin == "" {
		return tc, nil
	}
	if err := transport.PinCA(tc, cfg.CAPin); err != nil {
		return nil, fmt.Errorf("quictun: %w", err)
	}
	return tc, nil
}

// ClientTunnel is the agent's end of the tunnel. It implements
// transport.Tunnel (AcceptStream only; OpenStream is for the gateway).
type ClientTunnel struct {
	cfg     ClientConfig
	conn    *quic.Conn
	ctl     *quic.Stream
	ctlMu   sync.Mutex // control writes
	pending chan *pendingStream

	once sync.Once
	done chan struct{}
	err  error // set before done closes
}

var _ transport.Tunnel = (*ClientTunnel)(nil)

// handshake opens the control stream, sends hello and waits for welcome.
func (t *ClientTunnel) handshake(ctx context.Context) error {
	ctl, err := t.conn.OpenStreamSync(ctx)
	if err != nil {
		return authErr(err)
	}
	t.ctl = ctl
	stop := context.AfterFunc(ctx, func() { ctl.SetDeadline(time.Now()) })
	defer stop()
	h, _ := json.Marshal(hello{Name: t.cfg.Name, Key: t.cfg.Key, Version: t.cfg.AgentVersion})
	if _, err := ctl.Write(appendMsg(nil, msgHello, h)); err != nil {
		return t.handshakeErr(ctx, err)
	}
	typ, _, err := readMsg(ctl, maxControlFrame)
	if err != nil {
		return t.handshakeErr(ctx, err)
	}
	if typ != msgWelcome {
		return fmt.Errorf("gateway sent message %d instead of welcome", typ)
	}
	if !stop() {
		return ctx.Err()
	}
	ctl.SetDeadline(time.Time{})
	return nil
}

func (t *ClientTunnel) handshakeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The gateway answers a bad key by closing the connection; the stream
	// error may arrive before the connection error is recorded.
	select {
	case <-t.conn.Context().Done():
		return authErr(context.Cause(t.conn.Context()))
	case <-time.After(100 * time.Millisecond):
	}
	return authErr(err)
}

func authErr(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeAuth {
		return ErrAuthFailed
	}
	return err
}

// watch ends the tunnel when the connection dies.
func (t *ClientTunnel) watch() {
	select {
	case <-t.conn.Context().Done():
		t.shutdown(fmt.Errorf("%w: %v", transport.ErrTunnelClosed, context.Cause(t.conn.Context())), codeClosed, "")
	case <-t.done:
	}
}

// controlLoop answers the gateway's pings.
func (t *ClientTunnel) controlLoop() {
	var buf []byte
	for {
		typ, p, err := readMsg(t.ctl, maxControlFrame)
		if err != nil {
			t.shutdown(fmt.Errorf("%w: control stream: %v", transport.ErrTunnelClosed, err), codeProtocol, "control stream failed")
			return
		}
		if typ != msgPing {
			continue // unknown messages are ignored (newer gateway)
		}
		id, sent, ok := parsePing(p)
		if !ok {
			continue
		}
		buf = appendPing(buf[:0], msgPong, id, sent)
		if err := t.writeControl(buf); err != nil {
			t.shutdown(fmt.Errorf("%w: control send: %v", transport.ErrTunnelClosed, err), codeProtocol, "control stream failed")
			return
		}
	}
}

func (t *ClientTunnel) writeControl(b []byte) error {
	t.ctlMu.Lock()
	defer t.ctlMu.Unlock()
	t.ctl.SetWriteDeadline(time.Now().Add(maxIdleTimeout))
	_, err := t.ctl.Write(b)
	return err
}

// acceptLoop takes the gateway's new streams and reads their headers.
func (t *ClientTunnel) acceptLoop() {
	for {
		qs, err := t.conn.AcceptStream(context.Background())
		if err != nil {
			t.shutdown(fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err), codeClosed, "")
			return
		}
		go t.prepare(qs)
	}
}

// prepare reads a new stream's header, applies the filter and queues it for
// AcceptStream, or refuses it.
func (t *ClientTunnel) prepare(qs *quic.Stream) {
	qs.SetReadDeadline(time.Now().Add(defaultHeaderWait))
	h, err := readHeader(qs)
	qs.SetReadDeadline(time.Time{})
	if err != nil {
		t.cfg.Logger.Warn("bad stream header from gateway", "err", err)
		qs.CancelRead(streamBadHdr)
		qs.CancelWrite(streamBadHdr)
		return
	}
	if f := t.cfg.Filter; f != nil {
		if err := f(h); err != nil {
			refuse(qs, err.Error())
			return
		}
	}
	ps := &pendingStream{qs: qs, h: h}
	select {
	case t.pending <- ps:
	default:
		refuse(qs, "agent busy")
	}
}

type pendingStream struct {
	qs *quic.Stream
	h  transport.Header
}

func refuse(qs *quic.Stream, reason string) {
	qs.SetWriteDeadline(time.Now().Add(defaultHeaderWait))
	qs.Write(refusal(reason))
	qs.Close()
	qs.CancelRead(streamRefused)
}

// AcceptStream waits for the gateway to open a stream and accepts it.
func (t *ClientTunnel) AcceptStream(ctx context.Context) (transport.Stream, transport.Header, error) {
	for {
		var ps *pendingStream
		select {
		case ps = <-t.pending:
		case <-ctx.Done():
			return nil, transport.Header{}, ctx.Err()
		case <-t.done:
			return nil, transport.Header{}, t.Err()
		}
		qs := ps.qs
		// The gateway gave up on it already (its OpenStream timed out).
		if qs.Context().Err() != nil {
			qs.CancelRead(streamAbort)
			qs.CancelWrite(streamAbort)
			continue
		}
		if _, err := qs.Write([]byte{replyAccept}); err != nil {
			qs.CancelRead(streamAbort)
			qs.CancelWrite(streamAbort)
			if t.gone() {
				return nil, ps.h, t.errOrClosed()
			}
			continue
		}
		return newStream(qs, t.gone), ps.h, nil
	}
}

// OpenStream is not supported on the agent side.
func (t *ClientTunnel) OpenStream(context.Context, transport.Header) (transport.Stream, error) {
	return nil, errUnsupported
}

// Close closes the connection, ending the control stream and every stream.
func (t *ClientTunnel) Close() error {
	t.shutdown(fmt.Errorf("%w: closed by agent", transport.ErrTunnelClosed), codeClosed, "closed by agent")
	return nil
}

// Done is closed when the tunnel is gone.
func (t *ClientTunnel) Done() <-chan struct{} { return t.done }

// Err says why the tunnel is gone (it wraps transport.ErrTunnelClosed), or
// is nil while it is up.
func (t *ClientTunnel) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

func (t *ClientTunnel) errOrClosed() error {
	if err := t.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: connection lost", transport.ErrTunnelClosed)
}

// gone reports whether the tunnel failed, including the instant the
// connection died but before watch noticed.
func (t *ClientTunnel) gone() bool {
	select {
	case <-t.done:
		return true
	default:
		return t.conn.Context().Err() != nil
	}
}

func (t *ClientTunnel) shutdown(err error, code quic.ApplicationErrorCode, msg string) {
	t.once.Do(func() {
		t.err = err
		close(t.done)
		t.conn.CloseWithError(code, msg)
	})
}
