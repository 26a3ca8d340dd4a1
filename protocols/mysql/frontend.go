package mysql

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/resume"
)

// Frontend is the gateway side: it accepts MySQL clients, authenticates them
// with an access token (mysql_clear_password), dispatches the session to the
// agent and relays.
type Frontend struct {
	cfg     Config
	auth    engine.Authenticator
	authz   engine.Authorizer
	audit   engine.AuditSink
	tunnels protocols.Dispatcher
	now     func() time.Time

	ids connIDs
	acc protocols.Acceptor
}

var _ protocols.Frontend = (*Frontend)(nil)

// NewFrontend wires a gateway-side MySQL protocol.
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
	return &Frontend{cfg: cfg, auth: auth, authz: authz, audit: audit, tunnels: tunnels, now: time.Now}, nil
}

// Name implements protocols.Frontend.
func (f *Frontend) Name() string { return Name }

// Serve accepts clients on ln until ctx ends, Drain is called or ln fails,
// then waits for running sessions to finish.
func (f *Frontend) Serve(ctx context.Context, ln net.Listener) error {
	return f.acc.Serve(ctx, ln, f.ServeConn)
}

// Drain stops accepting clients; running sessions go on.
func (f *Frontend) Drain() { f.acc.Drain() }

// clientErr is a login failure with the sequence id its ERR packet takes.
type clientErr struct {
	err error
	seq byte
}

// ServeConn implements protocols.Frontend.
func (f *Frontend) ServeConn(ctx context.Context, c net.Conn) {
	sess := &engine.Session{ID: protocols.NewSessionID(), Protocol: Name, ClientAddr: c.RemoteAddr().String(), Start: f.now()}
	log := f.cfg.Logger.With("session", sess.ID, "client", sess.ClientAddr)
	id := f.ids.issue()
	defer f.ids.forget(id)
	conn, stream, ready, seq, err := f.startup(ctx, c, id, sess)
	if err != nil {
		f.fail(conn, sess, err, seq, log)
		return
	}
	if stream == nil {
		conn.Close()
		return
	}
	f.ids.set(id, &killTarget{agent: sess.Plan.Agent, sessionID: sess.ID, user: sess.Identity.User})
	m := f.cfg.Metrics
	wait := f.now().Sub(sess.Start).Seconds()
	m.Setup.Observe(wait)
	m.clientWait.Add(wait)
	m.Active.Inc()
	// The session's own context: the control plane ends it with a cause
	// (token revoked, killed, time limit) that the client is told.
	sctx, end := context.WithCancelCause(ctx)
	defer end(nil)
	if f.cfg.Sessions != nil {
		defer f.cfg.Sessions.Add(sess, end)()
	}
	if d := sess.Plan.MaxSession; d > 0 {
		t := time.AfterFunc(d, func() {
			end(engine.Errorf(engine.CodeSessionEnded, "session ended: the time limit of %s for connection %q was reached", d, sess.Plan.Connection))
		})
		defer t.Stop()
	}
	f.audit.SessionStarted(sess.Record("running", nil, time.Time{}))
	err = f.relay(sctx, conn, stream, sess, ready)
	m.Active.Dec()
	m.Bytes.WithLabelValues("to_upstream").Add(float64(sess.BytesIn.Load()))
	m.Bytes.WithLabelValues("to_client").Add(float64(sess.BytesOut.Load()))
	outcome := protocols.Outcome(err)
	if err != nil {
		log.Info("session ended", "error", err)
	}
	m.Sessions.WithLabelValues(sess.Plan.Connection, outcome).Inc()
	f.audit.SessionEnded(sess.Record(outcome, err, f.now()))
}

