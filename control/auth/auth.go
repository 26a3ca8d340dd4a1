package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/transport"
)

// Service authenticates users and agents and authorises sessions against a
// store. It is safe for concurrent use.
type Service struct {
	store store.Store
	now   func() time.Time
	log   *slog.Logger

	// dummyHash is compared against when a login names an unknown user, so
	// that the answer takes as long as for a known one.
	dummyOnce sync.Once
	dummyHash string
}

var (
	_ engine.Authenticator    = (*Service)(nil)
	_ engine.Authorizer       = (*Service)(nil)
	_ transport.AgentVerifier = (*Service)(nil).VerifyAgent
)

// New returns a Service over st. now is the clock (nil: time.Now); log may be
// nil (slog.Default).
func New(st store.Store, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: st, now: now, log: log}
}

func authFailed(user string, cause error) *engine.Error {
	return &engine.Error{
		Code:    engine.CodeAuthFailed,
		Message: fmt.Sprintf("password authentication failed for user %q", user),
		Err:     cause,
	}
}

func internal(what string, err error) *engine.Error {
	return &engine.Error{Code: engine.CodeInternal, Message: "internal error", Err: fmt.Errorf("%s: %w", what, err)}
}

// Identify resolves an access token to the identity of its user. Failures
// are *engine.Error: CodeAuthFailed for a bad token (the message names no
// user), CodeInternal when the store fails.
func (s *Service) Identify(ctx context.Context, token string) (engine.Identity, error) {
	id, err := s.identify(ctx, token)
	if err != nil {
		var e *engine.Error
		if errors.As(err, &e) && e.Code == engine.CodeAuthFailed {
			e.Message = "invalid or expired token"
		}
		return engine.Identity{}, err
	}
	return id, nil
}

// Authenticate implements engine.Authenticator: secret must be a live access
// token of user.
func (s *Service) Authenticate(ctx context.Context, user, secret string) (engine.Identity, error) {
	id, err := s.identify(ctx, secret)
	if err != nil {
		var e *engine.Error
		if errors.As(err, &e) && e.Code == engine.CodeAuthFailed {
			e.Message = authFailed(user, nil).Message
		}
		return engine.Identity{}, err
	}
	if id.User != user {
		return engine.Identity{}, authFailed(user, fmt.Errorf("token of %q presented for %q", id.User, user))
	}
	return id, nil
}

func (s *Service) identify(ctx context.Context, token string) (engine.Identity, error) {
	if !LooksLikeToken(token) {
		return engine.Identity{}, authFailed("", errors.New("malformed token"))
	}
	t, err := s.store.TokenByHash(ctx, Hash(token))
	if errors.Is(err, store.ErrNotFound) {
		return engine.Identity{}, authFailed("", errors.New("unknown token"))
	}
	if err != nil {
		return engine.Identity{}, internal("look up token", err)
	}
	switch {
	case t.Revoked:
		return engine.Identity{}, authFailed("", fmt.Errorf("token %s revoked", t.ID))
	case !s.now().Before(t.ExpiresAt):
		return engine.Identity{}, authFailed("", fmt.Errorf("token %s expired", t.ID))
	}
	u, err := s.store.GetUser(ctx, t.UserName)
	if errors.Is(err, store.ErrNotFound) {
		return engine.Identity{}, authFailed("", fmt.Errorf("token %s: user %q gone", t.ID, t.UserName))
	}
	if err != nil {
		return engine.Identity{}, internal("look up user", err)
	}
	return engine.Identity{User: u.Name, Groups: slices.Clone(u.Groups), TokenID: t.ID}, nil
}

// Authorize implements engine.Authorizer. For now every authenticated user
// may use every connection; access rules come later and will narrow this.
func (s *Service) Authorize(ctx context.Context, id engine.Identity, connection, protocol string) (*engine.Plan, error) {
	c, err := s.store.GetConnection(ctx, connection)
	if errors.Is(err, store.ErrNotFound) {
		return nil, engine.Errorf(engine.CodeUnknownConnection, "connection \"%s\" does not exist", connection)
	}
	if err != nil {
		return nil, internal("look up connection", err)
	}
	if c.Type != protocol {
		return nil, engine.Errorf(engine.CodeUnknownConnection,
			"connection \"%s\" is a %s connection, not %s", connection, c.Type, protocol)
	}
	// The connection is read per session, so a policy change applies to the
	// next session without a restart.
	return &engine.Plan{Connection: c.Name, Protocol: c.Type, Agent: c.Agent, Target: c.Target, Policy: c.Policy}, nil
}

// ErrAgentDenied is returned (wrapped) by VerifyAgent for an unknown agent or
// a wrong key; other errors are store failures.
var ErrAgentDenied = errors.New("agent authentication failed")

// VerifyAgent has the shape of transport.AgentVerifier: it accepts name only
// with its current key, comparing hashes in constant time.
func (s *Service) VerifyAgent(ctx context.Context, name, key string) error {
	a, err := s.store.GetAgent(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("agent %q: %w", name, ErrAgentDenied)
	}
	if err != nil {
		return fmt.Errorf("verify agent %q: %w", name, err)
	}
	if !hashEqual(Hash(key), a.KeyHash) {
		return fmt.Errorf("agent %q: %w", name, ErrAgentDenied)
	}
	return nil
}

// IssueToken creates an access token for user, valid for ttl, and returns
// the secret (shown once) with its stored record.
func (s *Service) IssueToken(ctx context.Context, user string, ttl time.Duration) (string, store.Token, error) {
	if ttl <= 0 {
		return "", store.Token{}, fmt.Errorf("issue token for %s: ttl %v must be positive", user, ttl)
	}
	secret, err := NewToken()
	if err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	id, err := newID()
	if err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	now := s.now().UTC()
	t := store.Token{ID: id, UserName: user, Hash: Hash(secret), ExpiresAt: now.Add(ttl), CreatedAt: now}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	return secret, t, nil
}

// ErrBadLogin is returned (wrapped) by Login for an unknown user, a wrong
// password, or a user who has no password.
var ErrBadLogin = errors.New("invalid user or password")

// Login checks user's password and issues a token valid for ttl.
func (s *Service) Login(ctx context.Context, user, password string, ttl time.Duration) (string, store.Token, error) {
	u, err := s.store.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		s.dummyOnce.Do(func() { s.dummyHash, _ = HashPassword("sluice-dummy-password") })
		CheckPassword(s.dummyHash, password)
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, ErrBadLogin)
	}
	if err != nil {
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, err)
	}
	if !CheckPassword(u.PasswordHash, password) {
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, ErrBadLogin)
	}
	return s.IssueToken(ctx, u.Name, ttl)
}
