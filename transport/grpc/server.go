package grpctun

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sluice-gw/sluice/proto/tunnelpb"
	"github.com/sluice-gw/sluice/transport"
)

// ServerConfig configures the gateway's tunnel server.
type ServerConfig struct {
	// Verifier checks each agent's name and key (required).
	Verifier transport.AgentVerifier
	// OnTunnel receives each authenticated agent's tunnel (required); the
	// caller typically registers it into a transport.Hub. It must not block.
	OnTunnel func(name string, t transport.Tunnel)
	// TLS is the server's TLS config; its certificate chain must include the
	// CA certificate agents pin. nil serves plaintext, allowed only on a
	// loopback listener.
	TLS *tls.Config
	// Logger; nil discards.
	Logger *slog.Logger
	// OnRTT, if set, receives each measured control-stream round trip.
	OnRTT func(name string, rtt time.Duration)
	// HelloTimeout bounds the wait for an agent's Hello (default 10 s).
	HelloTimeout time.Duration
	// PingInterval is the control-stream ping period (default 10 s); an agent
	// that answers no ping for three periods is dropped.
	PingInterval time.Duration
	// MaxPendingOpens caps OpenStream calls waiting for the agent, per
	// tunnel (default 1024).
	MaxPendingOpens int
	// MaxStreams caps concurrent streams per agent connection (default 8192).
	MaxStreams uint32
}

// Server is the gateway side of the gRPC tunnel.
type Server struct {
	tunnelpb.UnimplementedTunnelServer
	cfg  ServerConfig
	log  *slog.Logger
	grpc *grpc.Server

	mu      sync.Mutex
	pending map[string]*pendingOpen           // by session id
	tunnels map[string]map[*ServerTunnel]bool // by agent name
	closed  bool
}

type pendingOpen struct {
	t      *ServerTunnel
	result chan openResult // cap 1
}

type openResult struct {
	s   *stream
	err error
}

// NewServer returns a tunnel server; start it with Serve.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Verifier == nil || cfg.OnTunnel == nil {
		return nil, errors.New("grpctun: ServerConfig needs Verifier and OnTunnel")
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
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = defaultMaxStreams
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		pending: map[string]*pendingOpen{},
		tunnels: map[string]map[*ServerTunnel]bool{},
	}
	opts := serverOptions(cfg.MaxStreams)
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	s.grpc = grpc.NewServer(opts...)
	tunnelpb.RegisterTunnelServer(s.grpc, s)
	return s, nil
}

// Serve accepts agent connections on l until Close or Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if s.cfg.TLS == nil && !isLoopbackAddr(l.Addr()) {
		return fmt.Errorf("grpctun: plaintext tunnel server refused on non-loopback address %s", l.Addr())
	}
	return s.grpc.Serve(l)
}

// Close closes every tunnel and stops the server at once.
func (s *Server) Close() {
	s.closeTunnels()
	s.grpc.Stop()
}

// Shutdown closes every tunnel (agents reconnect elsewhere), then waits for
// RPCs to finish until ctx is done, when it stops hard.
func (s *Server) Shutdown(ctx context.Context) {
	s.closeTunnels()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

func (s *Server) closeTunnels() {
	s.mu.Lock()
	s.closed = true
	var all []*ServerTunnel
	for _, set := range s.tunnels {
		for t := range set {
			all = append(all, t)
		}
	}
	s.mu.Unlock()
	for _, t := range all {
		t.closeWith(fmt.Errorf("%w: gateway shutting down", transport.ErrTunnelClosed))
	}
}

func isLoopbackAddr(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	return isLoopbackHost(host)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var errAuth = status.Error(codes.Unauthenticated, "agent authentication failed")

func credsFrom(ctx context.Context) (name, key string, ok bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	n, k := md.Get(mdName), md.Get(mdKey)
	if len(n) != 1 || len(k) != 1 || n[0] == "" || k[0] == "" {
		return "", "", false
	}
	return n[0], k[0], true
}

// verify runs the injected verifier.
func (s *Server) verify(ctx context.Context, name, key string) error {
	if err := s.cfg.Verifier(ctx, name, key); err != nil {
		s.log.Warn("agent authentication failed", "agent", name, "remote", remoteAddr(ctx), "err", err)
		return errAuth
	}
	return nil
}

func remoteAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// Control serves an agent's control stream: it lives as long as the tunnel.
func (s *Server) Control(cs tunnelpb.Tunnel_ControlServer) error {
	ctx := cs.Context()
	name, key, ok := credsFrom(ctx)
	if !ok {
		return errAuth
	}
	if err := s.verify(ctx, name, key); err != nil {
		return err
	}
	hello := make(chan *tunnelpb.AgentMessage, 1)
	go func() {
		m, err := cs.Recv()
		if err != nil {
			m = nil
		}
		hello <- m
	}()
	var first *tunnelpb.AgentMessage
	select {
	case first = <-hello:
	case <-time.After(s.cfg.HelloTimeout):
	}
	if first.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "expected hello")
	}
	t := &ServerTunnel{
		srv:     s,
		name:    name,
		keyHash: sha256.Sum256([]byte(key)),
		version: first.GetHello().GetAgentVersion(),
		remote:  remoteAddr(ctx),
		ctl:     cs,
		ctlCtx:  ctx,
		send:    make(chan *tunnelpb.GatewayMessage, 64),
		done:    make(chan struct{}),
	}
	t.lastPong.Store(time.Now().UnixNano())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "gateway shutting down")
	}
	if s.tunnels[name] == nil {
		s.tunnels[name] = map[*ServerTunnel]bool{}
	}
	s.tunnels[name][t] = true
	s.mu.Unlock()
	defer s.forget(t)

	if err := cs.Send(&tunnelpb.GatewayMessage{Msg: &tunnelpb.GatewayMessage_Welcome{Welcome: &tunnelpb.Welcome{}}}); err != nil {
		t.closeWith(fmt.Errorf("%w: %v", transport.ErrTunnelClosed, err))
		return nil
	}
	s.log.Info("agent connected", "agent", name, "version", t.version, "remote", t.remote)
	go t.sendLoop()
	go t.recvLoop()
	s.cfg.OnTunnel(name, t)
	<-t.done
	s.log.Info("agent disconnected", "agent", name, "remote", t.remote, "reason", t.Err())
	return status.Error(codes.Unavailable, t.Err().Error())
}