func (f *Frontend) fail(c net.Conn, sess *engine.Session, err error, seq byte, log *slog.Logger) {
	e := engine.AsError(err)
	if e.Code != engine.CodeInternal || e.Err == nil || !isNetErr(e.Err) {
		c.SetWriteDeadline(f.now().Add(5 * time.Second))
		b, _ := appendPacket(nil, seq, engineErrPayload(e, true))
		c.Write(b)
	}
	c.Close()
	outcome := "error"
	switch e.Code {
	case engine.CodeAuthFailed:
		outcome = "auth_failed"
	case engine.CodeDenied, engine.CodeUnknownConnection:
		outcome = "denied"
	}
	code, _ := errCode(e.Code, true)
	log.Info("session refused", "code", code, "error", err)
	f.cfg.Metrics.Refusals.WithLabelValues(protocols.RefusalReason(e.Code)).Inc()
	f.audit.SessionEnded(sess.Record(outcome, err, f.now()))
}

const maxLoginPacket = 64 << 10

// startup greets the client, takes the token, authorises and dispatches. It
// returns the (maybe TLS) connection, the stream, the OK packet for the
// client, and on failure the sequence id the ERR packet takes.
func (f *Frontend) startup(ctx context.Context, c net.Conn, id uint32, sess *engine.Session) (net.Conn, transport.Stream, []byte, byte, error) {
	conn := c
	conn.SetDeadline(f.now().Add(f.cfg.StartupTimeout))
	salt := make([]byte, 20)
	rand.Read(salt)
	for i := range salt { // printable, never NUL: some clients treat the salt as a C string
		salt[i] = 0x21 + salt[i]%0x5e
	}
	caps := uint32(serverCaps)
	if f.cfg.TLS != nil {
		caps |= capSSL
	}
	g, _ := appendPacket(nil, 0, greeting(f.cfg.ServerVersion, id, salt, caps))
	if _, err := conn.Write(g); err != nil {
		return conn, nil, nil, 0, &engine.Error{Message: "greeting", Err: err}
	}
	buf := make([]byte, 0, 512)
	p, seq, _, err := readPacket(conn, buf, maxLoginPacket)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return conn, nil, nil, 0, nil // a port probe
		}
		return conn, nil, nil, seq + 1, &engine.Error{Message: "reading handshake response", Err: err}
	}
	hr, err := parseHandshakeResponse(p)
	if err != nil {
		return conn, nil, nil, seq + 1, engine.Errorf(engine.CodeProtocol, "bad handshake: %v", err)
	}
	secure := false
	if hr.sslOnly {
		if f.cfg.TLS == nil {
			return conn, nil, nil, seq + 1, engine.Errorf(engine.CodeProtocol, "bad handshake: TLS was not offered")
		}
		tc := tls.Server(conn, f.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return conn, nil, nil, 0, &engine.Error{Message: "tls handshake", Err: err}
		}
		conn, secure = tc, true
		conn.SetDeadline(f.now().Add(f.cfg.StartupTimeout))
		if p, seq, _, err = readPacket(conn, buf, maxLoginPacket); err != nil {
			return conn, nil, nil, seq + 1, &engine.Error{Message: "reading handshake response", Err: err}
		}
		if hr, err = parseHandshakeResponse(p); err != nil || hr.sslOnly {
			return conn, nil, nil, seq + 1, engine.Errorf(engine.CodeProtocol, "bad handshake")
		}
	}
	seq++
	sess.Identity.User = hr.user
	sess.Requested = hr.db
	switch {
	case hr.user == "":
		return conn, nil, nil, seq, engine.Errorf(engine.CodeAuthFailed, "no user name given: use your Sluice user name")
	case !secure && !f.cfg.AllowPlaintextPassword:
		return conn, nil, nil, seq, engine.Errorf(engine.CodeAuthFailed, "this gateway accepts tokens only over TLS; connect with --ssl-mode=REQUIRED (or tls=true)")
	case hr.db == "":
		return conn, nil, nil, seq, &engine.Error{Code: engine.CodeUnknownConnection, Message: "no connection named: pass the Sluice connection name as the database"}
	}
	token := hr.auth
	if hr.plugin != pluginClear {
		if hr.caps&capPluginAuth == 0 {
			return conn, nil, nil, seq, engine.Errorf(engine.CodeAuthFailed, "the client must support the mysql_clear_password plugin")
		}
		sw, _ := appendPacket(nil, seq, authSwitch())
		if _, err := conn.Write(sw); err != nil {
			return conn, nil, nil, 0, &engine.Error{Message: "auth switch", Err: err}
		}
		p, s, _, err := readPacket(conn, buf, maxLoginPacket)
		if err != nil {
			return conn, nil, nil, seq + 2, &engine.Error{Message: "reading password", Err: err}
		}
		seq, token = s+1, p
	}
	for len(token) > 0 && token[len(token)-1] == 0 {
		token = token[:len(token)-1]
	}
	if len(token) == 0 {
		return conn, nil, nil, seq, engine.Errorf(engine.CodeAuthFailed, "no access token given (did the client refuse mysql_clear_password? see the README)")
	}
	ident, err := f.auth.Authenticate(ctx, hr.user, string(token))
	if err != nil {
		return conn, nil, nil, seq, err
	}
	sess.Identity = ident
	plan, err := f.authz.Authorize(ctx, ident, hr.db, Name)
	if err != nil {
		return conn, nil, nil, seq, err
	}
	sess.Plan = plan
	// Fail closed: a session the audit trail cannot take is not started.
	if g, ok := f.audit.(engine.AuditGate); ok {
		if err := g.Admit(); err != nil {
			return conn, nil, nil, seq, err
		}
	}
	hdr := transport.Header{
		SessionID:  sess.ID,
		Kind:       transport.KindSession,
		Connection: plan.Connection,
		Protocol:   Name,
		Target:     plan.Target,
		User:       ident.User,
		Params: map[string]string{
			"caps":    strconv.FormatUint(uint64(hr.caps&forwardedCaps), 10),
			"charset": strconv.Itoa(int(hr.charset)),
		},
		Policy: plan.Policy.Encode(),
	}
	conn.SetDeadline(f.now().Add(f.cfg.ConnectTimeout + 5*time.Second))
	dctx, cancel := context.WithTimeout(ctx, f.cfg.ConnectTimeout)
	defer cancel()
	stream, err := f.tunnels.Open(dctx, plan.Agent, hdr)
	if err != nil {
		msg := "agent " + plan.Agent + " is unreachable"
		if errors.Is(err, transport.ErrAgentOffline) {
			msg = "agent " + plan.Agent + " is offline"
		}
		return conn, nil, nil, seq, &engine.Error{Code: engine.CodeAgentOffline, Message: msg, Err: err}
	}
	timer := time.AfterFunc(f.cfg.ConnectTimeout, func() { stream.Close() })
	rep, _, _, err := readPacket(stream, buf, maxLoginPacket)
	timer.Stop()
	if err != nil {
		stream.Close()
		var re *resume.Error
		if errors.As(err, &re) { // the agent says why (shutting down, session lost)
			return conn, nil, nil, seq, protocols.AgentLost(plan.Agent, err)
		}
		if errors.Is(err, transport.ErrTunnelClosed) {
			return conn, nil, nil, seq, &engine.Error{Code: engine.CodeAgentLost, Message: "agent " + plan.Agent + " disconnected", Err: err}
		}
		return conn, nil, nil, seq, &engine.Error{Code: engine.CodeUpstream, Message: "no answer from agent " + plan.Agent + " for the upstream login", Err: err}
	}
	if len(rep) == 0 || rep[0] != 0x00 {
		stream.Close()
		_, _, msg, ok := parseErr(rep)
		if !ok {
			msg = "upstream refused the session"
		}
		b, _ := appendPacket(nil, seq, rep)
		conn.Write(b)
		conn.Close()
		f.audit.SessionEnded(sess.Record("error", errors.New(msg), f.now()))
		return conn, nil, nil, 0, nil
	}
	ok, _ := appendPacket(nil, seq, rep)
	conn.SetDeadline(time.Time{})
	return conn, stream, ok, 0, nil
}

