package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols/postgres/pgguard"
)

// ---- helpers ----

func TestTagRows(t *testing.T) {
	for tag, want := range map[string]int64{
		"INSERT 0 5\x00": 5, "INSERT 0 5": 5, "SELECT 3": 3, "UPDATE 0": 0, "DELETE 12": 12, "MERGE 2": 2,
		"FETCH 100": 100, "MOVE 4": 4, "COPY 7": 7, "CREATE TABLE": -1, "BEGIN": -1, "SELECT": -1,
		"SELECT x": -1, "UPDATE 99999999999999999999": -1, "": -1,
	} {
		n, ok := tagRows([]byte(tag))
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("%q: got %d, want %d", tag, n, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { tagRows([]byte("INSERT 0 5")) }); a != 0 {
		t.Fatalf("tagRows allocates %v times", a)
	}
}

func bindBody(formats []int16, params [][]byte) []byte {
	b := []byte{}
	b = append(b, byte(len(formats)>>8), byte(len(formats)))
	for _, f := range formats {
		b = append(b, byte(f>>8), byte(f))
	}
	b = append(b, byte(len(params)>>8), byte(len(params)))
	for _, p := range params {
		if p == nil {
			b = append(b, 0xff, 0xff, 0xff, 0xff)
			continue
		}
		l := len(p)
		b = append(b, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
		b = append(b, p...)
	}
	return append(b, 0, 0) // no result formats
}

func TestBindParamsAuditForm(t *testing.T) {
	mk, err := compileMasking(&engine.MaskingPolicy{Detectors: []string{"email", "credit_card"}, Style: "redact"}, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	c := &gwConv{sink: &testStatements{}, mask: mk}
	long := strings.Repeat("x", maxAuditParam+10)
	got, raw, err := c.bindParams(bindBody([]int16{0, 0, 1, 1, 0, 0}, [][]byte{
		[]byte("it's ada@example.com"), nil, {0, 0, 0, 42}, bytes.Repeat([]byte{1}, 20), []byte("4111 1111 1111 1111"), []byte(long),
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	want := `$1='it''s [email]', $2=NULL, $3=<binary 0x0000002a>, $4=<20 bytes>, $5='[credit_card]', $6='` + long[:maxAuditParam] + `'…`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if len(raw) != 6 || string(raw[0]) != "it's ada@example.com" || raw[1] != nil || !bytes.Equal(raw[2], []byte{0, 0, 0, 42}) {
		t.Fatalf("exact parameters: %q", raw)
	}
	// One format code for all; the total is bounded.
	many := make([][]byte, 200)
	for i := range many {
		many[i] = bytes.Repeat([]byte("y"), 100)
	}
	got, _, err = c.bindParams(bindBody([]int16{0}, many), false)
	if err != nil || len(got) > maxAuditParams+200 || !strings.HasSuffix(got, ", …") {
		t.Fatalf("unbounded parameters (%d bytes, %v): %.80s…", len(got), err, got)
	}
	for _, bad := range [][]byte{{0, 1}, {0, 0, 0, 1, 0, 0, 0, 9, 'a'}, {0xff, 0xff}} {
		if _, _, err := c.bindParams(bad, true); err == nil {
			t.Errorf("malformed %x accepted", bad)
		}
	}
}

func TestReviewRules(t *testing.T) {
	rules, err := parseReviewRules([]string{"DDL", " delete:Payments ", `write:billing."Ledger"`, "truncate"})
	if err != nil {
		t.Fatal(err)
	}
	rs := &reviewSet{rules: rules, classifier: pgguard.NewClassifier(pgguard.Options{})}
	for sql, want := range map[string]string{
		"SELECT * FROM payments":                        "",
		"DELETE FROM payments WHERE id = 1":             " delete:Payments",
		"delete from PUBLIC.PAYMENTS":                   " delete:Payments",
		"delete from other":                             "",
		"UPDATE payments SET a = 1":                     "",
		"UPDATE billing.ledger SET a = 1":               `write:billing."Ledger"`,
		"INSERT INTO ledger VALUES (1)":                 `write:billing."Ledger"`, // unqualified: any schema (fail closed)
		"INSERT INTO other.ledger VALUES (1)":           "",
		"WITH d AS (DELETE FROM payments) SELECT 1":     " delete:Payments",
		"CREATE INDEX ON x (a)":                         "DDL",
		"TRUNCATE x":                                    "truncate",
		"DO $$BEGIN EXECUTE 'DELETE FROM ' || t; END$$": reviewOpaque,
		"CALL p()":    reviewOpaque,
		"DELETE FROM": reviewUnparseable,
	} {
		if got, _ := rs.match(sql); got != strings.TrimSpace(want) {
			t.Errorf("%q: got %q, want %q", sql, got, want)
		}
	}
	for sql, want := range map[string]bool{"PREPARE s AS DELETE FROM t": true, "DEALLOCATE s": true, "DISCARD ALL": true, "DISCARD PLANS": false,
		"SELECT 'discard'": false, "garbage PREPARE": true} {
		if _, forgets := rs.match(sql); forgets != want {
			t.Errorf("%q: forgets %v", sql, forgets)
		}
	}
	for _, bad := range [][]string{{"select"}, {"delete:"}, {"write:.x"}, {"ddl:*"}, {""}} {
		if err := ValidateReviewStatements(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	tg := func(kind, schema, table string) pgguard.Target {
		return pgguard.Target{Kind: kind, Schema: schema, Table: table}
	}
	r := reviewRule{kind: "ddl", schema: "billing", table: "ledger"}
	for _, c := range []struct {
		t    pgguard.Target
		want bool
	}{
		{tg("ddl", "", "ledger"), true}, {tg("ddl", "billing", "LEDGER"), true}, {tg("ddl", "other", "ledger"), false},
		{tg("ddl", "billing", pgguard.AllTables), true}, {tg("ddl", "", pgguard.AllTables), true}, {tg("ddl", "x", pgguard.AllTables), false},
		{tg("ddl", "", ""), false}, {tg("delete", "billing", "ledger"), false},
	} {
		if r.matches(c.t) != c.want {
			t.Errorf("ddl:billing.ledger vs %v: want %v", c.t, c.want)
		}
	}
}

// The refusal the gateway makes the server raise passes the agent's
// guardrails untouched, whatever the message says.
func TestReviewRaiseIsNotDenied(t *testing.T) {
	g, err := pgguard.Compile(pgguard.Rules{Deny: pgguard.KnownRules(), DenyTables: []string{"payments"}}, pgguard.Options{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"rejected by bob", "it's 'quoted' $sluice$ and $$ and set_config('role') and SET NAMES x", "DROP TABLE payments; --", "é ü 日本"} {
		e := engine.Deny(m)
		msg := appendReviewRaise(nil, e)
		if int(msg[1])<<24|int(msg[2])<<16|int(msg[3])<<8|int(msg[4]) != len(msg)-1 || msg[len(msg)-1] != 0 {
			t.Fatalf("bad framing")
		}
		sql := string(msg[5 : len(msg)-1])
		if d := g.Check(sql); !d.Allow {
			t.Errorf("%q: the agent would deny the raise: %s", m, d.Reason)
		}
		if changesEncoding(sql) {
			t.Errorf("%q: the agent would see an encoding change", m)
		}
		sub := raiseRE.FindStringSubmatch(sql)
		if sub == nil || sub[1] != "42501" {
			t.Fatalf("raise: %s", sql)
		}
		if b, _ := hex.DecodeString(sub[2]); string(b) != m {
			t.Errorf("message %q came back as %q", m, b)
		}
	}
}

// ---- statement audit ----

func TestStatementAuditRecords(t *testing.T) {
	plan := engine.Plan{Rule: "ops", Policy: engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop"}},
		Masking:    &engine.MaskingPolicy{Detectors: []string{"email"}, Style: "redact"},
	}}
	g := startGateway(t, plan, withStatements())
	c, _ := g.mustConnect(t)
	if _, err := execSimple(t, c, "INSERT INTO t VALUES (1); SELECT 'x' /* SLEEP */"); err != nil {
		t.Fatal(err)
	}
	if _, err := execSimple(t, c, "SELECT * FROM nosuchtable"); pgCode(err) != "42P01" {
		t.Fatalf("got %v", err)
	}
	if _, err := execSimple(t, c, "DROP TABLE denyme"); pgCode(err) != "42501" {
		t.Fatalf("got %v", err)
	}
	if _, err := execSimple(t, c, "SELECT 'bob@example.org'"); err != nil {
		t.Fatal(err)
	}
	if tag, err := execParams(t, c, "UPDATE t SET email = $1 WHERE id = $2", "ada@example.com", "7"); err != nil || tag.RowsAffected() != 3 {
		t.Fatalf("%v %v", tag, err)
	}
	if _, err := execParams(t, c, "SELECT SYNTAXERR $1", "1"); pgCode(err) != "42601" {
		t.Fatalf("got %v", err)
	}
	if _, err := execParams(t, c, "DELETE FROM denyme WHERE id = $1", "1"); pgCode(err) != "42501" {
		t.Fatalf("got %v", err)
	}
	recs := g.stmts.wait(t, 7)
	type want struct {
		text, params, outcome, rule, err string
		rows                             int64
	}
	wants := []want{
		{text: "INSERT INTO t VALUES (1); SELECT 'x' /* SLEEP */", outcome: "ok", rows: 7},
		{text: "SELECT * FROM nosuchtable", outcome: "error", rows: -1, err: `relation "nosuchtable" does not exist`},
		{text: "DROP TABLE denyme", outcome: "denied", rule: "drop", rows: -1, err: `statement denied by guardrail "drop": DROP TABLE denyme`},
		{text: "SELECT '[email]'", outcome: "ok", rows: 2},
		{text: "UPDATE t SET email = $1 WHERE id = $2", params: "$1='[email]', $2='7'", outcome: "ok", rows: 3},
		{text: "SELECT SYNTAXERR $1", params: "$1='1'", outcome: "error", rows: -1, err: "syntax error"},
		{text: "DELETE FROM denyme WHERE id = $1", params: "$1='1'", outcome: "denied", rule: "drop", rows: -1},
	}
	for i, w := range wants {
		r := recs[i]
		if r.Seq != int64(i+1) || r.SessionID == "" || r.Text != w.text || r.Params != w.params || r.Outcome != w.outcome ||
			r.Rule != w.rule || r.Rows != w.rows || (w.err != "" && r.Error != w.err) || r.At.IsZero() {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, r, w)
		}
	}
	if recs[0].Duration < 30*time.Millisecond {
		t.Errorf("the first statement took %v at the server, recorded %v", 30*time.Millisecond, recs[0].Duration)
	}
	c.Close(context.Background())
	sr := g.audit.waitEnded(t)
	if sr.TokenID != "tok-1" || sr.Rule != "ops" || sr.Denials != 2 || sr.Outcome != "ok" {
		t.Fatalf("session record: %+v", sr)
	}
}

func TestStatementAuditPreparedAndPipelined(t *testing.T) {
	g := startGateway(t, engine.Plan{}, withStatements())
	c, _ := g.mustConnect(t)
	ctx := context.Background()
	if _, err := c.Prepare(ctx, "s1", "UPDATE t SET a = $1", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if r := c.ExecPrepared(ctx, "s1", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil).Read(); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// A pipeline: the failing statement fails, the next is not executed,
	// the group after the Sync runs.
	b := &pgconn.Batch{}
	b.ExecParams("INSERT INTO t VALUES ($1)", [][]byte{[]byte("1")}, nil, nil, nil)
	b.ExecParams("SELECT * FROM nosuchtable", nil, nil, nil, nil)
	b.ExecParams("INSERT INTO t VALUES ($1)", [][]byte{[]byte("2")}, nil, nil, nil)
	if _, err := c.ExecBatch(ctx, b).ReadAll(); pgCode(err) != "42P01" {
		t.Fatalf("batch: %v", err)
	}
	if _, err := execSimple(t, c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	recs := g.stmts.wait(t, 7)
	got := []string{}
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s|%s|%s|%d", r.Text, r.Params, r.Outcome, r.Rows))
	}
	want := []string{
		"UPDATE t SET a = $1|$1='0'|ok|3", "UPDATE t SET a = $1|$1='1'|ok|3", "UPDATE t SET a = $1|$1='2'|ok|3",
		"INSERT INTO t VALUES ($1)|$1='1'|ok|5", `SELECT * FROM nosuchtable||error|-1`,
		"INSERT INTO t VALUES ($1)|$1='2'|error|-1", "SELECT 1||ok|2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(recs[5].Error, "not executed") {
		t.Fatalf("skipped statement: %+v", recs[5])
	}
}

// ---- session review ----

func TestSessionReview(t *testing.T) {
	cases := []struct {
		name    string
		decide  error
		code    string
		outcome string
	}{
		{"approved", nil, "", "ok"},
		{"rejected", engine.Deny("session rejected by bob"), "42501", "denied"},
		{"timed out", &engine.Error{Code: engine.CodeReviewTimeout, Message: "no approval within 5m0s"}, "57014", "review_timeout"},
		{"broken reviewer", errors.New("store down"), "42501", "denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, engine.Plan{RequireReview: true}, withRecorder(0, nil), withReviewer(func(context.Context, reviewCall) error {
				time.Sleep(20 * time.Millisecond)
				return tc.decide
			}))
			c, notices, err := g.connect(t)
			if n := notices.all(); len(n) != 1 || n[0] != "NOTICE: waiting for approval of this session" {
				t.Fatalf("notices %q", n)
			}
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := execSimple(t, c, "SELECT 1"); err != nil {
					t.Fatal(err)
				}
				c.Close(context.Background())
			} else {
				if pgCode(err) != tc.code {
					t.Fatalf("got %v, want SQLSTATE %s", err, tc.code)
				}
				if len(g.rec.started) != 0 || len(g.agent.ranTexts()) != 0 {
					t.Fatal("a refused session was recorded or dispatched")
				}
			}
			if r := g.audit.waitEnded(t); r.Outcome != tc.outcome {
				t.Fatalf("outcome %q, want %q (%+v)", r.Outcome, tc.outcome, r)
			}
		})
	}
}

// A client that gives up while waiting ends the wait at once.
func TestSessionReviewClientLeaves(t *testing.T) {
	waiting, gone := make(chan struct{}), make(chan error, 1)
	g := startGateway(t, engine.Plan{RequireReview: true}, withReviewer(func(ctx context.Context, _ reviewCall) error {
		close(waiting)
		<-ctx.Done()
		gone <- context.Cause(ctx)
		return ctx.Err()
	}))
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "alice", "database": "conn"}})
	fe.Flush()
	if _, err := fe.Receive(); err != nil { // AuthenticationCleartextPassword
		t.Fatal(err)
	}
	fe.Send(&pgproto3.PasswordMessage{Password: "tok"})
	fe.Flush()
	<-waiting
	conn.Close()
	select {
	case err := <-gone:
		if !errors.Is(err, errClientLeft) {
			t.Fatalf("wait ended by %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the review kept waiting for a client that left")
	}
	if r := g.audit.waitEnded(t); r.Outcome != "error" {
		t.Fatalf("outcome %q", r.Outcome)
	}
}

func TestSessionReviewWithoutReviewerRefused(t *testing.T) {
	for _, plan := range []engine.Plan{{RequireReview: true}, {ReviewStatements: []string{"ddl"}}} {
		g := startGateway(t, plan)
		if _, _, err := g.connect(t); pgCode(err) != "42501" {
			t.Fatalf("%+v: got %v", plan, err)
		}
	}
	g := startGateway(t, engine.Plan{ReviewStatements: []string{"select"}}, withReviewer(nil))
	if _, _, err := g.connect(t); pgCode(err) != "42501" || !strings.Contains(err.Error(), "cannot be enforced") {
		t.Fatalf("unknown review kind: %v", err)
	}
}

func TestAuditGateRefuses(t *testing.T) {
	g := startGateway(t, engine.Plan{}, withStatements())
	g.audit.admit = errors.New("spool full")
	if _, _, err := g.connect(t); pgCode(err) != "XX000" || !strings.Contains(err.Error(), "audit log cannot take new sessions") {
		t.Fatalf("got %v", err)
	}
	g.audit.admit = engine.Errorf(engine.CodeShutdown, "audit spool full")
	if _, _, err := g.connect(t); pgCode(err) != "57P01" {
		t.Fatalf("got %v", err)
	}
	g.audit.admit = nil
	c, _ := g.mustConnect(t)
	if _, err := execSimple(t, c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// ---- statement review ----

// approveOnly approves statements whose text or first parameter contains
// ok, and rejects the rest.
func approveOnly(ok string) func(context.Context, reviewCall) error {
	return func(_ context.Context, c reviewCall) error {
		if strings.Contains(c.text, ok) || len(c.params) > 0 && strings.Contains(string(c.params[0]), ok) {
			return nil
		}
		return engine.Deny("statement rejected by bob")
	}
}

func TestStatementReviewSimpleAndExtended(t *testing.T) {
	g := startGateway(t, engine.Plan{ReviewStatements: []string{"delete:payments", "ddl"}}, withStatements(), withReviewer(approveOnly("7")))
	c, notices := g.mustConnect(t)
	mustOK := func(sql string) {
		t.Helper()
		if _, err := execSimple(t, c, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustRefuse := func(err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || pe.Severity != "ERROR" || pe.Message != "statement rejected by bob" {
			t.Fatalf("got %v, want ERROR 42501 statement rejected by bob", err)
		}
	}
	mustOK("SELECT 1")
	mustOK("DELETE FROM other WHERE id = 1")
	if len(g.review.snapshot()) != 0 {
		t.Fatal("statements no rule covers were held")
	}
	mustOK("DELETE FROM payments WHERE id = 7")
	_, err := execSimple(t, c, "DELETE FROM payments WHERE id = 8")
	mustRefuse(err)
	mustOK("SELECT 2") // the session goes on
	if _, err := execParams(t, c, "DELETE FROM public.payments WHERE id = $1", "7"); err != nil {
		t.Fatal(err)
	}
	// The same text with other parameters is a new statement: held again.
	_, err = execParams(t, c, "DELETE FROM public.payments WHERE id = $1", "8")
	mustRefuse(err)
	_, err = execSimple(t, c, "CREATE TABLE x (a int)")
	mustRefuse(err)
	if _, err := execSimple(t, c, "DELETE FROM"); pgCode(err) != "42501" {
		t.Fatalf("unparseable statement: %v", err)
	}
	mustOK("SELECT 3")

	calls := g.review.snapshot()
	var got []string
	for _, cl := range calls {
		got = append(got, fmt.Sprintf("%s|%s|%q", cl.kind, cl.text, cl.params))
	}
	want := []string{
		`delete:payments|DELETE FROM payments WHERE id = 7|[]`,
		`delete:payments|DELETE FROM payments WHERE id = 8|[]`,
		`delete:payments|DELETE FROM public.payments WHERE id = $1|["7"]`,
		`delete:payments|DELETE FROM public.payments WHERE id = $1|["8"]`,
		`ddl|CREATE TABLE x (a int)|[]`,
		`unparseable|DELETE FROM|[]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("reviews:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := notices.all(); len(n) != len(want) || n[0] != "NOTICE: waiting for approval of delete:payments" {
		t.Fatalf("notices: %q", n)
	}
	ran := strings.Join(g.agent.ranTexts(), "\n")
	for _, refused := range []string{"id = 8", "CREATE TABLE", "DELETE FROM\n"} {
		if strings.Contains(ran+"\n", refused) {
			t.Fatalf("a refused statement ran (%s):\n%s", refused, ran)
		}
	}
	if g.agent.ranCount("DELETE FROM public.payments WHERE id = $1") != 1 {
		t.Fatalf("ran:\n%s", ran)
	}
	recs := g.stmts.wait(t, 10)
	for _, r := range recs {
		if strings.Contains(r.Text+r.Params, "8") && (r.Outcome != "rejected" || r.Rule != "delete:payments" || r.Error != "statement rejected by bob") {
			t.Errorf("refused statement recorded as %+v", r)
		}
	}
}

func TestStatementReviewTimeoutAndCancel(t *testing.T) {
	g := startGateway(t, engine.Plan{ReviewStatements: []string{"write"}}, withReviewer(func(ctx context.Context, c reviewCall) error {
		if strings.Contains(c.text, "timeout") {
			return &engine.Error{Code: engine.CodeReviewTimeout, Message: "statement review timed out"}
		}
		<-ctx.Done() // until the client cancels
		return ctx.Err()
	}))
	c, _ := g.mustConnect(t)
	_, err := execSimple(t, c, "INSERT INTO t VALUES ('timeout')")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" || pe.Message != "statement review timed out" {
		t.Fatalf("got %v", err)
	}
	go func() {
		for len(g.review.snapshot()) < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		c.CancelRequest(context.Background())
	}()
	_, err = execParams(t, c, "UPDATE t SET a = $1", "1")
	if !errors.As(err, &pe) || pe.Code != "57014" || pe.Message != "canceling statement due to user request" {
		t.Fatalf("got %v", err)
	}
	if _, err := execSimple(t, c, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if len(g.agent.ranTexts()) != 1 {
		t.Fatalf("ran %q", g.agent.ranTexts())
	}
}

// The control plane ends a session whose statement waits for its review:
// the wait ends, the client is told why, the statement never ran.
func TestStatementReviewSessionEnded(t *testing.T) {
	sessions := engine.NewSessions()
	g := startGateway(t, engine.Plan{ReviewStatements: []string{"write"}}, withStatements(), withReviewer(func(ctx context.Context, _ reviewCall) error {
		<-ctx.Done()
		return ctx.Err()
	}), func(_ *testGateway, c *Config) { c.Sessions = sessions })
	c, _ := g.mustConnect(t)
	go func() {
		for len(g.review.snapshot()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		sessions.EndWhere(func(*engine.Session) bool { return true }, engine.Errorf(engine.CodeSessionEnded, "session ended: token revoked"))
	}()
	_, err := execSimple(t, c, "SELECT 1; DELETE FROM t")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" || pe.Message != "session ended: token revoked" {
		t.Fatalf("got %v", err)
	}
	if r := g.audit.waitEnded(t); r.Outcome != "ended" {
		t.Fatalf("outcome %q", r.Outcome)
	}
	recs := g.stmts.wait(t, 1)
	if len(g.agent.ranTexts()) != 0 || recs[0].Outcome != "error" || !strings.Contains(recs[0].Error, "waited for its review") {
		t.Fatalf("ran %q, records %+v", g.agent.ranTexts(), recs)
	}
	if sessions.Len() != 0 {
		t.Fatal("the session is still registered")
	}
}

// rawClient speaks the protocol by hand, to send exact pipelines.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	fe   *pgproto3.Frontend
}

func (g *testGateway) raw(t *testing.T) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawClient{t: t, conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
	rc.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "alice", "database": "conn"}})
	rc.flush()
	rc.fe.Receive()
	rc.fe.Send(&pgproto3.PasswordMessage{Password: "tok"})
	rc.flush()
	rc.until('Z')
	return rc
}

func (rc *rawClient) flush() {
	if err := rc.fe.Flush(); err != nil {
		rc.t.Fatal(err)
	}
}

// until reads messages up to the next of type typ (n times), returning them
// as type letters (an ErrorResponse as E:code, a notice as N).
func (rc *rawClient) until(typ byte, n ...int) []string {
	rc.t.Helper()
	count := 1
	if len(n) > 0 {
		count = n[0]
	}
	var out []string
	for count > 0 {
		m, err := rc.fe.Receive()
		if err != nil {
			rc.t.Fatalf("after %q: %v", out, err)
		}
		enc, _ := m.Encode(nil)
		s := string(enc[0])
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			s = "E:" + e.Code
		}
		out = append(out, s)
		if enc[0] == typ {
			count--
		}
	}
	return out
}

func withoutNotices(msgs []string) string {
	var out []string
	for _, m := range msgs {
		if m != "N" {
			out = append(out, m)
		}
	}
	return strings.Join(out, " ")
}

// A refused statement in a pipeline is answered in order, and only the
// client's requests waited for the review.
func TestStatementReviewPipelineOrder(t *testing.T) {
	g := startGateway(t, engine.Plan{ReviewStatements: []string{"delete"}}, withReviewer(approveOnly("never")))
	rc := g.raw(t)
	rc.fe.Send(&pgproto3.Query{String: "SELECT 'before'"})
	rc.fe.Send(&pgproto3.Parse{Query: "DELETE FROM payments WHERE id = 2"})
	rc.fe.Send(&pgproto3.Bind{})
	rc.fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	rc.fe.Send(&pgproto3.Execute{})
	rc.fe.Send(&pgproto3.Parse{Query: "SELECT 'skipped'"})
	rc.fe.Send(&pgproto3.Bind{})
	rc.fe.Send(&pgproto3.Execute{})
	rc.fe.Send(&pgproto3.Sync{})
	rc.fe.Send(&pgproto3.Query{String: "SELECT 'after'"})
	rc.flush()
	msgs := rc.until('Z', 3)
	if got, want := withoutNotices(msgs), "T D D C Z 1 2 n E:42501 Z T D D C Z"; got != want {
		t.Fatalf("responses %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(msgs, " "), "N") {
		t.Fatal("no notice")
	}
	if got := strings.Join(g.agent.ranTexts(), "|"); got != "SELECT 'before'|SELECT 'after'" {
		t.Fatalf("ran %q", got)
	}
}

// Prepared statements are known as the server knows them: a Parse that
// fails or a Close that the server skipped never launders a held
// statement, whether the groups are sent one by one or pipelined.
func TestStatementReviewNoLaundering(t *testing.T) {
	const bad = "DELETE FROM payments WHERE id = 9"
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprint("pipelined=", pipelined), func(t *testing.T) {
			g := startGateway(t, engine.Plan{ReviewStatements: []string{"delete"}}, withReviewer(approveOnly("never")))
			rc := g.raw(t)
			var want []string
			group := func(expect string, msgs ...pgproto3.FrontendMessage) {
				for _, m := range msgs {
					rc.fe.Send(m)
				}
				rc.fe.Send(&pgproto3.Sync{})
				want = append(want, expect)
				if !pipelined {
					rc.flush()
					if got := withoutNotices(rc.until('Z')); got != expect {
						t.Fatalf("got %q, want %q", got, expect)
					}
				}
			}
			// A failed duplicate Parse keeps the old statement.
			group("1 Z", &pgproto3.Parse{Name: "s1", Query: bad})
			group("E:42P05 Z", &pgproto3.Parse{Name: "s1", Query: "SELECT 1"})
			group("2 E:42501 Z", &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{})
			// A Close skipped after an error keeps the statement.
			group("1 Z", &pgproto3.Parse{Name: "s2", Query: bad})
			group("E:26000 Z", &pgproto3.Bind{PreparedStatement: "nosuch"}, &pgproto3.Close{ObjectType: 'S', Name: "s2"})
			group("E:42P05 Z", &pgproto3.Parse{Name: "s2", Query: "SELECT 1"})
			group("2 E:42501 Z", &pgproto3.Bind{PreparedStatement: "s2"}, &pgproto3.Execute{})
			// A failing unnamed Parse drops the unnamed statement.
			group("1 Z", &pgproto3.Parse{Query: bad})
			group("E:42601 Z", &pgproto3.Parse{Query: "SELECT SYNTAXERR"})
			group("E:26000 Z", &pgproto3.Bind{}, &pgproto3.Execute{})
			// Prepared in SQL: not known here, held (fail closed).
			group("E:26000 Z", &pgproto3.Bind{PreparedStatement: "sqlprep"}, &pgproto3.Execute{})
			if pipelined {
				rc.flush()
				if got, w := withoutNotices(rc.until('Z', len(want))), strings.Join(want, " "); got != w {
					t.Fatalf("got  %q\nwant %q", got, w)
				}
			}
			if n := g.agent.ranCount(bad); n != 0 {
				t.Fatalf("the held statement ran %d times", n)
			}
			var kinds []string
			for _, c := range g.review.snapshot() {
				kinds = append(kinds, c.kind+"|"+c.text)
			}
			if w := "delete|" + bad + ",delete|" + bad; strings.Join(kinds, ",") != w {
				t.Fatalf("reviews %q, want %q", kinds, w)
			}
		})
	}
}

// ---- recording ----

// teeConn records what a client sent and received.
type teeConn struct {
	net.Conn
	mu       sync.Mutex
	got, put []byte
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got = append(c.got, p[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *teeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.put = append(c.put, p...)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (g *testGateway) connectTee(t *testing.T) (*pgconn.PgConn, *teeConn, error) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("postgres://alice:tok@%s/conn?sslmode=disable", g.addr))
	if err != nil {
		t.Fatal(err)
	}
	var tee *teeConn
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tee = &teeConn{Conn: c}
		return tee, nil
	}
	c, err := pgconn.ConnectConfig(context.Background(), cfg)
	return c, tee, err
}

func TestRecordingIsWhatTheClientSaw(t *testing.T) {
	g := startGateway(t, engine.Plan{ReviewStatements: []string{"delete"}}, withRecorder(0, nil), withReviewer(approveOnly("never")))
	c, tee, err := g.connectTee(t)
	if err != nil {
		t.Fatal(err)
	}
	execSimple(t, c, "SELECT 1; INSERT INTO t VALUES (1)")
	execParams(t, c, "UPDATE t SET a = $1", "x")
	execSimple(t, c, "DELETE FROM t") // held and refused: its notice and error are recorded too
	c.Close(context.Background())
	r := g.audit.waitEnded(t)
	rec := g.rec.recs[g.rec.started[0]]
	if r.RecordingKey != "rec/"+g.rec.started[0] || !rec.closed {
		t.Fatalf("recording key %q (closed %v)", r.RecordingKey, rec.closed)
	}
	// The client got the password request before the session started;
	// everything after it is in the recording, byte for byte.
	authReq, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if !bytes.Equal(tee.got, append(authReq, rec.client...)) {
		t.Fatalf("the client got %d bytes, the recording holds %d after the %d-byte password request\n%q\n%q", len(tee.got), len(rec.client), len(authReq), tee.got, rec.client)
	}
	// What the client sent after its password, except the refused DELETE
	// (replaced by the server-raised refusal), went to the agent as recorded.
	i := bytes.IndexByte(tee.put, 'p')
	sent := tee.put[i+1+int(tee.put[i+4]):]
	refused := appendMessage(nil, 'Q', []byte("DELETE FROM t\x00"))
	j := bytes.Index(sent, refused)
	if j < 0 || !bytes.Equal(rec.server[:j], sent[:j]) || !bytes.Equal(rec.server[len(rec.server)-(len(sent)-j-len(refused)):], sent[j+len(refused):]) ||
		!bytes.Contains(rec.server, []byte("DO $sluice$")) {
		t.Fatalf("forwarded bytes differ from the recording:\nsent %q\nrec  %q", sent, rec.server)
	}
}

func TestRecordingFailuresFailClosed(t *testing.T) {
	g := startGateway(t, engine.Plan{}, withRecorder(0, errors.New("no space left")))
	if _, _, err := g.connect(t); pgCode(err) != "XX000" || !strings.Contains(err.Error(), "recording cannot be started") {
		t.Fatalf("got %v", err)
	}
	if r := g.audit.waitEnded(t); r.Outcome != "error" || len(g.agent.ranTexts()) != 0 {
		t.Fatalf("%+v", r)
	}

	g = startGateway(t, engine.Plan{}, withRecorder(700, nil))
	c, _ := g.mustConnect(t)
	var err error
	for i := 0; err == nil && i < 50; i++ {
		_, err = execSimple(t, c, fmt.Sprintf("SELECT %d, '%s'", i, strings.Repeat("x", 40)))
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Severity != "FATAL" || !strings.HasPrefix(pe.Message, "session recording failed: disk full") {
		t.Fatalf("got %v", err)
	}
	rec := g.rec.recs[g.rec.started[0]]
	ran := g.agent.ranTexts()
	// Nothing went on unrecorded: every statement that ran is in the recording.
	for _, q := range ran {
		if !bytes.Contains(rec.server, []byte(q)) {
			t.Fatalf("%q ran but was not recorded", q)
		}
	}
	if r := g.audit.waitEnded(t); r.Outcome != "error" || !strings.Contains(r.Error, "session recording failed") {
		t.Fatalf("%+v", r)
	}
}
