package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-gw/sluice/internal/server"
)

// envDefault returns $name, or def when it is unset or empty.
func envDefault(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newLogger builds the process logger; SLUICE_LOG_LEVEL picks the level.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// runGateway runs `sluice gateway`: flags override the SLUICE_* environment.
func runGateway(args []string) error {
	// Catch signals first: one arriving during start-up must still stop us cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := server.DefaultGatewayConfig()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", envDefault("SLUICE_DATA_DIR", cfg.DataDir), "data directory: store, CA, admin.token (SLUICE_DATA_DIR)")
	fs.StringVar(&cfg.APIAddr, "api-addr", envDefault("SLUICE_API_ADDR", cfg.APIAddr), "REST API listen address (SLUICE_API_ADDR)")
	fs.StringVar(&cfg.TunnelAddr, "tunnel-addr", envDefault("SLUICE_TUNNEL_ADDR", cfg.TunnelAddr), "agent tunnel listen address (SLUICE_TUNNEL_ADDR)")
	fs.StringVar(&cfg.PGAddr, "pg-addr", envDefault("SLUICE_PG_ADDR", cfg.PGAddr), "PostgreSQL listen address (SLUICE_PG_ADDR)")
	fs.StringVar(&cfg.MySQLAddr, "mysql-addr", envDefault("SLUICE_MYSQL_ADDR", cfg.MySQLAddr), "MySQL listen address (SLUICE_MYSQL_ADDR; empty: no MySQL listener)")
	fs.StringVar(&cfg.PublicTunnelAddr, "public-tunnel-addr", os.Getenv("SLUICE_PUBLIC_TUNNEL_ADDR"), "tunnel address agents dial, put in agent DSNs (SLUICE_PUBLIC_TUNNEL_ADDR; default: the listen address)")
	fs.StringVar(&cfg.PublicPGAddr, "public-pg-addr", os.Getenv("SLUICE_PUBLIC_PG_ADDR"), "PostgreSQL address users dial (SLUICE_PUBLIC_PG_ADDR; default: the listen address)")
	tlsHosts := fs.String("tls-hosts", os.Getenv("SLUICE_TLS_HOSTS"), "extra comma-separated names/IPs for the server certificate (SLUICE_TLS_HOSTS)")
	plain := fs.Bool("tunnel-plaintext", os.Getenv("SLUICE_TUNNEL_PLAINTEXT") == "1", "serve the tunnel without TLS, loopback only (SLUICE_TUNNEL_PLAINTEXT=1)")
	maxMsg := fs.Int("pg-max-message", envInt("SLUICE_PG_MAX_MESSAGE", cfg.Postgres.MaxMessage), "largest Postgres message in bytes (SLUICE_PG_MAX_MESSAGE)")
	level := fs.String("log-level", envDefault("SLUICE_LOG_LEVEL", "info"), "debug, info, warn or error (SLUICE_LOG_LEVEL)")
	drain := fs.Duration("drain-timeout", envDuration("SLUICE_DRAIN_TIMEOUT", 30*time.Second), "on SIGTERM, how long running sessions may finish before they are ended (SLUICE_DRAIN_TIMEOUT)")
	fs.StringVar(&cfg.Store, "store", os.Getenv("SLUICE_STORE"), "control-plane store: empty for SQLite in the data dir, or a postgres:// URL several gateways share (SLUICE_STORE)")
	fs.StringVar(&cfg.Recordings, "recordings", os.Getenv("SLUICE_RECORDINGS"), "where session recordings go: a directory, file://DIR or s3://BUCKET/PREFIX?endpoint=HOST&region=R (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); default DATA_DIR/recordings; off: none (SLUICE_RECORDINGS)")
	fs.Int64Var(&cfg.RecordingSpool, "recording-spool", int64(envInt("SLUICE_RECORDING_SPOOL", 64<<20)), "bytes of recordings held in memory before they are written, across all sessions; above 3/4 of it new sessions are refused (SLUICE_RECORDING_SPOOL)")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", envDuration("SLUICE_TOKEN_TTL", 12*time.Hour), "lifetime of access tokens issued without one (SLUICE_TOKEN_TTL)")
	fs.DurationVar(&cfg.TokenMaxTTL, "token-max-ttl", envDuration("SLUICE_TOKEN_MAX_TTL", 7*24*time.Hour), "longest access-token lifetime granted (SLUICE_TOKEN_MAX_TTL)")
	fs.DurationVar(&cfg.ReviewTimeout, "review-timeout", envDuration("SLUICE_REVIEW_TIMEOUT", 5*time.Minute), "how long a just-in-time review may stay pending (SLUICE_REVIEW_TIMEOUT)")
	fs.DurationVar(&cfg.ResumeGrace, "resume-grace", envDuration("SLUICE_RESUME_GRACE", 30*time.Second), "how long a session waits for its agent's tunnel to come back; negative: off (SLUICE_RESUME_GRACE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	if *tlsHosts != "" {
		cfg.TLSHosts = strings.Split(*tlsHosts, ",")
	}
	cfg.TunnelPlaintext = *plain
	cfg.Postgres.MaxMessage = *maxMsg
	cfg.Logger = log

	// Sessions get their own context: a signal drains them (Shutdown), it
	// does not cut them.
	g, err := server.StartGateway(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	select {
	case <-ctx.Done():
		stop() // a second signal kills the process at once
		log.Info("shutting down: no new sessions; waiting for running ones", "drain_timeout", *drain)
		g.Shutdown(*drain)
		return nil
	case err := <-g.Err():
		return err
	}
}

// envDuration reads a Go duration ("30s", "2m") from $name, or def.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// parseFlags parses a server command's flags: -h prints the flags and exits
// 0, a bad flag is a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errFlagHelp
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
