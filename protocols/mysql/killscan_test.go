package mysql

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

var killCases = map[string]bool{
	// refused: a KILL the gateway did not map
	"SELECT 1; KILL QUERY 12":                        true,
	"select 1;kill 12":                               true,
	"KILL 5; SELECT 1":                               true,
	"/* why */ KILL QUERY 7":                         true,
	"-- note\nKILL 7":                                true,
	"# note\nKILL 7":                                 true,
	"SELECT 1 /*!50000 ; KILL 7 */":                  true, // executable comment
	"SELECT 1 /*!50000KILL 7*/":                      true,
	"SELECT 1 /*M!100301 ; KILL 7 */":                true,
	"KILL":                                           true,
	"kIlL CONNECTION 3":                              true,
	"BEGIN NOT ATOMIC KILL 5; END":                   true,
	"CREATE PROCEDURE p() BEGIN KILL 5; END":         true,
	"PREPARE s FROM 'KILL 5'":                        true,
	"PREPARE s FROM \"kill query 5\"":                true,
	"EXECUTE IMMEDIATE 'KI\\LL 5'":                   true, // backslash dropped by the server
	"SELECT 'a\\'; KILL 5; -- '":                     true, // NO_BACKSLASH_ESCAPES: the string ends at \'
	"SELECT \"a\\\"; KILL 5; -- \"":                  true, // ANSI_QUOTES: "..." is a name, no escapes
	"SELECT 1 ---\nKILL 5":                           true,
	"SELECT 1 --x\nKILL 5":                           true,
	"SELECT kill FROM t":                             true, // an unquoted name: quote it
	"SELECT 1; PREPARE s FROM 'SELECT skill FROM t'": true, // dynamic: letters in a row are enough
	// allowed
	"SELECT 'kill' AS word, 'Kill Bill' AS title": false,
	"SELECT \"kill 5\"":                           false,
	"SELECT `kill` FROM t":                        false,
	"SELECT t.kill FROM t":                        false,
	"SELECT @kill := 1":                           false,
	"SELECT skill, killer, kill_count FROM t":     false,
	"SELECT 1 -- KILL 5":                          false,
	"SELECT 1 # KILL 5":                           false,
	"SELECT 1 /* KILL 5 */":                       false,
	"SELECT 1 /**/ /* ; KILL 5 */":                false,
	"SELECT 1 /*+ KILL */":                        false,
	"SELECT 'it''s; KILL 5'":                      false,
	"SELECT 'a\\' ; KILL 5 ; -- ' FROM t":         true, // ambiguous by sql_mode: refused
	"INSERT INTO log VALUES ('killed by KILL 5')": false,
	"SET @q = 'KILL 5'":                           false, // not dynamic here; PREPARE FROM @q is dynamic-sql
	"":                                            false,
}

func TestContainsKill(t *testing.T) {
	for sql, want := range killCases {
		if got := containsKill([]byte(sql)); got != want {
			t.Errorf("containsKill(%q) = %v, want %v", sql, got, want)
		}
		// Any split into chunks gives the same answer.
		for cut := 0; cut <= len(sql); cut++ {
			var k killScanner
			k.reset()
			k.feed([]byte(sql[:cut]))
			k.feed([]byte(sql[cut:]))
			if got := k.end(); got != want && hasKillLetters([]byte(sql)) {
				t.Errorf("%q cut at %d: %v, want %v", sql, cut, got, want)
			}
		}
	}
}

func FuzzKillScan(f *testing.F) {
	for sql := range killCases {
		f.Add(sql, uint16(len(sql)/2))
	}
	for _, c := range loadCaptures(f) {
		ph := splitPhases(f, c)
		for _, p := range ph.cmds {
			if len(p.payload) > 1 && (p.payload[0] == comQuery || p.payload[0] == comStmtPrepare) {
				f.Add(string(p.payload[1:]), uint16(len(p.payload)/3))
			}
		}
	}
	f.Fuzz(func(t *testing.T, sql string, cut uint16) {
		whole := containsKill([]byte(sql))
		if whole && !hasKillLetters([]byte(sql)) {
			t.Fatal("a KILL without the letters")
		}
		c := min(int(cut), len(sql))
		var k killScanner
		k.reset()
		k.feed([]byte(sql[:c]))
		k.feed([]byte(sql[c:]))
		if got := k.end(); hasKillLetters([]byte(sql)) && got != whole {
			t.Fatalf("chunked %v, whole %v", got, whole)
		}
		// Putting a KILL statement after the text (on a new line, after a
		// statement end) is always seen unless the text leaves a quote or
		// comment open, which the server would reject as a syntax error.
		if !strings.ContainsAny(sql, "'\"`#-/\\") {
			if !containsKill([]byte(sql + "\n;KILL 1")) {
				t.Fatal("appended KILL missed")
			}
		}
	})
}

