package transport

import (
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	ok := []struct {
		in   string
		want DSN
	}{
		{"grpcs://agent1:s3cr%2Ft@gw.example.com:8010?mode=standard&ca=" + pin,
			DSN{Scheme: "grpcs", Name: "agent1", Key: "s3cr/t", Addr: "gw.example.com:8010", Mode: "standard", CAPin: pin}},
		{"grpc://a:k@127.0.0.1:8010?mode=embedded",
			DSN{Scheme: "grpc", Name: "a", Key: "k", Addr: "127.0.0.1:8010", Mode: "embedded"}},
		{"quic://a:k@[::1]:8010", DSN{Scheme: "quic", Name: "a", Key: "k", Addr: "[::1]:8010", Mode: "standard"}},
	}
	for _, c := range ok {
		got, err := ParseDSN(c.in)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseDSN(%q) = %+v, want %+v", c.in, got, c.want)
		}
		again, err := ParseDSN(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q via %q: %+v, %v", c.in, got.String(), again, err)
		}
		if strings.Contains(got.Redacted(), got.Key) {
			t.Errorf("Redacted %q shows the key", got.Redacted())
		}
	}
	bad := map[string]string{
		"http://a:k@h:1":               "unknown scheme",
		"gw:8010":                      "scheme",
		"grpcs://h:1":                  "agent name",
		"grpcs://a@h:1":                "agent key",
		"grpcs://a:k@h":                "HOST:PORT",
		"grpcs://a:k@h:1?mode=x":       "mode",
		"grpcs://a:k@h:1?ca=md5:00":    "sha256:",
		"grpcs://a:k@h:1?ca=sha256:zz": "64 hex",
		"grpc://a:k@h:1?ca=" + pin:     "plaintext",
		"grpcs://a:k@h:1?foo=1":        "unknown parameter",
		"grpcs://a:k@h:1/path":         "path",
	}
	for in, want := range bad {
		_, err := ParseDSN(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDSN(%q) = %v, want error containing %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), ":k@") {
			t.Errorf("error %q leaks the key", err)
		}
	}
}
