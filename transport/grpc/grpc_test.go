package grpctun

import (
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
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-gw/sluice/proto/tunnelpb"
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
}

func startGateway(t testing.TB, tlsOn bool, tweak ...func(*ServerConfig)) *gateway {
	t.Helper()
	g := &gateway{hub: transport.NewHub(), tunnels: make(chan transport.Tunnel, 16)}
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
	}
	for _, f := range tweak {
		f(&cfg)
	}
	if tlsOn {
		g.pki = newPKI(t)
		cfg.TLS = g.pki.serverTLS
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(srv.Close)
	return g
}

func (g *gateway) clientConfig(name string) ClientConfig {
	return ClientConfig{Addr: g.addr, Name: name, Key: testKey, CAPin: g.pki.pin, Plaintext: g.pki.pin == "", AgentVersion: "test"}
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

func TestConformanceTLS(t *testing.T) {
	tunneltest.Run(t, func(t *testing.T, o tunneltest.Options) (transport.Tunnel, transport.Tunnel) {
		g := startGateway(t, true)
		cfg := g.clientConfig("agent-" + strconv.FormatInt(agentSeq.Add(1), 10))
		cfg.Filter = o.Filter
		return g.pair(t, cfg)
	})
}

func TestConformancePlaintextLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	tunneltest.Run(t, func(t *testing.T, o tunneltest.Options) (transport.Tunnel, transport.Tunnel) {
		g := startGateway(t, false)
		cfg := g.clientConfig("agent")
		cfg.Filter = o.Filter
		return g.pair(t, cfg)
	})
}

func TestWrongKeyRejected(t *testing.T) {
	g := startGateway(t, true)
	cfg := g.clientConfig("a")
	cfg.Key = "wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, cfg)
	if status.Code(errors.Unwrap(err)) != codes.Unauthenticated && status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Dial with wrong key: %v, want Unauthenticated", err)
	}
}

func TestWrongCAPinRejected(t *testing.T) {
	g := startGateway(t, true)
	cfg := g.clientConfig("a")
	cfg.CAPin = newPKI(t).pin // some other CA
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Dial(ctx, cfg); err == nil {
		t.Fatal("Dial with wrong CA pin succeeded")
	}
	select {
	case <-g.tunnels:
		t.Fatal("gateway got a tunnel despite the wrong pin")
	default:
	}
}

func TestPlaintextNonLoopbackRefused(t *testing.T) {
	_, err := Dial(context.Background(), ClientConfig{Addr: "192.0.2.1:8010", Name: "a", Key: "k", Plaintext: true})
	if err == nil {
		t.Fatal("plaintext dial to a non-loopback host allowed")
	}
}

// TestSessionNeedsTunnelKey: a Session RPC with another key is refused.
func TestSessionNeedsTunnelKey(t *testing.T) {
	g := startGateway(t, false)
	g.pair(t, g.clientConfig("a"))
	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, mdName, "a", mdKey, "wrong")
	ss, err := tunnelpb.NewTunnelClient(conn).Session(ctx)
	if err == nil {
		ss.Send(&tunnelpb.Frame{SessionId: "x"})
		_, err = ss.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Session with wrong key: %v, want Unauthenticated", err)
	}
}

func TestHubDisconnectEndsTunnel(t *testing.T) {
	g := startGateway(t, true)
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

func TestPingRTT(t *testing.T) {
	rtts := make(chan time.Duration, 16)
	g := startGateway(t, true, func(c *ServerConfig) {
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
	if st.AgentVersion() != "test" || st.Name() != "p" {
		t.Fatalf("tunnel info: %q %q", st.Name(), st.AgentVersion())
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

// benchStream opens a stream to an agent on a TLS loopback tunnel. The
// agent echoes on connection "echo"; on "sink" it discards until EOF, then
// answers one byte.
func benchStream(b *testing.B, conn string) transport.Stream {
	g := startGateway(b, true)
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
