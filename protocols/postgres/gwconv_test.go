package postgres

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols/postgres/pgguard"
)

// messages frames a byte stream of typed messages (stopping at the first
// malformed one).
func messages(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 5 {
		l := int(binary.BigEndian.Uint32(b[1:5]))
		if l < 4 || 1+l > len(b) {
			break
		}
		out = append(out, b[:1+l])
		b = b[1+l:]
	}
	return out
}

func testConv(sink engine.StatementSink) *gwConv {
	var now time.Time
	c := newGwConv(context.Background(), &engine.Session{ID: "s"}, NewMetrics(nil, "gateway"))
	c.sink, c.upNow, c.downNow = sink, &now, &now
	return c
}

// TestCapturedConversationsTracked runs real psql and pgbench conversations
// through the gateway's statement tracking, each request handled before
// the responses to it: every response answers what the model expects, and
// every Query and Execute gets one record.
func TestCapturedConversationsTracked(t *testing.T) {
	for _, capt := range loadCaptures(t) {
		reqs, resps := messages(capt.c2s), messages(capt.s2c)
		for len(resps) > 0 && resps[0][0] != 'Z' { // the login the gateway handles itself
			resps = resps[1:]
		}
		resps = resps[1:]
		sink := &testStatements{}
		c := testConv(sink)
		want := 0
		queued := func(typ byte) bool {
			return typ == 'Q' || typ == 'P' || typ == 'B' || typ == 'E' || typ == 'S' || typ == 'C' || typ == 'F'
		}
		next := func() bool {
			for len(reqs) > 0 {
				m := reqs[0]
				reqs = reqs[1:]
				if m[0] == 'Q' || m[0] == 'E' || m[0] == 'F' {
					want++
				}
				if _, err := (gwRequests{c}).inspect(m, nil); err != nil {
					t.Fatalf("%s: request %q: %v", capt.name, m[0], err)
				}
				if queued(m[0]) {
					return true
				}
			}
			return false
		}
		for _, m := range resps {
			if gwResponseWants[m[0]] && c.n.Load() == 0 && !next() {
				t.Fatalf("%s: response %q answers no request", capt.name, m[0])
			}
			if _, err := (gwResponses{c}).inspect(m, nil); err != nil {
				t.Fatalf("%s: response %q: %v", capt.name, m[0], err)
			}
		}
		for next() {
		}
		if c.lost {
			t.Fatalf("%s: tracking lost", capt.name)
		}
		c.finish(time.Now())
		recs := sink.snapshot()
		if len(recs) != want || want == 0 {
			t.Fatalf("%s: %d records for %d statements", capt.name, len(recs), want)
		}
		for i, r := range recs {
			if r.Seq != int64(i+1) || r.Text == "" {
				t.Fatalf("%s: record %d: %+v", capt.name, i, r)
			}
		}
		t.Logf("%s: %d statements, first %q, last %q (%s)", capt.name, len(recs), recs[0].Text, recs[len(recs)-1].Text, recs[len(recs)-1].Outcome)
	}
}

