package review

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/control/webhook"
	"github.com/sluice-gw/sluice/engine"
)

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

type events struct {
	mu  sync.Mutex
	evs []webhook.Event
}

func (e *events) Notify(ev webhook.Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *events) list() []webhook.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]webhook.Event(nil), e.evs...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

type rig struct {
	t   *testing.T
	st  store.Store
	c   *clock
	ev  *events
	svc *Service
}

func newRig(t *testing.T, mod func(*Options)) *rig {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &rig{t: t, st: st, c: &clock{t: t0}, ev: &events{}}
	r.svc = r.service(mod)
	return r
}

// service returns another Service over the same store (another replica).
func (r *rig) service(mod func(*Options)) *Service {
	o := Options{Clock: r.c.Now, Logger: quiet, Notifier: r.ev, Poll: 5 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	return New(r.st, o)
}

func sess(id, user, conn string) *engine.Session {
	return &engine.Session{ID: id, Protocol: "postgres", Identity: engine.Identity{User: user},
		Plan: &engine.Plan{Connection: conn, Rule: "prod-jit", RequireReview: true}}
}

// waiter is an Await call running in the background.
type waiter struct {
	notes chan string
	done  chan error
}

func (r *rig) awaitSession(svc *Service, ctx context.Context, s *engine.Session) *waiter {
	w := &waiter{notes: make(chan string, 2), done: make(chan error, 1)}
	go func() { w.done <- svc.AwaitSession(ctx, s, func(m string) { w.notes <- m }) }()
	return w
}

func (r *rig) awaitStatement(ctx context.Context, s *engine.Session, kind, text string, params ...[]byte) *waiter {
	w := &waiter{notes: make(chan string, 2), done: make(chan error, 1)}
	go func() { w.done <- r.svc.AwaitStatement(ctx, s, kind, text, params, func(m string) { w.notes <- m }) }()
	return w
}

// held waits for the notice and returns the review id it names.
func (w *waiter) held(t *testing.T) int64 {
	t.Helper()
	select {
	case m := <-w.notes:
		var id int64
		if i := strings.Index(m, "review "); i < 0 {
			t.Fatalf("notice %q names no review", m)
		} else if _, err := fmt.Sscanf(m[i:], "review %d", &id); err != nil {
			t.Fatalf("notice %q: %v", m, err)
		}
		return id
	case err := <-w.done:
		t.Fatalf("returned without holding: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no notice")
	}
	return 0
}

func (w *waiter) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting")
		return nil
	}
}

// immediate asserts the call returns at once without a notice.
func (w *waiter) immediate(t *testing.T) error {
	t.Helper()
	err := w.result(t)
	select {
	case m := <-w.notes:
		t.Fatalf("notified %q although nothing was held", m)
	default:
	}
	return err
}

func code(err error) engine.Code {
	var e *engine.Error
	if !errors.As(err, &e) {
		return -1
	}
	return e.Code
}

func message(err error) string {
	var e *engine.Error
	if !errors.As(err, &e) {
		return fmt.Sprintf("not an *engine.Error: %v", err)
	}
	return e.Message
}

