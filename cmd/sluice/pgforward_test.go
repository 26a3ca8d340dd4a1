package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// lastCertPEM is the PEM of the latest testCert (tests here do not run in parallel).
var lastCertPEM string

// testCert makes a self-signed certificate for 127.0.0.1.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	lastCertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// fakeGateway is the gateway's Postgres listener as seen by the forwarder.
type fakeGateway struct {
	ln      net.Listener
	tlsCert *tls.Certificate // nil: answers 'N' to SSLRequest
	auth    uint32           // pgAuthCleartext or pgAuthMD5
	token   string
	got     chan *pgproto3.StartupMessage
	gotPass chan string
	cancels chan *pgproto3.CancelRequest
}

func startFakeGateway(t *testing.T, cert *tls.Certificate, auth uint32) *fakeGateway {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{ln: ln, tlsCert: cert, auth: auth, token: "tok-alice",
		got: make(chan *pgproto3.StartupMessage, 4), gotPass: make(chan string, 4),
		cancels: make(chan *pgproto3.CancelRequest, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.serve(t, c)
		}
	}()
	return g
}

func (g *fakeGateway) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	var conn net.Conn = c
	be := pgproto3.NewBackend(conn, conn)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if g.tlsCert == nil {
				conn.Write([]byte{'N'})
				continue
			}
			conn.Write([]byte{'S'})
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*g.tlsCert}})
			if err := tc.Handshake(); err != nil {
				return
			}
			conn = tc
			be = pgproto3.NewBackend(conn, conn)
			continue
		case *pgproto3.CancelRequest:
			g.cancels <- m
			return
		case *pgproto3.StartupMessage:
			g.got <- m
		default:
			t.Errorf("unexpected startup %T", msg)
			return
		}
		break
	}
	salt := [4]byte{1, 2, 3, 4}
	want := g.token
	if g.auth == pgAuthMD5 {
		be.Send(&pgproto3.AuthenticationMD5Password{Salt: salt})
		be.SetAuthType(pgproto3.AuthTypeMD5Password)
		want = md5Password("alice", g.token, salt)
	} else {
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
		be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
	}
	be.Flush()
	msg, err := be.Receive()
	if err != nil {
		return
	}
	pw, _ := msg.(*pgproto3.PasswordMessage)
	if pw == nil {
		t.Errorf("want PasswordMessage, got %T", msg)
		return
	}
	g.gotPass <- pw.Password
	if pw.Password != want {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "invalid token"})
		be.Flush()
		return
	}
	// Notice + AuthOk + parameters in one write, as a real server would.
	be.Send(&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hello"})
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 7, SecretKey: []byte{0, 0, 0, 9}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	be.Flush()
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("ECHO " + m.String)})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			be.Flush()
		case *pgproto3.Terminate:
			return
		}
	}
}

// localClient plays psql on one end of a net.Pipe whose other end the forwarder serves.
func localClient(t *testing.T, fw *pgForwarder) (*pgproto3.Frontend, net.Conn) {
	t.Helper()
	cli, srv := net.Pipe()
	go fw.handle(context.Background(), srv)
	t.Cleanup(func() { cli.Close() })
	cli.SetDeadline(time.Now().Add(10 * time.Second))
	// SSLRequest first, like psql with sslmode=prefer: the forwarder says 'N'.
	req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := cli.Write(req); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(cli, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("SSLRequest answer %q, %v", b[0], err)
	}
	fe := pgproto3.NewFrontend(cli, cli)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{
		"user": "localuser", "database": "something-else", "application_name": "psql", "client_encoding": "UTF8",
	}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return fe, cli
}

