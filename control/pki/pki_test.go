package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCreateFilesAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, err := LoadOrCreate(dir, []string{"gw.example.com", "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{CAKeyFile: 0o600, ServerKeyFile: 0o600, CACertFile: 0o644, ServerCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	ca := p.CACert()
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA || ca.NotAfter.Sub(ca.NotBefore) < 9*365*24*time.Hour {
		t.Fatalf("CA: isCA=%v alg=%v validity=%v", ca.IsCA, ca.PublicKeyAlgorithm, ca.NotAfter.Sub(ca.NotBefore))
	}
	sum := sha256.Sum256(ca.Raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); p.CAFingerprint() != want {
		t.Fatalf("fingerprint %s, want %s", p.CAFingerprint(), want)
	}
	if !bytes.Contains(p.CAPEM(), []byte("BEGIN CERTIFICATE")) {
		t.Fatal("CAPEM is not PEM")
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if !bytes.Equal(onDisk, p.CAPEM()) {
		t.Fatal("CAPEM differs from ca.crt")
	}
}

func TestReloadKeepsCAAndLeaf(t *testing.T) {
	dir := t.TempDir()
	p1, err := LoadOrCreate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := LoadOrCreate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p1.CAFingerprint() != p2.CAFingerprint() {
		t.Fatal("CA changed on reload")
	}
	if !bytes.Equal(p1.server.Leaf.Raw, p2.server.Leaf.Raw) {
		t.Fatal("server certificate reissued without reason")
	}
	// A new host name reissues the leaf from the same CA.
	p3, err := LoadOrCreate(dir, []string{"new.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if p3.CAFingerprint() != p1.CAFingerprint() {
		t.Fatal("CA changed when adding a host")
	}
	if bytes.Equal(p3.server.Leaf.Raw, p1.server.Leaf.Raw) || p3.server.Leaf.VerifyHostname("new.example.com") != nil {
		t.Fatal("server certificate not reissued for new host")
	}
}

func TestHalfPresentCAIsAnError(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CACertFile))
	if _, err := LoadOrCreate(dir, nil); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("got %v, want half-present error", err)
	}
}

func TestCorruptKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("junk"), 0o600)
	if _, err := LoadOrCreate(dir, nil); err == nil {
		t.Fatal("corrupt CA key accepted")
	}
}

// TestTLSHandshake checks both ways a client can trust the gateway: with the
// CA as a root (normal verification by name) and by pinning the CA's
// fingerprint in the served chain.
func TestTLSHandshake(t *testing.T) {
	p, err := LoadOrCreate(t.TempDir(), []string{"gw.test", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CAPEM())

	for _, name := range []string{"localhost", "127.0.0.1", "::1", "gw.test", "192.0.2.7"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Fatalf("verify as %s: %v", name, err)
		}
		c.Close()
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "other.test"}); err == nil {
		c.Close()
		t.Fatal("certificate valid for an unlisted name")
	}

	// Pinning: the chain must carry the CA after the leaf.
	pinned := false
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // replaced by the fingerprint check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("no CA in chain")
			}
			sum := sha256.Sum256(raw[len(raw)-1])
			if "sha256:"+hex.EncodeToString(sum[:]) != p.CAFingerprint() {
				return errors.New("fingerprint mismatch")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			ca, _ := x509.ParseCertificate(raw[len(raw)-1])
			if err := leaf.CheckSignatureFrom(ca); err != nil {
				return err
			}
			pinned = true
			return nil
		},
	})
	if err != nil {
		t.Fatalf("pinned dial: %v", err)
	}
	c.Close()
	if !pinned {
		t.Fatal("pin callback not run")
	}
}
