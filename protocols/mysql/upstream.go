package mysql

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"

	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
)

// Upstream is the agent side: it logs in to the real MySQL/MariaDB with the
// connection's credentials, reports the outcome to the gateway as an OK or
// ERR packet, and relays with guardrails and masking.
type Upstream struct {
	cfg      Config
	policies policyCache

	mu       sync.Mutex
	sessions map[string]upstreamSession // for KILL, by session id
}

type upstreamSession struct {
	target *target
	connID uint32
}

var _ protocols.Upstream = (*Upstream)(nil)

// NewUpstream returns the agent side of the MySQL protocol.
func NewUpstream(cfg Config) (*Upstream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil, "agent")
	}
	return &Upstream{cfg: cfg, sessions: map[string]upstreamSession{}}, nil
}

// Name implements protocols.Upstream.
func (u *Upstream) Name() string { return Name }

// ServeStream implements protocols.Upstream.
func (u *Upstream) ServeStream(ctx context.Context, s transport.Stream, h transport.Header) {
	defer func() { s.CloseWrite(); s.Close() }()
	log := u.cfg.Logger.With("session", h.SessionID, "connection", h.Connection, "user", h.User)
	if h.Kind == transport.KindCancel {
		u.kill(ctx, h.Params["session"], h.Params["mode"] == "connection", log)
		return
	}
	report := func(p []byte) { b, _ := appendPacket(nil, 0, p); s.Write(b) }
	policy, err := u.policies.compile(h.Policy, h.Connection, u.cfg.HashKey)
	if err != nil {
		log.Error("policy rejected", "error", err)
		report(errPayload(erDBAccessDenied, "42000", "connection "+h.Connection+": its policy cannot be enforced by this agent"))
		return
	}
	t, err := parseTarget(h.Target)
	if err != nil {
		u.cfg.Metrics.UpstreamLogins.WithLabelValues("error").Inc()
		report(errPayload(crConnHostError, "HY000", "connection "+h.Connection+": "+err.Error()))
		return
	}
	caps, _ := strconv.ParseUint(h.Params["caps"], 10, 32)
	cs, _ := strconv.Atoi(h.Params["charset"])
	conn, err := u.dial(ctx, t, uint32(caps), cs)
	if err != nil {
		u.cfg.Metrics.UpstreamLogins.WithLabelValues("error").Inc()
		log.Info("upstream login failed", "error", err)
		msg := "could not connect to upstream"
		var me *gomysql.MyError
		if errors.As(err, &me) {
			msg += fmt.Sprintf(": %s (%d)", me.Message, me.Code)
		} else {
			msg += ": " + redact(err.Error(), t.password) // e.g. a TLS verification failure
		}
		report(errPayload(crConnHostError, "HY000", msg))
		return
	}
	raw := conn.Conn.Conn
	defer raw.Close()
	u.cfg.Metrics.UpstreamLogins.WithLabelValues("ok").Inc()
	u.cfg.Metrics.Active.Inc()
	defer u.cfg.Metrics.Active.Dec()
	report(okPayload(statusAutocommit))

	u.mu.Lock()
	u.sessions[h.SessionID] = upstreamSession{target: t, connID: conn.GetConnectionID()}
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.sessions, h.SessionID)
		u.mu.Unlock()
	}()
	if err := u.relay(ctx, s, raw, h.Connection, t.db, policy); err != nil {
		log.Info("session ended", "error", err)
	}
}