func checkStartup(t *testing.T, g *fakeGateway) {
	t.Helper()
	select {
	case sm := <-g.got:
		p := sm.Parameters
		if p["user"] != "alice" || p["database"] != "pg-demo" || p["application_name"] != "psql" || p["client_encoding"] != "UTF8" || len(p) != 4 {
			t.Errorf("rewritten startup = %v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("gateway got no startup message")
	}
}

func TestForwardTLSCleartext(t *testing.T) {
	cert, pool := testCert(t)
	g := startFakeGateway(t, &cert, pgAuthCleartext)
	fw := &pgForwarder{gatewayAddr: g.ln.Addr().String(), tlsConfig: &tls.Config{RootCAs: pool},
		user: "alice", token: "tok-alice", database: "pg-demo", logf: t.Logf}
	fe, _ := localClient(t, fw)
	checkStartup(t, g)
	if pw := <-g.gotPass; pw != "tok-alice" {
		t.Errorf("password = %q", pw)
	}
	var kinds []string
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			kinds = append(kinds, "notice")
		case *pgproto3.AuthenticationOk:
			kinds = append(kinds, "ok")
		case *pgproto3.ParameterStatus:
			kinds = append(kinds, m.Name)
		case *pgproto3.BackendKeyData:
			kinds = append(kinds, "key")
		case *pgproto3.ReadyForQuery:
			kinds = append(kinds, "ready")
		default:
			t.Fatalf("unexpected %T", msg)
		}
		if len(kinds) == 5 {
			break
		}
	}
	if got := kinds[0] + " " + kinds[1] + " " + kinds[2] + " " + kinds[3] + " " + kinds[4]; got != "notice ok server_version key ready" {
		t.Errorf("client saw %s", got)
	}
	fe.Send(&pgproto3.Query{String: "select 1"})
	fe.Flush()
	msg, err := fe.Receive()
	if cc, ok := msg.(*pgproto3.CommandComplete); err != nil || !ok || string(cc.CommandTag) != "ECHO select 1" {
		t.Fatalf("query answer %#v %v", msg, err)
	}
}

func TestForwardWrongCAIsRefused(t *testing.T) {
	cert, _ := testCert(t)
	_, otherPool := testCert(t)
	g := startFakeGateway(t, &cert, pgAuthCleartext)
	fw := &pgForwarder{gatewayAddr: g.ln.Addr().String(), tlsConfig: &tls.Config{RootCAs: otherPool},
		user: "alice", token: "tok-alice", database: "pg-demo"}
	fe, _ := localClient(t, fw)
	msg, err := fe.Receive()
	er, ok := msg.(*pgproto3.ErrorResponse)
	if err != nil || !ok || er.Code != "08001" {
		t.Fatalf("want an 08001 error, got %#v %v", msg, err)
	}
	select {
	case <-g.got:
		t.Fatal("the startup (and token) went to an unverified gateway")
	default:
	}
}

func TestForwardPlainLoopbackMD5AndBadToken(t *testing.T) {
	g := startFakeGateway(t, nil, pgAuthMD5)
	fw := &pgForwarder{gatewayAddr: g.ln.Addr().String(), user: "alice", token: "tok-alice", database: "pg-demo"}
	fe, _ := localClient(t, fw)
	checkStartup(t, g)
	if pw := <-g.gotPass; pw != md5Password("alice", "tok-alice", [4]byte{1, 2, 3, 4}) {
		t.Errorf("md5 password = %q", pw)
	}
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.NoticeResponse); !ok {
		t.Fatalf("got %T", msg)
	}

	// A wrong token: the gateway's own ErrorResponse reaches the client.
	fw.token = "nope"
	fe, _ = localClient(t, fw)
	msg, err := fe.Receive()
	if er, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || er.Code != "28P01" || er.Message != "invalid token" {
		t.Fatalf("got %#v %v", msg, err)
	}
}

