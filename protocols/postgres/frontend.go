package postgres

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/protocols/postgres/pgguard"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/resume"
)

// Name is the protocol's name in headers, plans and connection types.
const Name = "postgres"

// Frontend is the gateway side: it accepts Postgres clients, authenticates
// them with an access token, dispatches the session to the agent and relays.
type Frontend struct {
	cfg     Config
	auth    engine.Authenticator
	authz   engine.Authorizer
	audit   engine.AuditSink
	tunnels protocols.Dispatcher
	now     func() time.Time

	pool    engine.BufferPool
	cancels cancelKeys
	acc     protocols.Acceptor

	// statement review and audit
	classifier *pgguard.Classifier
	maskKey    []byte // seeds the "hash" style of audit masking
	masks      auditMasks
}

// gwSession is what the gateway keeps for one session beyond its
// engine.Session.
type gwSession struct {
	end    context.CancelCauseFunc
	remove func() // unregisters it from Config.Sessions
	rec    *recording
	review *reviewSet  // nil: no statement review
	hold   *holdSlot   // the statement review it waits for, for CancelRequest
	mask   valueMasker // audit masking; nil: none
	authOK bool        // AuthenticationOk was sent (before a session review)
}

var _ protocols.Frontend = (*Frontend)(nil)

// NewFrontend wires a gateway-side Postgres protocol.
func NewFrontend(cfg Config, auth engine.Authenticator, authz engine.Authorizer, audit engine.AuditSink, tunnels protocols.Dispatcher) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if audit == nil {
		audit = engine.NopAudit{}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil, "gateway")
	}
	f := &Frontend{cfg: cfg, auth: auth, authz: authz, audit: audit, tunnels: tunnels, now: time.Now,
		classifier: pgguard.NewClassifier(pgguard.Options{}), maskKey: cfg.HashKey}
	if len(f.maskKey) == 0 {
		f.maskKey = make([]byte, 32)
		rand.Read(f.maskKey)
	}
	return f, nil
}

// Name implements protocols.Frontend.
func (f *Frontend) Name() string { return Name }

// Serve accepts clients on ln until ctx ends, Drain is called or ln fails,
// then waits for running sessions to finish. Ending ctx ends the sessions
// too (with a native "shutting down" error); Drain lets them run.
func (f *Frontend) Serve(ctx context.Context, ln net.Listener) error {
	return f.acc.Serve(ctx, ln, f.ServeConn)
}

// Drain stops accepting clients; running sessions go on. Serve returns
// once they have all ended.
func (f *Frontend) Drain() { f.acc.Drain() }

// ServeConn implements protocols.Frontend.
func (f *Frontend) ServeConn(ctx context.Context, c net.Conn) {
	sess := &engine.Session{
		ID:         protocols.NewSessionID(),
		Protocol:   Name,
		ClientAddr: c.RemoteAddr().String(),
		Start:      f.now(),
	}
	log := f.cfg.Logger.With("session", sess.ID, "client", sess.ClientAddr)
	// The session's own context: the control plane ends it with a cause
	// (token revoked, killed, time limit) that the client is told, also
	// while it waits for its review (it is registered once authorised).
	sctx, end := context.WithCancelCause(ctx)
	defer end(nil)
	gs := &gwSession{end: end}
	defer func() {
		if gs.remove != nil {
			gs.remove()
		}
	}()
	conn, stream, backend, err := f.startup(sctx, c, sess, gs, log)
	if err != nil {
		f.fail(conn, sess, gs, err, log)
		return
	}
	if stream == nil { // a CancelRequest, a client that left before logging in, or an upstream refusal
		f.closeRecording(gs, log)
		conn.Close()
		return
	}
	defer f.cancels.forget(backend)
	if d := sess.Plan.MaxSession; d > 0 {
		t := time.AfterFunc(d, func() {
			end(engine.Errorf(engine.CodeSessionEnded, "session ended: the time limit of %s for connection %q was reached", d, sess.Plan.Connection))
		})
		defer t.Stop()
	}
	m := f.cfg.Metrics
	wait := f.now().Sub(sess.Start).Seconds()
	m.Setup.Observe(wait)
	m.clientWait.Add(wait)
	m.Active.Inc()
	f.audit.SessionStarted(sess.Record("running", nil, time.Time{}))
	err = f.relay(sctx, conn, stream, sess, gs)
	m.Active.Dec()
	outcome := protocols.Outcome(err)
	if err != nil {
		log.Info("session ended", "error", err)
	}
	f.closeRecording(gs, log)
	m.Sessions.WithLabelValues(sess.Plan.Connection, outcome).Inc()
	f.audit.SessionEnded(sess.Record(outcome, err, f.now()))
}

