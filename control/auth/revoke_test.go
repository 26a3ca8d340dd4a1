package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/engine"
)

// live is a session registered in an engine.Sessions, as a frontend does.
type live struct {
	ctx    context.Context
	remove func()
}

func addSession(reg *engine.Sessions, id string, ident engine.Identity) live {
	ctx, cancel := context.WithCancelCause(context.Background())
	remove := reg.Add(&engine.Session{ID: id, Identity: ident}, cancel)
	return live{ctx, remove}
}

func (l live) ended() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

func wantRevoked(t *testing.T, name string, l live) {
	t.Helper()
	var e *engine.Error
	if err := l.ended(); !errors.As(err, &e) || e.Code != engine.CodeSessionEnded || e.Message != "session ended: its access token was revoked" {
		t.Fatalf("%s: cause %v", name, err)
	}
}

func newWithSessions(t *testing.T) (*Service, store.Store, *engine.Sessions) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := engine.NewSessions()
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	return NewService(st, Options{Clock: c.Now, Logger: quiet, Sessions: reg}), st, reg
}

func TestRevokeTokenEndsItsSessions(t *testing.T) {
	ctx := context.Background()
	s, st, reg := newWithSessions(t)
	st.PutUser(ctx, store.User{Name: "alice"})
	tok1, rec1, _ := s.IssueToken(ctx, "alice", time.Hour)
	tok2, rec2, _ := s.IssueToken(ctx, "alice", time.Hour)
	id1, err := s.Authenticate(ctx, "alice", tok1)
	if err != nil || id1.TokenID != rec1.ID {
		t.Fatalf("identity %+v %v", id1, err)
	}
	id2, _ := s.Authenticate(ctx, "alice", tok2)
	a := addSession(reg, "s1", id1)
	b := addSession(reg, "s2", id1)
	other := addSession(reg, "s3", id2)
	ssh := addSession(reg, "s4", engine.Identity{User: "alice"}) // no token

	if err := s.RevokeToken(ctx, rec1.ID); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, "s1", a)
	wantRevoked(t, "s2", b)
	if other.ended() != nil || ssh.ended() != nil {
		t.Fatal("sessions of another token ended")
	}
	if _, err := s.Authenticate(ctx, "alice", tok1); code(err) != engine.CodeAuthFailed {
		t.Fatalf("revoked token still works: %v", err)
	}
	if err := s.RevokeToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	_ = rec2
}

func TestRevokeUserTokens(t *testing.T) {
	ctx := context.Background()
	s, st, reg := newWithSessions(t)
	st.PutUser(ctx, store.User{Name: "alice"})
	st.PutUser(ctx, store.User{Name: "bob"})
	_, a1, _ := s.IssueToken(ctx, "alice", time.Hour)
	_, a2, _ := s.IssueToken(ctx, "alice", time.Hour)
	_, b1, _ := s.IssueToken(ctx, "bob", time.Hour)
	st.RevokeToken(ctx, a2.ID)
	la := addSession(reg, "s1", engine.Identity{User: "alice", TokenID: a1.ID})
	lb := addSession(reg, "s2", engine.Identity{User: "bob", TokenID: b1.ID})
	n, err := s.RevokeUserTokens(ctx, "alice")
	if err != nil || n != 1 {
		t.Fatalf("revoked %d, %v", n, err)
	}
	wantRevoked(t, "alice", la)
	if lb.ended() != nil {
		t.Fatal("bob's session ended")
	}
	toks, _ := st.ListTokens(ctx, "alice")
	for _, tk := range toks {
		if !tk.Revoked {
			t.Fatalf("token %s not revoked", tk.ID)
		}
	}
	if n, err := s.RevokeUserTokens(ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("nobody: %d %v", n, err)
	}
}

// Another replica (here: the store directly) revokes a token; the watcher
// ends the session on this one.
func TestCheckRevocations(t *testing.T) {
	ctx := context.Background()
	s, st, reg := newWithSessions(t)
	st.PutUser(ctx, store.User{Name: "alice"})
	st.PutUser(ctx, store.User{Name: "bob"})
	_, a1, _ := s.IssueToken(ctx, "alice", time.Hour)
	_, a2, _ := s.IssueToken(ctx, "alice", time.Hour)
	_, b1, _ := s.IssueToken(ctx, "bob", time.Hour)
	l1 := addSession(reg, "s1", engine.Identity{User: "alice", TokenID: a1.ID})
	l2 := addSession(reg, "s2", engine.Identity{User: "alice", TokenID: a2.ID})
	l3 := addSession(reg, "s3", engine.Identity{User: "bob", TokenID: b1.ID})
	l4 := addSession(reg, "s4", engine.Identity{User: "carol"}) // no token

	if n, err := s.CheckRevocations(ctx, reg); err != nil || n != 0 {
		t.Fatalf("nothing revoked: %d %v", n, err)
	}
	st.RevokeToken(ctx, a1.ID)
	st.DeleteUser(ctx, "bob") // deletes bob's tokens
	n, err := s.CheckRevocations(ctx, reg)
	if err != nil || n != 2 {
		t.Fatalf("ended %d, %v", n, err)
	}
	wantRevoked(t, "s1", l1)
	wantRevoked(t, "s3", l3)
	if l2.ended() != nil || l4.ended() != nil {
		t.Fatal("a live token's session ended")
	}
}

func TestWatchRevocations(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, st, reg := newWithSessions(t)
	st.PutUser(ctx, store.User{Name: "alice"})
	_, a1, _ := s.IssueToken(ctx, "alice", time.Hour)
	l := addSession(reg, "s1", engine.Identity{User: "alice", TokenID: a1.ID})
	done := make(chan struct{})
	go func() { s.WatchRevocations(ctx, nil, time.Millisecond); close(done) }()
	st.RevokeToken(ctx, a1.ID)
	select {
	case <-l.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not end the session")
	}
	wantRevoked(t, "s1", l)
	cancel()
	<-done
}
