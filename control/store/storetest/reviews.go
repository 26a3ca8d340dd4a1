package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

func reviewID(r store.Review) int64 { return r.ID }

func testReviews(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetReview(ctx, 1)
	notFound(t, "get missing", err)
	_, err = s.DecideReview(ctx, 1, store.ReviewApproved, "carol", "", t0, t0)
	notFound(t, "decide missing", err)

	r1 := &store.Review{ID: 99, Kind: store.ReviewSession, User: "alice", Connection: "db", SessionID: "s1",
		Reason: "rule dba requires review: fixing ticket 42", CreatedAt: t0}
	must(t, "create r1", s.CreateReview(ctx, r1))
	if r1.ID != 1 || r1.Status != store.ReviewPending {
		t.Fatalf("created r1: id %d, status %q; want 1, pending", r1.ID, r1.Status)
	}
	r2 := &store.Review{Kind: store.ReviewStatement, User: "alice", Connection: "db", SessionID: "s2",
		Statement: "DELETE FROM payments WHERE id = $1", StatementHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Reason: "write:payments", Status: store.ReviewPending, CreatedAt: t0.Add(time.Second)}
	must(t, "create r2", s.CreateReview(ctx, r2))
	r3 := &store.Review{Kind: store.ReviewSession, User: "bob", Connection: "db2", Reason: "r", CreatedAt: t0.Add(2 * time.Second)}
	must(t, "create r3", s.CreateReview(ctx, r3))
	if r2.ID != 2 || r3.ID != 3 {
		t.Fatalf("ids %d, %d; want 2, 3", r2.ID, r3.ID)
	}
	got, err := s.GetReview(ctx, 2)
	must(t, "get r2", err)
	sameRecord(t, "get r2", got, *r2)
	got, err = s.GetReview(ctx, 1)
	must(t, "get r1", err)
	sameRecord(t, "get r1", got, *r1)

	list := func(f store.ReviewFilter, want ...int64) {
		t.Helper()
		l, err := s.ListReviews(ctx, f)
		order(t, fmt.Sprintf("list %+v", f), l, err, reviewID, want...)
	}
	list(store.ReviewFilter{}, 3, 2, 1)
	list(store.ReviewFilter{Kind: store.ReviewStatement}, 2)
	list(store.ReviewFilter{User: "alice"}, 2, 1)
	list(store.ReviewFilter{Connection: "db2"}, 3)
	list(store.ReviewFilter{Status: store.ReviewPending}, 3, 2, 1)
	list(store.ReviewFilter{User: "alice", Kind: store.ReviewSession}, 1)
	list(store.ReviewFilter{User: "alice", Connection: "db2"})
	list(store.ReviewFilter{Status: store.ReviewApproved})
	list(store.ReviewFilter{Limit: 2}, 3, 2)

	// Approve r1.
	grant := t0.Add(time.Hour)
	decided, err := s.DecideReview(ctx, 1, store.ReviewApproved, "carol", "go ahead", grant, t0.Add(time.Minute))
	must(t, "approve", err)
	want := *r1
	want.Status, want.Decider, want.DecisionNote, want.GrantUntil, want.DecidedAt = store.ReviewApproved, "carol", "go ahead", grant, t0.Add(time.Minute)
	sameRecord(t, "decided", decided, want)
	got, err = s.GetReview(ctx, 1)
	must(t, "get decided", err)
	sameRecord(t, "stored decision", got, want)

	// A decided review cannot be decided again, whatever the new status.
	for _, st := range []string{store.ReviewRejected, store.ReviewApproved, store.ReviewExpired} {
		_, err = s.DecideReview(ctx, 1, st, "dave", "no", time.Time{}, t0.Add(2*time.Minute))
		conflict(t, "decide again "+st, err)
	}
	got, err = s.GetReview(ctx, 1)
	must(t, "get after conflict", err)
	sameRecord(t, "decision kept", got, want)

	// Only approved, rejected and expired are decisions.
	for _, st := range []string{store.ReviewPending, "", "maybe"} {
		_, err := s.DecideReview(ctx, 3, st, "dave", "", time.Time{}, t0)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("decide with status %q: %v", st, err)
		}
	}
	got, err = s.GetReview(ctx, 3)
	must(t, "get r3", err)
	sameRecord(t, "r3 untouched", got, *r3)

	decided, err = s.DecideReview(ctx, 3, store.ReviewRejected, "dave", "not today", time.Time{}, t0.Add(3*time.Minute))
	must(t, "reject", err)
	if decided.Status != store.ReviewRejected || !decided.GrantUntil.IsZero() || decided.Decider != "dave" {
		t.Fatalf("rejected: %+v", decided)
	}
	list(store.ReviewFilter{Status: store.ReviewPending}, 2)
	list(store.ReviewFilter{Status: store.ReviewApproved}, 1)
	list(store.ReviewFilter{Status: store.ReviewRejected, User: "bob"}, 3)
	_, err = s.DecideReview(ctx, 4, store.ReviewApproved, "carol", "", t0, t0)
	notFound(t, "decide missing", err)
}

func testReviewGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.ActiveGrant(ctx, "alice", "db", t0)
	notFound(t, "no reviews", err)
	create := func(kind, user, conn string) int64 {
		t.Helper()
		r := &store.Review{Kind: kind, User: user, Connection: conn, CreatedAt: t0}
		must(t, "create", s.CreateReview(ctx, r))
		return r.ID
	}
	decide := func(id int64, status string, until time.Time) {
		t.Helper()
		_, err := s.DecideReview(ctx, id, status, "carol", "", until, t0)
		must(t, "decide", err)
	}
	grant := func(user, conn string, now time.Time, want int64) {
		t.Helper()
		r, err := s.ActiveGrant(ctx, user, conn, now)
		if want == 0 {
			notFound(t, fmt.Sprintf("grant %s/%s at %v", user, conn, now), err)
			return
		}
		must(t, "grant", err)
		if r.ID != want || r.Status != store.ReviewApproved {
			t.Fatalf("grant %s/%s at %v: review %d (%s), want %d", user, conn, now, r.ID, r.Status, want)
		}
	}

	create(store.ReviewSession, "alice", "db") // pending: no grant
	grant("alice", "db", t0, 0)
	a := create(store.ReviewSession, "alice", "db")
	decide(a, store.ReviewApproved, t0.Add(time.Hour))
	grant("alice", "db", t0.Add(30*time.Minute), a)
	grant("alice", "db", t0.Add(time.Hour), 0) // GrantUntil must be after now
	grant("alice", "db", t0.Add(2*time.Hour), 0)
	grant("alice", "db2", t0, 0)
	grant("bob", "db", t0, 0)

	// Approved statement reviews, rejected and expired ones grant nothing.
	st := create(store.ReviewStatement, "alice", "db")
	decide(st, store.ReviewApproved, t0.Add(5*time.Hour))
	rej := create(store.ReviewSession, "alice", "db")
	decide(rej, store.ReviewRejected, t0.Add(6*time.Hour))
	exp := create(store.ReviewSession, "alice", "db")
	decide(exp, store.ReviewExpired, t0.Add(6*time.Hour))
	grant("alice", "db", t0.Add(2*time.Hour), 0)

	// Of several live grants, the one ending last.
	b := create(store.ReviewSession, "alice", "db")
	decide(b, store.ReviewApproved, t0.Add(3*time.Hour))
	c := create(store.ReviewSession, "alice", "db")
	decide(c, store.ReviewApproved, t0.Add(2*time.Hour))
	grant("alice", "db", t0.Add(30*time.Minute), b)
	grant("alice", "db", t0.Add(150*time.Minute), b)
	grant("alice", "db", t0.Add(3*time.Hour), 0)

	// Another user's grant on the same connection is theirs only.
	bob := create(store.ReviewSession, "bob", "db")
	decide(bob, store.ReviewApproved, t0.Add(10*time.Hour))
	grant("bob", "db", t0.Add(4*time.Hour), bob)
	grant("alice", "db", t0.Add(4*time.Hour), 0)
}

func testReviewLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = store.DefaultLimit + 5
	for i := range n {
		r := &store.Review{Kind: store.ReviewSession, User: "alice", Connection: "db", CreatedAt: t0.Add(time.Duration(i) * time.Second)}
		must(t, "create", s.CreateReview(ctx, r))
		if r.ID != int64(i+1) {
			t.Fatalf("review %d got id %d", i, r.ID)
		}
	}
	for _, limit := range []int{0, -1} {
		l, err := s.ListReviews(ctx, store.ReviewFilter{Limit: limit})
		must(t, "list", err)
		if len(l) != store.DefaultLimit || l[0].ID != n || l[len(l)-1].ID != n-store.DefaultLimit+1 {
			t.Fatalf("limit %d: %d reviews, first %d", limit, len(l), l[0].ID)
		}
	}
	l, err := s.ListReviews(ctx, store.ReviewFilter{Limit: n + 10})
	must(t, "list all", err)
	if len(l) != n {
		t.Fatalf("limit above count: %d reviews, want %d", len(l), n)
	}
}

// testDecideReviewRace decides one review from many goroutines at once:
// exactly one wins and the others see ErrConflict.
func testDecideReviewRace(t *testing.T, s store.Store) {
	DecideRace(t, s, s)
}

// DecideRace creates a pending review through a and decides it
// concurrently through a and b (two handles on one database, or the same
// store twice): exactly one decision may win, the others must get
// ErrConflict, and the stored review must carry the winner's decision.
func DecideRace(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx := context.Background()
	for round := range 5 {
		r := &store.Review{Kind: store.ReviewSession, User: "alice", Connection: "db", CreatedAt: t0}
		must(t, "create", a.CreateReview(ctx, r))
		const n = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]error, n)
		for i := range n {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				status := store.ReviewApproved
				if i%3 == 0 {
					status = store.ReviewRejected
				}
				_, results[i] = st.DecideReview(ctx, r.ID, status, fmt.Sprintf("d%d", i), "", t0.Add(time.Hour), t0)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range results {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: deciders %d and %d both won", round, winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: decider %d: %v, want ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", round)
		}
		got, err := b.GetReview(ctx, r.ID)
		must(t, "get", err)
		if got.Decider != fmt.Sprintf("d%d", winner) || got.Status == store.ReviewPending {
			t.Fatalf("round %d: stored %s by %s, winner d%d", round, got.Status, got.Decider, winner)
		}
	}
}