// closeRecording ends the session's recording, if any.
func (f *Frontend) closeRecording(gs *gwSession, log *slog.Logger) {
	if err := gs.rec.close(); err != nil {
		log.Warn("closing the session recording", "error", err)
	}
}

// admit asks the audit sinks whether they take a new session
// (engine.AuditGate): when one cannot, the session is refused before
// dispatch (fail closed).
func (f *Frontend) admit() error {
	for _, s := range [...]any{f.audit, f.cfg.Statements} {
		g, ok := s.(engine.AuditGate)
		if !ok {
			continue
		}
		if err := g.Admit(); err != nil {
			var e *engine.Error
			if errors.As(err, &e) {
				return e
			}
			return &engine.Error{Code: engine.CodeInternal, Message: "session refused: the audit log cannot take new sessions", Err: err}
		}
	}
	return nil
}

// fail answers err natively (when the client is still there), closes the
// connection and records the attempt.
func (f *Frontend) fail(c net.Conn, sess *engine.Session, gs *gwSession, err error, log *slog.Logger) {
	e := engine.AsError(err)
	if e.Code != engine.CodeInternal || e.Err == nil || !isNetErr(e.Err) {
		msg := appendError(nil, e, true)
		if gs.rec != nil {
			gs.rec.write(engine.ToClient, msg) // refused after its recording started
		}
		c.SetWriteDeadline(f.now().Add(5 * time.Second))
		c.Write(msg)
	}
	c.Close()
	f.closeRecording(gs, log)
	outcome := "error"
	switch e.Code {
	case engine.CodeAuthFailed:
		outcome = "auth_failed"
	case engine.CodeDenied, engine.CodeUnknownConnection:
		outcome = "denied"
	case engine.CodeReviewTimeout:
		outcome = "review_timeout"
	}
	log.Info("session refused", "code", sqlState(e.Code), "error", err)
	f.cfg.Metrics.Refusals.WithLabelValues(protocols.RefusalReason(e.Code)).Inc()
	f.audit.SessionEnded(sess.Record(outcome, err, f.now()))
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// startup runs everything from accept to a ready upstream: TLS, the start-up
// packet, the token, authorisation and dispatch. It returns the (maybe TLS)
// client connection, the session stream and the cancel key given to the
// client; a nil stream with a nil error means there is no session to run.
func (f *Frontend) startup(ctx context.Context, c net.Conn, sess *engine.Session, gs *gwSession, log *slog.Logger) (net.Conn, transport.Stream, cancelKey, error) {
	conn := c
	conn.SetDeadline(f.now().Add(f.cfg.StartupTimeout))
	buf := f.pool.Get(maxStartupBytes)
	defer f.pool.Put(buf)

	secure := false
	var sp *startupPacket
	for sp == nil {
		p, err := readStartup(conn, buf)
		if err != nil {
			if errors.Is(err, errBadStartup) {
				return conn, nil, cancelKey{}, engine.Errorf(engine.CodeProtocol, "invalid startup packet")
			}
			return conn, nil, cancelKey{}, &engine.Error{Code: engine.CodeInternal, Message: "reading startup packet", Err: err}
		}
		switch {
		case p.code == codeSSLRequest && !secure && f.cfg.TLS != nil:
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return conn, nil, cancelKey{}, &engine.Error{Message: "ssl answer", Err: err}
			}
			tc := tls.Server(conn, f.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return conn, nil, cancelKey{}, &engine.Error{Message: "tls handshake", Err: err}
			}
			conn, secure = tc, true
		case p.code == codeSSLRequest || p.code == codeGSSENCReq:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return conn, nil, cancelKey{}, &engine.Error{Message: "ssl answer", Err: err}
			}
		case p.code == codeCancel:
			f.cancel(ctx, p, log)
			return conn, nil, cancelKey{}, nil
		default:
			sp = p
		}
	}

	user := sp.params["user"]
	conn.SetDeadline(f.now().Add(f.cfg.StartupTimeout)) // a fresh budget after TLS
	if user == "" {
		return conn, nil, cancelKey{}, engine.Errorf(engine.CodeAuthFailed, "no user name specified in startup packet")
	}
	db := sp.params["database"]
	if db == "" {
		db = user
	}
	sess.Identity.User = user
	sess.Requested = db
	if r := sp.params["replication"]; r != "" && r != "false" && r != "off" && r != "no" && r != "0" {
		return conn, nil, cancelKey{}, engine.Errorf(engine.CodeProtocol, "replication connections are not supported through Sluice")
	}

	var out []byte
	if sp.minor > 0 || hasProtocolOptions(sp.params) {
		// We speak 3.0 and no _pq_ extensions (protocol §55.2.1).
		nv := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: protocolOptions(sp.params)}
		out, _ = nv.Encode(out)
	}
	if !secure && !f.cfg.AllowPlaintextPassword {
		return conn, nil, cancelKey{}, engine.Errorf(engine.CodeAuthFailed, "this gateway accepts tokens only over TLS; connect with sslmode=require")
	}
	out, _ = (&pgproto3.AuthenticationCleartextPassword{}).Encode(out)
	if _, err := conn.Write(out); err != nil {
		return conn, nil, cancelKey{}, &engine.Error{Message: "auth request", Err: err}
	}
	typ, body, err := readMessage(conn, buf, 4096)
	if err != nil {
		return conn, nil, cancelKey{}, &engine.Error{Code: engine.CodeInternal, Message: "reading password", Err: err}
	}
	if typ != 'p' {
		return conn, nil, cancelKey{}, engine.Errorf(engine.CodeProtocol, "expected password message, got %q", typ)
	}
	token, _, ok := cstring(body)
	if !ok {
		return conn, nil, cancelKey{}, engine.Errorf(engine.CodeProtocol, "malformed password message")
	}

	id, err := f.auth.Authenticate(ctx, user, token)
	if err != nil {
		return conn, nil, cancelKey{}, err
	}
	sess.Identity = id
	plan, err := f.authz.Authorize(ctx, id, db, Name)
	if err != nil {
		return conn, nil, cancelKey{}, err
	}
	sess.Plan = plan
	if f.cfg.Sessions != nil {
		gs.remove = f.cfg.Sessions.Add(sess, gs.end)
	}
	if err := f.prepare(ctx, conn, sess, gs); err != nil {
		return conn, nil, cancelKey{}, err
	}

	hdr := transport.Header{
		SessionID:  sess.ID,
		Kind:       transport.KindSession,
		Connection: plan.Connection,
		Protocol:   Name,
		Target:     plan.Target,
		User:       id.User,
		Params:     forwardedParams(sp.params),
		Policy:     plan.Policy.Encode(),
	}
	// The upstream login has its own budget; the client must not time out first.
	conn.SetDeadline(f.now().Add(f.cfg.ConnectTimeout + 5*time.Second))
	dctx, cancel := context.WithTimeout(ctx, f.cfg.ConnectTimeout)
	defer cancel()
	stream, err := f.tunnels.Open(dctx, plan.Agent, hdr)
	if err != nil {
		if errors.Is(err, transport.ErrAgentOffline) {
			return conn, nil, cancelKey{}, &engine.Error{Code: engine.CodeAgentOffline, Message: "agent " + plan.Agent + " is offline", Err: err}
		}
		return conn, nil, cancelKey{}, &engine.Error{Code: engine.CodeAgentOffline, Message: "agent " + plan.Agent + " is unreachable", Err: err}
	}
	// The stream has no deadlines: bound the upstream handshake by closing it.
	timer := time.AfterFunc(f.cfg.ConnectTimeout, func() { stream.Close() })
	key, ready, err := f.upstreamReady(stream, buf, sess, plan, gs)
	timer.Stop()
	if err != nil {
		if key.pid != 0 {
			f.cancels.forget(key)
		}
		stream.Close()
		if errors.Is(err, errUpstreamRefused) {
			// the agent's ErrorResponse is already in ready
			if gs.rec != nil {
				gs.rec.write(engine.ToClient, ready)
			}
			conn.Write(ready)
			conn.Close()
			f.audit.SessionEnded(sess.Record("error", errors.New(upstreamMessage(ready)), f.now()))
			return conn, nil, cancelKey{}, nil
		}
		return conn, nil, cancelKey{}, err
	}
	if gs.rec != nil {
		if err := gs.rec.write(engine.ToClient, ready); err != nil {
			stream.Close()
			f.cancels.forget(key)
			return conn, nil, cancelKey{}, err.(*recordingError).clientError()
		}
	}
	if _, err := conn.Write(ready); err != nil {
		stream.Close()
		f.cancels.forget(key)
		return conn, nil, cancelKey{}, &engine.Error{Message: "write ready", Err: err}
	}
	conn.SetDeadline(time.Time{})
	return conn, stream, key, nil
}

