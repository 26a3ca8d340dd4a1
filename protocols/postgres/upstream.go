package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
)

// Upstream is the agent side: it logs in to the real PostgreSQL with the
// connection's credentials (trust, cleartext, MD5, SCRAM-SHA-256; TLS per the
// target's sslmode, via pgconn), reports the result to the gateway in
// protocol form, and relays.
type Upstream struct {
	cfg      Config
	pool     engine.BufferPool
	policies policyCache

	mu       sync.Mutex
	sessions map[string]upstreamSession // for CancelRequest, by session id
}

type upstreamSession struct {
	addr   net.Addr
	pid    uint32
	secret []byte
}

var _ protocols.Upstream = (*Upstream)(nil)

// NewUpstream returns the agent side of the Postgres protocol.
func NewUpstream(cfg Config) (*Upstream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil, "agent")
	}
	return &Upstream{cfg: cfg, sessions: make(map[string]upstreamSession)}, nil
}

// Name implements protocols.Upstream.
func (u *Upstream) Name() string { return Name }

// ServeStream implements protocols.Upstream.
func (u *Upstream) ServeStream(ctx context.Context, s transport.Stream, h transport.Header) {
	// CloseWrite first, so a final ErrorResponse is delivered, not aborted.
	defer func() { s.CloseWrite(); s.Close() }()
	log := u.cfg.Logger.With("session", h.SessionID, "connection", h.Connection, "user", h.User)
	if h.Kind == transport.KindCancel {
		u.cancel(ctx, h.Params["session"], log)
		return
	}
	policy, err := u.policies.compile(h.Policy, h.Connection, u.cfg.HashKey)
	if err != nil {
		// Fail closed: never run a session whose policy cannot be enforced.
		log.Error("policy rejected", "error", err)
		s.Write(appendError(nil, &engine.Error{Code: engine.CodeDenied, Message: "connection " + h.Connection + ": its policy cannot be enforced by this agent", Err: err}, true))
		return
	}
	hc, err := u.dial(ctx, h, policy)
	if err != nil {
		u.cfg.Metrics.UpstreamLogins.WithLabelValues("error").Inc()
		log.Info("upstream login failed", "error", err)
		s.Write(appendError(nil, err, true))
		return
	}
	defer hc.Conn.Close()
	u.cfg.Metrics.UpstreamLogins.WithLabelValues("ok").Inc()
	u.cfg.Metrics.Active.Inc()
	defer u.cfg.Metrics.Active.Dec()

	out := make([]byte, 0, 512)
	params := make([]string, 0, len(hc.ParameterStatuses))
	for k := range hc.ParameterStatuses {
		params = append(params, k)
	}
	sort.Strings(params)
	for _, k := range params {
		out, _ = (&pgproto3.ParameterStatus{Name: k, Value: hc.ParameterStatuses[k]}).Encode(out)
	}
	out, _ = (&pgproto3.BackendKeyData{ProcessID: hc.PID, SecretKey: hc.SecretKey}).Encode(out)
	out, _ = (&pgproto3.ReadyForQuery{TxStatus: hc.TxStatus}).Encode(out)
	if _, err := s.Write(out); err != nil {
		log.Info("gateway went away during login", "error", err)
		return
	}

	u.mu.Lock()
	u.sessions[h.SessionID] = upstreamSession{addr: hc.Conn.RemoteAddr(), pid: hc.PID, secret: hc.SecretKey}
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.sessions, h.SessionID)
		u.mu.Unlock()
	}()

	var names *columnNames
	if policy != nil {
		cfg := hc.Config.Copy()
		names = &columnNames{dial: func(ctx context.Context) (*pgconn.PgConn, error) { return pgconn.ConnectConfig(ctx, cfg) }}
		defer names.close()
	}
	if err := u.relay(ctx, s, hc.Conn, h.Connection, policy, names); err != nil {
		log.Info("session ended", "error", err)
	}
}

