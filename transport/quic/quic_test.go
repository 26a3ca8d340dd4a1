package quictun

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/tunneltest"
)

// testPKI is a throwaway CA and a leaf for 127.0.0.1 signed by it.
type testPKI struct {
	serverTLS *tls.Config
	pin       string
}

func newPKI(t testing.TB) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(caDER)
	return testPKI{
		serverTLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}}},
		pin:       "sha256:" + hex.EncodeToString(sum[:]),
	}
}

const testKey = "k3y"

// gateway is a running tunnel server whose tunnels land in a hub.
type gateway struct {
	addr    string
	hub     *transport.Hub
	tunnels chan transport.Tunnel
	pki     testPKI
	srv     *Server
}

func startGateway(t testing.TB, tweak ...func(*ServerConfig)) *gateway {
	t.Helper()
	g := &gateway{hub: transport.NewHub(), tunnels: make(chan transport.Tunnel, 16), pki: newPKI(t)}
	cfg := ServerConfig{
		Verifier: func(_ context.Context, name, key string) error {
			if key != testKey {
				return errors.New("bad key")
			}
			return nil
		},
		OnTunnel: func(name string, tun transport.Tunnel) {
			g.hub.Register(name, tun)
			g.tunnels <- tun
		},
		TLS: g.pki.serverTLS,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = pc.LocalAddr().String()
	g.srv = srv
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	return g
}

func (g *gateway) clientConfig(name string) ClientConfig {
	return ClientConfig{Addr: g.addr, Name: name, Key: testKey, CAPin: g.pki.pin, AgentVersion: "test"}
}

var agentSeq atomic.Int64

// pair dials an agent into g and returns the gateway's and agent's tunnels.
func (g *gateway) pair(t testing.TB, cfg ClientConfig) (transport.Tunnel, transport.Tunnel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	select {
	case gw := <-g.tunnels:
		return gw, a
	case <-time.After(5 * time.Second):
		t.Fatal("gateway never reported the tunnel")
	}
	return nil, nil
}

func TestConformance(t *testing.T) {
	tunneltest.Run(t, func(t *testing.T, o tunneltest.Options) (transport.Tunnel, transport.Tunnel) {
		g := startGateway(t)
		cfg := g.clientConfig("agent-" + strconv.FormatInt(agentSeq.Add(1), 10))
		cfg.Filter = o.Filter
		return g.pair(t, cfg)
	})
}

func TestConfigFromDSN(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	d, err := transport.ParseDSN("quic://a1:s3cret@gw.example:8010?mode=standard&ca=" + pin)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := ConfigFromDSN(d)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Addr != "gw.example:8010" || cc.Name != "a1" || cc.Key != "s3cret" || cc.CAPin != pin {
		t.Fatalf("config %+v", cc)
	}
	d.Scheme = transport.SchemeGRPCS
	if _, err := ConfigFromDSN(d); err == nil {
		t.Fatal("grpcs DSN accepted")
	}
}

func TestWrongKeyRejected(t *testing.T) {
	g := startGateway(t)
	cfg := g.clientConfig("a")
	cfg.Key = "wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, cfg)
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Dial with wrong key: %v, want ErrAuthFailed", err)
	}
	select {
	case <-g.tunnels:
		t.Fatal("gateway got a tunnel despite the wrong key")
	default:
	}
}

func TestWrongCAPinRejected(t *testing.T) {
	g := startGateway(t)
	cfg := g.clientConfig("a")
	cfg.CAPin = newPKI(t).pin // some other CA
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Dial(ctx, cfg); err == nil || !strings.Contains(err.Error(), "pinned CA") {
		t.Fatalf("Dial with wrong CA pin: %v, want a pin failure", err)
	}
	select {
	case <-g.tunnels:
		t.Fatal("gateway got a tunnel despite the wrong pin")
	default:
	}
}

func TestNoPinNeedsTrustedCA(t *testing.T) {
	g := startGateway(t)
	cfg := g.clientConfig("a")
	cfg.CAPin = "" // system roots: the throwaway CA is not among them
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Dial(ctx, cfg); err == nil {
		t.Fatal("Dial without pin trusted an unknown CA")
	}
}

