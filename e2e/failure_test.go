package e2e

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// connectErr connects through the gateway and returns the server's error.
func connectErr(t *testing.T, conninfo string) *pgconn.PgError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, conninfo)
	if err == nil {
		c.Close(ctx)
		t.Fatal("connected, want an error")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("got %v, want a Postgres ErrorResponse", err)
	}
	return pgErr
}

func TestNativeErrors(t *testing.T) {
	E.must("PUT", "/api/v1/agents/ghost", map[string]any{})
	E.must("PUT", "/api/v1/connections/pg-ghost", map[string]any{"agent": "ghost", "target": E.pg.URL("app", "app-secret", "app")})
	E.must("PUT", "/api/v1/connections/pg-nowhere", map[string]any{"agent": "demo-agent", "target": "postgres://app:app-secret@127.0.0.1:1/app?connect_timeout=2"})
	cases := []struct {
		name, conninfo, code, contains string
	}{
		{"wrong token", E.conninfo("pg-demo", "slc_not-a-real-token"), "28P01", "password authentication failed"},
		{"unknown connection", E.conninfo("no-such-conn", E.aliceToken), "3D000", "no-such-conn"},
		{"agent offline", E.conninfo("pg-ghost", E.aliceToken), "08006", "ghost"},
		{"upstream unreachable", E.conninfo("pg-nowhere", E.aliceToken), "08001", "could not connect to upstream"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			e := connectErr(t, c.conninfo)
			if e.Code != c.code || !strings.Contains(e.Message, c.contains) {
				t.Fatalf("got %s %q, want %s containing %q", e.Code, e.Message, c.code, c.contains)
			}
			if c.name == "agent offline" && time.Since(start) > 3*time.Second {
				t.Fatalf("offline agent took %v to report: it must fail at once", time.Since(start))
			}
		})
	}
}

// rawConn dials the gateway's Postgres port.
func rawConn(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", E.gw.PGAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// readError expects an ErrorResponse and then the connection's close.
func readError(t *testing.T, c net.Conn) *pgproto3.ErrorResponse {
	t.Helper()
	fe := pgproto3.NewFrontend(c, c)
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("want ErrorResponse, got %v", err)
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			if _, err := fe.Receive(); err == nil {
				t.Fatal("connection still open after a FATAL error")
			}
			return e
		}
	}
}

func TestGarbageAndOversizeStartup(t *testing.T) {
	c := rawConn(t)
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if e := readError(t, c); e.Code != "08P01" {
		t.Fatalf("garbage: got %s %s", e.Code, e.Message)
	}
	c = rawConn(t)
	hdr := binary.BigEndian.AppendUint32(nil, 1<<30)
	c.Write(binary.BigEndian.AppendUint32(hdr, 196608))
	if e := readError(t, c); e.Code != "08P01" {
		t.Fatalf("oversize: got %s %s", e.Code, e.Message)
	}
}

func TestStalledStartupIsClosed(t *testing.T) {
	c := rawConn(t)
	c.Write([]byte{0, 0, 0, 40, 0, 3}) // half a start-up packet, then nothing
	start := time.Now()
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			if errors.Is(err, io.EOF) || isReset(err) {
				break
			}
			t.Fatalf("want the gateway to close, got %v", err)
		}
	}
	if took := time.Since(start); took > E.startupWait+5*time.Second {
		t.Fatalf("closed after %v, want about %v", took, E.startupWait)
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "reset") }

// hijacked returns an authenticated raw session through the gateway.
func hijacked(t *testing.T, connection string) *pgconn.HijackedConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, E.conninfo(connection, E.aliceToken))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := c.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	return hc
}

func TestOversizeMessage(t *testing.T) {
	hc := hijacked(t, "pg-demo")
	hc.Conn.Write([]byte{'Q', 0x40, 0, 0, 0}) // claims 1 GiB
	e := readError(t, hc.Conn)
	if e.Code != "08P01" || !strings.Contains(e.Message, "limit") {
		t.Fatalf("got %s %q", e.Code, e.Message)
	}
}

func TestClientVanishesMidCopy(t *testing.T) {
	ctx := context.Background()
	if err := E.pg.ExecIn(ctx, "app", "CREATE TABLE IF NOT EXISTS vanish (t text); GRANT ALL ON vanish TO app"); err != nil {
		t.Fatal(err)
	}
	hc := hijacked(t, "pg-demo")
	buf, _ := (&pgproto3.Query{String: "COPY vanish FROM STDIN"}).Encode(nil)
	hc.Conn.Write(buf)
	fe := pgproto3.NewFrontend(hc.Conn, hc.Conn)
	m, err := fe.Receive()
	if _, ok := m.(*pgproto3.CopyInResponse); err != nil || !ok {
		t.Fatalf("want CopyInResponse, got %T %v", m, err)
	}
	for range 100 {
		b, _ := (&pgproto3.CopyData{Data: []byte("some row\n")}).Encode(nil)
		hc.Conn.Write(b)
	}
	waitBackends(t, "COPY vanish FROM STDIN", 1)
	raw := hc.Conn
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	raw.(*net.TCPConn).SetLinger(0) // vanish: RST, no goodbye
	raw.Close()
	waitBackends(t, "COPY vanish FROM STDIN", 0)
}

func waitBackends(t *testing.T, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := E.pg.Query(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = '"+query+"'")
		if err == nil && n == strconv.Itoa(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s backends running %q, want %d", n, query, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgentRevokedMidSession(t *testing.T) {
	dsn := E.createAgent("rev-agent")
	stop := E.startAgent(dsn)
	defer stop()
	if err := E.waitOnline("rev-agent"); err != nil {
		t.Fatal(err)
	}
	E.must("PUT", "/api/v1/connections/pg-rev", map[string]any{"agent": "rev-agent", "target": E.pg.URL("app", "app-secret", "app")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, E.conninfo("pg-rev", E.aliceToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	E.must("DELETE", "/api/v1/agents/rev-agent", nil)
	// The gateway tells the idle client at once: read that unsolicited FATAL
	// rather than race a query against it.
	err = c.WaitForNotification(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08006" || !strings.Contains(pgErr.Message, "rev-agent") {
		t.Fatalf("after revocation got %v, want FATAL 08006 naming the agent", err)
	}
	time.Sleep(500 * time.Millisecond)
	if E.gw.Hub.Online("rev-agent") {
		t.Fatal("revoked agent is still connected")
	}
}
