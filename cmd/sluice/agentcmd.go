package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-gw/sluice/internal/server"
)

// runAgent runs `sluice agent` with the key DSN from SLUICE_KEY.
func runAgent(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	level := fs.String("log-level", envDefault("SLUICE_LOG_LEVEL", "info"), "debug, info, warn or error (SLUICE_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return usagef("agent: %v", err)
	}
	dsn := os.Getenv("SLUICE_KEY")
	if dsn == "" {
		return errors.New("agent: SLUICE_KEY is not set (the DSN printed by `sluice admin create agent NAME`)")
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	a, err := server.NewAgent(server.AgentConfig{DSN: dsn, Logger: log, Version: version})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}
