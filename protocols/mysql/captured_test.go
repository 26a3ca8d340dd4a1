package mysql

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/masking"
)

// chunkReader returns b in reads of random size (1 to 64 bytes).
type chunkReader struct {
	b   []byte
	rnd *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), 1+c.rnd.IntN(64))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func TestCapturedFramingAndHandshakes(t *testing.T) {
	for _, c := range loadCaptures(t) {
		for dir, b := range map[string][]byte{"c2s": c.c2s, "s2c": c.s2c} {
			var again []byte
			for _, p := range packetsOf(t, b) {
				again, _ = appendPacket(again, p.seq, p.payload)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("%s %s: packets do not re-encode to the same bytes", c.name, dir)
			}
		}
		ph := splitPhases(t, c)
		hr, err := parseHandshakeResponse(ph.handshake)
		if err != nil {
			t.Fatalf("%s: real handshake response rejected: %v", c.name, err)
		}
		if hr.user != "app" && hr.user != "edu" || hr.db != "appdb" || len(hr.auth) == 0 {
			t.Fatalf("%s: parsed %+v", c.name, hr)
		}
		if hr.caps&(capDeprecateEOF|capQueryAttributes) != 0 {
			t.Fatalf("%s: the client negotiated CLIENT_DEPRECATE_EOF or QUERY_ATTRIBUTES, which Sluice never does; re-record", c.name)
		}
		t.Logf("%s: user %s, plugin %s, %d attributes, %d command packets", c.name, hr.user, hr.plugin, len(hr.attrs), len(ph.cmds))
	}
}

// TestCapturedResponsesTrack follows every recorded server answer with the
// tracker: each command's response must end exactly once, in order, with
// nothing left over.
func TestCapturedResponsesTrack(t *testing.T) {
	sawRows, sawBinary, sawPrepare, sawMore := false, false, false, false
	for _, c := range loadCaptures(t) {
		ph := splitPhases(t, c)
		kinds := ph.kinds()
		var trk respTracker
		ends, rows := 0, 0
		for i, p := range packetsOf(t, ph.s2cCmds) {
			if ends == len(kinds) {
				t.Fatalf("%s: packet %d (%x…) after the last response ended", c.name, i, p.payload[:min(8, len(p.payload))])
			}
			k := kinds[ends]
			head := p.payload[:min(len(p.payload), trackHead)]
			pi, err := trk.feed(k, head, len(p.payload))
			if err != nil {
				t.Fatalf("%s: packet %d: %v", c.name, i, err)
			}
			if pi.row {
				rows++
				sawRows = true
				sawBinary = sawBinary || k == respBinary
			}
			sawPrepare = sawPrepare || k == respPrepare
			sawMore = sawMore || (pi.hasStatus && pi.status&statusMoreResults != 0)
			if pi.end {
				ends++
			}
		}
		if ends != len(kinds) {
			t.Fatalf("%s: %d of %d responses ended", c.name, ends, len(kinds))
		}
		t.Logf("%s: %d responses, %d rows", c.name, ends, rows)
	}
	if !sawRows || !sawBinary || !sawPrepare || !sawMore {
		t.Fatalf("captures lack rows %v, binary rows %v, prepares %v or multi-results %v", sawRows, sawBinary, sawPrepare, sawMore)
	}
}

// relayCapture runs the agent's two relays over a recorded conversation
// (the commands pipelined) and returns what went upstream and to the gateway.
func relayCapture(t *testing.T, ph phases, policy *sessionPolicy, seed uint64) (toUpstream, toGateway []byte, c *conversation) {
	t.Helper()
	c = newConversation(policy, "my-demo", "appdb", 64<<20, NewMetrics(nil, "agent"))
	var up, gw bytes.Buffer
	var n atomic.Int64
	var done atomic.Bool
	rnd := rand.New(rand.NewPCG(seed, 9))
	gwClock := &timedReader{r: &chunkReader{b: ph.c2sCmds, rnd: rnd}}
	upW := bufio.NewWriterSize(&up, 4096)
	if err := c.requests(bufio.NewReaderSize(gwClock, 4096), gwClock, &lockedWriter{w: &gw}, upW, &n, &done); err != io.EOF {
		t.Fatalf("requests: %v", err)
	}
	upW.Flush()
	upClock := &timedReader{r: &chunkReader{b: ph.s2cCmds, rnd: rnd}}
	gwW := bufio.NewWriterSize(&gw, 4096)
	if err := c.responses(bufio.NewReaderSize(upClock, 4096), upClock, gwW, &n); err != io.EOF {
		t.Fatalf("responses: %v", err)
	}
	gwW.Flush()
	return up.Bytes(), gw.Bytes(), c
}

func TestCapturedConversationsRelayExactly(t *testing.T) {
	for i, c := range loadCaptures(t) {
		ph := splitPhases(t, c)
		up, gw, conv := relayCapture(t, ph, nil, uint64(i))
		if !bytes.Equal(up, ph.c2sCmds) {
			t.Fatalf("%s: commands changed on the way upstream", c.name)
		}
		if !bytes.Equal(gw, ph.s2cCmds) {
			t.Fatalf("%s: responses changed on the way to the gateway", c.name)
		}
		if _, left := conv.head(); left {
			t.Fatalf("%s: responses left unanswered in the agent's queue", c.name)
		}
	}
}

