package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols/postgres"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
)

// Session and statement reviews, statement audit and recording, with real
// psql, real pgx and the real PostgreSQL, through a gateway and an agent
// built from protocols/postgres (the real frontend and upstream) over an
// in-memory tunnel, with simple in-test reviewer, statement sink and
// recorder. (They move to the control services once those are wired into
// internal/server.)

const reviewToken = "review-token"

type rvAuth struct{}

func (rvAuth) Authenticate(ctx context.Context, user, secret string) (engine.Identity, error) {
	if secret != reviewToken {
		return engine.Identity{}, engine.Errorf(engine.CodeAuthFailed, "password authentication failed for user %q", user)
	}
	return engine.Identity{User: user, TokenID: "tok-review"}, nil
}

type rvAuthz struct{ plan engine.Plan }

func (a rvAuthz) Authorize(ctx context.Context, id engine.Identity, connection, protocol string) (*engine.Plan, error) {
	p := a.plan
	p.Connection, p.Protocol, p.Agent = connection, protocol, "review-agent"
	p.Target = E.pg.URL("app", "app-secret", "app")
	return &p, nil
}

type rvAudit struct {
	mu    sync.Mutex
	ended []engine.SessionRecord
	done  chan engine.SessionRecord
}

func (a *rvAudit) SessionStarted(engine.SessionRecord) {}
func (a *rvAudit) SessionEnded(r engine.SessionRecord) {
	a.mu.Lock()
	a.ended = append(a.ended, r)
	a.mu.Unlock()
	a.done <- r
}

func (a *rvAudit) next(t *testing.T) engine.SessionRecord {
	t.Helper()
	select {
	case r := <-a.done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no session record")
	}
	return engine.SessionRecord{}
}

// rvReviewer decides with decide (nil: approve) after notifying.
type rvReviewer struct {
	mu     sync.Mutex
	calls  []string // kind|text|params
	decide func(ctx context.Context, kind, text string, params [][]byte) error
}

func (r *rvReviewer) AwaitSession(ctx context.Context, s *engine.Session, notify func(string)) error {
	notify("waiting for approval of your session on " + s.Plan.Connection + " (review 17)")
	time.Sleep(100 * time.Millisecond)
	if r.decide == nil {
		return nil
	}
	return r.decide(ctx, "session", "", nil)
}

func (r *rvReviewer) AwaitStatement(ctx context.Context, s *engine.Session, kind, text string, params [][]byte, notify func(string)) error {
	notify("statement held for review (" + kind + ")")
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("%s|%s|%q", kind, text, params))
	r.mu.Unlock()
	if r.decide == nil {
		return nil
	}
	return r.decide(ctx, kind, text, params)
}

type rvStatements struct {
	mu   sync.Mutex
	recs []engine.StatementRecord
}

func (s *rvStatements) Statement(r engine.StatementRecord) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *rvStatements) wait(t *testing.T, n int) []engine.StatementRecord {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		recs := append([]engine.StatementRecord(nil), s.recs...)
		s.mu.Unlock()
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statement records, want %d: %+v", len(recs), n, recs)
		}
	}
}

type rvRecorder struct {
	mu   sync.Mutex
	recs map[string]*rvRecording
}

type rvRecording struct {
	mu             sync.Mutex
	client, server bytes.Buffer
	closed         bool
}

func (r *rvRecorder) Start(id string) (engine.SessionRecording, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := &rvRecording{}
	r.recs[id] = rec
	return rec, nil
}

func (rec *rvRecording) Write(d engine.Direction, at time.Time, p []byte) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if d == engine.ToClient {
		rec.client.Write(p)
	} else {
		rec.server.Write(p)
	}
	return nil
}

func (rec *rvRecording) Close() error {
	rec.mu.Lock()
	rec.closed = true
	rec.mu.Unlock()
	return nil
}

type rvDispatcher struct{ gw transport.Tunnel }

func (d rvDispatcher) Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error) {
	return d.gw.OpenStream(ctx, h)
}

