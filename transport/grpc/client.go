package grpctun

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-gw/sluice/proto/tunnelpb"
	"github.com/sluice-gw/sluice/transport"
)

// ClientConfig configures an agent's tunnel.
type ClientConfig struct {
	Addr string // gateway HOST:PORT
	Name string // agent name
	Key  string // agent key
	// Plaintext dials without TLS; allowed only when Addr's host is loopback.
	Plaintext bool
	// CAPin ("sha256:HEX" of the CA certificate's DER) pins the gateway's
	// CA: the server's presented chain must contain that certificate, and
	// the leaf must verify against it as the only root (and match Addr's
	// host). Empty uses TLS's system roots (or TLS.RootCAs).
	CAPin string
	// TLS, if set, is the base TLS config (e.g. ServerName, RootCAs).
	TLS *tls.Config
	// AgentVersion is announced in the Hello.
	AgentVersion string
	// Filter, if set, can refuse streams before they open.
	Filter transport.StreamFilter
	// MaxPending caps streams asked for but not yet accepted; beyond it the
	// agent refuses new ones as busy (default 1024).
	MaxPending int
	// Logger; nil discards.
	Logger *slog.Logger
}

// ConfigFromDSN returns the ClientConfig for a parsed DSN (grpc and grpcs).
func ConfigFromDSN(d transport.DSN) (ClientConfig, error) {
	switch d.Scheme {
	case transport.SchemeGRPC, transport.SchemeGRPCS:
	default:
		return ClientConfig{}, fmt.Errorf("grpctun: scheme %q not supported", d.Scheme)
	}
	return ClientConfig{Addr: d.Addr, Name: d.Name, Key: d.Key, Plaintext: d.Scheme == transport.SchemeGRPC, CAPin: d.CAPin}, nil
}

