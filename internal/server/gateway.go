package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/control/api"
	"github.com/sluice-gw/sluice/control/audit"
	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/pki"
	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols/mysql"
	"github.com/sluice-gw/sluice/protocols/postgres"
	"github.com/sluice-gw/sluice/transport"
	grpctun "github.com/sluice-gw/sluice/transport/grpc"
	quictun "github.com/sluice-gw/sluice/transport/quic"
	"github.com/sluice-gw/sluice/transport/resume"
)

// GatewayConfig is everything `sluice gateway` needs. Addresses may use port
// 0 (tests); the bound addresses are on the Gateway.
type GatewayConfig struct {
	DataDir    string // SLUICE_DATA_DIR
	APIAddr    string // SLUICE_API_ADDR
	TunnelAddr string // SLUICE_TUNNEL_ADDR
	PGAddr     string // SLUICE_PG_ADDR
	MySQLAddr  string // SLUICE_MYSQL_ADDR; empty: no MySQL listener
	// PublicTunnelAddr is what agent DSNs name; default: the bound tunnel address.
	PublicTunnelAddr string
	// PublicPGAddr is what `sluice connect` dials; default: the bound address.
	PublicPGAddr string
	// TLSHosts are extra names/IPs for the server certificate.
	TLSHosts []string
	// TunnelPlaintext serves the tunnel without TLS (loopback only).
	TunnelPlaintext bool
	Postgres        postgres.Config
	MySQL           mysql.Config
	Logger          *slog.Logger
	// ResumeGrace is how long a session waits for its agent's tunnel to
	// come back (SLUICE_RESUME_GRACE; default 30 s; negative: off).
	ResumeGrace time.Duration
	// Store selects the control-plane store (SLUICE_STORE): "" or "sqlite"
	// for DataDir/sluice.db, or a postgres:// URL shared by replicas.
	Store string
	// Recordings is where session recordings go (SLUICE_RECORDINGS): a
	// directory, file://DIR or s3://BUCKET/PREFIX?endpoint=…; default
	// DataDir/recordings; "off" records nothing.
	Recordings string
	// RecordingSpool bounds the recorded bytes held in memory before they
	// are written, across all sessions (SLUICE_RECORDING_SPOOL; default 64
	// MiB). Above 3/4 of it new sessions are refused (fail closed).
	RecordingSpool int64
	// TokenTTL and TokenMaxTTL bound access tokens (SLUICE_TOKEN_TTL,
	// SLUICE_TOKEN_MAX_TTL; defaults 12h and 7 days).
	TokenTTL, TokenMaxTTL time.Duration
	// ReviewTimeout is how long a just-in-time review may stay pending
	// (SLUICE_REVIEW_TIMEOUT; default 5m).
	ReviewTimeout time.Duration
	// WebhookAllowHTTP accepts http:// webhook URLs on loopback (tests).
	WebhookAllowHTTP bool
}

// DefaultGatewayConfig returns the documented defaults.
func DefaultGatewayConfig() GatewayConfig {
	return GatewayConfig{
		DataDir:    ".sluice",
		APIAddr:    "127.0.0.1:8009",
		TunnelAddr: "127.0.0.1:8010",
		PGAddr:     "127.0.0.1:15432",
		MySQLAddr:  "127.0.0.1:13306",
		Postgres:   postgres.DefaultConfig(),
		MySQL:      mysql.DefaultConfig(),
		Logger:     slog.Default(),
	}
}

// Gateway is a running gateway process.
type Gateway struct {
	APIAddr, TunnelAddr, PGAddr string
	MySQLAddr                   string // "" when no MySQL listener runs
	DataDir                     string
	Hub                         *transport.Hub
	PKI                         *pki.PKI
	Auth                        *auth.Service
	Registry                    *prometheus.Registry
	// Control is the control plane over the store (tests reach into it).
	Control *ControlPlane
	// Sessions are the live client sessions (ended by the control plane).
	Sessions *engine.Sessions

	cancel  context.CancelFunc
	drains  []func()        // stop accepting clients
	served  []chan struct{} // closed when a client listener's sessions have all ended
	closers []func()        // listeners and servers, closed in reverse order
	finals  []func()        // run after every session has ended: audit flush, then the store
	errc    chan error
	wg      sync.WaitGroup
	once    sync.Once
}

