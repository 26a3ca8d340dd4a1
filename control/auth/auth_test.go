package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/engine"
	"golang.org/x/crypto/bcrypt"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T) (*Service, store.Store, *clock) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	return cheapDummy(t, New(st, c.Now, quiet)), st, c
}

// cheapDummy gives s a minimum-cost dummy hash for unknown users (see
// cheapHash).
func cheapDummy(t *testing.T, s *Service) *Service {
	s.dummyOnce.Do(func() { s.dummyHash = cheapHash(t, "dummy") })
	return s
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cheapHash is a bcrypt hash at the minimum cost, so that tests under -race
// do not spend seconds per login; TestPasswordCost checks the real cost.
func cheapHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func code(err error) engine.Code {
	var e *engine.Error
	if !errors.As(err, &e) {
		return -1
	}
	return e.Code
}

func TestTokenShape(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "slc_") || len(tok) != 4+43 || !LooksLikeToken(tok) {
		t.Fatalf("token %q", tok)
	}
	key, hash, err := NewAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 43 || strings.ContainsAny(key, "=+/") || hash != Hash(key) || len(hash) != 64 {
		t.Fatalf("key %q hash %q", key, hash)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, st, c := newTest(t)
	st.PutUser(ctx, store.User{Name: "alice", Groups: []string{"dev"}})
	st.PutUser(ctx, store.User{Name: "bob"})
	tok, rec, err := s.IssueToken(ctx, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Authenticate(ctx, "alice", tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice" || len(id.Groups) != 1 || id.Groups[0] != "dev" || id.TokenID != rec.ID {
		t.Fatalf("identity %+v", id)
	}

	bad := func(name, user, secret string) {
		t.Helper()
		_, err := s.Authenticate(ctx, user, secret)
		var e *engine.Error
		if !errors.As(err, &e) || e.Code != engine.CodeAuthFailed {
			t.Fatalf("%s: got %v", name, err)
		}
		if want := `password authentication failed for user "` + user + `"`; e.Message != want {
			t.Fatalf("%s: message %q, want %q", name, e.Message, want)
		}
		if strings.Contains(e.Message, secret) && secret != "" {
			t.Fatalf("%s: message leaks the secret", name)
		}
	}
	bad("wrong user", "bob", tok)
	bad("garbage", "alice", "hunter2")
	other, _ := NewToken()
	bad("unknown", "alice", other)

	c.Add(time.Hour)
	bad("expired", "alice", tok)

	tok2, rec2, _ := s.IssueToken(ctx, "alice", time.Hour)
	if _, err := s.Authenticate(ctx, "alice", tok2); err != nil {
		t.Fatal(err)
	}
	st.RevokeToken(ctx, rec2.ID)
	bad("revoked", "alice", tok2)

	if _, _, err := s.IssueToken(ctx, "alice", -time.Second); err == nil {
		t.Fatal("negative ttl accepted")
	}
}

func TestIdentify(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	st.PutUser(ctx, store.User{Name: "alice"})
	tok, _, _ := s.IssueToken(ctx, "alice", time.Hour)
	id, err := s.Identify(ctx, tok)
	if err != nil || id.User != "alice" {
		t.Fatalf("identify: %+v %v", id, err)
	}
	st.DeleteUser(ctx, "alice")
	if _, err := s.Identify(ctx, tok); code(err) != engine.CodeAuthFailed {
		t.Fatalf("token of deleted user: %v", err)
	}
}

func TestAuthorizeConnection(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	st.PutConnection(ctx, store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "postgres://h/db"})
	st.PutRule(ctx, store.AccessRule{Name: "dev", Groups: []string{"dev"}, Connections: []string{"*"}})
	id := engine.Identity{User: "alice", Groups: []string{"dev"}}
	p, err := s.Authorize(ctx, id, "db", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*p, engine.Plan{Connection: "db", Protocol: "postgres", Agent: "a1", Target: "postgres://h/db", Rule: "dev"}) {
		t.Fatalf("plan %+v", p)
	}
	_, err = s.Authorize(ctx, id, "nope", "postgres")
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != engine.CodeUnknownConnection || e.Message != `connection "nope" does not exist` {
		t.Fatalf("unknown: %v", err)
	}
	_, err = s.Authorize(ctx, id, "db", "mysql")
	if !errors.As(err, &e) || e.Code != engine.CodeUnknownConnection || !strings.Contains(e.Message, "not mysql") {
		t.Fatalf("mismatch: %v", err)
	}

	// The plan carries the connection's policy, read afresh per session.
	pol := engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop"}, DenyTables: []string{"audit_log"}},
		Masking:    &engine.MaskingPolicy{Detectors: []string{"email"}, Style: "redact"},
	}
	st.PutConnection(ctx, store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "postgres://h/db", Policy: pol})
	p, err = s.Authorize(ctx, id, "db", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Policy, pol) || p.Target != "postgres://h/db" {
		t.Fatalf("plan with policy %+v: %+v %+v", p, p.Policy.Guardrails, p.Policy.Masking)
	}
}

