package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-gw/sluice/internal/server"
	"github.com/sluice-gw/sluice/protocols/postgres"
)

// runAgent runs `sluice agent` with the key DSN from SLUICE_KEY.
func runAgent(args []string) error {
	// Catch signals first: one arriving during start-up must still stop us cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-addr", envDefault("SLUICE_METRICS_ADDR", "127.0.0.1:9090"), "Prometheus /metrics listen address, or off (SLUICE_METRICS_ADDR)")
	maxMsg := fs.Int("pg-max-message", envInt("SLUICE_PG_MAX_MESSAGE", postgres.DefaultConfig().MaxMessage), "largest Postgres message in bytes (SLUICE_PG_MAX_MESSAGE)")
	level := fs.String("log-level", envDefault("SLUICE_LOG_LEVEL", "info"), "debug, info, warn or error (SLUICE_LOG_LEVEL)")
	drain := fs.Duration("drain-timeout", envDuration("SLUICE_DRAIN_TIMEOUT", 30*time.Second), "on SIGTERM, how long running sessions may finish before they are ended (SLUICE_DRAIN_TIMEOUT)")
	grace := fs.Duration("resume-grace", envDuration("SLUICE_RESUME_GRACE", 30*time.Second), "how long sessions wait for the tunnel to come back; match the gateway's (SLUICE_RESUME_GRACE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dsn := os.Getenv("SLUICE_KEY")
	if dsn == "" {
		return errors.New("agent: SLUICE_KEY is not set (the DSN printed by `sluice admin create agent NAME`)")
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	reg := server.NewAgentRegistry()
	cfg := server.AgentConfig{DSN: dsn, Logger: log, Version: version, Postgres: postgres.DefaultConfig(), Registry: reg, ResumeGrace: *grace}
	cfg.Postgres.MaxMessage = *maxMsg
	a, err := server.NewAgent(cfg)
	if err != nil {
		return err
	}
	if *metricsAddr != "off" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener (SLUICE_METRICS_ADDR): %w", err)
		}
		srv := &http.Server{Handler: server.MetricsHandler(reg), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("agent metrics", "addr", ln.Addr().String())
	}
	// The tunnel and sessions run on their own context: a signal drains
	// them first.
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(runCtx) }()
	select {
	case err := <-ran:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process at once
	log.Info("shutting down: no new sessions; waiting for running ones", "drain_timeout", *drain)
	a.Shutdown(*drain)
	cancel()
	return <-ran
}