// killRe matches the KILL statements the gateway maps to the upstream.
var killRe = regexp.MustCompile(`(?is)^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(QUERY|CONNECTION)?\s*(\d+)\s*;?\s*$`)

// killCommand answers a KILL [QUERY|CONNECTION] <gateway id> (COM_QUERY) or
// COM_PROCESS_KILL: the id is one the gateway handed out, and becomes the
// upstream thread id on the agent. Only the same Sluice user's sessions can
// be killed. handled is false for anything else.
func (f *Frontend) killCommand(ctx context.Context, p []byte, sess *engine.Session) (resp []byte, handled bool) {
	var id uint64
	query := false
	switch {
	case len(p) == 5 && p[0] == comProcessKill:
		id = uint64(binary.LittleEndian.Uint32(p[1:]))
	case len(p) > 5 && p[0] == comQuery && (p[1]|0x20 == 'k' || p[1] == ' ' || p[1] == '\t' || p[1] == '\n'):
		m := killRe.FindSubmatch(p[1:])
		if m == nil {
			if kw := killWord.Match(p[1:]); kw {
				return errPayload(erSpecificAccess, "42000", "KILL through Sluice takes the form KILL [QUERY|CONNECTION] <id>, with the id from the client's own connection"), true
			}
			return nil, false
		}
		query = len(m[1]) > 0 && (m[1][0]|0x20) == 'q'
		var err error
		if id, err = strconv.ParseUint(string(m[2]), 10, 32); err != nil {
			return errPayload(erNoSuchThread, "HY000", "Unknown thread id: "+string(m[2])), true
		}
	default:
		return nil, false
	}
	t := f.ids.lookup(uint32(id))
	if t == nil || t.user != sess.Identity.User {
		return errPayload(erNoSuchThread, "HY000", fmt.Sprintf("Unknown thread id: %d", id)), true
	}
	mode := "connection"
	if query {
		mode = "query"
	}
	cctx, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	s, err := f.tunnels.Open(cctx, t.agent, transport.Header{
		SessionID: protocols.NewSessionID(),
		Kind:      transport.KindCancel,
		Protocol:  Name,
		Params:    map[string]string{"session": t.sessionID, "mode": mode},
	})
	if err != nil {
		return engineErrPayload(&engine.Error{Code: engine.CodeAgentOffline, Message: "agent " + t.agent + " is unreachable"}, false), true
	}
	timer := time.AfterFunc(10*time.Second, func() { s.Close() })
	io.Copy(io.Discard, s) // the agent closes once the KILL ran
	timer.Stop()
	s.Close()
	return okPayload(statusAutocommit), true
}

