package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

// RunShared checks two handles on one database, as two gateway replicas
// (or two processes) have them: each sees the other's writes at once, IDs
// they assign never collide, and a review decided through both at once has
// exactly one decider. open returns two fresh handles on one fresh, empty
// database; RunShared closes them when the sub-test ends.
func RunShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"SeeEachOthersWrites", testSharedWrites},
		{"DistinctIDs", testSharedIDs},
		{"DecideRace", func(t *testing.T, a, b store.Store) { DecideRace(t, a, b) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			t.Cleanup(func() { a.Close(); b.Close() })
			tc.fn(t, a, b)
		})
	}
}

func testSharedWrites(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	must(t, "a: put user", a.PutUser(ctx, store.User{Name: "alice", Groups: []string{"dev", "ops"}, CreatedAt: t0}))
	u, err := b.GetUser(ctx, "alice")
	must(t, "b: get user", err)
	if !slices.Equal(u.Groups, []string{"dev", "ops"}) {
		t.Fatalf("b sees alice as %+v", u)
	}

	rule := store.AccessRule{Name: "dba", Groups: []string{"ops"}, Connections: []string{"*"}, Policy: rulePolicy,
		RequireReview: true, ReviewStatements: []string{"ddl"}, MaxSession: time.Hour, CreatedAt: t0, UpdatedAt: t0}
	must(t, "b: put rule", b.PutRule(ctx, rule))
	rules, err := a.ListRules(ctx)
	order(t, "a: list rules", rules, err, ruleName, "dba")
	sameRecord(t, "a sees the rule", rules[0], rule)

	must(t, "a: put group", a.PutGroup(ctx, store.Group{Name: "ops", CreatedAt: t0}))
	must(t, "b: delete group", b.DeleteGroup(ctx, "ops"))
	u, err = a.GetUser(ctx, "alice")
	must(t, "a: get user", err)
	r, err := a.GetRule(ctx, "dba")
	must(t, "a: get rule", err)
	if !slices.Equal(u.Groups, []string{"dev"}) || len(r.Groups) != 0 {
		t.Fatalf("a after b deleted the group: user %v, rule %v", u.Groups, r.Groups)
	}

	rev := &store.Review{Kind: store.ReviewSession, User: "alice", Connection: "db", Reason: "dba", CreatedAt: t0}
	must(t, "a: create review", a.CreateReview(ctx, rev))
	pending, err := b.ListReviews(ctx, store.ReviewFilter{Status: store.ReviewPending})
	order(t, "b: pending reviews", pending, err, reviewID, rev.ID)
	_, err = b.DecideReview(ctx, rev.ID, store.ReviewApproved, "carol", "ok", t0.Add(time.Hour), t0)
	must(t, "b: approve", err)
	g, err := a.ActiveGrant(ctx, "alice", "db", t0.Add(time.Minute))
	must(t, "a: active grant", err)
	if g.ID != rev.ID || g.Decider != "carol" {
		t.Fatalf("a: grant %+v", g)
	}
	_, err = a.DecideReview(ctx, rev.ID, store.ReviewRejected, "dave", "", time.Time{}, t0)
	conflict(t, "a: decide what b decided", err)

	must(t, "a: write session", a.WriteSessions(ctx, []store.Session{{ID: "s1", User: "alice", Start: t0, Outcome: "running"}}))
	must(t, "b: end session", b.WriteSessions(ctx, []store.Session{{ID: "s1", User: "alice", Start: t0, End: t0.Add(time.Minute), Outcome: "ok"}}))
	x, err := a.GetSession(ctx, "s1")
	must(t, "a: get session", err)
	if x.Outcome != "ok" {
		t.Fatalf("a: session %+v", x)
	}

	must(t, "b: delete user", b.DeleteUser(ctx, "alice"))
	_, err = a.GetUser(ctx, "alice")
	notFound(t, "a: get deleted user", err)
}

func testSharedIDs(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	must(t, "put webhook", a.PutWebhook(ctx, store.Webhook{Name: "w", URL: "http://x", Format: store.WebhookJSON, CreatedAt: t0}))
	const each = 20
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i, st := range []store.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				r := &store.Review{Kind: store.ReviewSession, User: "alice", Connection: "db", CreatedAt: t0}
				d := &store.DeadLetter{Webhook: "w", Event: "e", CreatedAt: t0}
				if err := st.CreateReview(ctx, r); err != nil {
					errs <- err
					return
				}
				if err := st.AddDeadLetter(ctx, d); err != nil {
					errs <- err
					return
				}
				// Both handles write chunks of one session: keys are disjoint, no conflict.
				c := store.RecordingChunk{SessionID: "s", Seq: int64(i*each + j), Key: "k", At: t0}
				if err := st.AddRecordingChunks(ctx, []store.RecordingChunk{c}); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[fmt.Sprintf("r%d", r.ID)], seen[fmt.Sprintf("d%d", d.ID)] = true, true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != 2*4*each {
		t.Fatalf("%d distinct ids, want %d", len(seen), 2*4*each)
	}
	chunks, err := b.ListRecordingChunks(ctx, "s")
	must(t, "list chunks", err)
	if len(chunks) != 4*each {
		t.Fatalf("%d chunks, want %d", len(chunks), 4*each)
	}
	// The same chunk from both handles at once: one insert wins.
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		errA = a.AddRecordingChunks(ctx, []store.RecordingChunk{{SessionID: "s2", Seq: 0, Key: "a", At: t0}})
	}()
	go func() {
		defer wg.Done()
		errB = b.AddRecordingChunks(ctx, []store.RecordingChunk{{SessionID: "s2", Seq: 0, Key: "b", At: t0}})
	}()
	wg.Wait()
	if (errA == nil) == (errB == nil) || !errors.Is(errors.Join(errA, errB), store.ErrConflict) {
		t.Fatalf("same chunk from both handles: %v / %v; want one success and one ErrConflict", errA, errB)
	}
}
