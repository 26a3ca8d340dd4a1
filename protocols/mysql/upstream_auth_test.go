package mysql

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/sluice-gw/sluice/internal/scratchmysql"
)

// MariaDB has no server side for caching_sha2_password and MySQL 8 is not
// installable here, so the agent's upstream login with it is tested against
// go-mysql's own server implementation (github.com/go-mysql-org/go-mysql/
// server), the peer below, not against a MySQL 8 server.

// queryHandler answers SELECT 1, nothing else.
type queryHandler struct{}

func (h queryHandler) UseDB(string) error { return nil }
func (h queryHandler) HandleQuery(q string) (*gomysql.Result, error) {
	var rs *gomysql.Resultset
	var err error
	switch q {
	case "SELECT 1":
		rs, err = gomysql.BuildSimpleTextResultset([]string{"1"}, [][]any{{1}})
	default:
		return nil, gomysql.NewError(1064, "unsupported: "+q)
	}
	if err != nil {
		return nil, err
	}
	return gomysql.NewResult(rs), nil
}
func (h queryHandler) HandleFieldList(string, string) ([]*gomysql.Field, error) {
	return nil, errors.New("unsupported")
}
func (h queryHandler) HandleStmtPrepare(string) (int, int, any, error) {
	return 0, 0, nil, errors.New("unsupported")
}
func (h queryHandler) HandleStmtExecute(any, string, []any) (*gomysql.Result, error) {
	return nil, errors.New("unsupported")
}
func (h queryHandler) HandleStmtClose(any) error             { return nil }
func (h queryHandler) HandleOtherCommand(byte, []byte) error { return errors.New("unsupported") }

// recordingConn keeps what the server wrote (before any TLS).
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// fakeMySQL serves srv on loopback with the users of auth; sent returns
// what the server wrote on each connection so far, in accept order.
type fakeMySQL struct {
	addr string
	auth *server.InMemoryAuthenticationHandler
	mu   sync.Mutex
	rec  []*recordingConn
}

func startFakeMySQL(t *testing.T, srv *server.Server, auth *server.InMemoryAuthenticationHandler) *fakeMySQL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMySQL{addr: ln.Addr().String(), auth: auth}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rc := &recordingConn{Conn: c}
			f.mu.Lock()
			f.rec = append(f.rec, rc)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				conn, err := srv.NewCustomizedConn(rc, auth, queryHandler{})
				if err != nil {
					return // the client got the ERR
				}
				for !conn.Closed() {
					if err := conn.HandleCommand(); err != nil {
						return
					}
				}
			}()
		}
	}()
	return f
}

func (f *fakeMySQL) sent(i int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.rec) {
		return nil
	}
	f.rec[i].mu.Lock()
	defer f.rec[i].mu.Unlock()
	return bytes.Clone(f.rec[i].out.Bytes())
}

