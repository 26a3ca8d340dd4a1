package review

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/webhook"
	"github.com/sluice-gw/sluice/engine"
)

// Notifier receives control-plane events; *webhook.Dispatcher is one.
// Notify must not block.
type Notifier interface {
	Notify(webhook.Event)
}

// Defaults of Options.
const (
	DefaultTimeout        = 5 * time.Minute
	DefaultPoll           = 300 * time.Millisecond
	DefaultSessionGrant   = time.Hour
	DefaultStatementGrant = 10 * time.Minute
)

// SystemDecider is the Decider recorded on reviews the Service expires
// itself (timeout, requester gone).
const SystemDecider = "sluice"

// Options configures a Service. Zero values take the defaults.
type Options struct {
	Clock    func() time.Time // default time.Now; decides timeouts and grants
	Logger   *slog.Logger     // default slog.Default()
	Notifier Notifier         // nil: no events

	// Timeout is how long a review may stay pending before the waiter
	// gives up and marks it expired; default 5 minutes.
	Timeout time.Duration
	// Poll is how often a waiter re-reads its review from the store (to see
	// decisions taken on other replicas); default 300ms.
	Poll time.Duration
	// SessionGrant and StatementGrant are the grants of an approval whose
	// Decide grant is 0; defaults 1 hour and 10 minutes.
	SessionGrant   time.Duration
	StatementGrant time.Duration
	// AllowSelfApproval lets a user approve their own review (a one-person
	// demo); by default approval needs a second person.
	AllowSelfApproval bool
}

// Service is the Reviewer and the deciding side of reviews. It is safe for
// concurrent use; it owns no goroutine.
type Service struct {
	st   store.Store
	opts Options
	now  func() time.Time
	log  *slog.Logger

	mu   sync.Mutex
	wake chan struct{} // closed and replaced by every local decision
}

var _ engine.Reviewer = (*Service)(nil)

// New returns a Service over st.
func New(st store.Store, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.SessionGrant <= 0 {
		opts.SessionGrant = DefaultSessionGrant
	}
	if opts.StatementGrant <= 0 {
		opts.StatementGrant = DefaultStatementGrant
	}
	return &Service{st: st, opts: opts, now: opts.Clock, log: opts.Logger, wake: make(chan struct{})}
}

func internal(what string, err error) *engine.Error {
	return &engine.Error{Code: engine.CodeInternal, Message: "internal error", Err: fmt.Errorf("review: %s: %w", what, err)}
}

// AwaitSession implements engine.Reviewer: it returns nil at once when the
// user holds a live grant for the session's connection; otherwise it
// creates a session review (Reason: the plan's rule), tells the client how
// to get it approved, and waits. Approved: nil. Rejected: CodeDenied,
// "review N was rejected by X: note". Not decided in time: the review is
// marked expired and the error has CodeReviewTimeout. ctx ending first: the
// review is marked expired and ctx's cause is returned.
func (s *Service) AwaitSession(ctx context.Context, sess *engine.Session, notify func(msg string)) error {
	if sess.Plan == nil {
		return internal("await session", errors.New("session has no plan"))
	}
	user, conn := sess.Identity.User, sess.Plan.Connection
	now := s.now().UTC()
	if _, err := s.st.ActiveGrant(ctx, user, conn, now); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return internal("look up grant", err)
	}
	r := store.Review{Kind: store.ReviewSession, User: user, Connection: conn, SessionID: sess.ID,
		Reason: sess.Plan.Rule, CreatedAt: now}
	if err := s.st.CreateReview(ctx, &r); err != nil {
		return internal("create review", err)
	}
	s.requested(r, sess.Protocol)
	if notify != nil {
		notify(fmt.Sprintf("waiting for approval, review %d (an approver runs: sluice admin review approve %d)", r.ID, r.ID))
	}
	return s.await(ctx, r)
}

// AwaitStatement implements engine.Reviewer: an approved statement review of
// the same user and connection whose StatementHash is
// StatementHash(text, params) and whose GrantUntil is still ahead lets the
// statement run at once (again and again until GrantUntil; see the package
// doc). Otherwise it creates a statement review (Statement: text; Reason:
// kind and the plan's rule) and waits, with AwaitSession's outcomes.
func (s *Service) AwaitStatement(ctx context.Context, sess *engine.Session, kind, text string, params [][]byte, notify func(msg string)) error {
	if sess.Plan == nil {
		return internal("await statement", errors.New("session has no plan"))
	}
	user, conn := sess.Identity.User, sess.Plan.Connection
	hash := StatementHash(text, params)
	now := s.now().UTC()
	ok, err := s.approvedStatement(ctx, user, conn, hash, now)
	if err != nil {
		return internal("look up statement approvals", err)
	}
	if ok {
		return nil
	}
	reason := kind + " statement"
	if sess.Plan.Rule != "" {
		reason += " (rule " + sess.Plan.Rule + ")"
	}
	r := store.Review{Kind: store.ReviewStatement, User: user, Connection: conn, SessionID: sess.ID,
		Statement: text, StatementHash: hash, Reason: reason, CreatedAt: now}
	if err := s.st.CreateReview(ctx, &r); err != nil {
		return internal("create review", err)
	}
	s.requested(r, sess.Protocol)
	if notify != nil {
		notify(fmt.Sprintf("statement held for approval, review %d (an approver runs: sluice admin review approve %d)", r.ID, r.ID))
	}
	return s.await(ctx, r)
}