// dial resolves the target and performs the whole upstream start-up.
func (u *Upstream) dial(ctx context.Context, h transport.Header, policy *sessionPolicy) (*pgconn.HijackedConn, error) {
	target, err := ResolveTarget(h.Target)
	if err != nil {
		return nil, &engine.Error{Code: engine.CodeUpstream, Message: "connection " + h.Connection + ": " + err.Error(), Err: err}
	}
	pc, err := pgconn.ParseConfig(target)
	if err != nil {
		// The parse error may quote the target; never echo credentials.
		return nil, &engine.Error{Code: engine.CodeUpstream, Message: "connection " + h.Connection + ": invalid target", Err: err}
	}
	for k, v := range h.Params {
		if _, fixed := pc.RuntimeParams[k]; !fixed {
			pc.RuntimeParams[k] = v
		}
	}
	if policy != nil && policy.guard != nil {
		// Guardrails read statements as UTF-8: the server must decode them so.
		if strings.Contains(strings.ToLower(pc.RuntimeParams["options"]), "client_encoding") {
			return nil, engine.Errorf(engine.CodeDenied, "client_encoding cannot be set in options on a connection with guardrails")
		}
		pc.RuntimeParams["client_encoding"] = "UTF8"
	}
	pc.ConnectTimeout = u.cfg.ConnectTimeout
	ctx, cancel := context.WithTimeout(ctx, u.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return nil, &engine.Error{Code: engine.CodeUpstream, Message: fmt.Sprintf("could not connect to upstream: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code), Err: err}
		}
		return nil, &engine.Error{Code: engine.CodeUpstream, Message: "could not connect to upstream: " + redact(err.Error(), pc.Password), Err: err}
	}
	if err := conn.SyncConn(ctx); err != nil {
		conn.Close(ctx)
		return nil, &engine.Error{Code: engine.CodeUpstream, Message: "could not connect to upstream: sync failed", Err: err}
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(ctx)
		return nil, &engine.Error{Code: engine.CodeUpstream, Message: "could not connect to upstream: hijack failed", Err: err}
	}
	return hc, nil
}

// relay runs the steady state between the gateway stream and the upstream.
func (u *Upstream) relay(ctx context.Context, s transport.Stream, up net.Conn, connection string, policy *sessionPolicy, names *columnNames) error {
	bufUp := u.pool.Get(u.cfg.BufferSize)
	bufDown := u.pool.Get(u.cfg.BufferSize)
	defer u.pool.Put(bufUp)
	defer u.pool.Put(bufDown)
	var in, out atomic.Int64
	sm := u.cfg.Metrics.session(connection)
	clock := &stmtClock{m: sm}
	toUp := &pump{src: s, dst: up, buf: bufUp, max: u.cfg.MaxMessage, n: &in,
		clock: clock, requests: true, overhead: sm.relay, bytes: sm.toUpstream}
	toGw := &pump{src: up, dst: s, buf: bufDown, max: u.cfg.MaxMessage, n: &out,
		clock: clock, overhead: sm.relay, bytes: sm.toClient, more: nonBlockingReader(up)}
	if policy != nil {
		conv := newConversation(policy, names, u.cfg.Metrics)
		for _, p := range []*pump{toUp, toGw} {
			p.maxInspect = u.cfg.MaxInspect
			p.grow, p.release = u.pool.Get, u.pool.Put
			p.overhead = sm.inspect
		}
		toUp.insp, toGw.insp = clientSide{conv}, serverSide{conv}
	}

	upDone := make(chan error, 1)
	go func() { upDone <- toUp.run() }()
	downDone := make(chan error, 1)
	go func() { downDone <- toGw.run() }()
	stop := context.AfterFunc(ctx, func() { s.Close(); up.Close() })
	defer stop()

	var err error
	select {
	case err = <-upDone:
		// The gateway side ended (client gone, tunnel lost): release the
		// upstream now.
		up.Close()
		<-downDone
	case err = <-downDone:
		var werr *writeError
		if err != nil && !errors.As(err, &werr) && !toGw.midMessage {
			e := &engine.Error{Code: engine.CodeUpstream, Message: "upstream connection lost", Err: err}
			var tooBig *errMessageTooLarge
			if errors.As(err, &tooBig) {
				e = engine.Errorf(engine.CodeTooLarge, "%s", tooBig.Error())
			}
			s.Write(appendError(nil, e, true))
		}
		s.CloseWrite()
		up.Close()
		// The gateway closes its side when it has read everything; bound the wait.
		select {
		case <-upDone:
		case <-time.After(u.endWait()):
			s.Close()
			<-upDone
		}
	}
	if err != nil && isNetErr(err) {
		return nil
	}
	return err
}

// cancel sends a CancelRequest for one of our sessions to its upstream.
func (u *Upstream) cancel(ctx context.Context, sessionID string, log interface{ Info(string, ...any) }) {
	u.mu.Lock()
	us, ok := u.sessions[sessionID]
	u.mu.Unlock()
	if !ok {
		log.Info("cancel for unknown session", "target_session", sessionID)
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, us.addr.Network(), us.addr.String())
	if err != nil {
		log.Info("cancel: dial upstream", "error", err)
		return
	}
	defer c.Close()
	msg := make([]byte, 0, 16+len(us.secret))
	msg = binary.BigEndian.AppendUint32(msg, uint32(12+len(us.secret)))
	msg = binary.BigEndian.AppendUint32(msg, codeCancel)
	msg = binary.BigEndian.AppendUint32(msg, us.pid)
	msg = append(msg, us.secret...)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		log.Info("cancel: write", "error", err)
		return
	}
	// The server closes the connection once it has read the request.
	var b [1]byte
	c.Read(b[:])
}

// ResolveTarget expands references in a connection target on the agent, so
// a secret can live only in the agent's environment: ${VAR} is replaced from
// the environment, and a target of the form "env:VAR" is read whole from VAR.
// A reference to an unset variable is an error. A bare '$' is left alone, so
// passwords may contain it.
func ResolveTarget(t string) (string, error) {
	if name, ok := strings.CutPrefix(t, "env:"); ok {
		v, set := os.LookupEnv(name)
		if !set {
			return "", fmt.Errorf("target variable %s is not set on the agent", name)
		}
		return v, nil
	}
	var missing string
	out := targetVar.ReplaceAllStringFunc(t, func(ref string) string {
		v, set := os.LookupEnv(ref[2 : len(ref)-1])
		if !set && missing == "" {
			missing = ref[2 : len(ref)-1]
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("target variable %s is not set on the agent", missing)
	}
	return out, nil
}

var targetVar = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "xxxxx")
}

func (u *Upstream) endWait() time.Duration {
	if u.cfg.EndWait > 0 {
		return u.cfg.EndWait
	}
	return 10 * time.Second
}