// requestsOnce runs the agent's request relay (no policy, a 4 KiB read
// buffer) over the given client bytes.
func requestsOnce(t *testing.T, in []byte) (up, gw []byte, err error) {
	t.Helper()
	c := newConversation(nil, "my-demo", "appdb", 1<<20, NewMetrics(nil, "agent"))
	var upB, gwB bytes.Buffer
	var n atomic.Int64
	var done atomic.Bool
	clock := &timedReader{r: bytes.NewReader(in)}
	upW := bufio.NewWriterSize(&upB, 4096)
	err = c.requests(bufio.NewReaderSize(clock, 4096), clock, &lockedWriter{w: &gwB}, upW, &n, &done)
	if late := (*errLateKill)(nil); !errors.As(err, &late) {
		upW.Flush() // on a late KILL the agent closes the upstream unflushed
	}
	return upB.Bytes(), gwB.Bytes(), err
}

func TestRequestsRefuseKill(t *testing.T) {
	query := func(sql string) []byte { b, _ := appendPacket(nil, 0, append([]byte{comQuery}, sql...)); return b }
	prepare := func(sql string) []byte {
		b, _ := appendPacket(nil, 0, append([]byte{comStmtPrepare}, sql...))
		return b
	}
	ping, _ := appendPacket(nil, 0, []byte{comPing})
	pad := strings.Repeat("x", 10000) // larger than the 4 KiB read buffer

	for _, tc := range []struct {
		name        string
		in          []byte
		upstream    []byte // what must reach the upstream
		refused     int    // ERR 1227 packets to the gateway
		late        bool
		refusedSeqs []byte
	}{
		{"allowed", append(query("SELECT 'kill'"), ping...), append(query("SELECT 'kill'"), ping...), 0, false, nil},
		{"multi-statement", append(query("SELECT 1; KILL QUERY 9"), ping...), ping, 1, false, []byte{1}},
		{"prepared", append(prepare("KILL ?"), ping...), ping, 1, false, []byte{1}},
		{"large, allowed", query("SELECT '" + pad + "'"), query("SELECT '" + pad + "'"), 0, false, nil},
		{"large, KILL first", append(query("KILL 9; SELECT '"+pad+"'"), ping...), ping, 1, false, []byte{1}},
		{"large, KILL last", append(query("SELECT '"+pad+"'; KILL 9"), ping...), nil, 1, true, []byte{1}},
		{"huge, KILL last", query("SELECT '" + strings.Repeat(pad, 1700) + "'; KILL 9"), nil, 1, true, []byte{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, gw, err := requestsOnce(t, tc.in)
			var late *errLateKill
			switch {
			case tc.late && !errors.As(err, &late):
				t.Fatalf("err = %v, want a late KILL", err)
			case !tc.late && err != io.EOF:
				t.Fatalf("err = %v", err)
			}
			if tc.late {
				// The relay writes the ERR; the command's end never went upstream.
				if !bytes.HasPrefix(tc.in, up) || len(up) >= len(tc.in)-len("; KILL 9") {
					t.Fatalf("%d of %d bytes went upstream", len(up), len(tc.in))
				}
				if bytes.Contains(up, []byte("KILL")) {
					t.Fatal("the KILL went upstream")
				}
				if late.seq != tc.refusedSeqs[0] {
					t.Fatalf("ERR sequence id %d, want %d", late.seq, tc.refusedSeqs[0])
				}
				return
			}
			if !bytes.Equal(up, tc.upstream) {
				t.Fatalf("upstream got %d bytes %q…, want %d", len(up), up[:min(len(up), 40)], len(tc.upstream))
			}
			ps := packetsOf(t, gw)
			if len(ps) != tc.refused {
				t.Fatalf("%d packets to the gateway, want %d", len(ps), tc.refused)
			}
			for i, p := range ps {
				code, state, msg, ok := parseErr(p.payload)
				if !ok || code != erSpecificAccess || state != "42000" || !strings.Contains(msg, "KILL through Sluice must be sent alone") || p.seq != tc.refusedSeqs[i] {
					t.Fatalf("refusal %d: %d %s %q seq %d", i, code, state, msg, p.seq)
				}
			}
		})
	}
}