func TestSessionApprovedThenGranted(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	select {
	case m := <-w.notes:
		if m != "waiting for approval, review 1 (an approver runs: sluice admin review approve 1)" {
			t.Fatalf("notice %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notice")
	}
	pending, _ := r.st.GetReview(ctx, 1)
	if pending.Kind != store.ReviewSession || pending.User != "alice" || pending.Connection != "prod" ||
		pending.SessionID != "s1" || pending.Reason != "prod-jit" || pending.Status != store.ReviewPending {
		t.Fatalf("review %+v", pending)
	}
	d, err := r.svc.Decide(ctx, 1, true, "carol", "ok for the incident", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != store.ReviewApproved || !d.GrantUntil.Equal(t0.Add(time.Hour)) || d.Decider != "carol" {
		t.Fatalf("decided %+v", d)
	}
	if err := w.result(t); err != nil {
		t.Fatalf("approved session: %v", err)
	}
	// The grant covers the next sessions of alice on prod, not others.
	r.c.Add(59 * time.Minute)
	if err := r.awaitSession(r.svc, ctx, sess("s2", "alice", "prod")).immediate(t); err != nil {
		t.Fatal(err)
	}
	other := r.awaitSession(r.svc, ctx, sess("s3", "bob", "prod"))
	if id := other.held(t); id != 2 {
		t.Fatalf("bob's review %d", id)
	}
	r.svc.Decide(ctx, 2, false, "carol", "", 0)
	other.result(t)
	r.c.Add(time.Minute) // the grant is over
	again := r.awaitSession(r.svc, ctx, sess("s4", "alice", "prod"))
	again.held(t)
	r.svc.Decide(ctx, 3, true, "carol", "", 30*time.Minute)
	if err := again.result(t); err != nil {
		t.Fatal(err)
	}
	if g, err := r.st.ActiveGrant(ctx, "alice", "prod", r.c.Now()); err != nil || !g.GrantUntil.Equal(r.c.Now().Add(30*time.Minute)) {
		t.Fatalf("explicit grant %+v %v", g, err)
	}

	evs := r.ev.list()
	if len(evs) != 6 {
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	req, dec := evs[0], evs[1]
	if req.Type != webhook.ReviewRequested || req.ID != "review.requested.1" || req.Data[webhook.KeyUser] != "alice" ||
		req.Data[webhook.KeyConnection] != "prod" || req.Data[webhook.KeyReview] != int64(1) || req.Data[webhook.KeyProtocol] != "postgres" {
		t.Fatalf("requested event %+v", req)
	}
	if dec.Type != webhook.ReviewDecided || dec.Data[webhook.KeyDecision] != store.ReviewApproved ||
		dec.Data[webhook.KeyReviewer] != "carol" || dec.Data[webhook.KeyReason] != "ok for the incident" {
		t.Fatalf("decided event %+v", dec)
	}
}

func TestSessionRejected(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	if _, err := r.svc.Decide(ctx, id, false, "carol", "use staging", 0); err != nil {
		t.Fatal(err)
	}
	err := w.result(t)
	if code(err) != engine.CodeDenied || message(err) != "review 1 was rejected by carol: use staging" {
		t.Fatalf("rejection: %v", err)
	}
	if _, err := r.st.ActiveGrant(ctx, "alice", "prod", r.c.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a rejection granted: %v", err)
	}
}

func TestSessionTimeout(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	r.c.Add(DefaultTimeout)
	err := w.result(t)
	if code(err) != engine.CodeReviewTimeout || message(err) != "review 1 was not decided within 5m0s" {
		t.Fatalf("timeout: %v", err)
	}
	rv, _ := r.st.GetReview(ctx, id)
	if rv.Status != store.ReviewExpired || rv.Decider != SystemDecider {
		t.Fatalf("review after timeout %+v", rv)
	}
	evs := r.ev.list()
	if last := evs[len(evs)-1]; last.Type != webhook.ReviewDecided || last.Data[webhook.KeyDecision] != store.ReviewExpired {
		t.Fatalf("expiry event %+v", last)
	}
	// Too late to approve.
	_, err = r.svc.Decide(ctx, id, true, "carol", "", 0)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "review 1 is already expired (by sluice)") {
		t.Fatalf("late decision: %v", err)
	}
}

func TestSessionRequesterGone(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	gone := errors.New("client closed the connection")
	cancel(gone)
	if err := w.result(t); !errors.Is(err, gone) {
		t.Fatalf("result %v, want the context's cause", err)
	}
	rv, _ := r.st.GetReview(context.Background(), id)
	if rv.Status != store.ReviewExpired || !strings.Contains(rv.DecisionNote, "client closed the connection") {
		t.Fatalf("abandoned review %+v", rv)
	}
}

// A decision taken by another replica sharing the store releases the
// waiter through polling alone.
func TestDecisionOnAnotherReplica(t *testing.T) {
	r := newRig(t, nil)
	other := r.service(nil)
	ctx := context.Background()
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	if _, err := other.Decide(ctx, id, true, "carol", "", 0); err != nil {
		t.Fatal(err)
	}
	if err := w.result(t); err != nil {
		t.Fatal(err)
	}
}

// A local decision wakes the waiter at once: with an hour-long poll the
// only way out is the wake-up.
func TestLocalDecisionWakes(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Poll = time.Hour })
	ctx := context.Background()
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	if _, err := r.svc.Decide(ctx, id, true, "carol", "", 0); err != nil {
		t.Fatal(err)
	}
	if err := w.result(t); err != nil {
		t.Fatal(err)
	}
}

func TestSelfApproval(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	_, err := r.svc.Decide(ctx, id, true, "alice", "", 0)
	if code(err) != engine.CodeDenied || !errors.Is(err, ErrSelfApproval) || !strings.Contains(message(err), "alice cannot approve their own review 1") {
		t.Fatalf("self approval: %v", err)
	}
	// Withdrawing one's own request is fine.
	if _, err := r.svc.Decide(ctx, id, false, "alice", "never mind", 0); err != nil {
		t.Fatal(err)
	}
	if code(w.result(t)) != engine.CodeDenied {
		t.Fatal("withdrawn review did not deny")
	}

	demo := newRig(t, func(o *Options) { o.AllowSelfApproval = true })
	w = demo.awaitSession(demo.svc, ctx, sess("s1", "alice", "prod"))
	id = w.held(t)
	if _, err := demo.svc.Decide(ctx, id, true, "alice", "", 0); err != nil {
		t.Fatal(err)
	}
	if err := w.result(t); err != nil {
		t.Fatal(err)
	}
}

func TestDecideErrors(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	if _, err := r.svc.Decide(ctx, 42, true, "carol", "", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	w := r.awaitSession(r.svc, ctx, sess("s1", "alice", "prod"))
	id := w.held(t)
	if _, err := r.svc.Decide(ctx, id, true, "", "", 0); err == nil {
		t.Fatal("no decider accepted")
	}
	if _, err := r.svc.Decide(ctx, id, true, "carol", "", -time.Second); err == nil {
		t.Fatal("negative grant accepted")
	}
	if _, err := r.svc.Decide(ctx, id, true, "carol", "", 0); err != nil {
		t.Fatal(err)
	}
	_, err := r.svc.Decide(ctx, id, false, "dave", "", 0)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "review 1 is already approved (by carol)") {
		t.Fatalf("second decision: %v", err)
	}
	w.result(t)
}

