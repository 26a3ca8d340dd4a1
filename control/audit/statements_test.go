package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/control/webhook"
	"github.com/sluice-gw/sluice/engine"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func stmt(session string, seq int64, outcome string) engine.StatementRecord {
	return engine.StatementRecord{SessionID: session, Seq: seq, At: time.Unix(1000+seq, 0).UTC(), Duration: time.Millisecond,
		Text: "select 1", Rows: 1, Outcome: outcome}
}

func TestStatementSinkWritesToSQLite(t *testing.T) {
	st := openSQLite(t)
	reg := prometheus.NewRegistry()
	// Both sinks on one registry: their series differ by the sink label.
	sessions := New(st, Options{Logger: quiet, Registerer: reg})
	defer sessions.Close()
	s := NewStatementSink(st, Options{Logger: quiet, Registerer: reg, MaxTextBytes: 64})
	var sink engine.StatementSink = s
	for i := int64(1); i <= 300; i++ {
		sink.Statement(stmt("s1", i, store.StatementOK))
	}
	long := stmt("s2", 1, store.StatementError)
	long.Text = "insert into t values ('" + strings.Repeat("é", 100) + "')"
	long.Params = strings.Repeat("p", 100)
	long.Error = "duplicate key"
	sink.Statement(long)
	s.Close()
	s.Close() // idempotent

	got, err := st.ListStatements(context.Background(), "s1", 1000)
	if err != nil || len(got) != 300 || s.Written() != 301 || s.Dropped() != 0 {
		t.Fatalf("%d statements (%v), written %d, dropped %d", len(got), err, s.Written(), s.Dropped())
	}
	if got[41].Seq != 42 || got[41].Text != "select 1" || got[41].Outcome != "ok" || got[41].Duration != time.Millisecond {
		t.Fatalf("statement %+v", got[41])
	}
	cut, _ := st.ListStatements(context.Background(), "s2", 10)
	if len(cut) != 1 {
		t.Fatalf("%d long statements", len(cut))
	}
	text := cut[0].Text
	if !strings.HasPrefix(text, "insert into t values ('é") || !strings.Contains(text, "…[cut ") || len(text) > 64+len("…[cut 999 bytes]") {
		t.Fatalf("text not cut: %q", text)
	}
	if before, _, _ := strings.Cut(text, "…[cut "); !utf8Valid(before) || len(before) > 64 {
		t.Fatalf("cut inside a rune or past the limit: %q", before)
	}
	if cut[0].Params != strings.Repeat("p", 64)+"…[cut 36 bytes]" || cut[0].Error != "duplicate key" {
		t.Fatalf("params %q", cut[0].Params)
	}
	if counter(t, reg, "sluice_audit_records_written_total", "sink", "statements") != 301 {
		t.Fatal("written metric")
	}
	counter(t, reg, "sluice_audit_records_written_total", "sink", "sessions") // registered too
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestStatementSinkGroupCommitAndAdmit(t *testing.T) {
	f := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := NewStatementSink(f, Options{QueueSize: 100, BatchSize: 40, Logger: quiet})
	s.Statement(stmt("s1", 0, "ok"))
	<-f.entered
	for i := int64(1); i <= 80; i++ {
		s.Statement(stmt("s1", i, "ok"))
	}
	if err := s.Admit(); err == nil || !strings.Contains(err.Error(), "audit spool is full") {
		t.Fatalf("80 of 100 queued, high water 75: %v", err)
	}
	close(f.gate)
	s.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	// 1 + 80 records in batches of at most 40: 1, 40, 40.
	if len(f.stmts) != 3 || len(f.stmts[1]) != 40 || len(f.stmts[2]) != 40 {
		t.Fatalf("batches %d", len(f.stmts))
	}
}

func TestWebhookEvents(t *testing.T) {
	st := openSQLite(t)
	ev := &events{}
	sessions := New(st, Options{Logger: quiet, Notifier: ev})
	statements := NewStatementSink(st, Options{Logger: quiet, Notifier: ev, Sessions: sessions})

	start := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	r := engine.SessionRecord{ID: "s1", User: "alice", Connection: "prod", Protocol: "postgres", ClientAddr: "192.0.2.1:5000",
		Start: start, Outcome: "running", Rule: "dev+oncall"}
	sessions.SessionStarted(r)
	if u, c, ok := sessions.LookupSession("s1"); !ok || u != "alice" || c != "prod" {
		t.Fatalf("lookup %q %q %v", u, c, ok)
	}
	statements.Statement(stmt("s1", 1, store.StatementOK))
	denied := stmt("s1", 2, store.StatementDenied)
	denied.Text, denied.Rule, denied.Error = "DROP TABLE users", "drop", "guardrail drop: DROP is not allowed"
	statements.Statement(denied)
	end := r
	end.End, end.Outcome, end.BytesIn, end.BytesOut, end.Error = start.Add(90*time.Second), "error", 10, 20, "upstream gone"
	sessions.SessionEnded(end)
	if _, _, ok := sessions.LookupSession("s1"); ok {
		t.Fatal("ended session still resolvable")
	}
	sessions.SessionEnded(engine.SessionRecord{ID: "s2", User: "mallory", Outcome: "auth_failed"})
	statements.Close()
	sessions.Close()

	got := ev.list()
	if len(got) != 3 {
		t.Fatalf("%d events: %+v", len(got), got)
	}
	s0, d, e := got[0], got[1], got[2]
	if s0.Type != webhook.SessionStarted || s0.ID != "session.started.s1" || !s0.At.Equal(start) ||
		s0.Data[webhook.KeyUser] != "alice" || s0.Data[webhook.KeyConnection] != "prod" || s0.Data[webhook.KeyProtocol] != "postgres" ||
		s0.Data[webhook.KeySession] != "s1" || s0.Data["access_rule"] != "dev+oncall" {
		t.Fatalf("session.started %+v", s0)
	}
	if d.Type != webhook.StatementDenied || d.ID != "statement.denied.s1.2" || d.Data[webhook.KeyStatement] != "DROP TABLE users" ||
		d.Data[webhook.KeyRule] != "drop" || d.Data[webhook.KeyUser] != "alice" || d.Data[webhook.KeyConnection] != "prod" ||
		d.Data[webhook.KeyReason] != "guardrail drop: DROP is not allowed" {
		t.Fatalf("statement.denied %+v", d)
	}
	if e.Type != webhook.SessionEnded || e.ID != "session.ended.s1" || e.Data[webhook.KeyOutcome] != "error" ||
		e.Data[webhook.KeyReason] != "upstream gone" || e.Data["bytes_in"] != int64(10) || e.Data["duration_seconds"] != 90.0 {
		t.Fatalf("session.ended %+v", e)
	}
	// The records themselves were written too.
	if list, _ := st.ListStatements(context.Background(), "s1", 10); len(list) != 2 || list[1].Outcome != "denied" || list[1].Rule != "drop" {
		t.Fatalf("statements %+v", list)
	}
}
