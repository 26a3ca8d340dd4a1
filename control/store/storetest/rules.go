package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

func ruleName(r store.AccessRule) string { return r.Name }
func groupName(g store.Group) string     { return g.Name }

func testTokenNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "put user", s.PutUser(ctx, store.User{Name: "alice", CreatedAt: t0}))
	toks := []store.Token{
		{ID: "t1", UserName: "alice", Name: "laptop", Hash: "h1", ExpiresAt: t0.Add(-time.Hour), CreatedAt: t0.Add(-2 * time.Hour)},
		{ID: "t2", UserName: "alice", Hash: "h2", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0.Add(-time.Hour), Revoked: true},
		{ID: "t3", UserName: "alice", Name: "ci pipeline", Hash: "h3", CreatedAt: t0},
	}
	for _, tok := range toks {
		must(t, "create "+tok.ID, s.CreateToken(ctx, tok))
	}
	// Expired and revoked tokens are listed too.
	list, err := s.ListTokens(ctx, "alice")
	order(t, "list", list, err, func(t store.Token) string { return t.ID }, "t1", "t2", "t3")
	for i := range toks {
		sameRecord(t, "token "+toks[i].ID, list[i], toks[i])
	}
	got, err := s.TokenByHash(ctx, "h3")
	must(t, "by hash", err)
	sameRecord(t, "by hash", got, toks[2])

	conflict(t, "duplicate id", s.CreateToken(ctx, store.Token{ID: "t3", UserName: "alice", Hash: "h9", CreatedAt: t0}))
	conflict(t, "duplicate hash", s.CreateToken(ctx, store.Token{ID: "t9", UserName: "alice", Hash: "h3", CreatedAt: t0}))
	if err := s.CreateToken(ctx, store.Token{ID: "t9", UserName: "nobody", Hash: "h9", CreatedAt: t0}); err == nil {
		t.Fatal("token for a missing user accepted")
	}
	list, err = s.ListTokens(ctx, "alice")
	order(t, "list after conflicts", list, err, func(t store.Token) string { return t.ID }, "t1", "t2", "t3")
}

var rulePolicy = engine.Policy{
	Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop", "delete-without-where"}, DenyTables: []string{"audit_log"}},
	Masking: &engine.MaskingPolicy{
		Columns: []string{"*.ssn"}, Detectors: []string{"email"}, Style: "partial",
		Patterns: []engine.MaskPattern{{Name: "emp", Regex: `EMP-[0-9]{6}`}},
	},
}

func testRules(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetRule(ctx, "dba")
	notFound(t, "get missing", err)
	notFound(t, "delete missing", s.DeleteRule(ctx, "dba"))

	full := store.AccessRule{
		Name: "dba", Groups: []string{"dba", "oncall"}, Connections: []string{"*"}, Policy: rulePolicy,
		RequireReview: true, ReviewStatements: []string{"ddl", "write:payments", "delete"},
		MaxSession: 90*time.Minute + 1500*time.Microsecond, Hours: "Mon-Fri 08:00-18:00 UTC",
		CreatedAt: t0, UpdatedAt: t0.Add(time.Second),
	}
	must(t, "put", s.PutRule(ctx, full))
	got, err := s.GetRule(ctx, "dba")
	must(t, "get", err)
	sameRecord(t, "get", got, full)

	// The returned record is the caller's.
	got.Groups[0], got.Connections[0], got.ReviewStatements[0] = "x", "x", "x"
	got.Policy.Guardrails.Deny[0], got.Policy.Masking.Patterns[0].Name = "x", "x"
	again, err := s.GetRule(ctx, "dba")
	must(t, "get again", err)
	sameRecord(t, "stored rule aliased", again, full)

	// Nil slices and the zero policy come back as empty slices and the zero policy.
	must(t, "put plain", s.PutRule(ctx, store.AccessRule{Name: "app", CreatedAt: t0, UpdatedAt: t0}))
	plain, err := s.GetRule(ctx, "app")
	must(t, "get plain", err)
	sameRecord(t, "plain", plain, store.AccessRule{Name: "app", Groups: []string{}, Connections: []string{},
		ReviewStatements: []string{}, CreatedAt: t0, UpdatedAt: t0})

	// Upsert replaces everything but CreatedAt.
	later := t0.Add(time.Hour)
	upd := store.AccessRule{Name: "dba", Groups: []string{"ops"}, Connections: []string{"db1", "db2"},
		Policy: engine.Policy{Guardrails: &engine.GuardrailPolicy{Deny: []string{"grant"}}}, MaxSession: time.Minute,
		ReviewStatements: []string{}, CreatedAt: later, UpdatedAt: later}
	must(t, "update", s.PutRule(ctx, upd))
	got, err = s.GetRule(ctx, "dba")
	must(t, "get updated", err)
	upd.CreatedAt = t0
	sameRecord(t, "updated", got, upd)

	list, err := s.ListRules(ctx)
	order(t, "list", list, err, ruleName, "app", "dba")
	sameRecord(t, "listed", list[1], upd)
	must(t, "delete", s.DeleteRule(ctx, "dba"))
	_, err = s.GetRule(ctx, "dba")
	notFound(t, "get deleted", err)
	notFound(t, "delete again", s.DeleteRule(ctx, "dba"))
	list, err = s.ListRules(ctx)
	order(t, "list after delete", list, err, ruleName, "app")
}

func testGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetGroup(ctx, "ops")
	notFound(t, "get missing", err)
	notFound(t, "delete missing", s.DeleteGroup(ctx, "ops"))

	must(t, "put ops", s.PutGroup(ctx, store.Group{Name: "ops", Description: "Operations", CreatedAt: t0}))
	must(t, "put dev", s.PutGroup(ctx, store.Group{Name: "dev", CreatedAt: t0.Add(time.Second)}))
	must(t, "update ops", s.PutGroup(ctx, store.Group{Name: "ops", Description: "Ops team", CreatedAt: t0.Add(time.Hour)}))
	got, err := s.GetGroup(ctx, "ops")
	must(t, "get", err)
	sameRecord(t, "get", got, store.Group{Name: "ops", Description: "Ops team", CreatedAt: t0})
	list, err := s.ListGroups(ctx)
	order(t, "list", list, err, groupName, "dev", "ops")
	sameRecord(t, "listed dev", list[0], store.Group{Name: "dev", CreatedAt: t0.Add(time.Second)})
	must(t, "delete", s.DeleteGroup(ctx, "dev"))
	_, err = s.GetGroup(ctx, "dev")
	notFound(t, "get deleted", err)
	list, err = s.ListGroups(ctx)
	order(t, "list after delete", list, err, groupName, "ops")
}

func testDeleteGroup(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, g := range []string{"ops", "dev"} {
		must(t, "put group", s.PutGroup(ctx, store.Group{Name: g, CreatedAt: t0}))
	}
	users := map[string][]string{
		"alice": {"dev", "ops", "admin", "ghost"},
		"bob":   {"ops", "x", "ops"}, // a duplicate goes too
		"carol": {"dev"},
		"dave":  nil,
	}
	for name, groups := range users {
		must(t, "put user", s.PutUser(ctx, store.User{Name: name, PasswordHash: "h-" + name, Groups: groups, CreatedAt: t0}))
	}
	must(t, "put r1", s.PutRule(ctx, store.AccessRule{Name: "r1", Groups: []string{"ops", "dev"}, Connections: []string{"*"}, Policy: rulePolicy, CreatedAt: t0, UpdatedAt: t0}))
	must(t, "put r2", s.PutRule(ctx, store.AccessRule{Name: "r2", Groups: []string{"ops"}, Connections: []string{"db"}, Hours: "any", CreatedAt: t0, UpdatedAt: t0}))

	// "ghost" is named by a user but has no Group record: nothing changes.
	notFound(t, "delete ghost", s.DeleteGroup(ctx, "ghost"))
	u, err := s.GetUser(ctx, "alice")
	must(t, "get alice", err)
	if !slices.Equal(u.Groups, users["alice"]) {
		t.Fatalf("missing group delete changed alice: %v", u.Groups)
	}

	must(t, "delete ops", s.DeleteGroup(ctx, "ops"))
	want := map[string][]string{"alice": {"dev", "admin", "ghost"}, "bob": {"x"}, "carol": {"dev"}, "dave": {}}
	for name, groups := range want {
		u, err := s.GetUser(ctx, name)
		must(t, "get "+name, err)
		sameRecord(t, "user "+name, u, store.User{Name: name, PasswordHash: "h-" + name, Groups: groups, CreatedAt: t0})
	}
	r1, err := s.GetRule(ctx, "r1")
	must(t, "get r1", err)
	sameRecord(t, "r1", r1, store.AccessRule{Name: "r1", Groups: []string{"dev"}, Connections: []string{"*"}, Policy: rulePolicy,
		ReviewStatements: []string{}, CreatedAt: t0, UpdatedAt: t0})
	r2, err := s.GetRule(ctx, "r2")
	must(t, "get r2", err)
	if r2.Groups == nil || len(r2.Groups) != 0 || !slices.Equal(r2.Connections, []string{"db"}) || r2.Hours != "any" {
		t.Fatalf("r2: %+v", r2)
	}
	_, err = s.GetGroup(ctx, "ops")
	notFound(t, "get deleted", err)
	notFound(t, "delete again", s.DeleteGroup(ctx, "ops"))
	list, err := s.ListGroups(ctx)
	order(t, "groups left", list, err, groupName, "dev")
}