var errUpstreamRefused = errors.New("upstream refused the session")

// upstreamReady reads the agent's report of the upstream login: the
// ParameterStatus messages, BackendKeyData and ReadyForQuery on success, or
// an ErrorResponse. It returns what to send the client, with the upstream's
// backend key replaced by one of ours.
func (f *Frontend) upstreamReady(stream transport.Stream, buf []byte, sess *engine.Session, plan *engine.Plan, gs *gwSession) (cancelKey, []byte, error) {
	var out []byte
	if !gs.authOK {
		out, _ = (&pgproto3.AuthenticationOk{}).Encode(nil)
	}
	var key cancelKey
	for {
		typ, body, err := readMessage(stream, buf, len(buf))
		if err != nil {
			if key.pid != 0 {
				f.cancels.forget(key)
			}
			var re *resume.Error
			if errors.Is(err, transport.ErrTunnelClosed) || errors.As(err, &re) {
				return key, nil, protocols.AgentLost(plan.Agent, err)
			}
			return key, nil, &engine.Error{Code: engine.CodeUpstream, Message: "no answer from agent " + plan.Agent + " for the upstream login", Err: err}
		}
		switch typ {
		case 'K':
			key = f.cancels.issue(cancelTarget{agent: plan.Agent, sessionID: sess.ID, hold: gs.hold})
			var b [8]byte
			binary.BigEndian.PutUint32(b[:4], key.pid)
			binary.BigEndian.PutUint32(b[4:], key.secret)
			out = appendMessage(out, 'K', b[:])
		case 'S', 'N':
			out = appendMessage(out, typ, body)
		case 'Z':
			out = appendMessage(out, typ, body)
			if key.pid == 0 {
				return key, nil, engine.Errorf(engine.CodeProtocol, "agent sent no backend key")
			}
			return key, out, nil
		case 'E':
			return key, appendMessage(nil, typ, body), errUpstreamRefused
		default:
			return key, nil, engine.Errorf(engine.CodeProtocol, "unexpected message %q from agent during login", typ)
		}
	}
}

