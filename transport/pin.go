package transport

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// PinCA makes tc verify the gateway against the CA pinned in an agent DSN
// ("sha256:HEX" of the CA certificate's DER) instead of system roots: the
// presented chain must contain that certificate, and the leaf must verify
// against it as the only root for tc.ServerName. Every tunnel transport uses
// it, so an agent trusts exactly one CA whatever it dials with.
func PinCA(tc *tls.Config, pin string) error {
	if err := CheckCAPin(pin); err != nil {
		return err
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(strings.ToLower(pin), "sha256:"))
	serverName := tc.ServerName
	tc.InsecureSkipVerify = true // replaced by VerifyConnection below
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyPinned(cs.PeerCertificates, want, serverName)
	}
	return nil
}

func verifyPinned(chain []*x509.Certificate, pin []byte, serverName string) error {
	if len(chain) == 0 {
		return errors.New("gateway presented no certificate")
	}
	var ca *x509.Certificate
	inter := x509.NewCertPool()
	for _, c := range chain {
		sum := sha256.Sum256(c.Raw)
		if bytes.Equal(sum[:], pin) {
			ca = c
		} else if c != chain[0] {
			inter.AddCert(c)
		}
	}
	if ca == nil {
		return errors.New("gateway certificate chain does not contain the pinned CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName}); err != nil {
		return fmt.Errorf("gateway certificate does not verify against the pinned CA: %w", err)
	}
	return nil
}