var killWord = regexp.MustCompile(`(?i)^\s*KILL\b`)

// relay runs the steady state until either side ends.
func (f *Frontend) relay(ctx context.Context, conn net.Conn, stream transport.Stream, sess *engine.Session, ready []byte) error {
	cw := &lockedWriter{w: conn, n: &sess.BytesOut}
	if err := cw.write(ready); err != nil {
		stream.Close()
		conn.Close()
		return nil
	}
	q := &cmdRing{}
	sm := f.cfg.Metrics.session(sess.Plan.Connection, "relay")
	var down downState
	upDone := make(chan error, 1)
	go func() { upDone <- f.requests(ctx, conn, stream, cw, sess, q, sm, &down) }()
	downDone := make(chan error, 1)
	go func() { downDone <- f.responses(stream, cw, sess, q, sm, &down) }()
	// Ending the session from outside stops both sides without closing the
	// client: it is told why when the responses are at a packet boundary.
	stop := context.AfterFunc(ctx, func() {
		stream.Close()
		conn.SetReadDeadline(time.Unix(1, 0))
		conn.SetWriteDeadline(f.now().Add(5 * time.Second))
	})
	defer stop()
	select {
	case err := <-upDone:
		stream.Close()
		<-downDone
		if ctx.Err() != nil {
			return f.ended(ctx, cw, conn, q, &down)
		}
		if streamLost(err) {
			// The stream failed for good and the request side saw it
			// first (a write while the down side waited): the client is
			// told as when the down side sees it.
			e := protocols.AgentLost(sess.Plan.Agent, err)
			f.tell(cw, conn, q, &down, e)
			return e
		}
		var tooBig *errPacketTooLarge
		if errors.As(err, &tooBig) {
			conn.SetWriteDeadline(f.now().Add(5 * time.Second))
			b, _ := appendPacket(nil, 1, errPayload(erNetPacketTooBig, "08S01", "Got a packet bigger than the gateway's limit: "+tooBig.Error()))
			cw.write(b)
		}
		conn.Close()
		var werr *writeError
		if err == nil || isNetErr(err) || errors.As(err, &werr) {
			return nil
		}
		return err
	case err := <-downDone:
		if ctx.Err() != nil {
			stream.Close()
			e := f.ended(ctx, cw, conn, q, &down)
			<-upDone
			return e
		}
		var werr *writeError
		if err == nil || errors.As(err, &werr) || errors.Is(err, io.EOF) {
			conn.Close()
			stream.Close()
			<-upDone
			return nil
		}
		e := protocols.AgentLost(sess.Plan.Agent, err)
		f.tell(cw, conn, q, &down, e)
		stream.Close()
		<-upDone
		return e
	}
}

