package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/agent"
	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/protocols/mysql"
	"github.com/sluice-gw/sluice/protocols/postgres"
	"github.com/sluice-gw/sluice/transport"
	grpctun "github.com/sluice-gw/sluice/transport/grpc"
	quictun "github.com/sluice-gw/sluice/transport/quic"
	"github.com/sluice-gw/sluice/transport/resume"
)

// AgentConfig is everything `sluice agent` needs.
type AgentConfig struct {
	DSN      string // SLUICE_KEY
	Postgres postgres.Config
	MySQL    mysql.Config
	Logger   *slog.Logger
	Version  string
	OnTunnel func(transport.Tunnel)
	// Registry receives the agent's metrics (nil: unregistered).
	Registry prometheus.Registerer
	// ResumeGrace is how long sessions wait for the tunnel to come back
	// (SLUICE_RESUME_GRACE; default 30 s; negative: off). It must match
	// the gateway's.
	ResumeGrace time.Duration
}

// NewAgent parses the DSN and builds an agent ready to Run.
func NewAgent(cfg AgentConfig) (*agent.Agent, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dsn, err := transport.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_KEY: %w", err)
	}
	dial, err := tunnelDialer(dsn, log, cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_KEY: %w", err)
	}
	pgCfg := cfg.Postgres
	if pgCfg.MaxMessage == 0 {
		pgCfg = postgres.DefaultConfig()
	}
	pgCfg.Logger = log.With("protocol", "postgres")
	// The "hash" masking style must hash alike in every session of a
	// connection and differently on another installation: key it by the agent key.
	hk := sha256.Sum256([]byte("sluice-mask\x00" + dsn.Key))
	pgCfg.HashKey = hk[:]
	pgCfg.Metrics = postgres.NewMetrics(cfg.Registry, "agent")
	grace := cfg.ResumeGrace
	if grace == 0 {
		grace = resume.DefaultGrace
	}
	if grace > 0 && pgCfg.EndWait < grace+10*time.Second {
		// After the upstream ends, wait for the gateway to read everything
		// even across a tunnel loss.
		pgCfg.EndWait = grace + 10*time.Second
	}
	pg, err := postgres.NewUpstream(pgCfg)
	if err != nil {
		return nil, err
	}
	myCfg := cfg.MySQL
	if myCfg.MaxMessage == 0 {
		myCfg = mysql.DefaultConfig()
	}
	myCfg.Logger = log.With("protocol", "mysql")
	myCfg.HashKey = hk[:]
	if grace > 0 && myCfg.EndWait < grace+10*time.Second {
		myCfg.EndWait = grace + 10*time.Second
	}
	myCfg.Metrics = mysql.NewMetrics(cfg.Registry, "agent")
	my, err := mysql.NewUpstream(myCfg)
	if err != nil {
		return nil, err
	}
	ups, err := protocols.NewUpstreams(pg, my)
	if err != nil {
		return nil, err
	}
	return agent.New(agent.Config{
		Name:      dsn.Name,
		Dial:      dial,
		Protocols: ups,
		Logger:    log.With("agent", dsn.Name),
		OnTunnel:  cfg.OnTunnel,
		Metrics:   agent.NewMetrics(cfg.Registry),
		Resume: resume.NewRegistry(resume.Options{
			Grace:   cfg.ResumeGrace,
			Logger:  log,
			Metrics: resume.NewMetrics(cfg.Registry, "agent"),
		}),
	})
}

// tunnelDialer picks the tunnel transport by the DSN's scheme: quic:// dials
// QUIC, grpc:// and grpcs:// dial gRPC.
func tunnelDialer(dsn transport.DSN, log *slog.Logger, version string) (agent.DialFunc, error) {
	if dsn.Scheme == transport.SchemeQUIC {
		cc, err := quictun.ConfigFromDSN(dsn)
		if err != nil {
			return nil, err
		}
		cc.Logger, cc.AgentVersion = log, version
		return func(ctx context.Context) (transport.Tunnel, error) { return quictun.Dial(ctx, cc) }, nil
	}
	cc, err := grpctun.ConfigFromDSN(dsn)
	if err != nil {
		return nil, err
	}
	cc.Logger, cc.AgentVersion = log, version
	return func(ctx context.Context) (transport.Tunnel, error) { return grpctun.Dial(ctx, cc) }, nil
}

// NewAgentRegistry returns the registry an agent process serves on
// SLUICE_METRICS_ADDR.
func NewAgentRegistry() *prometheus.Registry { return newRegistry() }

// MetricsHandler serves reg on /metrics (and 404 elsewhere).
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return metricsHandler(reg, http.NotFoundHandler())
}