func TestStatementApproval(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	s := sess("s1", "alice", "prod")
	const del = "DELETE FROM payments WHERE id = $1"

	w := r.awaitStatement(ctx, s, "delete", del, []byte("17"))
	select {
	case m := <-w.notes:
		if m != "statement held for approval, review 1 (an approver runs: sluice admin review approve 1)" {
			t.Fatalf("notice %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notice")
	}
	rv, _ := r.st.GetReview(ctx, 1)
	if rv.Kind != store.ReviewStatement || rv.Statement != del || rv.StatementHash != StatementHash(del, [][]byte{[]byte("17")}) ||
		rv.Reason != "delete statement (rule prod-jit)" {
		t.Fatalf("review %+v", rv)
	}
	d, err := r.svc.Decide(ctx, 1, true, "carol", "", 0)
	if err != nil || !d.GrantUntil.Equal(t0.Add(DefaultStatementGrant)) {
		t.Fatalf("decide %+v %v", d, err)
	}
	if err := w.result(t); err != nil {
		t.Fatal(err)
	}
	if ev := r.ev.list()[0]; ev.Data[webhook.KeyStatement] != del {
		t.Fatalf("requested event %+v", ev)
	}

	// The same statement runs again within the grant, also from another
	// session of alice, without a new review.
	r.c.Add(9 * time.Minute)
	if err := r.awaitStatement(ctx, s, "delete", del, []byte("17")).immediate(t); err != nil {
		t.Fatal(err)
	}
	if err := r.awaitStatement(ctx, sess("s2", "alice", "prod"), "delete", del, []byte("17")).immediate(t); err != nil {
		t.Fatal(err)
	}

	// A different statement never rides on that approval: other
	// parameters, other text, no parameters, a NULL, another user, another
	// connection.
	for i, tc := range []struct {
		s      *engine.Session
		text   string
		params [][]byte
	}{
		{s, del, [][]byte{[]byte("18")}},
		{s, del + " ", [][]byte{[]byte("17")}},
		{s, del, nil},
		{s, del, [][]byte{nil}},
		{s, del, [][]byte{[]byte("17"), []byte("")}},
		{sess("s3", "bob", "prod"), del, [][]byte{[]byte("17")}},
		{sess("s4", "alice", "staging"), del, [][]byte{[]byte("17")}},
	} {
		w := r.awaitStatement(ctx, tc.s, "delete", tc.text, tc.params...)
		id := w.held(t)
		if id != int64(i+2) {
			t.Fatalf("case %d: review %d", i, id)
		}
		r.svc.Decide(ctx, id, false, "carol", "no", 0)
		if err := w.result(t); code(err) != engine.CodeDenied {
			t.Fatalf("case %d: %v", i, err)
		}
	}

	// After the grant, the statement needs a new approval.
	r.c.Add(time.Minute)
	w = r.awaitStatement(ctx, s, "delete", del, []byte("17"))
	w.held(t)
	r.c.Add(DefaultTimeout)
	if err := w.result(t); code(err) != engine.CodeReviewTimeout {
		t.Fatalf("after the grant: %v", err)
	}
}

func TestStatementHash(t *testing.T) {
	b := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, x := range s {
			out[i] = []byte(x)
		}
		return out
	}
	cases := []struct {
		text   string
		params [][]byte
	}{
		{"", nil},
		{"select 1", nil},
		{"select 1", [][]byte{}}, // same as nil: no parameters
		{"select $1", b("ab", "c")},
		{"select $1", b("a", "bc")},
		{"select $1", b("abc")},
		{"select $1", [][]byte{nil}},
		{"select $1", b("")},
		{"select $1ab", b("c")},
	}
	seen := map[string]int{}
	for i, tc := range cases {
		h := StatementHash(tc.text, tc.params)
		if len(h) != 64 || strings.ToLower(h) != h {
			t.Fatalf("hash %q", h)
		}
		if j, dup := seen[h]; dup && !(i == 2 && j == 1) {
			t.Errorf("cases %d and %d collide", j, i)
		}
		seen[h] = i
	}
	if StatementHash("select 1", nil) != StatementHash("select 1", [][]byte{}) {
		t.Error("nil and empty parameter lists differ")
	}
	// Approvals in the store are bound to this encoding: changing it voids
	// them, so it is pinned.
	if got := StatementHash("DELETE FROM t WHERE id = $1", b("17")); got != pinnedHash {
		t.Errorf("StatementHash changed: %s", got)
	}
}

// pinnedHash was computed independently from the documented encoding.
const pinnedHash = "c99ba6d9472dd8c825a589e7742404f199c2869eebdc73a4b67f78ba4e7e189c"