// streamLost reports whether err, from the request side, is the session's
// stream failing (the agent or the tunnel gone for good) rather than the
// client.
func streamLost(err error) bool {
	var re *resume.Error
	return errors.As(err, &re) || errors.Is(err, transport.ErrTunnelClosed)
}

// downState is where the response side stopped, for an error the gateway
// adds itself: only at a packet boundary, with the next sequence id.
type downState struct {
	boundary atomic.Bool
	lastSeq  atomic.Uint32 // of the last response packet relayed
	// awaiting: a client packet was forwarded and no response packet has
	// been relayed since; its answer then takes reqSeq+1.
	awaiting atomic.Bool
	reqSeq   atomic.Uint32
}

// ended tells the client why its session was ended from outside (the
// context's cause, or the gateway shutting down) and closes it.
func (f *Frontend) ended(ctx context.Context, cw *lockedWriter, conn net.Conn, q *cmdRing, down *downState) error {
	var e *engine.Error
	if !errors.As(context.Cause(ctx), &e) {
		e = engine.Errorf(engine.CodeShutdown, "the gateway is shutting down")
	}
	f.tell(cw, conn, q, down, e)
	return e
}

// tell sends e as an ERR packet where the stream allows one, then closes.
func (f *Frontend) tell(cw *lockedWriter, conn net.Conn, q *cmdRing, down *downState, e *engine.Error) {
	if down.boundary.Load() {
		seq := byte(0)
		if down.awaiting.Load() {
			seq = byte(down.reqSeq.Load() + 1) // the answer to the last request
		} else if _, pending := q.front(); pending {
			seq = byte(down.lastSeq.Load() + 1) // inside an answer
		}
		conn.SetWriteDeadline(f.now().Add(5 * time.Second))
		b, _ := appendPacket(nil, seq, engineErrPayload(e, false))
		cw.write(b)
	}
	conn.Close()
}