func (s *Server) forget(t *ServerTunnel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.tunnels[t.name]; set != nil {
		delete(set, t)
		if len(set) == 0 {
			delete(s.tunnels, t.name)
		}
	}
}

// authSession checks a Session RPC's credentials: against the key of a live
// tunnel of that agent when there is one (no store round trip per session),
// else with the verifier.
func (s *Server) authSession(ctx context.Context) (name string, keyHash [32]byte, err error) {
	name, key, ok := credsFrom(ctx)
	if !ok {
		return "", keyHash, errAuth
	}
	keyHash = sha256.Sum256([]byte(key))
	s.mu.Lock()
	for t := range s.tunnels[name] {
		if t.keyMatches(keyHash) {
			s.mu.Unlock()
			return name, keyHash, nil
		}
	}
	s.mu.Unlock()
	// No live tunnel with this key: answer Unauthenticated either way.
	_ = s.verify(ctx, name, key)
	return "", keyHash, errAuth
}

// Session serves one session stream, opened by the agent after OpenStream.
func (s *Server) Session(ss tunnelpb.Tunnel_SessionServer) error {
	ctx := ss.Context()
	name, keyHash, err := s.authSession(ctx)
	if err != nil {
		return err
	}
	var first tunnelpb.Frame
	if err := ss.RecvMsg(&first); err != nil {
		return err
	}
	s.mu.Lock()
	p := s.pending[first.SessionId]
	if p != nil && p.t.name == name && p.t.keyMatches(keyHash) {
		delete(s.pending, first.SessionId)
	} else {
		p = nil
	}
	s.mu.Unlock()
	if p == nil {
		return status.Error(codes.NotFound, "no pending stream with this session id")
	}
	t := p.t
	st := newStream(ss, func(bool) {}, t.gone)
	st.rbuf = first.Data
	if first.CloseWrite {
		st.rerr = io.EOF
	}
	p.result <- openResult{s: st}
	select {
	case <-st.done:
		if st.graceful.Load() {
			return nil
		}
		return status.Error(codes.Aborted, "stream closed by gateway")
	case <-t.done:
		return status.Error(codes.Unavailable, "tunnel closed")
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// ServerTunnel is the gateway's end of one agent's tunnel. It implements
// transport.Tunnel (OpenStream only; AcceptStream is for agents).
type ServerTunnel struct {
	srv     *Server
	name    string
	keyHash [32]byte
	version string
	remote  string
	ctl     tunnelpb.Tunnel_ControlServer
	ctlCtx  context.Context
	send    chan *tunnelpb.GatewayMessage

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

// AgentVersion is the version the agent announced in its Hello.
func (t *ServerTunnel) AgentVersion() string { return t.version }

// RemoteAddr is the agent connection's remote address.
func (t *ServerTunnel) RemoteAddr() string { return t.remote }

// RTT is the last measured control-stream round trip (0 before the first).
func (t *ServerTunnel) RTT() time.Duration { return time.Duration(t.rtt.Load()) }

func (t *ServerTunnel) keyMatches(h [32]byte) bool {
	return subtle.ConstantTimeCompare(h[:], t.keyHash[:]) == 1
}

// gone reports whether the tunnel failed, including the instant the agent's
// connection broke but before the control loop noticed.
func (t *ServerTunnel) gone() bool {
	select {
	case <-t.done:
		return true
	default:
		return t.ctlCtx.Err() != nil
	}
}

// OpenStream asks the agent for a stream and waits (bounded by ctx) until the
// agent opens it or refuses.
func (t *ServerTunnel) OpenStream(ctx context.Context, h transport.Header) (transport.Stream, error) {
	if h.SessionID == "" {
		return nil, errors.New("grpctun: header has no session id")
	}
	if t.npending.Add(1) > int64(t.srv.cfg.MaxPendingOpens) {
		t.npending.Add(-1)
		return nil, errors.New("grpctun: too many streams waiting for the agent")
	}
	defer t.npending.Add(-1)
	p := &pendingOpen{t: t, result: make(chan openResult, 1)}
	s := t.srv
	s.mu.Lock()
	if _, dup := s.pending[h.SessionID]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("grpctun: session id %q already pending", h.SessionID)
	}
	s.pending[h.SessionID] = p
	s.mu.Unlock()

	msg := &tunnelpb.GatewayMessage{Msg: &tunnelpb.GatewayMessage_OpenStream{OpenStream: &tunnelpb.OpenStream{
		SessionId: h.SessionID, Kind: h.Kind, Connection: h.Connection, Protocol: h.Protocol,
		Target: h.Target, User: h.User, Params: h.Params, Policy: h.Policy,
	}}}
	var err error
	select {
	case t.send <- msg:
		select {
		case r := <-p.result:
			if r.err != nil {
				return nil, r.err
			}
			return r.s, nil
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.done:
			err = t.Err()
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.done:
		err = t.Err()
	}
	// Give up; if the agent's stream already arrived, close it.
	s.mu.Lock()
	_, still := s.pending[h.SessionID]
	delete(s.pending, h.SessionID)
	s.mu.Unlock()
	if !still {
		if r := <-p.result; r.s != nil {
			r.s.Close()
		}
	}
	return nil, err
}

// AcceptStream is not supported on the gateway side.
func (t *ServerTunnel) AcceptStream(context.Context) (transport.Stream, transport.Header, error) {
	return nil, transport.Header{}, errUnsupported
}

// Close ends the agent's control stream and all its session streams.
func (t *ServerTunnel) Close() error {
	t.closeWith(fmt.Errorf("%w: closed by gateway", transport.ErrTunnelClosed))
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

func (t *ServerTunnel) closeWith(err error) {
	t.once.Do(func() {
		t.err = err
		close(t.done)
	})
}

func (t *ServerTunnel) sendLoop() {
	tick := time.NewTicker(t.srv.cfg.PingInterval)
	defer tick.Stop()
	for {
		var m *tunnelpb.GatewayMessage
		select {
		case m = <-t.send:
		case now := <-tick.C:
			if time.Duration(now.UnixNano()-t.lastPong.Load()) > 3*t.srv.cfg.PingInterval {
				t.closeWith(fmt.Errorf("%w: agent stopped answering pings", transport.ErrTunnelClosed))
				return
			}
			m = &tunnelpb.GatewayMessage{Msg: &tunnelpb.GatewayMessage_Ping{Ping: &tunnelpb.Ping{
				Id: t.pings.Add(1), SentUnixNano: now.UnixNano()}}}
		case <-t.done:
			return
		}
		if err := t.ctl.Send(m); err != nil {
			t.closeWith(fmt.Errorf("%w: control send: %v", transport.ErrTunnelClosed, err))
			return
		}
	}
}

func (t *ServerTunnel) recvLoop() {
	for {
		m, err := t.ctl.Recv()
		if err != nil {
			t.closeWith(fmt.Errorf("%w: control stream: %v", transport.ErrTunnelClosed, err))
			return
		}
		switch msg := m.Msg.(type) {
		case *tunnelpb.AgentMessage_Pong:
			now := time.Now().UnixNano()
			t.lastPong.Store(now)
			if sent := msg.Pong.GetSentUnixNano(); sent > 0 && sent <= now {
				rtt := time.Duration(now - sent)
				t.rtt.Store(int64(rtt))
				if f := t.srv.cfg.OnRTT; f != nil {
					f(t.name, rtt)
				}
			}
		case *tunnelpb.AgentMessage_Refuse:
			id := msg.Refuse.GetSessionId()
			s := t.srv
			s.mu.Lock()
			p := s.pending[id]
			if p != nil && p.t == t {
				delete(s.pending, id)
			} else {
				p = nil
			}
			s.mu.Unlock()
			if p != nil {
				p.result <- openResult{err: fmt.Errorf("%w: %s", transport.ErrStreamRefused, msg.Refuse.GetReason())}
			}
		}
	}
}
