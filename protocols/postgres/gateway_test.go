package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
)

// A gateway under test: the real Frontend on a TCP listener, fakes for the
// control plane, and a fake agent over an in-memory tunnel that answers like
// a PostgreSQL server (including the skip to Sync after an error) and
// remembers what it ran.

type testAuth struct{}

func (testAuth) Authenticate(ctx context.Context, user, secret string) (engine.Identity, error) {
	if secret != "tok" {
		return engine.Identity{}, engine.Errorf(engine.CodeAuthFailed, "bad token")
	}
	return engine.Identity{User: user, TokenID: "tok-1"}, nil
}

type testAuthz struct{ plan engine.Plan }

func (a testAuthz) Authorize(ctx context.Context, id engine.Identity, connection, protocol string) (*engine.Plan, error) {
	p := a.plan
	p.Connection, p.Agent = connection, "fake-agent"
	return &p, nil
}

// testAudit collects session records; admit, when set, is its AuditGate.
type testAudit struct {
	mu      sync.Mutex
	started []engine.SessionRecord
	ended   []engine.SessionRecord
	admit   error
	done    chan engine.SessionRecord
}

func newTestAudit() *testAudit { return &testAudit{done: make(chan engine.SessionRecord, 16)} }

func (a *testAudit) SessionStarted(r engine.SessionRecord) {
	a.mu.Lock()
	a.started = append(a.started, r)
	a.mu.Unlock()
}

func (a *testAudit) SessionEnded(r engine.SessionRecord) {
	a.mu.Lock()
	a.ended = append(a.ended, r)
	a.mu.Unlock()
	a.done <- r
}

func (a *testAudit) Admit() error { return a.admit }

func (a *testAudit) waitEnded(t *testing.T) engine.SessionRecord {
	t.Helper()
	select {
	case r := <-a.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no session record")
	}
	return engine.SessionRecord{}
}

// testStatements collects statement records.
type testStatements struct {
	mu   sync.Mutex
	recs []engine.StatementRecord
}

func (s *testStatements) Statement(r engine.StatementRecord) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *testStatements) snapshot() []engine.StatementRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.StatementRecord(nil), s.recs...)
}

// wait returns the records once there are n.
func (s *testStatements) wait(t *testing.T, n int) []engine.StatementRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.snapshot()
		if len(r) >= n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statement records, want %d: %+v", len(r), n, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reviewCall is one call of testReviewer.
type reviewCall struct {
	session      bool
	kind, text   string
	params       [][]byte
	notification string
}

// testReviewer answers reviews with decide (nil: approve); it notifies first.
type testReviewer struct {
	mu     sync.Mutex
	calls  []reviewCall
	decide func(ctx context.Context, c reviewCall) error
}

func (r *testReviewer) await(ctx context.Context, c reviewCall, notify func(string)) error {
	c.notification = "waiting for approval of " + c.kind
	if c.session {
		c.notification = "waiting for approval of this session"
	}
	notify(c.notification)
	r.mu.Lock()
	r.calls = append(r.calls, c)
	decide := r.decide
	r.mu.Unlock()
	if decide == nil {
		return nil
	}
	return decide(ctx, c)
}

func (r *testReviewer) AwaitSession(ctx context.Context, s *engine.Session, notify func(string)) error {
	return r.await(ctx, reviewCall{session: true}, notify)
}

func (r *testReviewer) AwaitStatement(ctx context.Context, s *engine.Session, kind, text string, params [][]byte, notify func(string)) error {
	return r.await(ctx, reviewCall{kind: kind, text: text, params: params}, notify)
}

func (r *testReviewer) snapshot() []reviewCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]reviewCall(nil), r.calls...)
}

// testRecorder keeps every recording in memory.
type testRecorder struct {
	mu       sync.Mutex
	started  []string
	recs     map[string]*testRecording
	startErr error
	failAt   int // fail the Write after this many bytes (0: never)
}

type testRecording struct {
	r              *testRecorder
	id             string
	mu             sync.Mutex
	client, server []byte // ToClient, ToUpstream
	closed         bool
}

func (r *testRecorder) Start(id string) (engine.SessionRecording, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.startErr != nil {
		return nil, r.startErr
	}
	if r.recs == nil {
		r.recs = map[string]*testRecording{}
	}
	rec := &testRecording{r: r, id: id}
	r.recs[id] = rec
	r.started = append(r.started, id)
	return rec, nil
}

func (rec *testRecording) Key() string { return "rec/" + rec.id }