type rvGateway struct {
	addr     string
	audit    *rvAudit
	reviewer *rvReviewer
	stmts    *rvStatements
	recorder *rvRecorder
}

// startReviewGateway runs a gateway (the real postgres.Frontend) and an
// agent (the real postgres.Upstream, to the real PostgreSQL) for plan.
func startReviewGateway(t *testing.T, plan engine.Plan, reviewer *rvReviewer, audit, record bool) *rvGateway {
	t.Helper()
	g := &rvGateway{audit: &rvAudit{done: make(chan engine.SessionRecord, 32)}, reviewer: reviewer}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := postgres.DefaultConfig()
	cfg.Logger, cfg.AllowPlaintextPassword = log, true
	if reviewer != nil {
		cfg.Reviewer = reviewer
	}
	if audit {
		g.stmts = &rvStatements{}
		cfg.Statements = g.stmts
	}
	if record {
		g.recorder = &rvRecorder{recs: map[string]*rvRecording{}}
		cfg.Recorder = g.recorder
	}
	gwEnd, agEnd := memtun.Pair()
	front, err := postgres.NewFrontend(cfg, rvAuth{}, rvAuthz{plan}, g.audit, rvDispatcher{gwEnd})
	if err != nil {
		t.Fatal(err)
	}
	acfg := postgres.DefaultConfig()
	acfg.Logger = log
	up, err := postgres.NewUpstream(acfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			s, h, err := agEnd.AcceptStream(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); up.ServeStream(ctx, s, h) }()
		}
	}()
	go func() { defer wg.Done(); front.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		gwEnd.Close()
		agEnd.Close()
	})
	return g
}

func (g *rvGateway) conninfo() string {
	host, port := splitHostPort(g.addr)
	return fmt.Sprintf("host=%s port=%s user=alice dbname=pg-review password=%s sslmode=disable gssencmode=disable", host, port, reviewToken)
}

func (g *rvGateway) psql(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	return runTool(t, in, E.psql, append([]string{g.conninfo(), "-X", "-At", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose"}, args...)...)
}

func (g *rvGateway) pgx(t *testing.T) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, strings.Replace(g.conninfo(), " gssencmode=disable", "", 1))
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const reviewSchema = `
DROP TABLE IF EXISTS review_items, audit_items;
CREATE TABLE review_items (id int PRIMARY KEY, note text);
INSERT INTO review_items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
CREATE TABLE audit_items (id int PRIMARY KEY, v text);
ALTER TABLE review_items OWNER TO app;
ALTER TABLE audit_items OWNER TO app;
`

// reviewTables (re)creates the tables of these tests.
func reviewTables(t *testing.T) {
	t.Helper()
	if err := E.pg.ExecIn(context.Background(), "app", reviewSchema); err != nil {
		t.Fatal(err)
	}
}

func TestReviewSessionApprovedRejectedTimedOut(t *testing.T) {
	cases := []struct {
		name, wantErr, code, outcome string
		decide                       error
	}{
		{name: "approved", outcome: "ok"},
		{name: "rejected", decide: engine.Deny("session rejected by bob: use the read replica"), wantErr: "FATAL:  session rejected by bob: use the read replica", code: "42501", outcome: "denied"},
		{name: "timed out", decide: &engine.Error{Code: engine.CodeReviewTimeout, Message: "no approval within 30s"}, wantErr: "FATAL:  no approval within 30s", code: "57014", outcome: "review_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rv := &rvReviewer{}
			if tc.decide != nil {
				rv.decide = func(context.Context, string, string, [][]byte) error { return tc.decide }
			}
			g := startReviewGateway(t, engine.Plan{RequireReview: true}, rv, false, false)
			out, errOut, err := g.psql(t, "", "-c", "SELECT 6*7")
			if !strings.Contains(errOut, "NOTICE:  waiting for approval of your session on pg-review (review 17)") {
				t.Fatalf("psql did not show the notice: %q", errOut)
			}
			if tc.wantErr == "" {
				if err != nil || strings.TrimSpace(out) != "42" {
					t.Fatalf("approved session: %v %q %q", err, out, errOut)
				}
			} else if err == nil || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("got %v, stderr %q, want %q", err, errOut, tc.wantErr)
			}
			if r := g.audit.next(t); r.Outcome != tc.outcome || r.TokenID != "tok-review" {
				t.Fatalf("audit record %+v, want outcome %s", r, tc.outcome)
			}
			// pgx sees the SQLSTATE psql does not print for a failed login.
			_, err = g.pgx(t)
			if sqlState(err) != tc.code {
				t.Fatalf("pgx: %v, want SQLSTATE %q", err, tc.code)
			}
		})
	}
}

