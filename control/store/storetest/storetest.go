package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Run runs the conformance suite. newStore must return a fresh, empty store
// for each call; Run closes it when the sub-test ends.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"DeleteUserDeletesTokens", testDeleteUserTokens},
		{"Agents", testAgents},
		{"Connections", testConnections},
		{"ConnectionPolicy", testConnectionPolicy},
		{"Sessions", testSessions},
		{"EmptyLists", testEmptyLists},
		{"Concurrent", testConcurrent},
		{"TokenNamesAndConflicts", testTokenNames},
		{"Rules", testRules},
		{"Groups", testGroups},
		{"DeleteGroupStripsMembers", testDeleteGroup},
		{"Reviews", testReviews},
		{"ReviewGrants", testReviewGrants},
		{"ReviewLimits", testReviewLimits},
		{"DecideReviewRace", testDecideReviewRace},
		{"QuerySessions", testQuerySessions},
		{"SessionLimits", testSessionLimits},
		{"Statements", testStatements},
		{"Webhooks", testWebhooks},
		{"DeadLetters", testDeadLetters},
		{"RecordingChunks", testRecordingChunks},
		{"ConcurrentNewRecords", testConcurrentNew},
		{"ByteOrder", testByteOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// t0 has sub-second precision on purpose: backends must keep it (to the
// microsecond at least).
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

func notFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: got %v, want ErrNotFound", what, err)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Fatalf("%s: location %v, want UTC", what, got.Location())
	}
}

func testPing(t *testing.T, s store.Store) {
	must(t, "ping", s.Ping(context.Background()))
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetUser(ctx, "alice")
	notFound(t, "get missing user", err)
	notFound(t, "delete missing user", s.DeleteUser(ctx, "alice"))

	u := store.User{Name: "alice", PasswordHash: "$2a$hash", Groups: []string{"dev", "admin"}, CreatedAt: t0}
	must(t, "put", s.PutUser(ctx, u))
	must(t, "put bob", s.PutUser(ctx, store.User{Name: "bob", CreatedAt: t0}))
	got, err := s.GetUser(ctx, "alice")
	must(t, "get", err)
	if got.Name != "alice" || got.PasswordHash != "$2a$hash" || !slices.Equal(got.Groups, []string{"dev", "admin"}) {
		t.Fatalf("get: %+v", got)
	}
	sameTime(t, "created", got.CreatedAt, t0)

	// Upsert replaces fields but keeps CreatedAt.
	must(t, "update", s.PutUser(ctx, store.User{Name: "alice", Groups: []string{"ops"}, CreatedAt: t0.Add(time.Hour)}))
	got, err = s.GetUser(ctx, "alice")
	must(t, "get updated", err)
	if got.PasswordHash != "" || !slices.Equal(got.Groups, []string{"ops"}) {
		t.Fatalf("updated: %+v", got)
	}
	sameTime(t, "created kept", got.CreatedAt, t0)

	bob, err := s.GetUser(ctx, "bob")
	must(t, "get bob", err)
	if len(bob.Groups) != 0 {
		t.Fatalf("bob groups: %v", bob.Groups)
	}

	list, err := s.ListUsers(ctx)
	must(t, "list", err)
	if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Fatalf("list: %+v", list)
	}
	must(t, "delete", s.DeleteUser(ctx, "alice"))
	_, err = s.GetUser(ctx, "alice")
	notFound(t, "get deleted", err)
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "put user", s.PutUser(ctx, store.User{Name: "alice", CreatedAt: t0}))
	_, err := s.TokenByHash(ctx, "nope")
	notFound(t, "missing token", err)
	notFound(t, "revoke missing", s.RevokeToken(ctx, "nope"))

	tok := store.Token{ID: "t1", UserName: "alice", Hash: "h1", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	must(t, "create", s.CreateToken(ctx, tok))
	if err := s.CreateToken(ctx, store.Token{ID: "t1", UserName: "alice", Hash: "h-other", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate id: got %v, want ErrConflict", err)
	}
	if err := s.CreateToken(ctx, store.Token{ID: "t-other", UserName: "alice", Hash: "h1", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate hash: got %v, want ErrConflict", err)
	}
	must(t, "create t2", s.CreateToken(ctx, store.Token{ID: "t2", UserName: "alice", Hash: "h2", ExpiresAt: t0.Add(2 * time.Hour), CreatedAt: t0.Add(time.Second)}))

	got, err := s.TokenByHash(ctx, "h1")
	must(t, "by hash", err)
	if got.ID != "t1" || got.UserName != "alice" || got.Hash != "h1" || got.Revoked {
		t.Fatalf("by hash: %+v", got)
	}
	sameTime(t, "expires", got.ExpiresAt, t0.Add(time.Hour))
	sameTime(t, "created", got.CreatedAt, t0)

	must(t, "revoke", s.RevokeToken(ctx, "t1"))
	got, err = s.TokenByHash(ctx, "h1")
	must(t, "by hash revoked", err)
	if !got.Revoked {
		t.Fatal("not revoked")
	}
	list, err := s.ListTokens(ctx, "alice")
	must(t, "list", err)
	if len(list) != 2 || list[0].ID != "t1" || list[1].ID != "t2" {
		t.Fatalf("list: %+v", list)
	}
	list, err = s.ListTokens(ctx, "nobody")
	must(t, "list nobody", err)
	if list == nil || len(list) != 0 {
		t.Fatalf("list nobody: %#v", list)
	}
}

func testDeleteUserTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "put user", s.PutUser(ctx, store.User{Name: "alice", CreatedAt: t0}))
	must(t, "create", s.CreateToken(ctx, store.Token{ID: "t1", UserName: "alice", Hash: "h1", CreatedAt: t0}))
	must(t, "delete", s.DeleteUser(ctx, "alice"))
	_, err := s.TokenByHash(ctx, "h1")
	notFound(t, "token of deleted user", err)
	// A new user of the same name does not inherit anything.
	must(t, "put again", s.PutUser(ctx, store.User{Name: "alice", CreatedAt: t0}))
	list, err := s.ListTokens(ctx, "alice")
	must(t, "list", err)
	if len(list) != 0 {
		t.Fatalf("tokens survived: %+v", list)
	}
}

func testAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetAgent(ctx, "a1")
	notFound(t, "get missing", err)
	notFound(t, "delete missing", s.DeleteAgent(ctx, "a1"))
	must(t, "put", s.PutAgent(ctx, store.Agent{Name: "a2", KeyHash: "k2", CreatedAt: t0}))
	must(t, "put", s.PutAgent(ctx, store.Agent{Name: "a1", KeyHash: "k1", CreatedAt: t0}))
	must(t, "rotate", s.PutAgent(ctx, store.Agent{Name: "a1", KeyHash: "k1b", CreatedAt: t0.Add(time.Hour)}))
	got, err := s.GetAgent(ctx, "a1")
	must(t, "get", err)
	if got.KeyHash != "k1b" {
		t.Fatalf("key not rotated: %+v", got)
	}
	sameTime(t, "created kept", got.CreatedAt, t0)
	list, err := s.ListAgents(ctx)
	must(t, "list", err)
	if len(list) != 2 || list[0].Name != "a1" || list[1].Name != "a2" {
		t.Fatalf("list: %+v", list)
	}
	must(t, "put conn", s.PutConnection(ctx, store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "x", CreatedAt: t0, UpdatedAt: t0}))
	must(t, "delete", s.DeleteAgent(ctx, "a1"))
	_, err = s.GetAgent(ctx, "a1")
	notFound(t, "get deleted", err)
	if _, err := s.GetConnection(ctx, "db"); err != nil {
		t.Fatalf("connection of deleted agent: %v", err)
	}
}

func testConnections(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetConnection(ctx, "db")
	notFound(t, "get missing", err)
	notFound(t, "delete missing", s.DeleteConnection(ctx, "db"))
	c := store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "postgres://u:p@h/db", CreatedAt: t0, UpdatedAt: t0}
	must(t, "put", s.PutConnection(ctx, c))
	later := t0.Add(time.Minute)
	must(t, "update", s.PutConnection(ctx, store.Connection{Name: "db", Agent: "a2", Type: "postgres", Target: "t2", CreatedAt: later, UpdatedAt: later}))
	got, err := s.GetConnection(ctx, "db")
	must(t, "get", err)
	if got.Agent != "a2" || got.Type != "postgres" || got.Target != "t2" {
		t.Fatalf("get: %+v", got)
	}
	sameTime(t, "created kept", got.CreatedAt, t0)
	sameTime(t, "updated", got.UpdatedAt, later)
	must(t, "put other", s.PutConnection(ctx, store.Connection{Name: "app", Agent: "a1", Type: "postgres", Target: "t", CreatedAt: t0, UpdatedAt: t0}))
	list, err := s.ListConnections(ctx)
	must(t, "list", err)
	if len(list) != 2 || list[0].Name != "app" || list[1].Name != "db" {
		t.Fatalf("list: %+v", list)
	}
	must(t, "delete", s.DeleteConnection(ctx, "db"))
	_, err = s.GetConnection(ctx, "db")
	notFound(t, "deleted", err)
}