func testUpstream(t *testing.T) *Upstream {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.ConnectTimeout = 10 * time.Second
	u, err := NewUpstream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// login runs the agent's upstream login to target and one query.
func login(t *testing.T, u *Upstream, target string) error {
	t.Helper()
	tg, err := parseTarget(target)
	if err != nil {
		t.Fatalf("parseTarget(%s): %v", target, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := u.dial(ctx, tg, capMultiStatements|capMultiResults, 45)
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := conn.Execute("SELECT 1")
	if err != nil {
		return fmt.Errorf("query after login: %w", err)
	}
	if v, err := r.GetInt(0, 0); err != nil || v != 1 {
		return fmt.Errorf("SELECT 1 gave %v (%v)", r.Values, err)
	}
	return nil
}

func errCodeOf(err error) uint16 {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	return 0
}

// serverTLS is a certificate from a throwaway CA; the CA goes in a file,
// as a target's tls-ca.
func serverTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	files, err := scratchmysql.NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(files.CertPEM, files.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, files.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, ca
}

func TestUpstreamLoginNativePassword(t *testing.T) {
	auth := server.NewInMemoryAuthenticationHandler(gomysql.AUTH_NATIVE_PASSWORD)
	auth.AddUser("app", "native-secret")
	srv := server.NewServer("8.0.36-gomysql", gomysql.DEFAULT_COLLATION_ID, gomysql.AUTH_NATIVE_PASSWORD, nil, nil)
	f := startFakeMySQL(t, srv, auth)
	u := testUpstream(t)
	if err := login(t, u, "mysql://app:native-secret@"+f.addr+"/appdb"); err != nil {
		t.Fatalf("native login: %v", err)
	}
	if err := login(t, u, "mysql://app:wrong@"+f.addr+"/appdb"); errCodeOf(err) != 1045 {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestUpstreamLoginCachingSha2OverTLS: a fresh server has no cached hash,
// so the first login can only pass by full authentication (the password
// over TLS). The second passes by the fast path: the stored password has
// been changed meanwhile and only the cached hash of the old one accepts it,
// which the third login, after the cache is cleared, proves.
func TestUpstreamLoginCachingSha2OverTLS(t *testing.T) {
	tc, ca := serverTLS(t)
	auth := server.NewInMemoryAuthenticationHandler(gomysql.AUTH_CACHING_SHA2_PASSWORD)
	auth.AddUser("app", "sha2-secret")
	auth.AddUser("old", "old-secret", gomysql.AUTH_NATIVE_PASSWORD) // an account on another plugin: auth switch
	srv := server.NewServer("8.0.36-gomysql", gomysql.DEFAULT_COLLATION_ID, gomysql.AUTH_CACHING_SHA2_PASSWORD, nil, tc)
	f := startFakeMySQL(t, srv, auth)
	u := testUpstream(t)
	target := "mysql://app:sha2-secret@" + f.addr + "/appdb?tls=true&tls-ca=" + ca

	if err := login(t, u, target); err != nil {
		t.Fatalf("full authentication over TLS: %v", err)
	}
	auth.AddUser("app", "rotated-secret") // the cache still holds the old hash
	if err := login(t, u, target); err != nil {
		t.Fatalf("fast path: %v", err)
	}
	srv.InvalidateCache("app", f.addr)
	if err := login(t, u, target); errCodeOf(err) != 1045 {
		t.Fatalf("after the cache was cleared the old password must fail full authentication: %v", err)
	}
	if err := login(t, u, "mysql://app:rotated-secret@"+f.addr+"/appdb?tls=verify-ca&tls-ca="+ca); err != nil {
		t.Fatalf("full authentication, verify-ca: %v", err)
	}
	if err := login(t, u, "mysql://old:old-secret@"+f.addr+"/appdb?tls=true&tls-ca="+ca); err != nil {
		t.Fatalf("mysql_native_password after an auth switch: %v", err)
	}
	// The agent checks the server: a CA it was not given is refused.
	if err := login(t, u, "mysql://app:rotated-secret@"+f.addr+"/appdb?tls=true"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server certificate from an unknown CA: %v", err)
	}
}

// TestUpstreamLoginCachingSha2Plaintext: without TLS the full
// authentication fetches the server's RSA key and sends the password
// encrypted with it; the fast path sends only a scramble. Both are seen in
// what the server wrote.
func TestUpstreamLoginCachingSha2Plaintext(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	auth := server.NewInMemoryAuthenticationHandler(gomysql.AUTH_CACHING_SHA2_PASSWORD)
	auth.AddUser("app", "sha2-secret")
	srv := server.NewServer("8.0.36-gomysql", gomysql.DEFAULT_COLLATION_ID, gomysql.AUTH_CACHING_SHA2_PASSWORD, key, nil)
	f := startFakeMySQL(t, srv, auth)
	u := testUpstream(t)
	target := "mysql://app:sha2-secret@" + f.addr + "/appdb"
	fullAuth := []byte{0x01, gomysql.CACHE_SHA2_FULL_AUTH}
	fastAuth := []byte{0x01, gomysql.CACHE_SHA2_FAST_AUTH}
	hasPacket := func(wire, payload []byte) bool {
		r := bytes.NewReader(wire)
		for {
			p, _, _, err := readPacket(r, nil, 1<<16)
			if err != nil {
				return false
			}
			if bytes.Equal(p, payload) {
				return true
			}
		}
	}
	if err := login(t, u, target); err != nil {
		t.Fatalf("full authentication with the server's RSA key: %v", err)
	}
	first := f.sent(0)
	if !hasPacket(first, fullAuth) || !bytes.Contains(first, []byte("BEGIN PUBLIC KEY")) {
		t.Fatalf("first login did not take the full path with the RSA key:\n%q", first)
	}
	if err := login(t, u, target); err != nil {
		t.Fatalf("fast path: %v", err)
	}
	if second := f.sent(1); !hasPacket(second, fastAuth) || hasPacket(second, fullAuth) {
		t.Fatalf("second login did not take the fast path:\n%q", second)
	}
	if err := login(t, u, "mysql://app:nope@"+f.addr+"/appdb"); errCodeOf(err) != 1045 {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestParseTargetTLS(t *testing.T) {
	_, ca := serverTLS(t)
	for target, want := range map[string]string{
		"mysql://u:p@h/db":                                  "plain",
		"mysql://u:p@h:3307/db?tls=false":                   "plain",
		"mysql://u:p@h/db?tls=true":                         "verify",
		"mysql://u:p@h/db?tls=true&tls-ca=" + ca:            "verify+ca",
		"mysql://u:p@h/db?tls-ca=" + ca:                     "verify+ca",
		"mysql://u:p@h/db?tls=verify-ca&tls-ca=" + ca:       "ca-only",
		"mysql://u:p@h/db?tls=skip-verify":                  "skip",
		"mysql://u:p@h/db?tls=false&tls-ca=" + ca:           "error",
		"mysql://u:p@h/db?tls=skip-verify&tls-ca=" + ca:     "error",
		"mysql://u:p@h/db?tls=true&tls-ca=/nonexistent.pem": "error",
		"mysql://u:p@h/db?tls=maybe":                        "error",
		"mysql://u:p@h/db?ssl-ca=" + ca:                     "error", // a typo is not silently ignored
		"postgres://u:p@h/db":                               "error",
	} {
		tg, err := parseTarget(target)
		got := "error"
		if err == nil {
			switch c := tg.tls; {
			case c == nil:
				got = "plain"
			case c.VerifyConnection != nil && c.RootCAs == nil:
				got = "ca-only"
			case c.InsecureSkipVerify:
				got = "skip"
			case c.RootCAs != nil && c.ServerName == "h":
				got = "verify+ca"
			case c.ServerName == "h":
				got = "verify"
			}
		}
		if got != want {
			t.Errorf("%s: %s (%v), want %s", target, got, err, want)
		}
	}
}