func TestReviewStatementApprovedThenChangedRefused(t *testing.T) {
	reviewTables(t)
	rv := &rvReviewer{decide: func(_ context.Context, kind, text string, params [][]byte) error {
		// pgx sends the int parameter in binary.
		if strings.Contains(text, "id = 1") || len(params) == 1 && bytes.Equal(params[0], []byte{0, 0, 0, 5}) {
			return nil
		}
		if strings.Contains(text, "slow") {
			return &engine.Error{Code: engine.CodeReviewTimeout, Message: "statement review timed out"}
		}
		return engine.Deny("statement rejected by bob: not that one")
	}}
	g := startReviewGateway(t, engine.Plan{ReviewStatements: []string{"delete:review_items", "ddl"}}, rv, false, false)
	script := `SELECT count(*) FROM review_items;
DELETE FROM review_items WHERE id = 1;
DELETE FROM review_items WHERE id = 2;
SELECT count(*) FROM review_items;
BEGIN;
DELETE FROM review_items WHERE id = 3;
SELECT 'in aborted transaction';
ROLLBACK;
DELETE FROM review_items WHERE id = 4 /* slow */;
SELECT 'still here';
`
	out, errOut, err := g.psql(t, script)
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, errOut)
	}
	// The count before and after, the tags of what ran, and the last line.
	if got := strings.Join(strings.Fields(out), " "); got != "10 DELETE 1 9 BEGIN ROLLBACK still here" {
		t.Fatalf("stdout %q, want the approved DELETE only (10 then 9 rows) and the session still there", out)
	}
	for _, want := range []string{
		"NOTICE:  00000: statement held for review (delete:review_items)",
		"ERROR:  42501: statement rejected by bob: not that one",
		"ERROR:  25P02: current transaction is aborted", // a refusal aborts the transaction like a real error
		"ERROR:  57014: statement review timed out",
	} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// The extended protocol: the approval binds the parameters too.
	c, err := g.pgx(t)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Exec(ctx, "DELETE FROM review_items WHERE id = $1", 5); err != nil {
		t.Fatalf("approved: %v", err)
	}
	_, err = c.Exec(ctx, "DELETE FROM review_items WHERE id = $1", 6)
	if sqlState(err) != "42501" {
		t.Fatalf("the same statement with other parameters: %v, want 42501", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM review_items").Scan(&n); err != nil || n != 8 {
		t.Fatalf("count %d, %v: want 8 (only ids 1 and 5 deleted)", n, err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE review_never (a int)"); sqlState(err) != "42501" {
		t.Fatalf("ddl: %v", err)
	}
	// A statement prepared in SQL cannot launder a held one: the gateway
	// cannot show its text, so it refuses it.
	pc := c.PgConn()
	if _, err := pc.Prepare(ctx, "s7", "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Exec(ctx, "DEALLOCATE s7; PREPARE s7 AS DELETE FROM review_items WHERE id = 7").ReadAll(); err != nil {
		t.Fatal(err)
	}
	r := pc.ExecPrepared(ctx, "s7", nil, nil, nil).Read()
	if sqlState(r.Err) != "42501" || !strings.Contains(r.Err.Error(), "cannot be reviewed") {
		t.Fatalf("statement prepared in SQL: %v", r.Err)
	}
	out, errOut, err = runTool(t, nil, E.psql, E.directConninfo(), "-X", "-At", "-c",
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM review_items; SELECT to_regclass('review_never') IS NULL")
	if err != nil || strings.Fields(out)[0] != "2,3,4,6,7,8,9,10" || strings.Fields(out)[1] != "t" {
		t.Fatalf("the database holds %q (%v %s): refused statements ran", out, err, errOut)
	}
	rv.mu.Lock()
	calls := strings.Join(rv.calls, "\n")
	rv.mu.Unlock()
	for _, want := range []string{
		`delete:review_items|DELETE FROM review_items WHERE id = $1|["\x00\x00\x00\x05"]`,
		`delete:review_items|DELETE FROM review_items WHERE id = $1|["\x00\x00\x00\x06"]`,
		`ddl|CREATE TABLE review_never (a int)|[]`,
	} {
		if !strings.Contains(calls, want) {
			t.Fatalf("reviews lack %q:\n%s", want, calls)
		}
	}
}

func TestAuditStatementsRowsDurationOutcome(t *testing.T) {
	reviewTables(t)
	plan := engine.Plan{Policy: engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop"}},
		Masking:    &engine.MaskingPolicy{Detectors: []string{"email"}, Style: "redact"},
	}}
	g := startReviewGateway(t, plan, nil, true, false)
	script := `DELETE FROM audit_items;
INSERT INTO audit_items SELECT g, 'v' || g FROM generate_series(1, 5) g;
SELECT * FROM audit_items;
SELECT pg_sleep(0.2);
DROP TABLE audit_items;
SELECT * FROM no_such_table;
SELECT 'ada@example.com';
`
	if _, errOut, err := g.psql(t, script); err != nil {
		t.Fatalf("psql: %v\n%s", err, errOut)
	}
	psqlRecs := g.stmts.wait(t, 7)
	c, err := g.pgx(t)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tag, err := c.Exec(ctx, "UPDATE audit_items SET v = $1 WHERE id <= $2", "bob@example.com", 3)
	if err != nil || tag.RowsAffected() != 3 {
		t.Fatalf("%v %v", tag, err)
	}
	var v string
	for range 2 { // the second run uses pgx's cached prepared statement
		if err := c.QueryRow(ctx, "SELECT v FROM audit_items WHERE id = $1", 4).Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "DROP TABLE audit_items"); sqlState(err) != "42501" {
		t.Fatalf("extended DROP: %v", err)
	}
	recs := g.stmts.wait(t, 11)
	type want struct {
		text, params, outcome, rule string
		rows                        int64
	}
	wants := []want{
		{"DELETE FROM audit_items;", "", "ok", "", -2},
		{"INSERT INTO audit_items SELECT g, 'v' || g FROM generate_series(1, 5) g;", "", "ok", "", 5},
		{"SELECT * FROM audit_items;", "", "ok", "", 5},
		{"SELECT pg_sleep(0.2);", "", "ok", "", 1},
		{"DROP TABLE audit_items;", "", "denied", "drop", -1},
		{"SELECT * FROM no_such_table;", "", "error", "", -1},
		{"SELECT '[email]';", "", "ok", "", 1},
		// pgx sends int parameters in binary
		{"UPDATE audit_items SET v = $1 WHERE id <= $2", "$1='[email]', $2=<binary 0x00000003>", "ok", "", 3},
		{"SELECT v FROM audit_items WHERE id = $1", "$1=<binary 0x00000004>", "ok", "", 1},
		{"SELECT v FROM audit_items WHERE id = $1", "$1=<binary 0x00000004>", "ok", "", 1},
		{"DROP TABLE audit_items", "", "denied", "drop", -1},
	}
	for i, w := range wants {
		r, seq := recs[i], int64(i+1)
		if i >= 7 { // the pgx session
			seq = int64(i - 6)
		}
		if r.Seq != seq || r.Text != w.text || r.Params != w.params || r.Outcome != w.outcome || r.Rule != w.rule ||
			(w.rows != -2 && r.Rows != w.rows) || r.SessionID == "" {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, r, w)
		}
	}
	if recs[3].Duration < 200*time.Millisecond || recs[3].Duration > 10*time.Second {
		t.Errorf("pg_sleep(0.2) recorded as taking %v", recs[3].Duration)
	}
	if !strings.Contains(recs[5].Error, `relation "no_such_table" does not exist`) || !strings.Contains(recs[4].Error, `guardrail "drop"`) {
		t.Errorf("errors: %q / %q", recs[5].Error, recs[4].Error)
	}
	if recs[7].SessionID == psqlRecs[0].SessionID || recs[10].SessionID != recs[7].SessionID || recs[6].SessionID != psqlRecs[0].SessionID {
		t.Errorf("records not per session: %s %s %s", psqlRecs[0].SessionID, recs[7].SessionID, recs[10].SessionID)
	}
}

