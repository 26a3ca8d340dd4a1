package postgres

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// capture is one recorded connection: the client's start-up packets, the
// client's typed messages after them, and everything the server sent.
type capture struct {
	name     string
	startups [][]byte
	c2s, s2c []byte
}

func loadCaptures(tb testing.TB) []capture {
	tb.Helper()
	files, err := filepath.Glob("testdata/capture/*-c2s.bin")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no captures in testdata/capture: %v", err)
	}
	var out []capture
	for _, f := range files {
		c2s, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		s2c, err := os.ReadFile(strings.Replace(f, "-c2s", "-s2c", 1))
		if err != nil {
			tb.Fatal(err)
		}
		c := capture{name: filepath.Base(f), s2c: s2c}
		// Start-up packets are untyped; the last one is the StartupMessage.
		for len(c2s) >= 8 {
			n := int(binary.BigEndian.Uint32(c2s))
			c.startups = append(c.startups, c2s[:n])
			code := binary.BigEndian.Uint32(c2s[4:8])
			c2s = c2s[n:]
			if code>>16 == 3 {
				break
			}
		}
		c.c2s = c2s
		// Each SSLRequest/GSSENCRequest got a one-byte answer before any typed message.
		for _, p := range c.startups {
			if code := binary.BigEndian.Uint32(p[4:8]); code == codeSSLRequest || code == codeGSSENCReq {
				c.s2c = c.s2c[1:]
			}
		}
		out = append(out, c)
	}
	return out
}

// TestCapturedStreamsRelayExactly runs real psql and pgbench traffic, both
// directions, through the pump in odd-sized reads.
func TestCapturedStreamsRelayExactly(t *testing.T) {
	for _, c := range loadCaptures(t) {
		for _, p := range c.startups {
			if _, err := parseStartup(p); err != nil {
				t.Fatalf("%s: real start-up packet rejected: %v", c.name, err)
			}
		}
		for dir, in := range map[string][]byte{"c2s": c.c2s, "s2c": c.s2c} {
			var n atomic.Int64
			out := &countingWriter{}
			p := &pump{src: &chunkReader{b: in, rnd: rand.New(rand.NewPCG(7, 7))}, dst: out, buf: make([]byte, 4096), max: 1 << 20, n: &n}
			if err := p.run(); err != nil {
				t.Fatalf("%s %s: %v", c.name, dir, err)
			}
			if !bytes.Equal(out.Bytes(), in) {
				t.Fatalf("%s %s: relayed bytes differ", c.name, dir)
			}
		}
	}
}
