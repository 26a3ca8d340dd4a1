package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/sluice-gw/sluice/protocols/postgres"
)

// target is a parsed connection target:
//
//	mysql://user:password@host:port/database?tls=MODE&tls-ca=FILE
//
// tls is false (the default; also disable), true (also require and
// verify-full: the server's certificate must chain to a trusted CA and name
// the host), verify-ca (chain checked, host name not) or skip-verify (also
// insecure: encrypted, nothing checked). tls-ca is a PEM file on the agent
// with the CAs to trust instead of the system's; alone it means tls=true.
// ${VAR} and env:VAR are resolved first, as for Postgres.
type target struct {
	addr, user, password, db string
	tls                      *tls.Config
}

var targetParams = map[string]bool{"tls": true, "tls-ca": true}

func parseTarget(raw string) (*target, error) {
	s, err := postgres.ResolveTarget(raw)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") || u.Host == "" {
		return nil, errors.New("invalid target: want mysql://user:password@host:port/database")
	}
	t := &target{addr: u.Host, db: strings.TrimPrefix(u.Path, "/")}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.password, _ = u.User.Password()
	}
	q := u.Query()
	var unknown []string
	for k := range q {
		if !targetParams[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("invalid target: unknown parameter %s (known: tls, tls-ca)", strings.Join(unknown, ", "))
	}
	mode, caFile := q.Get("tls"), q.Get("tls-ca")
	if mode == "" && caFile != "" {
		mode = "true"
	}
	var roots *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("invalid target: tls-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("invalid target: tls-ca %s holds no PEM certificate", caFile)
		}
	}
	switch mode {
	case "", "false", "disable":
		if caFile != "" {
			return nil, fmt.Errorf("invalid target: tls-ca with tls=%s", mode)
		}
	case "true", "require", "verify-full":
		t.tls = &tls.Config{ServerName: u.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12}
	case "verify-ca":
		t.tls = verifyCAOnly(roots)
	case "skip-verify", "insecure":
		if caFile != "" {
			return nil, fmt.Errorf("invalid target: tls-ca with tls=%s, which checks nothing (use tls=true or verify-ca)", mode)
		}
		t.tls = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // asked for by the target
	default:
		return nil, fmt.Errorf("invalid target: tls=%s (want true, verify-ca, skip-verify or false)", mode)
	}
	return t, nil
}

// verifyCAOnly checks that the server's chain leads to roots (nil: the
// system's) without matching the host name: for servers reached by an
// address their certificate does not name.
func verifyCAOnly(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		},
	}
}