// Dial connects to the gateway, authenticates and returns the agent's end of
// the tunnel once the gateway has accepted it. A wrong key fails here.
func Dial(ctx context.Context, cfg ClientConfig) (transport.Tunnel, error) {
	if cfg.Name == "" || cfg.Key == "" || cfg.Addr == "" {
		return nil, errors.New("grpctun: ClientConfig needs Addr, Name and Key")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("grpctun: address %q: %v", cfg.Addr, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = defaultMaxPending
	}
	opts := dialOptions()
	if cfg.Plaintext {
		if !isLoopbackHost(host) {
			return nil, fmt.Errorf("grpctun: plaintext refused for non-loopback host %q", host)
		}
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		tc, err := clientTLS(cfg, host)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	}
	conn, err := grpc.NewClient("passthrough:///"+cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpctun: %v", err)
	}
	tctx, cancel := context.WithCancel(context.Background())
	tctx = metadata.AppendToOutgoingContext(tctx, mdName, cfg.Name, mdKey, cfg.Key)
	t := &ClientTunnel{
		cfg:     cfg,
		conn:    conn,
		client:  tunnelpb.NewTunnelClient(conn),
		ctx:     tctx,
		cancel:  cancel,
		pending: make(chan transport.Header, cfg.MaxPending),
		done:    make(chan struct{}),
	}
	if err := t.start(ctx); err != nil {
		t.shutdown(err)
		return nil, err
	}
	return t, nil
}

// clientTLS builds the agent's TLS config, pinning the CA when asked.
func clientTLS(cfg ClientConfig, host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if cfg.CAPin == "" {
		return tc, nil
	}
	if err := transport.PinCA(tc, cfg.CAPin); err != nil {
		return nil, fmt.Errorf("grpctun: %w", err)
	}
	return tc, nil
}

// ClientTunnel is the agent's end of the tunnel. It implements
// transport.Tunnel (AcceptStream only; OpenStream is for the gateway).
type ClientTunnel struct {
	cfg     ClientConfig
	conn    *grpc.ClientConn
	client  tunnelpb.TunnelClient
	ctx     context.Context // carries the credentials; canceled on close
	cancel  context.CancelFunc
	ctl     tunnelpb.Tunnel_ControlClient
	sendMu  sync.Mutex
	pending chan transport.Header

	once sync.Once
	done chan struct{}
	err  error
}

var _ transport.Tunnel = (*ClientTunnel)(nil)

func (t *ClientTunnel) start(ctx context.Context) error {
	ctl, err := t.client.Control(t.ctx)
	if err != nil {
		return fmt.Errorf("grpctun: open control stream: %w", err)
	}
	t.ctl = ctl
	if err := ctl.Send(&tunnelpb.AgentMessage{Msg: &tunnelpb.AgentMessage_Hello{Hello: &tunnelpb.Hello{AgentVersion: t.cfg.AgentVersion}}}); err != nil {
		if _, rerr := ctl.Recv(); rerr != nil {
			err = rerr
		}
		return fmt.Errorf("grpctun: hello: %w", err)
	}
	welcome := make(chan error, 1)
	go func() {
		m, err := ctl.Recv()
		if err == nil && m.GetWelcome() == nil {
			err = errors.New("gateway did not welcome the agent")
		}
		welcome <- err
	}()
	select {
	case err := <-welcome:
		if err != nil {
			return fmt.Errorf("grpctun: connect to %s: %w", t.cfg.Addr, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("grpctun: connect to %s: %w", t.cfg.Addr, ctx.Err())
	}
	go t.recvLoop()
	return nil
}

func (t *ClientTunnel) send(m *tunnelpb.AgentMessage) error {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	return t.ctl.Send(m)
}

func (t *ClientTunnel) refuse(id, reason string) {
	if err := t.send(&tunnelpb.AgentMessage{Msg: &tunnelpb.AgentMessage_Refuse{Refuse: &tunnelpb.Refuse{SessionId: id, Reason: reason}}}); err != nil {
		t.shutdown(fmt.Errorf("%w: control send: %v", transport.ErrTunnelClosed, err))
	}
}

func (t *ClientTunnel) recvLoop() {
	for {
		m, err := t.ctl.Recv()
		if err != nil {
			t.shutdown(fmt.Errorf("%w: control stream: %v", transport.ErrTunnelClosed, err))
			return
		}
		switch msg := m.Msg.(type) {
		case *tunnelpb.GatewayMessage_Ping:
			p := msg.Ping
			if err := t.send(&tunnelpb.AgentMessage{Msg: &tunnelpb.AgentMessage_Pong{Pong: &tunnelpb.Pong{Id: p.Id, SentUnixNano: p.SentUnixNano}}}); err != nil {
				t.shutdown(fmt.Errorf("%w: control send: %v", transport.ErrTunnelClosed, err))
				return
			}
		case *tunnelpb.GatewayMessage_OpenStream:
			o := msg.OpenStream
			h := transport.Header{SessionID: o.SessionId, Kind: o.Kind, Connection: o.Connection,
				Protocol: o.Protocol, Target: o.Target, User: o.User, Params: o.Params, Policy: o.Policy}
			if f := t.cfg.Filter; f != nil {
				if err := f(h); err != nil {
					t.refuse(h.SessionID, err.Error())
					continue
				}
			}
			select {
			case t.pending <- h:
			default:
				t.refuse(h.SessionID, "agent busy")
			}
		}
	}
}

// AcceptStream waits for the gateway to ask for a stream and opens it.
func (t *ClientTunnel) AcceptStream(ctx context.Context) (transport.Stream, transport.Header, error) {
	for {
		var h transport.Header
		select {
		case h = <-t.pending:
		case <-ctx.Done():
			return nil, h, ctx.Err()
		case <-t.done:
			return nil, h, t.Err()
		}
		sctx, cancel := context.WithCancel(t.ctx)
		ss, err := t.client.Session(sctx)
		if err == nil {
			err = ss.Send(&tunnelpb.Frame{SessionId: h.SessionID})
		}
		if err != nil {
			cancel()
			if t.Err() != nil {
				return nil, h, t.Err()
			}
			t.cfg.Logger.Warn("cannot open session stream", "session", h.SessionID, "err", err)
			t.refuse(h.SessionID, "agent cannot open stream")
			continue
		}
		return newStream(ss, releaseClient(ss, cancel), t.gone), h, nil
	}
}

func (t *ClientTunnel) gone() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// OpenStream is not supported on the agent side.
func (t *ClientTunnel) OpenStream(context.Context, transport.Header) (transport.Stream, error) {
	return nil, errUnsupported
}

// Close closes the connection, ending the control stream and every stream.
func (t *ClientTunnel) Close() error {
	t.shutdown(fmt.Errorf("%w: closed by agent", transport.ErrTunnelClosed))
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

func (t *ClientTunnel) shutdown(err error) {
	t.once.Do(func() {
		t.err = err
		close(t.done)
		// Closing the connection first makes the gateway see every stream
		// fail together with the control stream.
		t.conn.Close()
		t.cancel()
	})
}

// gracefulDrain bounds how long a gracefully closed agent stream waits for
// the gateway to end the RPC before canceling it.
const gracefulDrain = 30 * time.Second

// releaseClient ends an agent-side Session RPC: at once when aborting, else
// after the gateway ends it (so data already sent is delivered first).
func releaseClient(ss tunnelpb.Tunnel_SessionClient, cancel context.CancelFunc) func(bool) {
	return func(graceful bool) {
		if !graceful {
			cancel()
			return
		}
		_ = ss.CloseSend()
		go func() {
			timer := time.AfterFunc(gracefulDrain, cancel)
			defer timer.Stop()
			var f tunnelpb.Frame
			for ss.RecvMsg(&f) == nil {
				f.Reset()
			}
			cancel()
		}()
	}
}