func TestForwardRefusesPlainToRemote(t *testing.T) {
	fw := &pgForwarder{}
	if isLoopbackHost("192.0.2.1") || !isLoopbackHost("127.0.0.1") || !isLoopbackHost("::1") || !isLoopbackHost("localhost") {
		t.Fatal("isLoopbackHost")
	}
	// A gateway that answers 'N' on a non-loopback address (when this host has one).
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0"))
		if err != nil {
			continue
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.ReadFull(c, make([]byte, 8))
				c.Write([]byte{'N'})
				time.Sleep(time.Second)
				c.Close()
			}
		}()
		fw.gatewayAddr = ln.Addr().String()
		_, err = fw.dialGateway(context.Background())
		if err == nil || !strings.Contains(err.Error(), "does not offer TLS") {
			t.Fatalf("err = %v", err)
		}
		return
	}
	t.Skip("no non-loopback IPv4 address")
}

func TestForwardCancelRequest(t *testing.T) {
	g := startFakeGateway(t, nil, pgAuthCleartext)
	fw := &pgForwarder{gatewayAddr: g.ln.Addr().String(), user: "alice", token: "t", database: "d"}
	cli, srv := net.Pipe()
	defer cli.Close()
	go fw.handle(context.Background(), srv)
	pkt := make([]byte, 16)
	binary.BigEndian.PutUint32(pkt[0:], 16)
	binary.BigEndian.PutUint32(pkt[4:], pgCancelRequestCode)
	binary.BigEndian.PutUint32(pkt[8:], 7)
	binary.BigEndian.PutUint32(pkt[12:], 9)
	cli.Write(pkt)
	select {
	case c := <-g.cancels:
		if c.ProcessID != 7 || binary.BigEndian.Uint32(c.SecretKey) != 9 {
			t.Errorf("cancel = %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel request not forwarded")
	}
}

func TestSCRAMVector(t *testing.T) {
	// RFC 7677 test vector (user "user", password "pencil"); the server
	// signature was cross-checked with Python's hashlib/hmac.
	c := &scramClient{password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO", clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO"}
	final, err := c.clientFinal([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil {
		t.Fatal(err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if string(final) != want {
		t.Fatalf("client-final = %s", final)
	}
	if err := c.verifyServerFinal([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Fatal(err)
	}
	if err := c.verifyServerFinal([]byte("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err == nil {
		t.Fatal("bad server signature accepted")
	}
}

func TestResolveGatewayAddr(t *testing.T) {
	for in, want := range map[string]string{
		":15432":          "gw.example:15432",
		"0.0.0.0:15432":   "gw.example:15432",
		"[::]:15432":      "gw.example:15432",
		"10.0.0.5:15432":  "10.0.0.5:15432",
		"127.0.0.1:15432": "127.0.0.1:15432",
	} {
		got, err := resolveGatewayAddr(in, "https://gw.example:8009")
		if err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
}

// TestConnectCommandPath drives prepareForwarder (user from /me, pg_addr and
// CA from /info) and serveForwarder over real loopback sockets.
func TestConnectCommandPath(t *testing.T) {
	cert, _ := testCert(t)
	caPEM := lastCertPEM
	g := startFakeGateway(t, &cert, pgAuthCleartext)
	g.token = "tok-admin"
	f := newFakeAPI(t)
	_, port, _ := net.SplitHostPort(g.ln.Addr().String())
	f.info = &gatewayInfo{PGAddr: "0.0.0.0:" + port, CAPEM: caPEM}
	env := testEnv(t, f)
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fw, err := a.prepareForwarder(ctx, "pg-demo", "")
	if err != nil {
		t.Fatal(err)
	}
	if fw.user != "alice" || fw.gatewayAddr != "127.0.0.1:"+port {
		t.Fatalf("forwarder user %q addr %q", fw.user, fw.gatewayAddr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveForwarder(ctx, ln, fw) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "me", "application_name": "psql"}})
	fe.Flush()
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if sm := <-g.got; sm.Parameters["user"] != "alice" || sm.Parameters["database"] != "pg-demo" {
		t.Errorf("startup = %v", sm.Parameters)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveForwarder: %v", err)
	}
}
