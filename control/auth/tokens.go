package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// ErrTTLTooLong is wrapped when a token is asked for longer than MaxTTL.
var ErrTTLTooLong = errors.New("token lifetime exceeds the maximum")

// ErrBadTokenName is wrapped when a token's label is too long or not
// printable text.
var ErrBadTokenName = errors.New("invalid token name")

// IssueToken creates an unnamed access token for user: see IssueNamedToken.
func (s *Service) IssueToken(ctx context.Context, user string, ttl time.Duration) (string, store.Token, error) {
	return s.IssueNamedToken(ctx, user, "", ttl)
}

// IssueNamedToken creates an access token for user labelled name ("" allowed;
// at most MaxTokenNameLen bytes of printable text), valid for ttl (0: the
// default TTL; negative is an error; more than the maximum is an error
// wrapping ErrTTLTooLong). It returns the secret, shown once, with its
// stored record. It does not check that user exists.
func (s *Service) IssueNamedToken(ctx context.Context, user, name string, ttl time.Duration) (string, store.Token, error) {
	switch {
	case ttl < 0:
		return "", store.Token{}, fmt.Errorf("issue token for %s: ttl %v must be positive", user, ttl)
	case ttl == 0:
		ttl = s.opts.DefaultTTL
	case ttl > s.opts.MaxTTL:
		return "", store.Token{}, fmt.Errorf("issue token for %s: ttl %v is longer than the maximum of %v: %w", user, ttl, s.opts.MaxTTL, ErrTTLTooLong)
	}
	if err := checkTokenName(name); err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	return s.issue(ctx, user, name, ttl)
}

func checkTokenName(name string) error {
	if len(name) > MaxTokenNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("%w: at most %d bytes of UTF-8 text", ErrBadTokenName, MaxTokenNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %q has a control character", ErrBadTokenName, name)
		}
	}
	return nil
}

// issue stores a new token without checking ttl.
func (s *Service) issue(ctx context.Context, user, name string, ttl time.Duration) (string, store.Token, error) {
	secret, err := NewToken()
	if err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	id, err := newID()
	if err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	now := s.now().UTC()
	t := store.Token{ID: id, UserName: user, Name: name, Hash: Hash(secret), ExpiresAt: now.Add(ttl), CreatedAt: now}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return "", store.Token{}, fmt.Errorf("issue token for %s: %w", user, err)
	}
	return secret, t, nil
}

// ErrBadLogin is returned (wrapped) by Login for an unknown user, a wrong
// password, or a user who has no password.
var ErrBadLogin = errors.New("invalid user or password")

// Login is LoginFrom without a client address: only the per-user limit
// applies.
func (s *Service) Login(ctx context.Context, user, password string, ttl time.Duration) (string, store.Token, error) {
	return s.LoginFrom(ctx, user, password, "", ttl)
}

// LoginFrom checks user's password and issues a token valid for ttl (as
// IssueToken: 0 is the default, over the maximum is refused). addr is the
// client's address ("ip" or "ip:port"; "" for none).
//
// Failed attempts are limited per user name (known or not) and per address
// (Options.UserLimit, AddrLimit). An attempt over either limit is refused
// before the password is looked at, with an error wrapping ErrRateLimited
// (a *RateLimitError with RetryAfter). Every attempt holds a token of both
// buckets while it runs and gives it back if the password was right, so
// successful logins do not count and parallel guesses cannot overrun the
// limit. A wrong password, an unknown user or a user without a password is
// an error wrapping ErrBadLogin, after the same bcrypt work in each case.
func (s *Service) LoginFrom(ctx context.Context, user, password, addr string, ttl time.Duration) (string, store.Token, error) {
	if ttl > s.opts.MaxTTL {
		return "", store.Token{}, fmt.Errorf("login %s: ttl %v is longer than the maximum of %v: %w", user, ttl, s.opts.MaxTTL, ErrTTLTooLong)
	}
	uk, ak := userKey(user), addrKey(addr)
	if wait := s.userLimit.take(uk); wait > 0 {
		s.log.Warn("login refused: too many failures for user", "user", uk, "addr", ak, "retry_after", wait)
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, &RateLimitError{Scope: "user", Wait: wait})
	}
	if wait := s.addrLimit.take(ak); wait > 0 {
		s.userLimit.refund(uk) // this attempt was not made
		s.log.Warn("login refused: too many failures from address", "user", uk, "addr", ak, "retry_after", wait)
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, &RateLimitError{Scope: "address", Wait: wait})
	}
	u, ok, err := s.checkLogin(ctx, user, password)
	if err != nil {
		// A store failure is not the client's fault: give the tokens back.
		s.userLimit.refund(uk)
		s.addrLimit.refund(ak)
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, err)
	}
	if !ok {
		s.log.Info("login failed", "user", uk, "addr", ak)
		return "", store.Token{}, fmt.Errorf("login %s: %w", user, ErrBadLogin)
	}
	s.userLimit.refund(uk)
	s.addrLimit.refund(ak)
	return s.IssueToken(ctx, u.Name, ttl)
}