// StartGateway opens the store, bootstraps it, binds every listener and
// serves in the background until ctx ends or Close is called.
func StartGateway(ctx context.Context, cfg GatewayConfig) (_ *Gateway, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &Gateway{DataDir: cfg.DataDir, Hub: transport.NewHub(), cancel: cancel, errc: make(chan error, 4), Registry: newRegistry(), Sessions: engine.NewSessions()}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()

	cp, finals, err := startControl(ctx, cfg, g, log)
	if err != nil {
		return nil, err
	}
	g.finals = append(g.finals, finals...)
	g.Control = cp
	st, sink := cp.Store, cp.Sessions
	g.Auth = cp.Auth
	g.Registry.MustRegister(newGatewayCollector(st, g.Hub, sink))
	tm := newTunnelMetrics(g.Registry)

	hosts := append([]string{}, cfg.TLSHosts...)
	for _, a := range []string{cfg.PublicTunnelAddr, cfg.PublicPGAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	g.PKI, err = pki.LoadOrCreate(cfg.DataDir, hosts)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}

	// Bind everything first so a port clash fails start-up, not later.
	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("api listener: %w", err)
	}
	g.closers = append(g.closers, func() { apiLn.Close() })
	tunLn, tunPC, err := listenTunnel(cfg.TunnelAddr)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, func() { tunLn.Close() }, func() { tunPC.Close() })
	pgLn, err := net.Listen("tcp", cfg.PGAddr)
	if err != nil {
		return nil, fmt.Errorf("postgres listener: %w", err)
	}
	g.closers = append(g.closers, func() { pgLn.Close() })
	g.APIAddr, g.TunnelAddr, g.PGAddr = apiLn.Addr().String(), tunLn.Addr().String(), pgLn.Addr().String()
	var myLn net.Listener
	if cfg.MySQLAddr != "" {
		if myLn, err = net.Listen("tcp", cfg.MySQLAddr); err != nil {
			return nil, fmt.Errorf("mysql listener: %w", err)
		}
		g.closers = append(g.closers, func() { myLn.Close() })
		g.MySQLAddr = myLn.Addr().String()
	}
	publicTunnel := cfg.PublicTunnelAddr
	if publicTunnel == "" {
		publicTunnel = g.TunnelAddr
		if h, _, _ := net.SplitHostPort(g.TunnelAddr); net.ParseIP(h).IsUnspecified() {
			log.Warn("agent DSNs will name an unspecified address; set SLUICE_PUBLIC_TUNNEL_ADDR to the address agents dial", "tunnel", g.TunnelAddr)
		}
	}
	publicPG := cfg.PublicPGAddr
	if publicPG == "" {
		publicPG = g.PGAddr
	}

	tunTLS := g.PKI.ServerTLSConfig()
	if cfg.TunnelPlaintext {
		if !isLoopbackAddr(g.TunnelAddr) {
			return nil, errors.New("a plaintext tunnel is allowed on loopback only")
		}
		tunTLS = nil
	}
	tun, err := grpctun.NewServer(grpctun.ServerConfig{
		Verifier: g.Auth.VerifyAgent,
		OnTunnel: g.Hub.Register,
		TLS:      tunTLS,
		Logger:   log,
		OnRTT:    tm.observe,
	})
	if err != nil {
		return nil, fmt.Errorf("tunnel server: %w", err)
	}
	g.closers = append(g.closers, tun.Close)
	// QUIC (quic:// agent DSNs) on the same port over UDP; always TLS 1.3.
	qtun, err := quictun.NewServer(quictun.ServerConfig{
		Verifier: g.Auth.VerifyAgent,
		OnTunnel: g.Hub.Register,
		TLS:      g.PKI.ServerTLSConfig(), // NewServer sets ALPN and TLS 1.3
		Logger:   log,
		OnRTT:    tm.observe,
	})
	if err != nil {
		return nil, fmt.Errorf("quic tunnel server: %w", err)
	}
	g.closers = append(g.closers, qtun.Close)

	pgCfg := cfg.Postgres
	if pgCfg.MaxMessage == 0 {
		pgCfg = postgres.DefaultConfig()
	}
	pgCfg.Logger = log.With("protocol", "postgres")
	pgCfg.TLS = g.PKI.ServerTLSConfig()
	pgCfg.AllowPlaintextPassword = isLoopbackAddr(g.PGAddr)
	pgCfg.Metrics = postgres.NewMetrics(g.Registry, "gateway")
	pgCfg.Sessions = g.Sessions
	// Audit, recordings and statement reviews run in the gateway.
	pgCfg.Reviewer = cp.Reviews
	pgCfg.Statements = cp.Statements
	if cp.Recorder != nil {
		pgCfg.Recorder = audit.NewRecorder(cp.Recorder)
	}
	dispatch := resume.NewDispatcher(g.Hub, resume.Options{
		Grace:   cfg.ResumeGrace,
		Logger:  log,
		Metrics: resume.NewMetrics(g.Registry, "gateway"),
	})
	front, err := postgres.NewFrontend(pgCfg, g.Auth, g.Auth, sink, dispatch)
	if err != nil {
		return nil, err
	}

	var myFront *mysql.Frontend
	if myLn != nil {
		myCfg := cfg.MySQL
		if myCfg.MaxMessage == 0 {
			myCfg = mysql.DefaultConfig()
		}
		myCfg.Logger = log.With("protocol", "mysql")
		myCfg.TLS = g.PKI.ServerTLSConfig()
		myCfg.AllowPlaintextPassword = isLoopbackAddr(g.MySQLAddr)
		myCfg.Metrics = mysql.NewMetrics(g.Registry, "gateway")
		myCfg.Sessions = g.Sessions
		if myFront, err = mysql.NewFrontend(myCfg, g.Auth, g.Auth, sink, dispatch); err != nil {
			return nil, err
		}
	}

	var recs api.Recordings
	if cp.Recorder != nil {
		recs = recordings{cp.Blobs, cp.Manifest}
	}
	apiSrv, err := api.New(api.Config{
		Recordings:       recs,
		Store:            st,
		Clock:            time.Now,
		TunnelAddr:       publicTunnel,
		TunnelTLS:        !cfg.TunnelPlaintext,
		CAFingerprint:    g.PKI.CAFingerprint(),
		CAPEM:            g.PKI.CAPEM(),
		PGAddr:           publicPG,
		Agents:           agentLinks{g.Hub, dispatch},
		Login:            cp.Auth.LoginFrom,
		RateLimited:      auth.ErrRateLimited,
		IssueToken:       cp.Auth.IssueNamedToken,
		Revoker:          cp.Auth,
		HoursValidator:   auth.ValidateHours,
		Killer:           g.Sessions,
		Decider:          cp.Reviews,
		Redeliverer:      redeliverer{cp.Webhooks},
		WebhookAllowHTTP: cfg.WebhookAllowHTTP,
		Logger:           log,
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	httpSrv := &http.Server{Handler: metricsHandler(g.Registry, apiSrv.Handler()), ReadHeaderTimeout: 10 * time.Second}
	g.closers = append(g.closers, func() {
		sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		httpSrv.Shutdown(sctx)
	})

	g.goServe("api", func() error {
		if err := httpSrv.Serve(apiLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.goServe("tunnel", func() error { return tun.Serve(tunLn) })
	g.goServe("quic tunnel", func() error { return qtun.Serve(tunPC) })
	g.goClients("postgres", front.Drain, func() error { return front.Serve(ctx, pgLn) })
	if myFront != nil {
		g.goClients("mysql", myFront.Drain, func() error { return myFront.Serve(ctx, myLn) })
	}
	log.Info("gateway started", "api", g.APIAddr, "tunnel", g.TunnelAddr, "postgres", g.PGAddr, "mysql", g.MySQLAddr, "data_dir", cfg.DataDir)
	return g, nil
}

// listenTunnel binds addr on TCP (gRPC) and the same port on UDP (QUIC).
// With port 0 it retries until it finds a port free on both.
func listenTunnel(addr string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel listener: %w", err)
	}
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("tunnel listener: %w", err)
		}
		_, bound, _ := net.SplitHostPort(ln.Addr().String())
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, bound))
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if port != "0" || try == 9 {
			return nil, nil, fmt.Errorf("tunnel listener (udp, for quic): %w", err)
		}
	}
}