// With statement audit on, a pgbench transaction costs no allocation but
// its record's strings.
func TestStatementAuditAllocations(t *testing.T) {
	c := testConv(discardSink{})
	// pgbench -M prepared: Bind/Execute/Sync of a statement parsed once.
	parse := appendMessage(nil, 'P', []byte("P0_1\x00SELECT abalance FROM pgbench_accounts WHERE aid = $1;\x00\x00\x00"))
	bind := appendMessage(nil, 'B', append([]byte("\x00P0_1\x00"), bindBody([]int16{0}, [][]byte{[]byte("48213")})...))
	exec := appendMessage(nil, 'E', []byte("\x00\x00\x00\x00\x00"))
	sync := appendMessage(nil, 'S', nil)
	reqs, resps := gwRequests{c}, gwResponses{c}
	run := func(msgs ...[]byte) {
		for _, m := range msgs {
			if _, err := reqs.inspect(m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	answer := func(msgs ...[]byte) {
		for _, m := range msgs {
			if _, err := resps.inspect(m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	bindOK, parseOK := appendMessage(nil, '2', nil), appendMessage(nil, '1', nil)
	cc := appendMessage(nil, 'C', []byte("SELECT 1\x00"))
	z := appendMessage(nil, 'Z', []byte("I"))
	run(parse, sync)
	answer(parseOK, z)
	tx := func() {
		run(bind, exec, sync)
		answer(bindOK, cc, z)
	}
	tx()
	// The parameters string is the record's only allocation.
	if a := testing.AllocsPerRun(200, tx); a > 1 {
		t.Fatalf("a prepared transaction costs %v allocations, want at most 1 (the parameters)", a)
	}
	// pgbench -M extended: the unnamed statement parsed again with the same text.
	unnamed := appendMessage(nil, 'P', []byte("\x00SELECT abalance FROM pgbench_accounts WHERE aid = $1;\x00\x00\x00"))
	ubind := appendMessage(nil, 'B', append([]byte("\x00\x00"), bindBody([]int16{0}, [][]byte{[]byte("48213")})...))
	txu := func() {
		run(unnamed, ubind, exec, sync)
		answer(parseOK, bindOK, cc, z)
	}
	txu()
	if a := testing.AllocsPerRun(200, txu); a > 1 {
		t.Fatalf("an extended transaction costs %v allocations, want at most 1", a)
	}
	// Simple protocol: the text is the record's only allocation.
	q := appendMessage(nil, 'Q', []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;\x00"))
	txq := func() {
		run(q)
		answer(cc, z)
	}
	if a := testing.AllocsPerRun(200, txq); a > 1 {
		t.Fatalf("a simple transaction costs %v allocations, want at most 1 (the text)", a)
	}
}

type discardSink struct{}

func (discardSink) Statement(engine.StatementRecord) {}

// BenchmarkGatewayRelay measures the gateway's relay of pgbench -S
// transactions (simple protocol) through the pumps, with statement audit
// off (the plain relay) and on.
func BenchmarkGatewayRelay(b *testing.B) {
	q := appendMessage(nil, 'Q', []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;\x00"))
	var resp []byte
	resp, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}).Encode(resp)
	resp, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("0")}}).Encode(resp)
	resp, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}).Encode(resp)
	resp, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(resp)
	for _, audit := range []bool{false, true} {
		name := "plain"
		if audit {
			name = "statement-audit"
		}
		b.Run(name, func(b *testing.B) {
			var n atomic.Int64
			up := &pump{dst: io.Discard, buf: make([]byte, 64<<10), max: 1 << 20, n: &n}
			down := &pump{dst: io.Discard, buf: make([]byte, 64<<10), max: 1 << 20, n: &n}
			if audit {
				c := testConv(discardSink{})
				c.upNow, c.downNow = &up.now, &down.now
				up.insp, up.maxInspect = gwRequests{c}, 1<<20
				down.insp, down.maxInspect = gwResponses{c}, 1<<20
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(q) + len(resp)))
			for b.Loop() {
				copy(up.buf, q)
				if _, err := up.frame(len(q)); err != nil {
					b.Fatal(err)
				}
				copy(down.buf, resp)
				if _, err := down.frame(len(resp)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzGatewayConversation runs arbitrary client and server bytes through
// the gateway's statement tracking, with statement review on or off, the
// two pumps concurrent as in a session: no panic, no hang, records
// numbered in order.
func FuzzGatewayConversation(f *testing.F) {
	for _, capt := range loadCaptures(f) {
		s2c := capt.s2c
		for len(s2c) > 5 && s2c[0] != 'Z' {
			s2c = s2c[1+int(binary.BigEndian.Uint32(s2c[1:5])):]
		}
		if len(s2c) > 6 {
			s2c = s2c[6:]
		}
		f.Add(capt.c2s[:min(len(capt.c2s), 4096)], s2c[:min(len(s2c), 4096)], false)
		f.Add(capt.c2s[:min(len(capt.c2s), 4096)], s2c[:min(len(s2c), 4096)], true)
	}
	var req, resp []byte
	for _, m := range []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: "DELETE FROM t"}, &pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("x")}},
		&pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{}, &pgproto3.Query{String: "PREPARE p AS DELETE FROM t; UPDATE t SET a = 1"}} {
		req, _ = m.Encode(req)
	}
	for _, m := range []pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.CommandComplete{CommandTag: []byte("DELETE 2")},
		&pgproto3.ErrorResponse{Code: "42501", Message: "statement denied by guardrail \"drop\": x"}, &pgproto3.CloseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'}} {
		resp, _ = m.Encode(resp)
	}
	f.Add(req, resp, true)
	f.Fuzz(func(t *testing.T, c2s, s2c []byte, review bool) {
		sink := &testStatements{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := newGwConv(ctx, &engine.Session{ID: "s"}, NewMetrics(nil, "gateway"))
		c.sink = sink
		if review {
			c.review = &reviewSet{rules: []reviewRule{{raw: "write", kind: "write"}}, classifier: pgguard.NewClassifier(pgguard.Options{CacheBytes: -1})}
			c.reviewer = &testReviewer{decide: func(_ context.Context, rc reviewCall) error {
				if len(rc.text)%2 == 0 {
					return nil
				}
				return engine.Deny("no")
			}}
			c.hold = &holdSlot{}
		}
		c.notice = func([]byte) error { return nil }
		var n atomic.Int64
		grow := func(n int) []byte { return make([]byte, n) }
		up := &pump{src: &chunkReader{b: c2s, rnd: rand.New(rand.NewPCG(1, 2))}, dst: io.Discard, buf: make([]byte, 4096), max: 1 << 20, n: &n,
			insp: gwRequests{c}, maxInspect: 8192, grow: grow, release: func([]byte) {}}
		down := &pump{src: &chunkReader{b: s2c, rnd: rand.New(rand.NewPCG(3, 4))}, dst: io.Discard, buf: make([]byte, 4096), max: 1 << 20, n: &n,
			insp: gwResponses{c}, maxInspect: 8192, grow: grow, release: func([]byte) {}, gate: &sync.Mutex{}}
		c.upNow, c.downNow = &up.now, &down.now
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); up.run() }()
		down.run()
		cancel()
		c.close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the request side hangs after the session ended")
		}
		c.finish(time.Now())
		for i, r := range sink.snapshot() {
			if r.Seq != int64(i+1) || r.Outcome == "" {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
	})
}
