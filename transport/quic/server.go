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
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sluice-gw/sluice/transport"
)

// ServerConfig configures the gateway's QUIC tunnel server.
type ServerConfig struct {
	// Verifier checks each agent's name and key (required).
	Verifier transport.AgentVerifier
	// OnTunnel receives each authenticated agent's tunnel (required); the
	// caller typically registers it into a transport.Hub. It must not block.
	OnTunnel func(name string, t transport.Tunnel)
	// TLS is the server's TLS config (required: QUIC is always TLS 1.3); its
	// certificate chain must include the CA certificate agents pin. ALPN
	// and the minimum version are set by the server.
	TLS *tls.Config
	// Logger; nil discards.
	Logger *slog.Logger
	// OnRTT, if set, receives each measured control-stream round trip.
	OnRTT func(name string, rtt time.Duration)
	// HelloTimeout bounds the wait for an agent's hello (default 10 s).
	HelloTimeout time.Duration
	// PingInterval is the control-stream ping period (default 10 s); an agent
	// that answers no ping for three periods is dropped.
	PingInterval time.Duration
	// MaxPendingOpens caps OpenStream calls waiting for the agent, per
	// tunnel (default 1024).
	MaxPendingOpens int
}

// Server is the gateway side of the QUIC tunnel.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	tls  *tls.Config
	quic *quic.Config

	mu         sync.Mutex
	transports map[*quic.Transport]*quic.Listener
	tunnels    map[*ServerTunnel]bool
	closed     bool
	wg         sync.WaitGroup // connection handlers
}

// NewServer returns a tunnel server; start it with Serve.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Verifier == nil || cfg.OnTunnel == nil {
		return nil, errors.New("quictun: ServerConfig needs Verifier and OnTunnel")
	}
	if cfg.TLS == nil {
		return nil, errors.New("quictun: ServerConfig needs TLS")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = defaultHelloWait
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = defaultPingEvery
	}
	if cfg.MaxPendingOpens <= 0 {
		cfg.MaxPendingOpens = defaultMaxPending
	}
	tc := cfg.TLS.Clone()
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{ALPN}
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		tls:        tc,
		quic:       serverConfig(),
		transports: map[*quic.Transport]*quic.Listener{},
		tunnels:    map[*ServerTunnel]bool{},
	}, nil
}

var errServerClosed = errors.New("quictun: server closed")

// Serve accepts agent connections on the UDP socket pc until Close. It
// returns nil after Close. The caller keeps ownership of pc (close it after
// Close).
func (s *Server) Serve(pc net.PacketConn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errServerClosed
	}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(s.tls, s.quic)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("quictun: listen: %w", err)
	}
	s.transports[tr] = ln
	s.mu.Unlock()
	for {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("quictun: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.CloseWithError(codeShutdown, "gateway shutting down")
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
}

// Close closes every tunnel (agents see codeShutdown and reconnect) and
// stops listening.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*ServerTunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		all = append(all, t)
	}
	trs := s.transports
	s.transports = map[*quic.Transport]*quic.Listener{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range all {
		wg.Go(func() {
			t.closeWith(fmt.Errorf("%w: gateway shutting down", transport.ErrTunnelClosed), codeShutdown, "gateway shutting down")
		})
	}
	wg.Wait()
	for tr, ln := range trs {
		ln.Close()
		tr.Close() // also ends connections still in the hello phase
	}
	s.wg.Wait()
}

