package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/agent"
	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/protocols/postgres"
	"github.com/sluice-gw/sluice/transport"
	grpctun "github.com/sluice-gw/sluice/transport/grpc"
)

// AgentConfig is everything `sluice agent` needs.
type AgentConfig struct {
	DSN      string // SLUICE_KEY
	Postgres postgres.Config
	Logger   *slog.Logger
	Version  string
	OnTunnel func(transport.Tunnel)
	// Registry receives the agent's metrics (nil: unregistered).
	Registry prometheus.Registerer
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
	cc, err := grpctun.ConfigFromDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_KEY: %w", err)
	}
	cc.Logger = log
	cc.AgentVersion = cfg.Version
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
	pg, err := postgres.NewUpstream(pgCfg)
	if err != nil {
		return nil, err
	}
	ups, err := protocols.NewUpstreams(pg)
	if err != nil {
		return nil, err
	}
	return agent.New(agent.Config{
		Name:      dsn.Name,
		Dial:      func(ctx context.Context) (transport.Tunnel, error) { return grpctun.Dial(ctx, cc) },
		Protocols: ups,
		Logger:    log.With("agent", dsn.Name),
		OnTunnel:  cfg.OnTunnel,
		Metrics:   agent.NewMetrics(cfg.Registry),
	})
}

// NewAgentRegistry returns the registry an agent process serves on
// SLUICE_METRICS_ADDR.
func NewAgentRegistry() *prometheus.Registry { return newRegistry() }

// MetricsHandler serves reg on /metrics (and 404 elsewhere).
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return metricsHandler(reg, http.NotFoundHandler())
}
