package scratchpg

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// writeSelfSignedCert writes a self-signed ECDSA P-256 certificate valid for
// 127.0.0.1, ::1 and localhost to certPath, and its key (mode 0600) to keyPath.
// Both files are owned by owner, as PostgreSQL requires for the key.
func writeSelfSignedCert(certPath, keyPath string, owner *runAs) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("scratchpg: generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return fmt.Errorf("scratchpg: TLS serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"sluice scratchpg"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: clients can use it as sslrootcert
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("scratchpg: create TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("scratchpg: marshal TLS key: %w", err)
	}
	if err := writeOwned(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644, owner); err != nil {
		return err
	}
	return writeOwned(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600, owner)
}

// writeOwned writes data to path with mode perm, owned by owner.
func writeOwned(path string, data []byte, perm os.FileMode, owner *runAs) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("scratchpg: write %s: %w", path, err)
	}
	if err := os.Chmod(path, perm); err != nil { // WriteFile does not fix the mode of an existing file
		return fmt.Errorf("scratchpg: chmod %s: %w", path, err)
	}
	return owner.chown(path)
}