// checkLogin reports whether password is user's; err is a store failure.
func (s *Service) checkLogin(ctx context.Context, user, password string) (store.User, bool, error) {
	u, err := s.store.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		s.dummyOnce.Do(func() { s.dummyHash, _ = HashPassword("sluice-dummy-password") })
		CheckPassword(s.dummyHash, password)
		return store.User{}, false, nil
	}
	if err != nil {
		return store.User{}, false, err
	}
	if u.PasswordHash == "" {
		s.dummyOnce.Do(func() { s.dummyHash, _ = HashPassword("sluice-dummy-password") })
		CheckPassword(s.dummyHash, password)
		return store.User{}, false, nil
	}
	return u, CheckPassword(u.PasswordHash, password), nil
}

// Causes of sessions ended by revocation: the client sees the message.
var (
	errTokenRevoked = engine.Errorf(engine.CodeSessionEnded, "session ended: its access token was revoked")
)

// RevokeToken revokes the token id in the store and ends the live sessions
// it opened on this gateway (Options.Sessions), with a CodeSessionEnded
// cause. An unknown id is an error wrapping store.ErrNotFound. Sessions on
// other gateway replicas end at their next WatchRevocations pass.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	if err := s.store.RevokeToken(ctx, id); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	n := s.endSessions(s.opts.Sessions, map[string]bool{id: true})
	s.log.Info("token revoked", "token_id", id, "sessions_ended", n)
	return nil
}

// RevokeUserTokens revokes every live (unrevoked) token of user and ends the
// sessions they opened on this gateway. It returns how many tokens it
// revoked; a user without tokens is not an error.
func (s *Service) RevokeUserTokens(ctx context.Context, user string) (int, error) {
	toks, err := s.store.ListTokens(ctx, user)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of %s: %w", user, err)
	}
	ids := map[string]bool{}
	for _, t := range toks {
		if t.Revoked {
			continue
		}
		if err := s.store.RevokeToken(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			// Already revoked ones stay revoked: end their sessions anyway.
			n := s.endSessions(s.opts.Sessions, ids)
			return len(ids), fmt.Errorf("revoke tokens of %s: %w (revoked %d, ended %d sessions)", user, err, len(ids), n)
		}
		ids[t.ID] = true
	}
	n := s.endSessions(s.opts.Sessions, ids)
	s.log.Info("user's tokens revoked", "user", user, "tokens", len(ids), "sessions_ended", n)
	return len(ids), nil
}

// endSessions ends the live sessions whose token is in ids.
func (s *Service) endSessions(sessions *engine.Sessions, ids map[string]bool) int {
	if sessions == nil || len(ids) == 0 {
		return 0
	}
	return sessions.EndWhere(func(x *engine.Session) bool {
		return x.Identity.TokenID != "" && ids[x.Identity.TokenID]
	}, errTokenRevoked)
}

// DefaultRevocationCheck is WatchRevocations' default period.
const DefaultRevocationCheck = 5 * time.Second

// WatchRevocations ends live sessions whose token was revoked elsewhere
// (another gateway replica sharing the store, or the store directly): every
// period (<= 0: DefaultRevocationCheck) it runs CheckRevocations. It returns
// when ctx ends. sessions nil means Options.Sessions; with neither it
// returns at once.
func (s *Service) WatchRevocations(ctx context.Context, sessions *engine.Sessions, every time.Duration) {
	if sessions == nil {
		sessions = s.opts.Sessions
	}
	if sessions == nil {
		return
	}
	if every <= 0 {
		every = DefaultRevocationCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.CheckRevocations(ctx, sessions); err != nil && ctx.Err() == nil {
				s.log.Warn("revocation check failed; retrying next period", "err", err)
			}
		}
	}
}

// CheckRevocations makes one pass of WatchRevocations: it reads the tokens
// of the users of sessions' live sessions from the store and ends every
// session whose token is revoked or gone (its user was deleted). Expiry
// does not end a session; MaxSession does. It returns how many it ended.
// It costs one ListTokens per distinct user with a live session.
func (s *Service) CheckRevocations(ctx context.Context, sessions *engine.Sessions) (int, error) {
	if sessions == nil {
		return 0, nil
	}
	// EndWhere with a match that never matches is the registry's only way
	// to look at its sessions: collect token ids by user.
	byUser := map[string]map[string]bool{}
	sessions.EndWhere(func(x *engine.Session) bool {
		if id := x.Identity.TokenID; id != "" {
			if byUser[x.Identity.User] == nil {
				byUser[x.Identity.User] = map[string]bool{}
			}
			byUser[x.Identity.User][id] = true
		}
		return false
	}, nil)
	dead := map[string]bool{}
	var firstErr error
	for user, ids := range byUser {
		toks, err := s.store.ListTokens(ctx, user)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("check revocations of %s: %w", user, err)
			}
			continue
		}
		live := map[string]bool{}
		for _, t := range toks {
			if !t.Revoked {
				live[t.ID] = true
			}
		}
		for id := range ids {
			if !live[id] {
				dead[id] = true
			}
		}
	}
	n := s.endSessions(sessions, dead)
	if n > 0 {
		s.log.Info("ended sessions of revoked tokens", "sessions", n, "tokens", len(dead))
	}
	return n, firstErr
}