// approvedLookback bounds how many approved statement reviews of the user
// on the connection are searched; an older approval still live (more than
// this many approvals within its grant) only costs a new review.
const approvedLookback = 200

func (s *Service) approvedStatement(ctx context.Context, user, conn, hash string, now time.Time) (bool, error) {
	list, err := s.st.ListReviews(ctx, store.ReviewFilter{Status: store.ReviewApproved, User: user,
		Connection: conn, Kind: store.ReviewStatement, Limit: approvedLookback})
	if err != nil {
		return false, err
	}
	for _, r := range list {
		if r.StatementHash == hash && r.GrantUntil.After(now) {
			return true, nil
		}
	}
	return false, nil
}

// await waits for r's decision and turns it into the caller's error.
func (s *Service) await(ctx context.Context, r store.Review) error {
	d, err := s.wait(ctx, r)
	if err != nil {
		return err
	}
	switch d.Status {
	case store.ReviewApproved:
		return nil
	case store.ReviewRejected:
		msg := fmt.Sprintf("review %d was rejected by %s", d.ID, d.Decider)
		if d.DecisionNote != "" {
			msg += ": " + d.DecisionNote
		}
		return engine.Deny(msg)
	default: // expired
		return engine.Errorf(engine.CodeReviewTimeout, "review %d was not decided within %v", d.ID, s.opts.Timeout)
	}
}

// waker returns the channel the next local decision closes.
func (s *Service) waker() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wake
}