func (rec *testRecording) Write(d engine.Direction, at time.Time, p []byte) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.closed {
		return errors.New("write after close")
	}
	if f := rec.r.failAt; f > 0 && len(rec.client)+len(rec.server)+len(p) > f {
		return errors.New("disk full")
	}
	if d == engine.ToClient {
		rec.client = append(rec.client, p...)
	} else {
		rec.server = append(rec.server, p...)
	}
	return nil
}

func (rec *testRecording) Close() error {
	rec.mu.Lock()
	rec.closed = true
	rec.mu.Unlock()
	return nil
}

// ---- the fake agent ----

type ranStmt struct {
	text   string
	params []string
}

type fakeAgent struct {
	mu  sync.Mutex
	ran []ranStmt
}

func (a *fakeAgent) ranTexts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.ran {
		out = append(out, r.text)
	}
	return out
}

func (a *fakeAgent) ranCount(text string) int {
	n := 0
	for _, t := range a.ranTexts() {
		if t == text {
			n++
		}
	}
	return n
}

var raiseRE = regexp.MustCompile(`ERRCODE = '([0-9A-Z]{5})', MESSAGE = convert_from\(decode\('([0-9a-f]*)', 'hex'\)`)

type fakeSession struct {
	a       *fakeAgent
	be      *pgproto3.Backend
	stmts   map[string]string
	portals map[string]ranStmt
	skip    bool
	tx      byte
}

func (a *fakeAgent) serve(s transport.Stream) {
	defer func() { s.CloseWrite(); s.Close() }()
	fs := &fakeSession{a: a, be: pgproto3.NewBackend(s, s), stmts: map[string]string{}, portals: map[string]ranStmt{}, tx: 'I'}
	be := fs.be
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "17.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	be.Flush()
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		if fs.skip {
			if _, ok := msg.(*pgproto3.Sync); !ok {
				continue // ignore till sync, Query included
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			for _, q := range strings.Split(m.String, ";") {
				if q = strings.TrimSpace(q); q == "" {
					continue
				}
				if !fs.run(q, nil, true) {
					break
				}
			}
			fs.skip = false
			be.Send(&pgproto3.ReadyForQuery{TxStatus: fs.tx})
			be.Flush()
		case *pgproto3.Parse:
			switch {
			case m.Name != "" && fs.stmts[m.Name] != "":
				fs.fail("42P05", fmt.Sprintf("prepared statement %q already exists", m.Name))
			case strings.Contains(m.Query, "SYNTAXERR"):
				if m.Name == "" {
					delete(fs.stmts, "")
				}
				fs.fail("42601", "syntax error")
			default:
				fs.stmts[m.Name] = m.Query
				be.Send(&pgproto3.ParseComplete{})
			}
		case *pgproto3.Bind:
			text, ok := fs.stmts[m.PreparedStatement]
			if !ok {
				fs.fail("26000", fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement))
				continue
			}
			r := ranStmt{text: text}
			for _, p := range m.Parameters {
				r.params = append(r.params, string(p))
			}
			fs.portals[m.DestinationPortal] = r
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			if m.ObjectType == 'S' {
				be.Send(&pgproto3.ParameterDescription{})
			}
			be.Send(&pgproto3.NoData{})
		case *pgproto3.Execute:
			p, ok := fs.portals[m.Portal]
			if !ok {
				fs.fail("34000", fmt.Sprintf("portal %q does not exist", m.Portal))
				continue
			}
			fs.run(p.text, p.params, false)
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(fs.stmts, m.Name)
			} else {
				delete(fs.portals, m.Name)
			}
			be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			fs.skip = false
			if fs.tx == 'I' {
				clear(fs.portals)
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: fs.tx})
			be.Flush()
		case *pgproto3.Flush:
			be.Flush()
		case *pgproto3.Terminate:
			return
		}
	}
}

func (fs *fakeSession) fail(code, msg string) {
	fs.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: msg})
	fs.skip = true
	if fs.tx == 'T' {
		fs.tx = 'E'
	}
}