// TestHelloTimeout: a QUIC client that never says hello is dropped.
func TestHelloTimeout(t *testing.T) {
	g := startGateway(t, func(c *ServerConfig) { c.HelloTimeout = 100 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tc, err := clientTLS(g.clientConfig("x"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := quic.DialAddr(ctx, g.addr, tc, clientConfig(10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	select {
	case <-conn.Context().Done():
		var ae *quic.ApplicationError
		if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != codeProtocol {
			t.Fatalf("closed with %v, want codeProtocol", err)
		}
	case <-ctx.Done():
		t.Fatal("silent client not dropped")
	}
}

// TestWrongALPNRejected: a QUIC client speaking another protocol fails the
// handshake.
func TestWrongALPNRejected(t *testing.T) {
	g := startGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tc, _ := clientTLS(g.clientConfig("x"), "127.0.0.1")
	tc.NextProtos = []string{"h3"}
	if conn, err := quic.DialAddr(ctx, g.addr, tc, clientConfig(10)); err == nil {
		conn.CloseWithError(0, "")
		t.Fatal("handshake with wrong ALPN succeeded")
	}
}

func TestHubDisconnectEndsTunnel(t *testing.T) {
	g := startGateway(t)
	_, a := g.pair(t, g.clientConfig("revoked"))
	go func() {
		for {
			s, _, err := a.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go io.Copy(io.Discard, s)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := g.hub.Open(ctx, "revoked", transport.Header{SessionID: "x", Connection: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g.hub.Disconnect("revoked")
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("agent tunnel still up after Hub.Disconnect")
	}
	if g.hub.Online("revoked") {
		t.Fatal("hub still lists the agent")
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, transport.ErrTunnelClosed) {
		t.Fatalf("stream Read after disconnect: %v", err)
	}
}

// TestServerCloseEndsTunnels: Server.Close tells agents, which see
// ErrTunnelClosed.
func TestServerCloseEndsTunnels(t *testing.T) {
	g := startGateway(t)
	_, a := g.pair(t, g.clientConfig("s"))
	g.srv.Close()
	select {
	case <-a.Done():
		if !errors.Is(a.Err(), transport.ErrTunnelClosed) || !strings.Contains(a.Err().Error(), "shutting down") {
			t.Fatalf("agent Err %v", a.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent tunnel still up after Server.Close")
	}
}

func TestPingRTT(t *testing.T) {
	rtts := make(chan time.Duration, 16)
	g := startGateway(t, func(c *ServerConfig) {
		c.PingInterval = 20 * time.Millisecond
		c.OnRTT = func(_ string, d time.Duration) {
			select {
			case rtts <- d:
			default:
			}
		}
	})
	gw, _ := g.pair(t, g.clientConfig("p"))
	st := gw.(*ServerTunnel)
	if st.AgentVersion() != "test" || st.Name() != "p" || st.RemoteAddr() == "" {
		t.Fatalf("tunnel info: %q %q %q", st.Name(), st.AgentVersion(), st.RemoteAddr())
	}
	select {
	case d := <-rtts:
		if d <= 0 {
			t.Fatalf("rtt %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no RTT measured")
	}
	if st.RTT() <= 0 {
		t.Fatal("RTT() not set")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []transport.Header{
		{SessionID: "s1"},
		{SessionID: "s2", Kind: transport.KindCancel, Connection: "c", Protocol: "postgres", Target: "db:5432",
			User: "ünïcode", Params: map[string]string{"user": "bob", "": "empty key", "database": ""},
			Policy: bytes.Repeat([]byte(`{"x":1}`), 1000)},
	} {
		f, err := headerFrame(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readHeader(bytes.NewReader(f))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, h) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, h)
		}
		// Every truncation fails cleanly.
		for n := 5; n < len(f) && n < 300; n++ {
			if _, err := decodeHeader(f[5:n]); err == nil {
				t.Fatalf("truncated header (%d bytes) decoded", n)
			}
		}
	}
	if _, err := headerFrame(transport.Header{SessionID: "s", Policy: make([]byte, maxHeaderSize)}); !errors.Is(err, errHeaderTooBig) {
		t.Fatalf("oversized header: %v", err)
	}
	// A frame announcing more than the cap is refused before reading it.
	big := appendMsg(nil, frameHeader, nil)
	big[1], big[2] = 0x7f, 0xff
	if _, err := readHeader(bytes.NewReader(big)); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

// TestOversizedHeaderRejected: OpenStream fails at once, the tunnel lives on.
func TestOversizedHeaderRejected(t *testing.T) {
	g := startGateway(t)
	gw, _ := g.pair(t, g.clientConfig("big"))
	_, err := gw.OpenStream(context.Background(), transport.Header{SessionID: "s", Policy: make([]byte, maxHeaderSize+1)})
	if !errors.Is(err, errHeaderTooBig) {
		t.Fatalf("OpenStream: %v", err)
	}
	if gw.Err() != nil {
		t.Fatal(gw.Err())
	}
}

// TestStalledStreamsIsolation: several sessions whose readers stall (both
// directions, writers blocked on flow control) do not slow a second
// session's small round trips on the same tunnel.
func TestStalledStreamsIsolation(t *testing.T) {
	g := startGateway(t)
	gw, a := g.pair(t, g.clientConfig("iso"))
	stalledAgent := make(chan transport.Stream, 64)
	go func() {
		for {
			s, h, err := a.AcceptStream(context.Background())
			if err != nil {
				return
			}
			switch h.Connection {
			case "echo":
				go func() { io.Copy(s, s); s.CloseWrite() }()
			case "flood": // the agent floods a gateway reader that never reads
				stalledAgent <- s
				go func() {
					buf := make([]byte, 1<<20)
					for {
						if _, err := s.Write(buf); err != nil {
							return
						}
					}
				}()
			default: // sink: never read
				stalledAgent <- s
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stalled []transport.Stream
	defer func() {
		for _, s := range stalled {
			s.Close()
		}
	}()
	const n = 16 // stalled sessions per direction
	for i := range 2 * n {
		conn := "sink"
		if i%2 == 1 {
			conn = "flood"
		}
		s, err := gw.OpenStream(ctx, transport.Header{SessionID: "st" + strconv.Itoa(i), Connection: conn})
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, s)
		if conn == "sink" {
			go func() {
				buf := make([]byte, 1<<20)
				for {
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}
	time.Sleep(300 * time.Millisecond) // let every window fill up
	s, err := gw.OpenStream(ctx, transport.Header{SessionID: "rt", Connection: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg, buf := make([]byte, 100), make([]byte, 100)
	var rtts []time.Duration
	for range 200 {
		start := time.Now()
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	p50, p99 := rtts[len(rtts)/2], rtts[len(rtts)*99/100]
	t.Logf("round trips beside %d stalled sessions: p50 %v p99 %v max %v", 2*n, p50, p99, rtts[len(rtts)-1])
	if p99 > 200*time.Millisecond {
		t.Fatalf("p99 round trip %v beside stalled sessions", p99)
	}
	// The stalled streams are still intact: the flood's first byte arrives.
	if _, err := stalled[1].Read(buf[:1]); err != nil {
		t.Fatal(err)
	}
}

// benchStream opens a stream to an agent on a loopback tunnel. The agent
// echoes on connection "echo"; on "sink" it discards until EOF, then answers
// one byte. (Same as the grpctun benchmarks.)
func benchStream(b *testing.B, conn string) transport.Stream {
	g := startGateway(b)
	gw, a := g.pair(b, g.clientConfig("bench"))
	go func() {
		for {
			s, h, err := a.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				if h.Connection == "sink" {
					io.Copy(io.Discard, s)
					s.Write([]byte{1})
				} else {
					io.Copy(s, s)
				}
				s.CloseWrite()
			}()
		}
	}()
	s, err := gw.OpenStream(context.Background(), transport.Header{SessionID: "bench", Connection: conn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRoundTrip: a 100-byte write echoed back (gateway → agent → gateway).
func BenchmarkRoundTrip(b *testing.B) {
	s := benchStream(b, "echo")
	msg := make([]byte, 100)
	buf := make([]byte, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThroughput: bulk data gateway → agent in 256 KiB writes.
func BenchmarkThroughput(b *testing.B) {
	s := benchStream(b, "sink")
	const chunk = 256 << 10
	msg := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
}
