package auth

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
)

func TestLimiterBucket(t *testing.T) {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLimiter(Limit{Failures: 5, Window: 5 * time.Minute}, 0, c.Now)
	for i := range 5 {
		if w := l.take("bob"); w != 0 {
			t.Fatalf("failure %d refused (%v)", i+1, w)
		}
	}
	if w := l.take("bob"); w != time.Minute {
		t.Fatalf("6th: wait %v, want 1m (one token per Window/Failures)", w)
	}
	if w := l.take("alice"); w != 0 {
		t.Fatal("another key is limited too")
	}
	c.Add(40 * time.Second)
	if w := l.take("bob"); w != 20*time.Second {
		t.Fatalf("after 40s: wait %v, want 20s", w)
	}
	c.Add(20 * time.Second)
	if w := l.take("bob"); w != 0 {
		t.Fatalf("after a minute: wait %v", w)
	}
	if w := l.take("bob"); w == 0 {
		t.Fatal("the refilled token was spent twice")
	}
	// A refund gives the token back.
	c.Add(time.Minute)
	l.take("bob")
	l.refund("bob")
	if w := l.take("bob"); w != 0 {
		t.Fatalf("after refund: wait %v", w)
	}
	// Full buckets are forgotten on refund: success leaves no state.
	l.take("carol")
	l.refund("carol")
	if l.tracked() != 2 { // bob, alice
		t.Fatalf("%d keys tracked", l.tracked())
	}
	// Never a zero wait when refused (Retry-After has second precision).
	l2 := newLimiter(Limit{Failures: 1000, Window: time.Second}, 0, c.Now)
	for range 1000 {
		l2.take("x")
	}
	if w := l2.take("x"); w < time.Second {
		t.Fatalf("wait %v below one second", w)
	}
	if newLimiter(Limit{}, 0, c.Now) != nil || newLimiter(Limit{Failures: -1, Window: time.Minute}, 0, c.Now).take("x") != 0 {
		t.Fatal("disabled limiter limits")
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLimiter(Limit{Failures: 1, Window: time.Hour}, 100, c.Now)
	l.take("victim") // now empty
	for i := range 99 {
		l.take(fmt.Sprint("k", i))
	}
	if w := l.take("victim"); w == 0 {
		t.Fatal("victim forgotten too early") // it was just used: most recent
	}
	for i := range 1000 {
		l.take(fmt.Sprint("flood", i))
		if l.tracked() > 100 {
			t.Fatalf("%d keys tracked, cap 100", l.tracked())
		}
	}
	if w := l.take("victim"); w != 0 {
		t.Fatal("the least recently used key was not evicted")
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "",
		"192.0.2.7":                  "192.0.2.7",
		"192.0.2.7:5555":             "192.0.2.7",
		"[::ffff:192.0.2.7]:1":       "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":       "2001:db8:1:2::/64",
		"[fe80::1%eth0]:22":          "fe80::/64",
		"not-an-ip":                  "host:not-an-ip",
		"not-an-ip:80":               "host:not-an-ip",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
	long := string(make([]byte, 10000))
	if k := userKey(long); len(k) > maxKeyLen {
		t.Fatalf("key of %d bytes", len(k))
	}
}

func newLimited(t *testing.T, user, addr Limit) (*Service, store.Store, *clock) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	return cheapDummy(t, NewService(st, Options{Clock: c.Now, Logger: quiet, UserLimit: user, AddrLimit: addr})), st, c
}

func TestLoginRateLimitPerUser(t *testing.T) {
	ctx := context.Background()
	s, st, c := newLimited(t, Limit{Failures: 2, Window: 2 * time.Minute}, Limit{Failures: -1})
	st.PutUser(ctx, store.User{Name: "alice", PasswordHash: cheapHash(t, "pw")})

	// Successes do not count.
	for range 3 {
		if _, _, err := s.LoginFrom(ctx, "alice", "pw", "192.0.2.1", 0); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, _, err := s.LoginFrom(ctx, "alice", "bad", "192.0.2.1", 0); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	// Now even the right password is refused, without being checked.
	_, _, err := s.LoginFrom(ctx, "alice", "pw", "192.0.2.99", 0)
	var rl *RateLimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.Scope != "user" || rl.RetryAfter() != time.Minute {
		t.Fatalf("limited: %v", err)
	}
	var ra interface{ RetryAfter() time.Duration } // what the API looks for
	if !errors.As(err, &ra) || errors.Is(err, ErrBadLogin) {
		t.Fatalf("error shape: %v", err)
	}
	c.Add(time.Minute)
	if _, _, err := s.LoginFrom(ctx, "alice", "pw", "192.0.2.1", 0); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	// Unknown users are limited the same way (no enumeration by rate).
	s.LoginFrom(ctx, "ghost", "x", "", 0)
	s.LoginFrom(ctx, "ghost", "x", "", 0)
	if _, _, err := s.Login(ctx, "ghost", "x", 0); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("ghost: %v", err)
	}
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newLimited(t, Limit{Failures: 100, Window: time.Minute}, Limit{Failures: 3, Window: 3 * time.Minute})
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		st.PutUser(ctx, store.User{Name: u, PasswordHash: cheapHash(t, "pw")})
	}
	// Spraying one password over many users from one /64.
	for i, u := range []string{"u1", "u2", "u3"} {
		addr := fmt.Sprintf("[2001:db8::%d]:4000", i+1)
		if _, _, err := s.LoginFrom(ctx, u, "guess", addr, 0); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("%s: %v", u, err)
		}
	}
	_, _, err := s.LoginFrom(ctx, "u4", "pw", "[2001:db8::99]:1", 0)
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Scope != "address" {
		t.Fatalf("same /64: %v", err)
	}
	// The refused attempt did not spend u4's own budget, and another
	// address is not affected.
	if _, _, err := s.LoginFrom(ctx, "u4", "pw", "198.51.100.1", 0); err != nil {
		t.Fatalf("other address: %v", err)
	}
}