// dial logs in to the upstream with exactly the format-relevant
// capabilities the client negotiated with the gateway, and no
// CLIENT_DEPRECATE_EOF, CLIENT_QUERY_ATTRIBUTES or compression, so that
// packets flow unchanged end to end.
func (u *Upstream) dial(ctx context.Context, t *target, clientCaps uint32, cs int) (*client.Conn, error) {
	collation := "utf8mb4_general_ci"
	if cs > 0 {
		if c, err := charset.GetCollationByID(cs); err == nil && c.ID == cs {
			collation = c.Name
		}
	}
	opt := func(c *client.Conn) error {
		c.UnsetCapability(gomysql.CLIENT_DEPRECATE_EOF)
		c.UnsetCapability(gomysql.CLIENT_QUERY_ATTRIBUTES)
		c.UnsetCapability(gomysql.CLIENT_COMPRESS)
		c.UnsetCapability(gomysql.CLIENT_ZSTD_COMPRESSION_ALGORITHM)
		c.UnsetCapability(gomysql.CLIENT_LOCAL_FILES)
		for _, f := range []uint32{capFoundRows, capIgnoreSpace, capMultiStatements, capMultiResults, capPSMultiResults} {
			if clientCaps&f != 0 {
				if err := c.SetCapability(f); err != nil {
					return err
				}
			} else {
				c.UnsetCapability(f)
			}
		}
		if t.tls != nil {
			c.SetTLSConfig(t.tls)
		}
		c.SetAttributes(map[string]string{"program_name": "sluice-agent"})
		return c.SetCollation(collation)
	}
	d := &net.Dialer{Timeout: u.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.ConnectTimeout)
	defer cancel()
	conn, err := client.ConnectWithDialer(ctx, "tcp", t.addr, t.user, t.password, t.db, d.DialContext, opt)
	if err != nil {
		return nil, err
	}
	conn.Conn.Conn.SetDeadline(time.Time{})
	return conn, nil
}

// relay runs the steady state between the gateway stream and the upstream.
func (u *Upstream) relay(ctx context.Context, s transport.Stream, up net.Conn, connection, database string, policy *sessionPolicy) error {
	m := u.cfg.Metrics
	c := newConversation(policy, connection, database, u.cfg.MaxInspect, m)
	var in, out atomic.Int64
	gwOut := &lockedWriter{w: s}
	gwClock, upClock := &timedReader{r: s}, &timedReader{r: up}
	gwR := bufio.NewReaderSize(gwClock, u.cfg.BufferSize)
	upR := bufio.NewReaderSize(upClock, u.cfg.BufferSize)
	upW := bufio.NewWriterSize(up, u.cfg.BufferSize)
	gwW := bufio.NewWriterSize(gwOut, u.cfg.BufferSize)
	var done atomic.Bool
	upDone := make(chan error, 1)
	go func() { upDone <- c.requests(gwR, gwClock, gwOut, upW, &in, &done) }()
	downDone := make(chan error, 1)
	go func() { downDone <- c.responses(upR, upClock, gwW, &out) }()
	stop := context.AfterFunc(ctx, func() { s.Close(); up.Close() })
	defer stop()
	defer func() {
		m.Bytes.WithLabelValues("to_upstream").Add(float64(in.Load()))
		m.Bytes.WithLabelValues("to_client").Add(float64(out.Load()))
	}()
	var err error
	select {
	case err = <-upDone:
		up.Close() // before anything buffered for it is flushed: a refused command never completes
		c.stop(&done)
		<-downDone
		var late *errLateKill
		if errors.As(err, &late) {
			b, _ := appendPacket(nil, late.seq, errPayload(erSpecificAccess, "42000", killRefusal+"; it was found after part of a large command had been forwarded, so the session is closed"))
			gwOut.write(b)
		}
	case err = <-downDone:
		gwW.Flush()
		c.stop(&done)
		s.CloseWrite()
		up.Close()
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

// kill runs KILL QUERY (or KILL CONNECTION) for one of our sessions on a
// separate upstream connection with the same credentials.
func (u *Upstream) kill(ctx context.Context, sessionID string, connection bool, log interface{ Info(string, ...any) }) {
	u.mu.Lock()
	us, ok := u.sessions[sessionID]
	u.mu.Unlock()
	if !ok {
		log.Info("kill for unknown session", "target_session", sessionID)
		return
	}
	conn, err := u.dial(ctx, us.target, 0, 0)
	if err != nil {
		log.Info("kill: dial upstream", "error", err)
		return
	}
	defer conn.Close()
	stmt := "KILL QUERY "
	if connection {
		stmt = "KILL CONNECTION "
	}
	if _, err := conn.Execute(stmt + strconv.FormatUint(uint64(us.connID), 10)); err != nil {
		log.Info("kill: upstream refused", "error", err)
	}
}

// redact hides the password in an error text the client will see.
func redact(s, password string) string {
	if password != "" {
		s = strings.ReplaceAll(s, password, "xxxxx")
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// endWait bounds the wait, after the upstream ended, for the gateway to read
// everything and close (default 10 s; the agent raises it past the resume
// grace so a final packet survives a tunnel loss).
func (u *Upstream) endWait() time.Duration {
	if u.cfg.EndWait > 0 {
		return u.cfg.EndWait
	}
	return 10 * time.Second
}
