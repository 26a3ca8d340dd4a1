package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
)

// prepare runs what the gateway does between authorisation and dispatch:
// the audit gate, the statement review rules, the session review, the audit
// masking and the recording. Any failure refuses the session (fail closed).
func (f *Frontend) prepare(ctx context.Context, conn net.Conn, sess *engine.Session, gs *gwSession) error {
	plan := sess.Plan
	if err := f.admit(); err != nil {
		return err
	}
	if len(plan.ReviewStatements) > 0 {
		rules, err := parseReviewRules(plan.ReviewStatements)
		if err != nil {
			return &engine.Error{Code: engine.CodeDenied, Message: "connection " + plan.Connection + ": its statement review rules cannot be enforced by this gateway", Err: err}
		}
		if f.cfg.Reviewer == nil {
			return engine.Errorf(engine.CodeDenied, "connection %s requires statement reviews, but this gateway has no reviewer", plan.Connection)
		}
		gs.review = &reviewSet{rules: rules, classifier: f.classifier}
		gs.hold = &holdSlot{}
	}
	if f.cfg.Statements != nil {
		mk, err := f.masks.compile(plan, f.maskKey)
		if err != nil {
			// Its records could not be masked: never store raw values.
			return &engine.Error{Code: engine.CodeDenied, Message: "connection " + plan.Connection + ": its policy cannot be enforced by this gateway", Err: err}
		}
		gs.mask = mk
	}
	if plan.RequireReview {
		if f.cfg.Reviewer == nil {
			return engine.Errorf(engine.CodeDenied, "connection %s requires an approval, but this gateway has no reviewer", plan.Connection)
		}
		if err := f.awaitSession(ctx, conn, sess, gs); err != nil {
			return err
		}
		if err := f.admit(); err != nil { // the wait may have been long
			return err
		}
	}
	if f.cfg.Recorder != nil {
		r, err := f.cfg.Recorder.Start(sess.ID)
		if err != nil {
			return &engine.Error{Code: engine.CodeInternal, Message: "session refused: its recording cannot be started", Err: err}
		}
		gs.rec = &recording{r: r}
		sess.RecordingKey = recordingKey(r, sess.ID)
	}
	return nil
}

var (
	errClientLeft  = errors.New("the client left while its session waited for approval")
	errEarlyClient = errors.New("the client sent a message before its session was ready")
)

// awaitSession holds the session until the Reviewer decides. The client
// gets AuthenticationOk first (libpq takes notices only after it), then the
// Reviewer's notice at once; its connection has no deadline meanwhile: the
// wait is bounded by the review's own timeout and ctx. A client that leaves
// ends the wait.
func (f *Frontend) awaitSession(ctx context.Context, conn net.Conn, sess *engine.Session, gs *gwSession) error {
	ok, _ := (&pgproto3.AuthenticationOk{}).Encode(nil)
	conn.SetDeadline(time.Time{})
	conn.SetWriteDeadline(f.now().Add(5 * time.Second))
	if _, err := conn.Write(ok); err != nil {
		return &engine.Error{Code: engine.CodeInternal, Message: "writing AuthenticationOk", Err: err}
	}
	conn.SetWriteDeadline(time.Time{})
	gs.authOK = true

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := conn.Read(b[:])
		if err == nil {
			err = errEarlyClient
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			cancel(errClientLeft)
		}
		watched <- err
	}()
	var wmu sync.Mutex
	notify := func(msg string) {
		wmu.Lock()
		defer wmu.Unlock()
		conn.SetWriteDeadline(f.now().Add(5 * time.Second))
		conn.Write(appendNotice(nil, msg))
		conn.SetWriteDeadline(time.Time{})
	}
	err := f.cfg.Reviewer.AwaitSession(wctx, sess, notify)
	conn.SetReadDeadline(time.Unix(1, 0)) // stop the watcher
	werr := <-watched
	conn.SetDeadline(f.now().Add(f.cfg.StartupTimeout))
	var ne net.Error
	if !errors.As(werr, &ne) || !ne.Timeout() {
		if werr == errEarlyClient {
			return engine.Errorf(engine.CodeProtocol, "unexpected message before the session was ready")
		}
		return &engine.Error{Code: engine.CodeInternal, Message: errClientLeft.Error(), Err: &net.OpError{Op: "read", Err: werr}}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		var e *engine.Error
		if errors.As(context.Cause(ctx), &e) {
			return e // ended by the control plane meanwhile
		}
		return engine.Errorf(engine.CodeShutdown, "terminating connection: the gateway is shutting down")
	}
	var e *engine.Error
	if errors.As(err, &e) && (e.Code == engine.CodeDenied || e.Code == engine.CodeReviewTimeout) {
		return e
	}
	return &engine.Error{Code: engine.CodeDenied, Message: "session refused: its review could not be completed", Err: err}
}

// auditMasks shares the compiled audit masking of the sessions of one
// connection configuration.
type auditMasks struct {
	mu sync.Mutex
	m  map[string]valueMasker
}

// compile returns the detectors that mask statement texts and parameters in
// audit records: the plan's masking detectors and patterns (column rules do
// not apply: a statement has no result columns). nil when there are none.
func (a *auditMasks) compile(plan *engine.Plan, key []byte) (valueMasker, error) {
	m := plan.Policy.Masking
	if m == nil || len(m.Detectors)+len(m.Patterns) == 0 {
		return nil, nil
	}
	raw, _ := json.Marshal(m)
	ck := plan.Connection + "\x00" + string(raw)
	a.mu.Lock()
	mk, ok := a.m[ck]
	a.mu.Unlock()
	if ok {
		return mk, nil
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(plan.Connection))
	mk, err := compileMasking(&engine.MaskingPolicy{Detectors: m.Detectors, Patterns: m.Patterns, Style: m.Style}, mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.m == nil || len(a.m) >= maxCachedPolicies {
		a.m = map[string]valueMasker{}
	}
	a.m[ck] = mk
	a.mu.Unlock()
	return mk, nil
}