func TestTokenTTLs(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := cheapDummy(t, NewService(st, Options{Clock: c.Now, Logger: quiet, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}))
	st.PutUser(ctx, store.User{Name: "alice"})
	if def, max := s.TokenTTLs(); def != time.Hour || max != 24*time.Hour {
		t.Fatalf("ttls %v %v", def, max)
	}
	_, rec, err := s.IssueNamedToken(ctx, "alice", "laptop", 0)
	if err != nil || !rec.ExpiresAt.Equal(c.Now().Add(time.Hour)) || rec.Name != "laptop" {
		t.Fatalf("default: %+v %v", rec, err)
	}
	toks, _ := st.ListTokens(ctx, "alice")
	if len(toks) != 1 || toks[0].Name != "laptop" {
		t.Fatalf("stored %+v", toks)
	}
	if _, rec, err := s.IssueToken(ctx, "alice", 24*time.Hour); err != nil || !rec.ExpiresAt.Equal(c.Now().Add(24*time.Hour)) {
		t.Fatalf("max: %+v %v", rec, err)
	}
	if _, _, err := s.IssueToken(ctx, "alice", 24*time.Hour+time.Second); !errors.Is(err, ErrTTLTooLong) {
		t.Fatalf("over max: %v", err)
	}
	if _, _, err := s.Login(ctx, "alice", "x", 48*time.Hour); !errors.Is(err, ErrTTLTooLong) {
		t.Fatalf("login over max: %v", err)
	}
	for _, bad := range []string{string(make([]byte, MaxTokenNameLen+1)), "tab\there", "\xff"} {
		if _, _, err := s.IssueNamedToken(ctx, "alice", bad, 0); !errors.Is(err, ErrBadTokenName) {
			t.Fatalf("name %q: %v", bad, err)
		}
	}
	// Defaults of New.
	if def, max := New(st, nil, quiet).TokenTTLs(); def != 12*time.Hour || max != 7*24*time.Hour {
		t.Fatalf("default ttls %v %v", def, max)
	}
}