func (g *Gateway) goServe(name string, serve func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := serve(); err != nil {
			select {
			case g.errc <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// goClients serves a client listener whose sessions Shutdown drains.
func (g *Gateway) goClients(name string, drain func(), serve func() error) {
	done := make(chan struct{})
	g.drains = append(g.drains, drain)
	g.served = append(g.served, done)
	g.goServe(name, func() error {
		defer close(done)
		return serve()
	})
}

// Shutdown drains the gateway: it stops accepting clients, lets running
// sessions finish for up to timeout, then ends the rest with a native
// "shutting down" error and closes everything (Close).
func (g *Gateway) Shutdown(timeout time.Duration) {
	for _, d := range g.drains {
		d()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, done := range g.served {
		select {
		case <-done:
		case <-deadline.C:
			g.Close()
			return
		}
	}
	g.Close()
}

// Err delivers the first listener failure.
func (g *Gateway) Err() <-chan error { return g.errc }

// Close stops every listener, ends sessions and flushes the audit sink.
func (g *Gateway) Close() {
	g.once.Do(func() {
		g.cancel()
		// Sessions end first, while the tunnels still carry their close to
		// the agents (else agents hold upstream connections for the resume
		// grace); bounded, then everything else closes.
		for _, d := range g.drains {
			d()
		}
		bound := time.NewTimer(10 * time.Second)
		defer bound.Stop()
	wait:
		for _, done := range g.served {
			select {
			case <-done:
			case <-bound.C:
				break wait
			}
		}
		for i := len(g.closers) - 1; i >= 0; i-- {
			g.closers[i]()
		}
		g.wg.Wait() // the listeners' serve loops wait for their sessions
		for _, f := range g.finals {
			f()
		}
	})
}

// AdminToken reads the bootstrap admin token from the data dir.
func (g *Gateway) AdminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(g.DataDir, "admin.token"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// agentLinks is the API's view of agent tunnels: disconnecting an agent (key
// revoked) also ends its sessions at once rather than after the resume grace.
type agentLinks struct {
	hub      *transport.Hub
	dispatch *resume.Dispatcher
}

func (a agentLinks) Online(name string) bool { return a.hub.Online(name) }

func (a agentLinks) Disconnect(name string) {
	a.hub.Disconnect(name) // first: no session can open on it after EndAgent
	a.dispatch.EndAgent(name, "agent "+name+" was removed or its key revoked")
}
