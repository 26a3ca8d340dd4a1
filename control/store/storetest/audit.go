package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

func sessionID(x store.Session) string { return x.ID }

func testQuerySessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetSession(ctx, "s0")
	notFound(t, "get missing", err)

	sess := []store.Session{
		{ID: "s0", User: "alice", Connection: "db", Protocol: "postgres", ClientAddr: "10.0.0.1:5000", TokenID: "tok1",
			Rule: "dba", RecordingKey: "recordings/s0", Start: t0, End: t0.Add(time.Minute), BytesIn: 1, BytesOut: 2,
			Outcome: "ok", Denials: 1, LastDenial: "drop"},
		{ID: "s1", User: "bob", Connection: "db", Start: t0.Add(1 * time.Second), Outcome: "error", Error: "boom"},
		{ID: "s2", User: "alice", Connection: "app", Start: t0.Add(2 * time.Second), Outcome: "ok"},
		{ID: "s3", User: "alice", Connection: "db", Start: t0.Add(3 * time.Second), Outcome: "error"},
		{ID: "s4", User: "carol", Connection: "app", Start: t0.Add(4 * time.Second), Outcome: "running"},
	}
	must(t, "write", s.WriteSessions(ctx, sess))
	got, err := s.GetSession(ctx, "s0")
	must(t, "get", err)
	sameRecord(t, "get", got, sess[0])
	got, err = s.GetSession(ctx, "s4")
	must(t, "get running", err)
	sameRecord(t, "get running", got, sess[4])

	q := func(f store.SessionFilter, want ...string) {
		t.Helper()
		l, err := s.QuerySessions(ctx, f)
		order(t, fmt.Sprintf("query %+v", f), l, err, sessionID, want...)
	}
	q(store.SessionFilter{}, "s4", "s3", "s2", "s1", "s0")
	q(store.SessionFilter{User: "alice"}, "s3", "s2", "s0")
	q(store.SessionFilter{Connection: "app"}, "s4", "s2")
	q(store.SessionFilter{Outcome: "error"}, "s3", "s1")
	q(store.SessionFilter{User: "alice", Connection: "db"}, "s3", "s0")
	q(store.SessionFilter{User: "alice", Outcome: "ok", Connection: "app"}, "s2")
	q(store.SessionFilter{Since: t0.Add(time.Second)}, "s4", "s3", "s2", "s1")                                        // inclusive
	q(store.SessionFilter{Until: t0.Add(3 * time.Second)}, "s2", "s1", "s0")                                          // exclusive
	q(store.SessionFilter{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, "s2", "s1")                    // both
	q(store.SessionFilter{Since: t0.Add(time.Second + time.Microsecond), Until: t0.Add(4 * time.Second)}, "s3", "s2") // to the microsecond
	q(store.SessionFilter{User: "alice", Since: t0.Add(time.Second), Limit: 1}, "s3")
	q(store.SessionFilter{Limit: 2}, "s4", "s3")
	q(store.SessionFilter{User: "nobody"})
	q(store.SessionFilter{Since: t0.Add(time.Hour)})

	// The upsert replaces the new fields too.
	upd := sess[0]
	upd.RecordingKey, upd.Rule, upd.TokenID, upd.Outcome = "recordings/s0-b", "dev", "tok2", "error"
	must(t, "rewrite", s.WriteSessions(ctx, []store.Session{upd}))
	got, err = s.GetSession(ctx, "s0")
	must(t, "get rewritten", err)
	sameRecord(t, "rewritten", got, upd)
	l, err := s.ListSessions(ctx, 10)
	order(t, "ListSessions", l, err, sessionID, "s4", "s3", "s2", "s1", "s0")
	sameRecord(t, "ListSessions s0", l[4], upd)
}

func testSessionLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = store.DefaultLimit + 5
	var batch []store.Session
	for i := range n {
		batch = append(batch, store.Session{ID: fmt.Sprintf("x%03d", i), User: "alice", Start: t0.Add(time.Duration(i) * time.Second), Outcome: "ok"})
	}
	must(t, "write", s.WriteSessions(ctx, batch))
	for _, limit := range []int{0, -3} {
		l, err := s.QuerySessions(ctx, store.SessionFilter{User: "alice", Limit: limit})
		must(t, "query", err)
		if len(l) != store.DefaultLimit || l[0].ID != fmt.Sprintf("x%03d", n-1) {
			t.Fatalf("limit %d: %d sessions", limit, len(l))
		}
	}
	l, err := s.QuerySessions(ctx, store.SessionFilter{Limit: n + 1})
	must(t, "query all", err)
	if len(l) != n {
		t.Fatalf("limit above count: %d sessions, want %d", len(l), n)
	}
}

func stmtSeq(x store.Statement) int64 { return x.Seq }