// relay runs the steady state until either side ends.
func (f *Frontend) relay(ctx context.Context, conn net.Conn, stream transport.Stream, sess *engine.Session, gs *gwSession) error {
	bufUp := f.pool.Get(f.cfg.BufferSize)
	bufDown := f.pool.Get(f.cfg.BufferSize)
	defer f.pool.Put(bufUp)
	defer f.pool.Put(bufDown)
	sm := f.cfg.Metrics.session(sess.Plan.Connection)
	clock := &stmtClock{m: sm}
	var toAgent, toClient io.Writer = stream, conn
	if gs.rec != nil {
		// Recorded before forwarding: what the client saw, as it saw it.
		toAgent = recWriter{w: stream, rec: gs.rec, dir: engine.ToUpstream}
		toClient = recWriter{w: conn, rec: gs.rec, dir: engine.ToClient}
	}
	up := &pump{src: conn, dst: toAgent, buf: bufUp, max: f.cfg.MaxMessage, n: &sess.BytesIn,
		clock: clock, requests: true, overhead: sm.relay, bytes: sm.toUpstream}
	down := &pump{src: stream, dst: toClient, buf: bufDown, max: f.cfg.MaxMessage, n: &sess.BytesOut,
		clock: clock, overhead: sm.relay, bytes: sm.toClient}
	// rctx ends a statement review wait when the relay ends.
	rctx, rcancel := context.WithCancelCause(ctx)
	defer rcancel(nil)
	var conv *gwConv
	switch {
	case f.cfg.Statements != nil || gs.review != nil:
		conv = newGwConv(rctx, sess, f.cfg.Metrics)
		conv.log = f.cfg.Logger.With("session", sess.ID)
		conv.sink, conv.mask, conv.watch = f.cfg.Statements, gs.mask, !sess.Plan.Policy.Empty()
		conv.review, conv.reviewer, conv.hold = gs.review, f.cfg.Reviewer, gs.hold
		conv.upNow, conv.downNow = &up.now, &down.now
		gate := &sync.Mutex{}
		down.gate = gate
		conv.notice = func(b []byte) error {
			gate.Lock()
			defer gate.Unlock()
			_, err := toClient.Write(b)
			return err
		}
		up.insp, up.maxInspect = gwRequests{conv}, max(gwMaxInspect, f.cfg.BufferSize)
		if gs.review != nil {
			up.maxInspect = max(f.cfg.MaxInspect, f.cfg.BufferSize) // held whole to be classified
		}
		down.insp, down.maxInspect = gwResponses{conv}, max(1<<20, f.cfg.BufferSize)
		for _, p := range []*pump{up, down} {
			p.grow, p.release = f.pool.Get, f.pool.Put
		}
	case !sess.Plan.Policy.Empty():
		// Error messages are small: the cap only guards the buffer growth.
		down.insp, down.maxInspect = denialWatch{sess, f.cfg.Metrics}, 1<<20
		down.grow, down.release = f.pool.Get, f.pool.Put
	}
	// stopConv ends what the other pump may wait for (a review, room in the
	// statement queue) once one pump has ended.
	stopConv := func() {
		rcancel(errConvClosed)
		if conv != nil {
			conv.close()
		}
	}
	if conv != nil {
		defer func() { conv.finish(f.now()) }()
	}

	upDone := make(chan error, 1)
	go func() { upDone <- up.run() }()
	downDone := make(chan error, 1)
	go func() { downDone <- down.run() }()
	// Ending the session from outside stops both pumps without closing the
	// client: it is told why once the stream is at a message boundary.
	stop := context.AfterFunc(ctx, func() {
		stream.Close()
		conn.SetReadDeadline(time.Unix(1, 0))
		conn.SetWriteDeadline(f.now().Add(5 * time.Second))
	})
	defer stop()

	// The side that ended first says how the session ended; the other side's
	// error is only the echo of the close that followed.
	select {
	case err := <-upDone:
		// The client ended or misbehaved: stop the upstream, then tell the
		// client why if it is still there and the stream is at a boundary.
		stream.Close()
		stopConv()
		<-downDone
		if ctx.Err() != nil {
			return f.ended(ctx, conn, down, gs)
		}
		if re, ok := asRecordingError(err); ok {
			e := re.clientError()
			f.tell(conn, down, gs, e)
			conn.Close()
			return e
		}
		var tooBig *errMessageTooLarge
		var ee *engine.Error
		var werr *writeError
		var re *resume.Error
		switch {
		case errors.As(err, &werr) && (errors.As(werr.err, &re) || errors.Is(werr.err, transport.ErrTunnelClosed)):
			// The stream to the agent is gone for good (the other side's
			// error was only the echo of our Close): say so.
			e := protocols.AgentLost(sess.Plan.Agent, werr.err)
			f.tell(conn, down, gs, e)
			conn.Close()
			return e
		case errors.As(err, &tooBig):
			f.tell(conn, down, gs, engine.Errorf(engine.CodeTooLarge, "%s", tooBig.Error()))
		case errors.As(err, &ee):
			f.tell(conn, down, gs, ee) // statement tracking ended the session
		}
		conn.Close()
		if err == nil || isNetErr(err) || errors.As(err, &werr) && isNetErr(werr.err) {
			return nil // the client left
		}
		return err
	case err := <-downDone:
		if ctx.Err() != nil {
			stream.Close()
			stopConv()
			err := f.ended(ctx, conn, down, gs)
			<-upDone
			return err
		}
		var werr *writeError
		var ee *engine.Error
		re, recFailed := asRecordingError(err)
		clientGone := errors.As(err, &werr) && !recFailed
		var lostErr error
		switch {
		case recFailed:
			lostErr = re.clientError()
			f.tell(conn, down, gs, re.clientError())
		case clientGone || err == nil:
		case errors.As(err, &ee):
			lostErr = ee // statement tracking ended the session
			f.tell(conn, down, gs, ee)
		default:
			e := protocols.AgentLost(sess.Plan.Agent, err)
			var tooBig *errMessageTooLarge
			if errors.As(err, &tooBig) {
				e = engine.Errorf(engine.CodeTooLarge, "%s", tooBig.Error())
			}
			lostErr = e
			f.tell(conn, down, gs, e)
		}
		conn.Close()
		stream.Close()
		stopConv()
		<-upDone
		if clientGone {
			return nil
		}
		if lostErr != nil {
			return lostErr
		}
		return nil // the agent ended the session (upstream closed it)
	}
}

