package store

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-gw/sluice/engine"
)

// ErrNotFound is returned (possibly wrapped) when a named record does not
// exist. Test for it with errors.Is.
var ErrNotFound = errors.New("not found")

// User is a Sluice user. PasswordHash is a bcrypt hash, empty when the user
// cannot log in with a password.
type User struct {
	Name         string
	PasswordHash string
	Groups       []string
	CreatedAt    time.Time
}

// Token is an access token. Only the sha256 (hex) of the secret is stored.
type Token struct {
	ID        string
	UserName  string
	Hash      string
	ExpiresAt time.Time
	CreatedAt time.Time
	Revoked   bool
}

// Agent is a registered agent. KeyHash is the sha256 (hex) of its key.
type Agent struct {
	Name      string
	KeyHash   string
	CreatedAt time.Time
}

// Connection is a target published through an agent.
type Connection struct {
	Name   string
	Agent  string
	Type   string // protocol name, e.g. "postgres"
	Target string // target reference, resolved by the agent only
	// Policy holds the connection's guardrails and masking; the zero value
	// means none. Backends store it as given (callers validate it) and
	// return a deep copy.
	Policy    engine.Policy
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Session is the stored audit record of one client session; it mirrors
// engine.SessionRecord.
type Session struct {
	ID         string
	User       string
	Connection string
	Protocol   string
	ClientAddr string
	Start      time.Time
	End        time.Time // zero while running
	BytesIn    int64
	BytesOut   int64
	Outcome    string
	Error      string
	Denials    int64
	LastDenial string
}

// Store is the control plane's state.
//
// Contract, common to every backend:
//   - All methods are safe for concurrent use by many goroutines (and, for
//     shared backends, by many gateway replicas).
//   - Get and Delete of a missing record return an error wrapping ErrNotFound.
//   - Put* are upserts keyed by Name. On update, CreatedAt keeps its stored
//     value whatever the argument holds; on insert a zero CreatedAt is stored
//     as given (callers set it from their clock).
//   - List* return records ordered by name (sessions: newest Start first);
//     with nothing to list they return an empty, non-nil slice.
//   - Returned times are in UTC; zero times round-trip as zero.
//   - Returned slices and records are owned by the caller.
//   - DeleteUser deletes the user's tokens in the same transaction.
//   - Deleting an agent leaves its connections in place (they go offline).
//   - Close releases the backend; no method may be called afterwards.
type Store interface {
	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error

	PutUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, name string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	DeleteUser(ctx context.Context, name string) error

	// CreateToken inserts t; a duplicate ID or Hash is an error.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose Hash is hash, revoked or not.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// ListTokens returns user's tokens, oldest first.
	ListTokens(ctx context.Context, user string) ([]Token, error)
	RevokeToken(ctx context.Context, id string) error

	PutAgent(ctx context.Context, a Agent) error
	GetAgent(ctx context.Context, name string) (Agent, error)
	ListAgents(ctx context.Context) ([]Agent, error)
	DeleteAgent(ctx context.Context, name string) error

	PutConnection(ctx context.Context, c Connection) error
	GetConnection(ctx context.Context, name string) (Connection, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	DeleteConnection(ctx context.Context, name string) error

	// WriteSessions upserts a batch of sessions by ID in one transaction
	// (group commit): a later record for the same ID replaces the earlier.
	WriteSessions(ctx context.Context, batch []Session) error
	// ListSessions returns up to limit sessions, newest Start first.
	ListSessions(ctx context.Context, limit int) ([]Session, error)
}