func testConnectionPolicy(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := engine.Policy{
		Guardrails: &engine.GuardrailPolicy{
			Deny:       []string{"drop", "truncate", "delete-without-where"},
			DenyTables: []string{"audit_log", `public."Weird.Name"`},
		},
		Masking: &engine.MaskingPolicy{
			Columns:   []string{"customers.email", "*.ssn", "billing.cards.pan"},
			Detectors: []string{"email", "iban", "employee_id"},
			Style:     "partial",
			Patterns:  []engine.MaskPattern{{Name: "employee_id", Regex: `EMP-[0-9]{6}\b`}},
		},
	}
	// Without a policy: the zero value comes back.
	must(t, "put plain", s.PutConnection(ctx, store.Connection{Name: "plain", Agent: "a1", Type: "postgres", Target: "t", CreatedAt: t0, UpdatedAt: t0}))
	got, err := s.GetConnection(ctx, "plain")
	must(t, "get plain", err)
	if !reflect.DeepEqual(got.Policy, engine.Policy{}) {
		t.Fatalf("plain policy: %+v", got.Policy)
	}

	must(t, "put", s.PutConnection(ctx, store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "t", Policy: full, CreatedAt: t0, UpdatedAt: t0}))
	got, err = s.GetConnection(ctx, "db")
	must(t, "get", err)
	if !reflect.DeepEqual(got.Policy, full) {
		t.Fatalf("policy round trip:\n got %#v %#v\nwant %#v %#v", got.Policy.Guardrails, got.Policy.Masking, full.Guardrails, full.Masking)
	}
	// The returned value is the caller's: changing it changes nothing stored.
	got.Policy.Guardrails.Deny[0] = "changed"
	again, err := s.GetConnection(ctx, "db")
	must(t, "get again", err)
	if again.Policy.Guardrails.Deny[0] != "drop" {
		t.Fatalf("stored policy aliased: %v", again.Policy.Guardrails.Deny)
	}
	list, err := s.ListConnections(ctx)
	must(t, "list", err)
	if len(list) != 2 || list[0].Name != "db" || !reflect.DeepEqual(list[0].Policy, full) || !list[1].Policy.Empty() {
		t.Fatalf("list policies: %+v", list)
	}

	// An update replaces the whole policy: one block only, then none.
	only := engine.Policy{Guardrails: &engine.GuardrailPolicy{Deny: []string{"grant"}}}
	must(t, "update", s.PutConnection(ctx, store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "t", Policy: only, CreatedAt: t0, UpdatedAt: t0}))
	got, err = s.GetConnection(ctx, "db")
	must(t, "get updated", err)
	if !reflect.DeepEqual(got.Policy, only) {
		t.Fatalf("updated policy: %+v %+v", got.Policy.Guardrails, got.Policy.Masking)
	}
	must(t, "clear", s.PutConnection(ctx, store.Connection{Name: "db", Agent: "a1", Type: "postgres", Target: "t", CreatedAt: t0, UpdatedAt: t0}))
	got, err = s.GetConnection(ctx, "db")
	must(t, "get cleared", err)
	if !reflect.DeepEqual(got.Policy, engine.Policy{}) {
		t.Fatalf("cleared policy: %+v", got.Policy)
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "empty batch", s.WriteSessions(ctx, nil))
	var batch []store.Session
	for i := range 5 {
		batch = append(batch, store.Session{
			ID: fmt.Sprintf("s%d", i), User: "alice", Connection: "db", Protocol: "postgres",
			ClientAddr: "127.0.0.1:5000", Start: t0.Add(time.Duration(i) * time.Second), Outcome: "running",
		})
	}
	// The end record for s1 comes in the same batch as its start: last wins.
	batch = append(batch, store.Session{
		ID: "s1", User: "alice", Connection: "db", Protocol: "postgres", ClientAddr: "127.0.0.1:5000",
		Start: t0.Add(time.Second), End: t0.Add(3 * time.Second), BytesIn: 10, BytesOut: 20,
		Outcome: "error", Error: "boom", Denials: 2, LastDenial: `statement denied by guardrail "drop"`,
	})
	must(t, "write", s.WriteSessions(ctx, batch))
	// And the end record for s3 in a later batch.
	must(t, "write end", s.WriteSessions(ctx, []store.Session{{
		ID: "s3", User: "alice", Connection: "db", Protocol: "postgres", ClientAddr: "127.0.0.1:5000",
		Start: t0.Add(3 * time.Second), End: t0.Add(9 * time.Second), BytesIn: 1 << 40, BytesOut: 7, Outcome: "ok",
	}}))

	list, err := s.ListSessions(ctx, 100)
	must(t, "list", err)
	if len(list) != 5 {
		t.Fatalf("list: %d sessions, want 5", len(list))
	}
	for i, want := range []string{"s4", "s3", "s2", "s1", "s0"} {
		if list[i].ID != want {
			t.Fatalf("order: position %d is %s, want %s", i, list[i].ID, want)
		}
	}
	s1 := list[3]
	if s1.Outcome != "error" || s1.Error != "boom" || s1.BytesIn != 10 || s1.BytesOut != 20 ||
		s1.User != "alice" || s1.Connection != "db" || s1.Protocol != "postgres" || s1.ClientAddr != "127.0.0.1:5000" ||
		s1.Denials != 2 || s1.LastDenial != `statement denied by guardrail "drop"` {
		t.Fatalf("s1: %+v", s1)
	}
	sameTime(t, "s1 start", s1.Start, t0.Add(time.Second))
	sameTime(t, "s1 end", s1.End, t0.Add(3*time.Second))
	if list[1].BytesIn != 1<<40 || list[1].Outcome != "ok" {
		t.Fatalf("s3: %+v", list[1])
	}
	sameTime(t, "running end", list[0].End, time.Time{})

	list, err = s.ListSessions(ctx, 2)
	must(t, "list limit", err)
	if len(list) != 2 || list[0].ID != "s4" {
		t.Fatalf("limit: %+v", list)
	}
}

