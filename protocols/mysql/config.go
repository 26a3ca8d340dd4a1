package mysql

import (
	"crypto/tls"
	"errors"
	"github.com/sluice-gw/sluice/engine"
	"log/slog"
	"time"
)

// Name is the protocol's name in headers, plans and connection types.
const Name = "mysql"

// Config is shared by the gateway and agent sides.
type Config struct {
	// MaxMessage caps one logical packet (all its 16 MiB continuation parts
	// together), in both directions. Packets nobody inspects stream through.
	MaxMessage int
	// MaxInspect caps a packet the agent must hold whole to apply a policy (a
	// statement for guardrails, a row for masking).
	MaxInspect int
	// HashKey seeds the deterministic "hash" masking style (agent side).
	HashKey []byte
	// StartupTimeout bounds accept to dispatched session (slowloris guard).
	StartupTimeout time.Duration
	// ConnectTimeout bounds the agent's upstream dial and login.
	ConnectTimeout time.Duration
	// BufferSize is the relay buffer per direction.
	BufferSize int
	// TLS, when set, is offered to clients (CLIENT_SSL) on the gateway side.
	TLS *tls.Config
	// AllowPlaintextPassword lets clients send their token without TLS; set
	// only for loopback listeners.
	AllowPlaintextPassword bool
	// ServerVersion is the version string in the gateway's greeting.
	ServerVersion string
	Logger        *slog.Logger
	Metrics       *Metrics
	// Sessions, when set, tracks the gateway's live sessions so the control
	// plane can end them (gateway side).
	Sessions *engine.Sessions
	// EndWait bounds how long the agent waits, after the upstream ended, for
	// the gateway to close (agent side; default 10 s).
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
		ServerVersion:  "8.0.0-sluice",
		Logger:         slog.Default(),
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.MaxMessage < 1<<10:
		return errors.New("mysql: MaxMessage must be at least 1 KiB")
	case c.MaxInspect < 1<<10:
		return errors.New("mysql: MaxInspect must be at least 1 KiB")
	case c.BufferSize < 4<<10:
		return errors.New("mysql: BufferSize must be at least 4 KiB")
	case c.StartupTimeout <= 0 || c.ConnectTimeout <= 0:
		return errors.New("mysql: timeouts must be positive")
	case c.Logger == nil:
		return errors.New("mysql: Logger is required")
	}
	if c.ServerVersion == "" {
		c.ServerVersion = "8.0.0-sluice"
	}
	return nil
}