func testStatements(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "empty batch", s.WriteStatements(ctx, nil))
	denied := store.Statement{SessionID: "s1", Seq: 2, At: t0.Add(2 * time.Second), Duration: 1500 * time.Microsecond,
		Text: "DELETE FROM payments", Params: `["***"]`, Rows: -1, Outcome: store.StatementDenied,
		Error: "denied by guardrail delete-without-where", Rule: "no-delete"}
	batch := []store.Statement{
		{SessionID: "s1", Seq: 3, At: t0.Add(3 * time.Second), Text: "SELECT 3", Rows: 1, Outcome: store.StatementOK},
		{SessionID: "s1", Seq: 1, At: t0.Add(time.Second), Duration: time.Millisecond, Text: "SELECT $1", Params: `[1]`, Rows: 1, Outcome: store.StatementOK},
		{SessionID: "s1", Seq: 2, At: t0, Text: "first version of 2", Outcome: store.StatementPendingReview},
		{SessionID: "s2", Seq: 1, At: t0, Text: "SELECT 1", Rows: 0, Outcome: store.StatementError, Error: "syntax"},
		denied, // same key as an earlier record of the batch: the last wins
	}
	must(t, "write", s.WriteStatements(ctx, batch))
	l, err := s.ListStatements(ctx, "s1", 0)
	order(t, "list s1", l, err, stmtSeq, 1, 2, 3)
	sameRecord(t, "s1/1", l[0], batch[1])
	sameRecord(t, "s1/2", l[1], denied)
	sameRecord(t, "s1/3", l[2], batch[0])
	l, err = s.ListStatements(ctx, "s2", 10)
	order(t, "list s2", l, err, stmtSeq, 1)
	sameRecord(t, "s2/1", l[0], batch[3])

	// A later batch replaces a record too.
	rej := batch[1]
	rej.Outcome, rej.Rows, rej.Error = store.StatementRejected, -1, "rejected by carol"
	must(t, "rewrite", s.WriteStatements(ctx, []store.Statement{rej, {SessionID: "s1", Seq: 4, At: t0, Outcome: store.StatementOK}}))
	l, err = s.ListStatements(ctx, "s1", 0)
	order(t, "list after rewrite", l, err, stmtSeq, 1, 2, 3, 4)
	sameRecord(t, "s1/1 rewritten", l[0], rej)
	l, err = s.ListStatements(ctx, "s1", 2)
	order(t, "limit", l, err, stmtSeq, 1, 2)
	l, err = s.ListStatements(ctx, "nobody", 0)
	order(t, "other session", l, err, stmtSeq)

	const n = store.DefaultLimit + 5
	var many []store.Statement
	for i := range n {
		many = append(many, store.Statement{SessionID: "s3", Seq: int64(n - i), At: t0, Outcome: store.StatementOK})
	}
	must(t, "write many", s.WriteStatements(ctx, many))
	for _, limit := range []int{0, -1} {
		l, err = s.ListStatements(ctx, "s3", limit)
		must(t, "list many", err)
		if len(l) != store.DefaultLimit || l[0].Seq != 1 || l[len(l)-1].Seq != store.DefaultLimit {
			t.Fatalf("default limit: %d statements", len(l))
		}
	}
}

func chunkSeq(c store.RecordingChunk) int64 { return c.Seq }

func testRecordingChunks(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "empty batch", s.AddRecordingChunks(ctx, nil))
	chunk := func(sess string, seq int64) store.RecordingChunk {
		return store.RecordingChunk{SessionID: sess, Seq: seq, Key: fmt.Sprintf("rec/%s/%06d", sess, seq), Size: 1<<20 + seq,
			SHA256: fmt.Sprintf("sha-%s-%d", sess, seq), PrevSHA256: fmt.Sprintf("sha-%s-%d", sess, seq-1), At: t0.Add(time.Duration(seq) * time.Second)}
	}
	first := chunk("s1", 0)
	first.PrevSHA256 = ""
	must(t, "add", s.AddRecordingChunks(ctx, []store.RecordingChunk{chunk("s1", 2), first, chunk("s1", 1), chunk("s2", 0)}))
	l, err := s.ListRecordingChunks(ctx, "s1")
	order(t, "list", l, err, chunkSeq, 0, 1, 2)
	sameRecord(t, "chunk 0", l[0], first)
	sameRecord(t, "chunk 2", l[2], chunk("s1", 2))

	// A duplicate fails the whole batch: with a stored key, or twice in it.
	conflict(t, "duplicate of stored", s.AddRecordingChunks(ctx, []store.RecordingChunk{chunk("s1", 3), chunk("s1", 1)}))
	conflict(t, "duplicate in batch", s.AddRecordingChunks(ctx, []store.RecordingChunk{chunk("s1", 4), chunk("s3", 0), chunk("s1", 4)}))
	l, err = s.ListRecordingChunks(ctx, "s1")
	order(t, "after conflicts", l, err, chunkSeq, 0, 1, 2)
	sameRecord(t, "chunk 1 kept", l[1], chunk("s1", 1))
	l, err = s.ListRecordingChunks(ctx, "s3")
	order(t, "s3 after conflict", l, err, chunkSeq)

	must(t, "add more", s.AddRecordingChunks(ctx, []store.RecordingChunk{chunk("s1", 3)}))
	l, err = s.ListRecordingChunks(ctx, "s1")
	order(t, "after add", l, err, chunkSeq, 0, 1, 2, 3)
	l, err = s.ListRecordingChunks(ctx, "s2")
	order(t, "s2", l, err, chunkSeq, 0)
}