func TestVerifyAgent(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	key, hash, _ := NewAgentKey()
	st.PutAgent(ctx, store.Agent{Name: "a1", KeyHash: hash})
	if err := s.VerifyAgent(ctx, "a1", key); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyAgent(ctx, "a1", key+"x"); !errors.Is(err, ErrAgentDenied) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := s.VerifyAgent(ctx, "a2", key); !errors.Is(err, ErrAgentDenied) {
		t.Fatalf("unknown agent: %v", err)
	}
	st.DeleteAgent(ctx, "a1")
	if err := s.VerifyAgent(ctx, "a1", key); !errors.Is(err, ErrAgentDenied) {
		t.Fatalf("deleted agent: %v", err)
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	s, st, c := newTest(t)
	st.PutUser(ctx, store.User{Name: "alice", PasswordHash: cheapHash(t, "s3cret")})
	st.PutUser(ctx, store.User{Name: "nopw"})
	tok, rec, err := s.Login(ctx, "alice", "s3cret", 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.ExpiresAt.Equal(c.Now().Add(12 * time.Hour)) {
		t.Fatalf("expires %v", rec.ExpiresAt)
	}
	if _, err := s.Authenticate(ctx, "alice", tok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"alice", "wrong"}, {"ghost", "s3cret"}, {"nopw", ""}, {"nopw", "x"}} {
		if _, _, err := s.Login(ctx, tc[0], tc[1], time.Hour); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("login %v: %v", tc, err)
		}
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	dir := t.TempDir()
	created, err := s.Bootstrap(ctx, dir)
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	path := filepath.Join(dir, AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(data))
	if string(data) != tok+"\n" || !LooksLikeToken(tok) {
		t.Fatalf("file %q", data)
	}
	id, err := s.Authenticate(ctx, "admin", tok)
	if err != nil || len(id.Groups) != 1 || id.Groups[0] != "admin" {
		t.Fatalf("admin: %+v %v", id, err)
	}
	u, _ := st.GetUser(ctx, "admin")
	if u.PasswordHash != "" {
		t.Fatal("admin has a password")
	}

	// Second start: nothing changes.
	created, err = s.Bootstrap(ctx, dir)
	if err != nil || created {
		t.Fatalf("second bootstrap: %v %v", created, err)
	}
	again, _ := os.ReadFile(path)
	if string(again) != string(data) {
		t.Fatal("token file rewritten")
	}
	toks, _ := st.ListTokens(ctx, "admin")
	if len(toks) != 1 {
		t.Fatalf("%d admin tokens", len(toks))
	}

	// Admin is a group with a rule, not a special user.
	r, err := st.GetRule(ctx, AdminRule)
	if err != nil || !reflect.DeepEqual(r.Groups, []string{"admin"}) || !reflect.DeepEqual(r.Connections, []string{"*"}) {
		t.Fatalf("admin rule %+v %v", r, err)
	}
	if _, err := st.GetGroup(ctx, AdminGroup); err != nil {
		t.Fatalf("admin group: %v", err)
	}
	st.PutConnection(ctx, store.Connection{Name: "anything", Agent: "a", Type: "postgres"})
	if p, err := s.Authorize(ctx, id, "anything", "postgres"); err != nil || p.Rule != "admin" {
		t.Fatalf("admin authorize: %+v %v", p, err)
	}
	// A user named admin outside group admin gets nothing.
	if _, err := s.Authorize(ctx, engine.Identity{User: "admin"}, "anything", "postgres"); code(err) != engine.CodeDenied {
		t.Fatalf("user admin without the group: %v", err)
	}
	// A second start does not recreate a deleted rule when others exist.
	st.PutRule(ctx, store.AccessRule{Name: "ops", Groups: []string{"ops"}, Connections: []string{"*"}})
	st.DeleteRule(ctx, AdminRule)
	if _, err := s.Bootstrap(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRule(ctx, AdminRule); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("admin rule recreated beside other rules: %v", err)
	}
}

// A store from before access rules (users, no rules) gets the admin rule and
// group, and no new user or token file.
func TestBootstrapUpgrade(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTest(t)
	st.PutUser(ctx, store.User{Name: "root", Groups: []string{"admin"}})
	dir := t.TempDir()
	created, err := s.Bootstrap(ctx, dir)
	if err != nil || created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	if _, err := os.Stat(filepath.Join(dir, AdminTokenFile)); !os.IsNotExist(err) {
		t.Fatalf("token file written: %v", err)
	}
	if _, err := st.GetRule(ctx, AdminRule); err != nil {
		t.Fatal(err)
	}
	users, _ := st.ListUsers(ctx)
	if len(users) != 1 {
		t.Fatalf("%d users", len(users))
	}
}

func TestPasswordCost(t *testing.T) {
	t.Parallel() // a real cost-10 bcrypt takes seconds under -race
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c < 10 || c != PasswordCost {
		t.Fatalf("cost %d %v", c, err)
	}
	if CheckPassword("", "") {
		t.Fatal("an empty hash matches")
	}
	if _, err := HashPassword(strings.Repeat("a", 73)); err == nil {
		t.Fatal("a password past bcrypt's 72 bytes was accepted")
	}
}