// handle authenticates one agent connection and serves its tunnel until
// it ends.
func (s *Server) handle(conn *quic.Conn) {
	remote := conn.RemoteAddr().String()
	ctx, cancel := context.WithTimeout(conn.Context(), s.cfg.HelloTimeout)
	defer cancel()
	ctl, err := conn.AcceptStream(ctx)
	if err != nil {
		conn.CloseWithError(codeProtocol, "expected a control stream")
		return
	}
	ctl.SetReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	typ, p, err := readMsg(ctl, maxControlFrame)
	var h hello
	if err == nil && (typ != msgHello || json.Unmarshal(p, &h) != nil || h.Name == "" || h.Key == "") {
		err = errors.New("malformed hello")
	}
	if err != nil {
		s.log.Warn("agent handshake failed", "remote", remote, "err", err)
		conn.CloseWithError(codeProtocol, "expected hello")
		return
	}
	ctl.SetReadDeadline(time.Time{})
	if err := s.cfg.Verifier(ctx, h.Name, h.Key); err != nil {
		s.log.Warn("agent authentication failed", "agent", h.Name, "remote", remote, "err", err)
		conn.CloseWithError(codeAuth, "agent authentication failed")
		return
	}
	t := &ServerTunnel{
		srv:     s,
		conn:    conn,
		ctl:     ctl,
		name:    h.Name,
		version: h.Version,
		remote:  remote,
		done:    make(chan struct{}),
	}
	t.lastPong.Store(time.Now().UnixNano())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.CloseWithError(codeShutdown, "gateway shutting down")
		return
	}
	s.tunnels[t] = true
	s.mu.Unlock()
	defer s.forget(t)

	if err := t.writeControl(appendMsg(nil, msgWelcome, nil)); err != nil {
		t.closeWith(fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err), codeProtocol, "")
		return
	}
	s.log.Info("agent connected", "agent", t.name, "version", t.version, "remote", remote, "transport", "quic")
	go t.watch()
	go t.pingLoop()
	go t.recvLoop()
	s.cfg.OnTunnel(t.name, t)
	<-t.done
	s.log.Info("agent disconnected", "agent", t.name, "remote", remote, "reason", t.Err())
}

func (s *Server) forget(t *ServerTunnel) {
	s.mu.Lock()
	delete(s.tunnels, t)
	s.mu.Unlock()
}

// ServerTunnel is the gateway's end of one agent's tunnel. It implements
// transport.Tunnel (OpenStream only; AcceptStream is for agents).
type ServerTunnel struct {
	srv     *Server
	conn    *quic.Conn
	ctl     *quic.Stream
	ctlMu   sync.Mutex // control writes
	name    string
	version string
	remote  string

	lastPong atomic.Int64
	rtt      atomic.Int64
	pings    atomic.Uint64
	npending atomic.Int64

	once sync.Once
	done chan struct{}
	err  error // set before done closes
}

var _ transport.Tunnel = (*ServerTunnel)(nil)

// Name is the agent's name.
func (t *ServerTunnel) Name() string { return t.name }

// AgentVersion is the version the agent announced in its hello.
func (t *ServerTunnel) AgentVersion() string { return t.version }

// RemoteAddr is the agent connection's remote address.
func (t *ServerTunnel) RemoteAddr() string { return t.remote }

// RTT is the last measured control-stream round trip (0 before the first).
func (t *ServerTunnel) RTT() time.Duration { return time.Duration(t.rtt.Load()) }

// OpenStream opens a QUIC stream, sends h and waits (bounded by ctx) until
// the agent accepts or refuses it.
func (t *ServerTunnel) OpenStream(ctx context.Context, h transport.Header) (transport.Stream, error) {
	if h.SessionID == "" {
		return nil, errors.New("quictun: header has no session id")
	}
	if t.gone() {
		return nil, t.errOrClosed()
	}
	frame, err := headerFrame(h)
	if err != nil {
		return nil, err
	}
	if t.npending.Add(1) > int64(t.srv.cfg.MaxPendingOpens) {
		t.npending.Add(-1)
		return nil, errors.New("quictun: too many streams waiting for the agent")
	}
	defer t.npending.Add(-1)
	// Waits for stream credit when the agent's MaxStreams are open.
	qs, err := t.conn.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err)
	}
	stop := context.AfterFunc(ctx, func() { qs.SetDeadline(time.Now()) })
	_, err = qs.Write(frame)
	if err == nil {
		err = readReply(qs)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		qs.CancelWrite(streamAbort)
		qs.CancelRead(streamAbort)
		switch {
		case errors.Is(err, transport.ErrStreamRefused):
			return nil, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case t.gone():
			return nil, fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err)
		}
		var se *quic.StreamError
		if errors.As(err, &se) && se.Remote {
			return nil, fmt.Errorf("%w: agent reset the stream (code %d)", transport.ErrStreamRefused, se.ErrorCode)
		}
		return nil, mapStreamErr(err, t.gone)
	}
	qs.SetDeadline(time.Time{})
	return newStream(qs, t.gone), nil
}

