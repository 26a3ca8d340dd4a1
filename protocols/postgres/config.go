package postgres

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/sluice-gw/sluice/engine"
)

// Config is shared by the gateway and agent sides.
type Config struct {
	// MaxMessage caps one message's length word, in both directions. Messages
	// nobody inspects stream through in pieces, so the cap costs no memory.
	MaxMessage int
	// MaxInspect caps a message the agent must hold whole to apply a policy
	// (a statement for guardrails, a row for masking). Larger ones fail
	// closed with a native error.
	MaxInspect int
	// HashKey seeds the deterministic "hash" masking style (agent side).
	HashKey []byte
	// StartupTimeout bounds the time from accept to an authenticated,
	// dispatched session (slowloris guard).
	StartupTimeout time.Duration
	// ConnectTimeout bounds the agent's upstream dial and login.
	ConnectTimeout time.Duration
	// BufferSize is the relay buffer per direction.
	BufferSize int
	// TLS, when set, answers SSLRequest with TLS (gateway side).
	TLS *tls.Config
	// AllowPlaintextPassword lets clients send their token without TLS; set
	// only for loopback listeners.
	AllowPlaintextPassword bool
	Logger                 *slog.Logger
	// Metrics receives this side's series; nil keeps them unregistered.
	Metrics *Metrics
	// Sessions, when set, tracks the gateway's live sessions so the control
	// plane can end them (gateway side).
	Sessions *engine.Sessions
	// Reviewer, when set, holds sessions whose plan requires an approval
	// (Plan.RequireReview) before dispatch, and statements whose kind is in
	// Plan.ReviewStatements before they are forwarded (gateway side). A plan
	// that asks for reviews on a gateway without one is refused.
	Reviewer engine.Reviewer
	// Statements, when set, receives one record per statement: simple
	// Query, extended-protocol Execute, FunctionCall (gateway side).
	Statements engine.StatementSink
	// Recorder, when set, records every session's traffic as the gateway
	// forwards it (gateway side). A recording that cannot start refuses the
	// session; one that fails ends it.
	Recorder engine.Recorder
	// EndWait bounds how long the agent waits, after the upstream ended, for
	// the gateway to read everything and close (agent side; default 10 s).
	// With session resumption it must outlast the grace period.
	EndWait time.Duration
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		MaxMessage:     256 << 20,
		MaxInspect:     64 << 20,
		StartupTimeout: 10 * time.Second,
		ConnectTimeout: 15 * time.Second,
		BufferSize:     64 << 10,
		Logger:         slog.Default(),
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.MaxMessage < 1<<10:
		return errors.New("postgres: MaxMessage must be at least 1 KiB")
	case c.MaxInspect < 1<<10:
		return errors.New("postgres: MaxInspect must be at least 1 KiB")
	case c.BufferSize < 4<<10:
		return errors.New("postgres: BufferSize must be at least 4 KiB")
	case c.StartupTimeout <= 0 || c.ConnectTimeout <= 0:
		return errors.New("postgres: timeouts must be positive")
	case c.Logger == nil:
		return errors.New("postgres: Logger is required")
	}
	return nil
}