// run answers one statement; false when it failed.
func (fs *fakeSession) run(q string, params []string, simple bool) bool {
	be := fs.be
	if m := raiseRE.FindStringSubmatch(q); m != nil {
		msg, _ := hex.DecodeString(m[2])
		fs.fail(m[1], string(msg))
		return false
	}
	upper := strings.ToUpper(q)
	switch {
	case strings.Contains(upper, "DENYME"):
		fs.fail("42501", `statement denied by guardrail "drop": `+q)
		return false
	case strings.Contains(upper, "NOSUCHTABLE"):
		fs.fail("42P01", `relation "nosuchtable" does not exist`)
		return false
	case fs.tx == 'E' && upper != "ROLLBACK":
		fs.fail("25P02", "current transaction is aborted, commands ignored until end of transaction block")
		return false
	}
	if strings.Contains(upper, "SLEEP") {
		time.Sleep(30 * time.Millisecond)
	}
	fs.a.mu.Lock()
	fs.a.ran = append(fs.a.ran, ranStmt{text: q, params: params})
	fs.a.mu.Unlock()
	var tag string
	switch w := strings.Fields(upper)[0]; w {
	case "SELECT":
		if simple {
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}})
		}
		be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("1")}})
		be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("2")}})
		tag = "SELECT 2"
	case "INSERT":
		tag = "INSERT 0 5"
	case "UPDATE":
		tag = "UPDATE 3"
	case "DELETE":
		tag = "DELETE 1"
	case "BEGIN":
		tag, fs.tx = "BEGIN", 'T'
	case "COMMIT", "ROLLBACK":
		tag, fs.tx = w, 'I'
	default:
		tag = w
	}
	be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return true
}

// ---- the gateway ----

type memDispatcher struct{ gw transport.Tunnel }

func (d memDispatcher) Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error) {
	return d.gw.OpenStream(ctx, h)
}

type testGateway struct {
	f      *Frontend
	addr   string
	agent  *fakeAgent
	audit  *testAudit
	stmts  *testStatements
	review *testReviewer
	rec    *testRecorder
	plan   engine.Plan
}

type gwOption func(*testGateway, *Config)

func withStatements() gwOption {
	return func(g *testGateway, c *Config) { g.stmts = &testStatements{}; c.Statements = g.stmts }
}

func withReviewer(decide func(ctx context.Context, c reviewCall) error) gwOption {
	return func(g *testGateway, c *Config) {
		g.review = &testReviewer{decide: decide}
		c.Reviewer = g.review
	}
}

func withRecorder(failAt int, startErr error) gwOption {
	return func(g *testGateway, c *Config) {
		g.rec = &testRecorder{failAt: failAt, startErr: startErr}
		c.Recorder = g.rec
	}
}

func startGateway(t *testing.T, plan engine.Plan, opts ...gwOption) *testGateway {
	t.Helper()
	g := &testGateway{agent: &fakeAgent{}, audit: newTestAudit(), plan: plan}
	cfg := DefaultConfig()
	cfg.AllowPlaintextPassword = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.StartupTimeout = 5 * time.Second
	for _, o := range opts {
		o(g, &cfg)
	}
	gwEnd, agEnd := memtun.Pair()
	f, err := NewFrontend(cfg, testAuth{}, testAuthz{plan}, g.audit, memDispatcher{gwEnd})
	if err != nil {
		t.Fatal(err)
	}
	g.f = f
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			s, _, err := agEnd.AcceptStream(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); g.agent.serve(s) }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	go func() { defer wg.Done(); f.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		gwEnd.Close()
		agEnd.Close()
		wg.Wait()
	})
	return g
}

// connect opens a pgconn session; notices go to the returned slice's func.
func (g *testGateway) connect(t *testing.T) (*pgconn.PgConn, *noticeLog, error) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("postgres://alice:tok@%s/conn?sslmode=disable", g.addr))
	if err != nil {
		t.Fatal(err)
	}
	nl := &noticeLog{}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { nl.add(n.Severity + ": " + n.Message) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, nl, err
}

func (g *testGateway) mustConnect(t *testing.T) (*pgconn.PgConn, *noticeLog) {
	t.Helper()
	c, nl, err := g.connect(t)
	if err != nil {
		t.Fatal(err)
	}
	return c, nl
}

type noticeLog struct {
	mu sync.Mutex
	ns []string
}

func (n *noticeLog) add(s string) { n.mu.Lock(); n.ns = append(n.ns, s); n.mu.Unlock() }
func (n *noticeLog) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.ns...)
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func execSimple(t *testing.T, c *pgconn.PgConn, sql string) ([]*pgconn.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Exec(ctx, sql).ReadAll()
}

func execParams(t *testing.T, c *pgconn.PgConn, sql string, params ...string) (pgconn.CommandTag, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ps [][]byte
	for _, p := range params {
		ps = append(ps, []byte(p))
	}
	r := c.ExecParams(ctx, sql, ps, nil, nil, nil).Read()
	return r.CommandTag, r.Err
}