// AcceptStream is not supported on the gateway side.
func (t *ServerTunnel) AcceptStream(context.Context) (transport.Stream, transport.Header, error) {
	return nil, transport.Header{}, errUnsupported
}

// Close closes the agent's connection and every stream on it.
func (t *ServerTunnel) Close() error {
	t.closeWith(fmt.Errorf("%w: closed by gateway", transport.ErrTunnelClosed), codeClosed, "closed by gateway")
	return nil
}

// Done is closed when the tunnel is gone.
func (t *ServerTunnel) Done() <-chan struct{} { return t.done }

// Err says why the tunnel is gone (it wraps transport.ErrTunnelClosed), or
// is nil while it is up.
func (t *ServerTunnel) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

func (t *ServerTunnel) errOrClosed() error {
	if err := t.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: connection lost", transport.ErrTunnelClosed)
}

// gone reports whether the tunnel failed, including the instant the
// connection died but before watch noticed.
func (t *ServerTunnel) gone() bool {
	select {
	case <-t.done:
		return true
	default:
		return t.conn.Context().Err() != nil
	}
}

func (t *ServerTunnel) closeWith(err error, code quic.ApplicationErrorCode, msg string) {
	t.once.Do(func() {
		t.err = err
		close(t.done)
		t.conn.CloseWithError(code, msg)
	})
}

// watch ends the tunnel when the connection dies.
func (t *ServerTunnel) watch() {
	select {
	case <-t.conn.Context().Done():
		t.closeWith(fmt.Errorf("%w: %v", transport.ErrTunnelClosed, context.Cause(t.conn.Context())), codeClosed, "")
	case <-t.done:
	}
}

func (t *ServerTunnel) writeControl(b []byte) error {
	t.ctlMu.Lock()
	defer t.ctlMu.Unlock()
	t.ctl.SetWriteDeadline(time.Now().Add(maxIdleTimeout))
	_, err := t.ctl.Write(b)
	return err
}

func (t *ServerTunnel) pingLoop() {
	every := t.srv.cfg.PingInterval
	tick := time.NewTicker(every)
	defer tick.Stop()
	var buf []byte
	for {
		select {
		case now := <-tick.C:
			if time.Duration(now.UnixNano()-t.lastPong.Load()) > 3*every {
				t.closeWith(fmt.Errorf("%w: agent stopped answering pings", transport.ErrTunnelClosed), codePingTimeout, "no pong")
				return
			}
			buf = appendPing(buf[:0], msgPing, t.pings.Add(1), uint64(now.UnixNano()))
			if err := t.writeControl(buf); err != nil {
				t.closeWith(fmt.Errorf("%w: control send: %v", transport.ErrTunnelClosed, err), codeProtocol, "control stream failed")
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *ServerTunnel) recvLoop() {
	for {
		typ, p, err := readMsg(t.ctl, maxControlFrame)
		if err != nil {
			t.closeWith(fmt.Errorf("%w: control stream: %v", transport.ErrTunnelClosed, err), codeProtocol, "control stream failed")
			return
		}
		if typ != msgPong {
			continue
		}
		_, sent, ok := parsePing(p)
		now := time.Now().UnixNano()
		t.lastPong.Store(now)
		if ok && sent > 0 && int64(sent) <= now {
			rtt := time.Duration(now - int64(sent))
			t.rtt.Store(int64(rtt))
			if f := t.srv.cfg.OnRTT; f != nil {
				f(t.name, rtt)
			}
		}
	}
}