func testEmptyLists(t *testing.T, s store.Store) {
	ctx := context.Background()
	u, err := s.ListUsers(ctx)
	must(t, "users", err)
	a, err := s.ListAgents(ctx)
	must(t, "agents", err)
	c, err := s.ListConnections(ctx)
	must(t, "connections", err)
	ss, err := s.ListSessions(ctx, 10)
	must(t, "sessions", err)
	if u == nil || a == nil || c == nil || ss == nil {
		t.Fatalf("nil slice from an empty store: %v %v %v %v", u == nil, a == nil, c == nil, ss == nil)
	}
	toks, err := s.ListTokens(ctx, "nobody")
	isEmpty(t, "tokens", toks, err)
	rules, err := s.ListRules(ctx)
	isEmpty(t, "rules", rules, err)
	groups, err := s.ListGroups(ctx)
	isEmpty(t, "groups", groups, err)
	reviews, err := s.ListReviews(ctx, store.ReviewFilter{})
	isEmpty(t, "reviews", reviews, err)
	qs, err := s.QuerySessions(ctx, store.SessionFilter{})
	isEmpty(t, "query sessions", qs, err)
	stmts, err := s.ListStatements(ctx, "s1", 10)
	isEmpty(t, "statements", stmts, err)
	hooks, err := s.ListWebhooks(ctx)
	isEmpty(t, "webhooks", hooks, err)
	dls, err := s.ListDeadLetters(ctx, "", 10)
	isEmpty(t, "dead letters", dls, err)
	chunks, err := s.ListRecordingChunks(ctx, "s1")
	isEmpty(t, "recording chunks", chunks, err)
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				name := fmt.Sprintf("u%d-%d", i, j)
				if err := s.PutUser(ctx, store.User{Name: name, CreatedAt: t0}); err != nil {
					errs <- err
					return
				}
				if err := s.WriteSessions(ctx, []store.Session{{ID: name, Start: t0, Outcome: "ok"}}); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListUsers(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := s.ListUsers(ctx)
	must(t, "list", err)
	if len(list) != 80 {
		t.Fatalf("users: %d, want 80", len(list))
	}
}

// testConcurrentNew hammers the ID-assigning and batch methods from many
// goroutines: every review and dead letter gets its own ID, no batch is lost.
func testConcurrentNew(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "put webhook", s.PutWebhook(ctx, store.Webhook{Name: "w", URL: "http://x", Format: store.WebhookJSON, CreatedAt: t0}))
	const workers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	reviewIDs, letterIDs := map[int64]bool{}, map[int64]bool{}
	errs := make(chan error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				sess := fmt.Sprintf("s%d", i)
				r := &store.Review{Kind: store.ReviewSession, User: sess, Connection: "db", CreatedAt: t0}
				d := &store.DeadLetter{Webhook: "w", Event: sess, CreatedAt: t0}
				var err error
				if err = s.CreateReview(ctx, r); err == nil {
					if err = s.AddDeadLetter(ctx, d); err == nil {
						if err = s.WriteStatements(ctx, []store.Statement{{SessionID: sess, Seq: int64(j), At: t0, Outcome: store.StatementOK}}); err == nil {
							err = s.AddRecordingChunks(ctx, []store.RecordingChunk{{SessionID: sess, Seq: int64(j), Key: "k", At: t0}})
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				reviewIDs[r.ID], letterIDs[d.ID] = true, true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(reviewIDs) != workers*each || len(letterIDs) != workers*each {
		t.Fatalf("distinct ids: %d reviews, %d dead letters; want %d", len(reviewIDs), len(letterIDs), workers*each)
	}
	for i := range workers {
		sess := fmt.Sprintf("s%d", i)
		st, err := s.ListStatements(ctx, sess, 0)
		must(t, "statements", err)
		ch, err := s.ListRecordingChunks(ctx, sess)
		must(t, "chunks", err)
		if len(st) != each || len(ch) != each {
			t.Fatalf("%s: %d statements, %d chunks; want %d", sess, len(st), len(ch), each)
		}
	}
}

// testByteOrder checks "ordered by name" means byte order (Go's string
// order), whatever collation the backend's database defaults to.
func testByteOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	names := []string{"b-x", "a", "_z", "B", "\u00e4", "A1", "a b", "ab"}
	want := slices.Clone(names)
	slices.Sort(want)
	var batch []store.Session
	for _, n := range names {
		must(t, "user", s.PutUser(ctx, store.User{Name: n, CreatedAt: t0}))
		must(t, "agent", s.PutAgent(ctx, store.Agent{Name: n, CreatedAt: t0}))
		must(t, "connection", s.PutConnection(ctx, store.Connection{Name: n, CreatedAt: t0, UpdatedAt: t0}))
		must(t, "rule", s.PutRule(ctx, store.AccessRule{Name: n, CreatedAt: t0, UpdatedAt: t0}))
		must(t, "group", s.PutGroup(ctx, store.Group{Name: n, CreatedAt: t0}))
		must(t, "webhook", s.PutWebhook(ctx, store.Webhook{Name: n, CreatedAt: t0}))
		batch = append(batch, store.Session{ID: n, Start: t0})
	}
	must(t, "sessions", s.WriteSessions(ctx, batch))
	users, err := s.ListUsers(ctx)
	order(t, "users", users, err, func(x store.User) string { return x.Name }, want...)
	agents, err := s.ListAgents(ctx)
	order(t, "agents", agents, err, func(x store.Agent) string { return x.Name }, want...)
	conns, err := s.ListConnections(ctx)
	order(t, "connections", conns, err, func(x store.Connection) string { return x.Name }, want...)
	rules, err := s.ListRules(ctx)
	order(t, "rules", rules, err, ruleName, want...)
	groups, err := s.ListGroups(ctx)
	order(t, "groups", groups, err, groupName, want...)
	hooks, err := s.ListWebhooks(ctx)
	order(t, "webhooks", hooks, err, webhookName, want...)
	// Sessions with one Start: ID descending, in byte order too.
	desc := slices.Clone(want)
	slices.Reverse(desc)
	sess, err := s.QuerySessions(ctx, store.SessionFilter{})
	order(t, "sessions", sess, err, sessionID, desc...)
	sess, err = s.ListSessions(ctx, 100)
	order(t, "ListSessions", sess, err, sessionID, desc...)
}
