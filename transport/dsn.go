package transport

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
)

// DSN schemes.
const (
	SchemeGRPC  = "grpc"  // gRPC over plaintext TCP (loopback only)
	SchemeGRPCS = "grpcs" // gRPC over TLS
	SchemeQUIC  = "quic"  // QUIC over UDP (TLS 1.3), transport/quic
)

// Agent modes carried in DSN.Mode.
const (
	ModeStandard = "standard"
	ModeEmbedded = "embedded"
)

// DSN is an agent's connection string:
//
//	grpcs://NAME:KEY@HOST:PORT?mode=standard&ca=sha256:HEX
//
// Its String form contains the key: never log it; log Redacted() (a DSN
// logged with slog is redacted automatically).
type DSN struct {
	Scheme string // SchemeGRPC, SchemeGRPCS or SchemeQUIC
	Name   string // agent name
	Key    string // agent key (secret)
	Addr   string // HOST:PORT of the gateway's tunnel listener
	Mode   string // ModeStandard (default) or ModeEmbedded
	CAPin  string // "sha256:HEX" of the gateway CA certificate's DER, or ""
}

// ParseDSN parses an agent DSN. Mode defaults to standard.
func ParseDSN(s string) (DSN, error) {
	var d DSN
	u, err := url.Parse(s)
	if err != nil {
		// url errors quote the whole input, which holds the key.
		return d, errors.New("agent dsn: malformed URL")
	}
	switch u.Scheme {
	case SchemeGRPC, SchemeGRPCS, SchemeQUIC:
	case "":
		return d, errors.New("agent dsn: missing scheme (want grpcs://, grpc:// or quic://)")
	default:
		return d, fmt.Errorf("agent dsn: unknown scheme %q (want grpcs, grpc or quic)", u.Scheme)
	}
	d.Scheme = u.Scheme
	if u.User == nil || u.User.Username() == "" {
		return d, errors.New("agent dsn: missing agent name (want SCHEME://NAME:KEY@HOST:PORT)")
	}
	d.Name = u.User.Username()
	key, ok := u.User.Password()
	if !ok || key == "" {
		return d, errors.New("agent dsn: missing agent key (want SCHEME://NAME:KEY@HOST:PORT)")
	}
	d.Key = key
	if u.Path != "" && u.Path != "/" {
		return d, fmt.Errorf("agent dsn: unexpected path %q", u.Path)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return d, fmt.Errorf("agent dsn: address %q must be HOST:PORT", u.Host)
	}
	d.Addr = u.Host
	q := u.Query()
	for k := range q {
		if k != "mode" && k != "ca" {
			return d, fmt.Errorf("agent dsn: unknown parameter %q", k)
		}
	}
	d.Mode = q.Get("mode")
	switch d.Mode {
	case "":
		d.Mode = ModeStandard
	case ModeStandard, ModeEmbedded:
	default:
		return d, fmt.Errorf("agent dsn: unknown mode %q (want standard or embedded)", d.Mode)
	}
	if ca := q.Get("ca"); ca != "" {
		if err := CheckCAPin(ca); err != nil {
			return d, fmt.Errorf("agent dsn: %w", err)
		}
		if d.Scheme == SchemeGRPC {
			return d, errors.New("agent dsn: ca pin given for plaintext grpc://; use grpcs://")
		}
		d.CAPin = strings.ToLower(ca)
	}
	return d, nil
}

// CheckCAPin reports whether pin has the form "sha256:" followed by 64 hex
// digits.
func CheckCAPin(pin string) error {
	h, ok := strings.CutPrefix(pin, "sha256:")
	if !ok {
		return fmt.Errorf("ca pin %q must start with sha256:", pin)
	}
	if len(h) != 64 {
		return fmt.Errorf("ca pin must have 64 hex digits, has %d", len(h))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("ca pin is not hex: %v", err)
	}
	return nil
}

// String formats d as a DSN that ParseDSN accepts. It includes the key.
func (d DSN) String() string { return d.format(url.UserPassword(d.Name, d.Key)) }

// Redacted is String with the key replaced by "xxxxx".
func (d DSN) Redacted() string { return d.format(url.UserPassword(d.Name, "xxxxx")) }

// LogValue keeps the key out of structured logs.
func (d DSN) LogValue() slog.Value { return slog.StringValue(d.Redacted()) }

func (d DSN) format(user *url.Userinfo) string {
	q := url.Values{}
	if d.Mode != "" {
		q.Set("mode", d.Mode)
	}
	if d.CAPin != "" {
		q.Set("ca", d.CAPin)
	}
	u := url.URL{Scheme: d.Scheme, User: user, Host: d.Addr, RawQuery: q.Encode()}
	// Keep the pin readable: url.Values escapes ':'.
	u.RawQuery = strings.ReplaceAll(u.RawQuery, "%3A", ":")
	return u.String()
}