// requests relays client commands to the agent, answering KILL itself, and
// queues each forwarded command for responses to time.
func (f *Frontend) requests(ctx context.Context, conn net.Conn, stream transport.Stream, cw *lockedWriter, sess *engine.Session, q *cmdRing, sm *sessionMetrics, down *downState) error {
	clock := &timedReader{r: conn}
	src := bufio.NewReaderSize(clock, f.cfg.BufferSize)
	r := &relayer{src: src, dst: bufio.NewWriterSize(stream, f.cfg.BufferSize), n: &sess.BytesIn, overhead: sm.overhead, clock: clock}
	for {
		ln, seq, err := r.header()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if ln > 5 && ln <= src.Size() && ln <= 4096 || ln == 5 {
			p, err := src.Peek(ln)
			if err != nil {
				return io.ErrUnexpectedEOF
			}
			if p[0] == comQuery || p[0] == comProcessKill {
				if resp, ok := f.killCommand(ctx, p, sess); ok {
					src.Discard(ln)
					if err := r.flush(); err != nil {
						return err
					}
					b, _ := appendPacket(nil, seq+1, resp)
					if err := cw.write(b); err != nil {
						return err
					}
					continue
				}
			}
		}
		if ln > 0 {
			b, err := src.Peek(1)
			if err != nil {
				return io.ErrUnexpectedEOF
			}
			if k := commandKind(b[0]); k != respNone {
				q.push(k, clock.at)
			}
		}
		size := 0
		for {
			size += ln
			if size > f.cfg.MaxMessage {
				return &errPacketTooLarge{size: size, max: f.cfg.MaxMessage}
			}
			down.reqSeq.Store(uint32(seq))
			down.awaiting.Store(true)
			if err := r.writeHeader(ln, seq); err != nil {
				return err
			}
			if err := r.copyN(ln); err != nil {
				return err
			}
			if ln < maxPart {
				break
			}
			if ln, seq, err = r.header(); err != nil {
				return err
			}
		}
	}
}

// responses relays the agent's packets to the client, recording the
// denials the agent reports (ERR 1142 from guardrails or masking) and
// timing each command from the first bytes of its response's packets.
func (f *Frontend) responses(stream transport.Stream, cw *lockedWriter, sess *engine.Session, q *cmdRing, sm *sessionMetrics, down *downState) error {
	clock := &timedReader{r: stream}
	src := bufio.NewReaderSize(clock, f.cfg.BufferSize)
	r := &relayer{src: src, dst: bufio.NewWriterSize(cw, f.cfg.BufferSize), n: new(atomic.Int64), overhead: sm.overhead, clock: clock}
	var trk respTracker
	timer := stmtTimer{m: sm}
	cont := false
	down.boundary.Store(true)
	for {
		ln, seq, err := r.header()
		if err != nil {
			if cont || errors.Is(err, io.ErrUnexpectedEOF) {
				down.boundary.Store(false)
			}
			return err
		}
		down.boundary.Store(false)
		down.lastSeq.Store(uint32(seq))
		down.awaiting.Store(false)
		if pc, ok := q.front(); ok && !cont {
			head, err := src.Peek(min(ln, trackHead))
			if len(head) < min(ln, trackHead) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			switch pi, err := trk.feed(pc.kind, head, ln); {
			case err != nil:
				q.lost.Store(true) // timing stops; the relay never fails over it
			case pi.end:
				timer.done(pc.at, clock.at, pi)
				q.pop()
			}
		}
		if !cont && ln >= 9 && ln <= 4096 {
			if p, err := src.Peek(ln); err == nil && p[0] == 0xff {
				f.watchDenial(p, sess)
			}
		}
		if err := r.writeHeader(ln, seq); err != nil {
			return err
		}
		if err := r.copyN(ln); err != nil {
			return err
		}
		cont = ln == maxPart
		down.boundary.Store(true)
	}
}

func (f *Frontend) watchDenial(p []byte, sess *engine.Session) {
	code, _, msg, ok := parseErr(p)
	if !ok || code != erTableAccess {
		return
	}
	switch {
	case len(msg) >= 16 && msg[:16] == "statement denied":
		f.cfg.Metrics.Denials.WithLabelValues("guardrail").Inc()
	case len(msg) >= 8 && msg[:8] == "masking:":
		f.cfg.Metrics.Denials.WithLabelValues("masking").Inc()
	default:
		return
	}
	sess.Denied(msg)
}
