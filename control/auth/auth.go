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

// Options configures a Service. Zero values take the defaults.
type Options struct {
	Clock  func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()

	// DefaultTTL is the lifetime of a token issued with ttl 0; default 12h.
	DefaultTTL time.Duration
	// MaxTTL is the longest lifetime IssueToken and Login grant; a longer
	// ttl is refused with an error wrapping ErrTTLTooLong. Default 7 days.
	// (Bootstrap's admin token is exempt: it is written to a 0600 file on
	// the gateway host for the first login only.)
	MaxTTL time.Duration

	// Sessions is the gateway's live-session registry: RevokeToken and
	// RevokeUserTokens end the sessions the revoked tokens opened. nil: only
	// the store is changed.
	Sessions *engine.Sessions

	// UserLimit and AddrLimit bound failed logins per user name and per
	// client address (IPv6: per /64). Zero values take DefaultUserLimit
	// and DefaultAddrLimit; Failures < 0 disables a limit.
	UserLimit Limit
	AddrLimit Limit
	// MaxTrackedKeys bounds each limiter's memory: beyond it the least
	// recently used key is forgotten. Default DefaultMaxTrackedKeys.
	MaxTrackedKeys int
}

// Token lifetimes.
const (
	DefaultTokenTTL = 12 * time.Hour
	MaxTokenTTL     = 7 * 24 * time.Hour
	// MaxTokenNameLen bounds a token's label.
	MaxTokenNameLen = 64
)

// Service authenticates users and agents and authorises sessions against a
// store. It is safe for concurrent use.
type Service struct {
	store store.Store
	now   func() time.Time
	log   *slog.Logger
	opts  Options

	userLimit, addrLimit *limiter

	// dummyHash is compared against when a login names an unknown user, so
	// that the answer takes as long as for a known one.
	dummyOnce sync.Once
	dummyHash string

	// hours caches parsed rule hours by spec (bounded: reset when full).
	hoursMu sync.Mutex
	hours   map[string]hoursEntry
}

type hoursEntry struct {
	h   Hours
	err error
}

const maxCachedHours = 256

var (
	_ engine.Authenticator    = (*Service)(nil)
	_ engine.Authorizer       = (*Service)(nil)
	_ transport.AgentVerifier = (*Service)(nil).VerifyAgent
)

// New returns a Service over st with default Options. now is the clock
// (nil: time.Now); log may be nil (slog.Default).
func New(st store.Store, now func() time.Time, log *slog.Logger) *Service {
	return NewService(st, Options{Clock: now, Logger: log})
}

// NewService returns a Service over st.
func NewService(st store.Store, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = DefaultTokenTTL
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = MaxTokenTTL
	}
	if opts.DefaultTTL > opts.MaxTTL {
		opts.DefaultTTL = opts.MaxTTL
	}
	if opts.UserLimit == (Limit{}) {
		opts.UserLimit = DefaultUserLimit
	}
	if opts.AddrLimit == (Limit{}) {
		opts.AddrLimit = DefaultAddrLimit
	}
	return &Service{
		store:     st,
		now:       opts.Clock,
		log:       opts.Logger,
		opts:      opts,
		userLimit: newLimiter(opts.UserLimit, opts.MaxTrackedKeys, opts.Clock),
		addrLimit: newLimiter(opts.AddrLimit, opts.MaxTrackedKeys, opts.Clock),
		hours:     map[string]hoursEntry{},
	}
}

// TokenTTLs returns the default and the maximum token lifetime.
func (s *Service) TokenTTLs() (def, max time.Duration) { return s.opts.DefaultTTL, s.opts.MaxTTL }

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