// tell sends the client a FATAL error when the stream to it is at a message
// boundary (recorded, when the session is, as everything the client gets).
func (f *Frontend) tell(conn net.Conn, down *pump, gs *gwSession, e *engine.Error) {
	if down.midMessage {
		return
	}
	msg := appendError(nil, e, true)
	if gs.rec != nil {
		gs.rec.write(engine.ToClient, msg) // best effort: the session ends anyway
	}
	conn.SetWriteDeadline(f.now().Add(5 * time.Second))
	conn.Write(msg)
}

// ended tells the client why its session was ended from outside (the
// context's cause, or the gateway shutting down) and closes it.
func (f *Frontend) ended(ctx context.Context, conn net.Conn, down *pump, gs *gwSession) error {
	var e *engine.Error
	if !errors.As(context.Cause(ctx), &e) {
		e = engine.Errorf(engine.CodeShutdown, "terminating connection: the gateway is shutting down")
	}
	f.tell(conn, down, gs, e)
	conn.Close()
	return e
}

// cancel forwards a CancelRequest to the agent of the session it names.
// The client gets no answer either way (protocol §55.2.8).
func (f *Frontend) cancel(ctx context.Context, p *startupPacket, log *slog.Logger) {
	if len(p.secret) != 4 {
		return
	}
	t, ok := f.cancels.lookup(cancelKey{pid: p.pid, secret: binary.BigEndian.Uint32(p.secret)})
	if !ok {
		log.Info("cancel request for unknown key")
		return
	}
	if t.hold.cancelHold() {
		// The statement waits for its review on the gateway: it is refused
		// like a cancelled query, nothing runs upstream.
		log.Info("cancel request ended a statement review wait", "target_session", t.sessionID)
		return
	}
	ctx, done := context.WithTimeout(ctx, 5*time.Second)
	defer done()
	s, err := f.tunnels.Open(ctx, t.agent, transport.Header{
		SessionID: protocols.NewSessionID(),
		Kind:      transport.KindCancel,
		Protocol:  Name,
		Params:    map[string]string{"session": t.sessionID},
	})
	if err != nil {
		log.Info("cancel request not delivered", "error", err)
		return
	}
	defer s.Close()
	timer := time.AfterFunc(5*time.Second, func() { s.Close() })
	defer timer.Stop()
	io.Copy(io.Discard, s) // the agent closes when the cancel was sent
}

// forwardedParams are the client's start-up parameters the agent passes on
// to the upstream: everything but identity and protocol options.
func forwardedParams(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		switch {
		case k == "user" || k == "database" || k == "replication":
		case len(k) > 4 && k[:4] == "_pq_":
		default:
			out[k] = v
		}
	}
	return out
}

func hasProtocolOptions(p map[string]string) bool { return len(protocolOptions(p)) > 0 }

func protocolOptions(p map[string]string) []string {
	var o []string
	for k := range p {
		if len(k) > 4 && k[:4] == "_pq_" {
			o = append(o, k)
		}
	}
	sort.Strings(o)
	return o
}

// upstreamMessage extracts the message of the agent's ErrorResponse for the
// session record.
func upstreamMessage(msg []byte) string {
	var e pgproto3.ErrorResponse
	if len(msg) < 5 || e.Decode(msg[5:]) != nil {
		return "upstream refused the session"
	}
	return e.Message
}