// TestCapturedConversationsMasked runs the recorded answers through a
// masking and guardrail policy: no recorded PII reaches the gateway, and
// the masked stream still frames and tracks to the same responses.
func TestCapturedConversationsMasked(t *testing.T) {
	pc := &policyCache{}
	policy, err := pc.compile([]byte(`{"guardrails":{"deny":["drop"]},"masking":{"columns":["customers.email","customers.card","types.vc"],"detectors":["ssn","phone"],"style":"partial"}}`), "my-demo", []byte("k"))
	if err != nil || policy == nil || policy.mask == nil {
		t.Fatalf("policy: %v", err)
	}
	masked := 0
	for i, c := range loadCaptures(t) {
		ph := splitPhases(t, c)
		up, gw, conv := relayCapture(t, ph, policy, uint64(i))
		if !bytes.Equal(up, ph.c2sCmds) {
			t.Fatalf("%s: allowed commands changed on the way upstream", c.name)
		}
		for _, pii := range []string{"ada@example.com", "alan@example.org", "123-45-6789", "415 555 0100", "4111111111111111"} {
			if bytes.Contains(gw, []byte(pii)) {
				t.Fatalf("%s: %q reached the gateway", c.name, pii)
			}
		}
		if !bytes.Equal(gw, ph.s2cCmds) {
			masked++
		}
		kinds := ph.kinds()
		var trk respTracker
		ends := 0
		for _, p := range packetsOf(t, gw) {
			pi, err := trk.feed(kinds[ends], p.payload[:min(len(p.payload), trackHead)], len(p.payload))
			if err != nil {
				t.Fatalf("%s: masked stream: %v", c.name, err)
			}
			if pi.end {
				ends++
			}
		}
		if ends != len(kinds) {
			t.Fatalf("%s: masked stream has %d of %d responses", c.name, ends, len(kinds))
		}
		if _, left := conv.head(); left {
			t.Fatalf("%s: responses left unanswered", c.name)
		}
	}
	if masked < 3 {
		t.Fatalf("only %d captures had anything masked", masked)
	}
}

// TestCapturedStatementTiming checks the statement series the agent
// derives from the recorded conversations: one observation per response,
// and transactions that end when the server leaves them.
func TestCapturedStatementTiming(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, "agent")
	total := 0
	for i, c := range loadCaptures(t) {
		ph := splitPhases(t, c)
		conv := newConversation(nil, "my-demo", "appdb", 64<<20, m)
		var sink bytes.Buffer
		var n atomic.Int64
		var done atomic.Bool
		gwClock := &timedReader{r: bytes.NewReader(ph.c2sCmds)}
		if err := conv.requests(bufio.NewReader(gwClock), gwClock, &lockedWriter{w: &sink}, bufio.NewWriter(&sink), &n, &done); err != io.EOF {
			t.Fatal(err)
		}
		upClock := &timedReader{r: &chunkReader{b: ph.s2cCmds, rnd: rand.New(rand.NewPCG(uint64(i), 1))}}
		if err := conv.responses(bufio.NewReader(upClock), upClock, bufio.NewWriter(&sink), &n); err != io.EOF {
			t.Fatal(err)
		}
		total += len(ph.kinds())
	}
	got := counterValue(t, reg, "sluice_upstream_queries_total")
	if int(got) != total {
		t.Fatalf("sluice_upstream_queries_total = %v, want %d (one per command with a response)", got, total)
	}
	if x := counterValue(t, reg, "sluice_upstream_transactions_total"); x < 1 || x > got {
		t.Fatalf("sluice_upstream_transactions_total = %v for %v statements", x, got)
	}
	if h := histogramCount(t, reg, "sluice_upstream_statement_duration_seconds"); int(h) != total {
		t.Fatalf("statement histogram has %d observations, want %d", h, total)
	}
}

func FuzzMaskedResponses(f *testing.F) {
	for _, c := range loadCaptures(f) {
		ph := splitPhases(f, c)
		var ks []byte
		for _, k := range ph.kinds() {
			ks = append(ks, byte(k))
		}
		f.Add(ks, ph.s2cCmds)
	}
	mp, _ := masking.Compile(masking.Config{Columns: []string{"customers.email", "types.vc"}, Detectors: []string{"email", "ssn"}})
	policy := &sessionPolicy{mask: &maskingRules{p: mp, columns: true}}
	m := NewMetrics(nil, "agent")
	f.Fuzz(func(t *testing.T, kinds, s2c []byte) {
		c := newConversation(policy, "c", "db", 1<<16, m)
		for _, k := range kinds {
			c.push(respKind(k%uint8(respRefused+1)), c.timer.xact)
		}
		var out bytes.Buffer
		var n atomic.Int64
		clock := &timedReader{r: bytes.NewReader(s2c)}
		c.responses(bufio.NewReaderSize(clock, 4096), clock, bufio.NewWriterSize(&out, 4096), &n) // must not panic or hang
	})
}