func (s *Service) wakeAll() {
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// wait returns r once it is decided, expiring it at the timeout or when ctx
// ends (then the error is ctx's cause).
func (s *Service) wait(ctx context.Context, r store.Review) (store.Review, error) {
	deadline := r.CreatedAt.Add(s.opts.Timeout)
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	for {
		wake := s.waker() // before the read: a decision after it closes wake
		cur, err := s.st.GetReview(ctx, r.ID)
		if err == nil && cur.Status != store.ReviewPending {
			return cur, nil
		}
		if ctx.Err() != nil {
			return s.abandon(ctx, r)
		}
		if err != nil {
			s.log.Warn("review: poll failed; retrying", "review", r.ID, "err", err)
		}
		if !s.now().Before(deadline) {
			return s.expire(r, fmt.Sprintf("not decided within %v", s.opts.Timeout))
		}
		select {
		case <-ctx.Done():
			return s.abandon(ctx, r)
		case <-wake:
		case <-tick.C:
		}
	}
}

// abandon expires r because its waiter is gone and returns ctx's cause.
func (s *Service) abandon(ctx context.Context, r store.Review) (store.Review, error) {
	cause := context.Cause(ctx)
	if _, err := s.expire(r, "requester gone: "+cause.Error()); err != nil {
		s.log.Warn("review: could not expire an abandoned review", "review", r.ID, "err", err)
	}
	return store.Review{}, cause
}

// expireTimeout bounds the store writes of expire, which runs when the
// waiter's own context may be over.
const expireTimeout = 10 * time.Second

// expire marks r expired. If someone decided it meanwhile, that decision
// is returned instead.
func (s *Service) expire(r store.Review, note string) (store.Review, error) {
	ctx, cancel := context.WithTimeout(context.Background(), expireTimeout)
	defer cancel()
	d, err := s.st.DecideReview(ctx, r.ID, store.ReviewExpired, SystemDecider, note, time.Time{}, s.now().UTC())
	if errors.Is(err, store.ErrConflict) {
		d, err = s.st.GetReview(ctx, r.ID)
		if err != nil {
			return store.Review{}, internal("read review", err)
		}
		return d, nil
	}
	if err != nil {
		return store.Review{}, &engine.Error{Code: engine.CodeReviewTimeout,
			Message: fmt.Sprintf("review %d was not decided within %v", r.ID, s.opts.Timeout), Err: err}
	}
	s.log.Info("review expired", "review", r.ID, "kind", r.Kind, "user", r.User, "connection", r.Connection, "note", note)
	s.decided(d)
	return d, nil
}

// ErrSelfApproval is wrapped by the *engine.Error (CodeDenied) Decide
// returns when a user approves their own review.
var ErrSelfApproval = errors.New("a review cannot be approved by its requester")

// Decide approves or rejects pending review id as decider, with an
// optional note. An approval grants grant (0: Options.SessionGrant or
// StatementGrant by the review's kind) from now. Waiters in this process
// are woken at once, those on other replicas at their next poll. Errors:
// an unknown id wraps store.ErrNotFound; a review no longer pending wraps
// store.ErrConflict and says what it is; approving one's own review is an
// *engine.Error with CodeDenied wrapping ErrSelfApproval.
func (s *Service) Decide(ctx context.Context, id int64, approve bool, decider, note string, grant time.Duration) (store.Review, error) {
	if decider == "" {
		return store.Review{}, fmt.Errorf("decide review %d: no decider", id)
	}
	if grant < 0 {
		return store.Review{}, fmt.Errorf("decide review %d: negative grant %v", id, grant)
	}
	r, err := s.st.GetReview(ctx, id)
	if err != nil {
		return store.Review{}, fmt.Errorf("review %d: %w", id, err)
	}
	if r.Status != store.ReviewPending {
		return store.Review{}, fmt.Errorf("review %d is already %s%s: %w", id, r.Status, by(r.Decider), store.ErrConflict)
	}
	if approve && decider == r.User && !s.opts.AllowSelfApproval {
		return store.Review{}, &engine.Error{Code: engine.CodeDenied,
			Message: fmt.Sprintf("%s cannot approve their own review %d: another approver must", decider, id), Err: ErrSelfApproval}
	}
	now := s.now().UTC()
	status, until := store.ReviewRejected, time.Time{}
	if approve {
		if grant == 0 {
			grant = s.opts.SessionGrant
			if r.Kind == store.ReviewStatement {
				grant = s.opts.StatementGrant
			}
		}
		status, until = store.ReviewApproved, now.Add(grant)
	}
	d, err := s.st.DecideReview(ctx, id, status, decider, note, until, now)
	if errors.Is(err, store.ErrConflict) {
		if cur, gerr := s.st.GetReview(ctx, id); gerr == nil {
			return store.Review{}, fmt.Errorf("review %d is already %s%s: %w", id, cur.Status, by(cur.Decider), store.ErrConflict)
		}
	}
	if err != nil {
		return store.Review{}, fmt.Errorf("decide review %d: %w", id, err)
	}
	s.log.Info("review decided", "review", id, "kind", d.Kind, "user", d.User, "connection", d.Connection,
		"decision", d.Status, "decider", decider, "grant_until", d.GrantUntil)
	s.decided(d)
	s.wakeAll()
	return d, nil
}

func by(decider string) string {
	if decider == "" {
		return ""
	}
	return " (by " + decider + ")"
}

func (s *Service) requested(r store.Review, protocol string) {
	s.log.Info("review requested", "review", r.ID, "kind", r.Kind, "user", r.User, "connection", r.Connection, "session", r.SessionID)
	if s.opts.Notifier == nil {
		return
	}
	data := map[string]any{
		webhook.KeyReview:     r.ID,
		webhook.KeyUser:       r.User,
		webhook.KeyConnection: r.Connection,
		webhook.KeySession:    r.SessionID,
		webhook.KeyReason:     r.Reason,
		"kind":                r.Kind,
	}
	if protocol != "" {
		data[webhook.KeyProtocol] = protocol
	}
	if r.Kind == store.ReviewStatement {
		data[webhook.KeyStatement] = r.Statement
	}
	s.opts.Notifier.Notify(webhook.Event{ID: fmt.Sprintf("review.requested.%d", r.ID), Type: webhook.ReviewRequested, At: r.CreatedAt, Data: data})
}

func (s *Service) decided(d store.Review) {
	if s.opts.Notifier == nil {
		return
	}
	data := map[string]any{
		webhook.KeyReview:     d.ID,
		webhook.KeyUser:       d.User,
		webhook.KeyConnection: d.Connection,
		webhook.KeySession:    d.SessionID,
		webhook.KeyDecision:   d.Status,
		webhook.KeyReviewer:   d.Decider,
		webhook.KeyReason:     d.DecisionNote,
		"kind":                d.Kind,
	}
	if !d.GrantUntil.IsZero() {
		data["grant_until"] = d.GrantUntil.UTC().Format(time.RFC3339)
	}
	s.opts.Notifier.Notify(webhook.Event{ID: fmt.Sprintf("review.decided.%d", d.ID), Type: webhook.ReviewDecided, At: d.DecidedAt, Data: data})
}
