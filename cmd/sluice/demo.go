package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-gw/sluice/internal/server"
)

// runDemo runs `sluice demo` (what `make demo` starts).
func runDemo(args []string) error {
	cfg := server.DemoConfig{Gateway: server.DefaultGatewayConfig(), Out: os.Stdout, Binary: os.Args[0]}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&cfg.Gateway.APIAddr, "api-addr", envDefault("SLUICE_API_ADDR", cfg.Gateway.APIAddr), "REST API listen address")
	fs.StringVar(&cfg.Gateway.TunnelAddr, "tunnel-addr", envDefault("SLUICE_TUNNEL_ADDR", cfg.Gateway.TunnelAddr), "agent tunnel listen address")
	fs.StringVar(&cfg.Gateway.PGAddr, "pg-addr", envDefault("SLUICE_PG_ADDR", cfg.Gateway.PGAddr), "PostgreSQL listen address")
	fs.StringVar(&cfg.Gateway.MySQLAddr, "mysql-addr", envDefault("SLUICE_MYSQL_ADDR", cfg.Gateway.MySQLAddr), "MySQL listen address (empty: none)")
	fs.StringVar(&cfg.MariaDBBinDir, "mariadb-bin-dir", "", "look for mariadbd and mariadb-install-db only here (default: $PATH, /usr/sbin); without them the demo runs without mysql-demo")
	fs.BoolVar(&cfg.Check, "check", false, "run one query through the gateway and exit")
	level := fs.String("log-level", envDefault("SLUICE_LOG_LEVEL", "warn"), "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return server.RunDemo(ctx, cfg)
}
