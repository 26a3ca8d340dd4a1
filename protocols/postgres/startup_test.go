package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// startupBytes builds a StartupMessage as psql sends it.
func startupBytes(code uint32, kv ...string) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, code)
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	if code>>16 == 3 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestParseStartup(t *testing.T) {
	buf := make([]byte, maxStartupBytes)
	p, err := readStartup(bytes.NewReader(startupBytes(codeProtocol30, "user", "alice", "database", "pg-demo", "application_name", "psql")), buf)
	if err != nil {
		t.Fatal(err)
	}
	if !p.isStartup() || p.params["user"] != "alice" || p.params["database"] != "pg-demo" || p.params["application_name"] != "psql" {
		t.Fatalf("got %+v", p)
	}
	for _, code := range []uint32{codeSSLRequest, codeGSSENCReq} {
		p, err := readStartup(bytes.NewReader(startupBytes(code)), buf)
		if err != nil || p.code != code {
			t.Fatalf("code %d: %v %+v", code, err, p)
		}
	}
	c := binary.BigEndian.AppendUint32(nil, 16)
	c = binary.BigEndian.AppendUint32(c, codeCancel)
	c = binary.BigEndian.AppendUint32(c, 1234)
	c = binary.BigEndian.AppendUint32(c, 0xdeadbeef)
	p, err = readStartup(bytes.NewReader(c), buf)
	if err != nil || p.pid != 1234 || !bytes.Equal(p.secret, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Fatalf("cancel: %v %+v", err, p)
	}
}

func TestParseStartupRejects(t *testing.T) {
	buf := make([]byte, maxStartupBytes)
	huge := binary.BigEndian.AppendUint32(nil, 1<<30)
	huge = binary.BigEndian.AppendUint32(huge, codeProtocol30)
	cases := map[string][]byte{
		"oversize length":   huge,
		"tiny length":       {0, 0, 0, 4, 0, 3, 0, 0},
		"unterminated":      startupBytes(codeProtocol30, "user", "alice")[:17],
		"unknown protocol":  startupBytes(2 << 16),
		"ssl with trailing": append(startupBytes(codeSSLRequest)[:8:8], 1),
	}
	for name, b := range cases {
		if name == "ssl with trailing" || name == "unterminated" {
			binary.BigEndian.PutUint32(b, uint32(len(b)))
		}
		if _, err := readStartup(bytes.NewReader(b), buf); !errors.Is(err, errBadStartup) {
			t.Errorf("%s: got %v, want errBadStartup", name, err)
		}
	}
}

// FuzzStartup checks that no start-up packet makes the parser panic or
// accept a length it was not given.
func FuzzStartup(f *testing.F) {
	f.Add(startupBytes(codeProtocol30, "user", "postgres", "database", "app", "application_name", "psql", "client_encoding", "UTF8"))
	f.Add(startupBytes(codeSSLRequest))
	f.Add(startupBytes(codeGSSENCReq))
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 4, 210, 1, 2, 3, 4})
	f.Add(startupBytes(196610, "user", "u", "_pq_.x", "1"))
	for _, c := range loadCaptures(f) {
		for _, p := range c.startups {
			f.Add(p)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := make([]byte, maxStartupBytes)
		p, err := readStartup(bytes.NewReader(b), buf)
		if err == nil && p.isStartup() && p.params == nil {
			t.Fatal("startup without params map")
		}
	})
}