// teeProxy forwards one client connection to addr and keeps what each side
// sent.
type teeProxy struct {
	ln             net.Listener
	mu             sync.Mutex
	fromClient     bytes.Buffer
	fromGateway    bytes.Buffer
	done           chan struct{}
	clientFinished chan struct{}
}

func newTeeProxy(t *testing.T, addr string) *teeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &teeProxy{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		up, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(io.MultiWriter(up, &lockedWriter{&p.mu, &p.fromClient}), c)
			up.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(io.MultiWriter(c, &lockedWriter{&p.mu, &p.fromGateway}), up)
		c.Close()
		wg.Wait()
	}()
	t.Cleanup(func() { ln.Close(); <-p.done })
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestRecordingEqualsWhatTheClientSaw(t *testing.T) {
	reviewTables(t)
	g := startReviewGateway(t, engine.Plan{Policy: engine.Policy{Masking: &engine.MaskingPolicy{Detectors: []string{"email"}, Style: "redact"}}}, nil, true, true)
	p := newTeeProxy(t, g.addr)
	host, port := splitHostPort(p.ln.Addr().String())
	conninfo := fmt.Sprintf("host=%s port=%s user=alice dbname=pg-review password=%s sslmode=disable gssencmode=disable", host, port, reviewToken)
	_, errOut, err := runTool(t, strings.NewReader("SELECT 'carol@example.com', g FROM generate_series(1, 300) g;\nCOPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT;\nSELECT * FROM no_such_table;\n"),
		E.psql, conninfo, "-X", "-At", "-v", "ON_ERROR_STOP=0")
	if !strings.Contains(errOut, "no_such_table") {
		t.Fatalf("psql: %v %s", err, errOut)
	}
	<-p.done
	r := g.audit.next(t)
	if r.RecordingKey != r.ID {
		t.Fatalf("recording key %q for session %q", r.RecordingKey, r.ID)
	}
	g.recorder.mu.Lock()
	rec := g.recorder.recs[r.ID]
	g.recorder.mu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !rec.closed {
		t.Fatal("recording not closed")
	}
	// Before the session started, the client got only the password request.
	authReq, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	got := p.fromGateway.Bytes()
	if !bytes.Equal(got, append(authReq, rec.client.Bytes()...)) {
		t.Fatalf("psql got %d bytes; the recording holds %d after the %d-byte password request", len(got), rec.client.Len(), len(authReq))
	}
	if bytes.Contains(rec.client.Bytes(), []byte("carol@example.com")) || !bytes.Contains(rec.client.Bytes(), []byte("[email]")) {
		t.Fatal("the recording holds the unmasked value, or not the masked one")
	}
	// What psql sent after its start-up packet and password went to the agent.
	sent := p.fromClient.Bytes()
	sent = sent[int(sent[0])<<24|int(sent[1])<<16|int(sent[2])<<8|int(sent[3]):]     // start-up packet
	sent = sent[1+(int(sent[1])<<24|int(sent[2])<<16|int(sent[3])<<8|int(sent[4])):] // password
	if !bytes.Equal(sent, rec.server.Bytes()) {
		t.Fatalf("psql sent %d bytes after logging in; the recording holds %d", len(sent), rec.server.Len())
	}
}
