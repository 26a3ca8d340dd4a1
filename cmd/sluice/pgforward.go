package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Postgres wire constants for the messages the forwarder handles itself.
const (
	pgSSLRequestCode    = 80877103
	pgGSSENCRequestCode = 80877104
	pgCancelRequestCode = 80877102

	pgAuthOk        = 0
	pgAuthCleartext = 3
	pgAuthMD5       = 5
	pgAuthSASL      = 10

	maxStartupLen = 10000   // same cap as PostgreSQL's own startup packet limit
	maxAuthMsgLen = 1 << 20 // messages before AuthenticationOk are small
)

// pgForwarder forwards local Postgres client connections to the gateway's
// Postgres listener, logging in with the user's access token: the local client
// needs no password, and never sees the token.
type pgForwarder struct {
	gatewayAddr string      // host:port of the gateway's Postgres listener
	tlsConfig   *tls.Config // verifies the gateway; RootCAs from info.ca_pem, ServerName = host
	user        string      // gateway user (the saved login's)
	token       string      // access token, sent as the password
	database    string      // connection name, sent as the database
	dialTimeout time.Duration
	// startupTimeout bounds reading the local client's startup and the TLS handshake.
	startupTimeout time.Duration
	logf           func(format string, args ...any)
}

func (f *pgForwarder) log(format string, args ...any) {
	if f.logf != nil {
		f.logf(format, args...)
	}
}

// clientStartup is what a local client sent before authentication.
type clientStartup struct {
	startup *pgproto3.StartupMessage
	cancel  []byte // a raw CancelRequest packet (length included), when it is one
}

// handle serves one local client connection until either side closes.
func (f *pgForwarder) handle(ctx context.Context, client net.Conn) {
	defer client.Close()
	timeout := f.startupTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	_ = client.SetDeadline(time.Now().Add(timeout))
	cs, err := readClientStartup(client)
	if err != nil {
		f.log("local client %s: %v", client.RemoteAddr(), err)
		writePGError(client, "08P01", err.Error())
		return
	}
	if cs.cancel != nil {
		if err := f.forwardCancel(ctx, cs.cancel); err != nil {
			f.log("cancel request: %v", err)
		}
		return
	}
	gw, br, err := f.openSession(ctx, cs.startup)
	if err != nil {
		f.log("connecting to the gateway: %v", err)
		writePGError(client, "08001", "sluice connect: "+err.Error())
		return
	}
	defer gw.Close()
	_ = client.SetDeadline(time.Time{})
	if err := f.authenticate(gw, br, client); err != nil {
		if !errors.Is(err, errGatewayRefused) {
			f.log("authenticating to the gateway: %v", err)
			writePGError(client, "28000", "sluice connect: "+err.Error())
		}
		return
	}
	relay(client, gw, br)
}

// readClientStartup reads the local client's first packets: it answers
// SSLRequest and GSSENCRequest with 'N' (loopback, no encryption) and returns
// the StartupMessage or a raw CancelRequest.
func readClientStartup(c net.Conn) (*clientStartup, error) {
	for range 4 {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, fmt.Errorf("reading startup: %w", err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < 8 || n > maxStartupLen {
			return nil, fmt.Errorf("invalid startup packet length %d", n)
		}
		pkt := make([]byte, n)
		copy(pkt, hdr[:])
		if _, err := io.ReadFull(c, pkt[4:]); err != nil {
			return nil, fmt.Errorf("reading startup: %w", err)
		}
		switch binary.BigEndian.Uint32(pkt[4:8]) {
		case pgSSLRequestCode, pgGSSENCRequestCode:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, err
			}
			continue
		case pgCancelRequestCode:
			return &clientStartup{cancel: pkt}, nil
		}
		var sm pgproto3.StartupMessage
		if err := sm.Decode(pkt[4:]); err != nil {
			return nil, fmt.Errorf("bad startup message: %w", err)
		}
		return &clientStartup{startup: &sm}, nil
	}
	return nil, errors.New("too many startup packets")
}

// dialGateway connects to the gateway's Postgres listener and negotiates TLS:
// it sends SSLRequest; on 'S' it does TLS, verifying the gateway; on 'N' it
// continues in plain text only when the gateway is on loopback.
func (f *pgForwarder) dialGateway(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: f.dialTimeout}
	if d.Timeout == 0 {
		d.Timeout = 10 * time.Second
	}
	conn, err := d.DialContext(ctx, "tcp", f.gatewayAddr)
	if err != nil {
		return nil, err
	}
	timeout := f.startupTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := conn.Write(req); err != nil {
		conn.Close()
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("gateway %s: reading the answer to SSLRequest: %w", f.gatewayAddr, err)
	}
	switch answer[0] {
	case 'S':
		cfg := f.tlsConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(f.gatewayAddr)
			cfg.ServerName = host
		}
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with gateway %s: %w", f.gatewayAddr, err)
		}
		_ = tc.SetDeadline(time.Time{})
		return tc, nil
	case 'N':
		host, _, _ := net.SplitHostPort(f.gatewayAddr)
		if !isLoopbackHost(host) {
			conn.Close()
			return nil, fmt.Errorf("gateway %s does not offer TLS; refusing to send the token in clear text", f.gatewayAddr)
		}
		_ = conn.SetDeadline(time.Time{})
		return conn, nil
	default:
		conn.Close()
		return nil, fmt.Errorf("gateway %s: unexpected answer %q to SSLRequest", f.gatewayAddr, answer[0])
	}
}

// openSession dials the gateway and sends the rewritten StartupMessage:
// user = the login's user, database = the connection name, every other
// parameter (application_name, client_encoding, options…) as the client sent it.
func (f *pgForwarder) openSession(ctx context.Context, from *pgproto3.StartupMessage) (net.Conn, *bufio.Reader, error) {
	gw, err := f.dialGateway(ctx)
	if err != nil {
		return nil, nil, err
	}
	sm := rewriteStartup(from, f.user, f.database)
	buf, err := sm.Encode(nil)
	if err != nil {
		gw.Close()
		return nil, nil, err
	}
	if _, err := gw.Write(buf); err != nil {
		gw.Close()
		return nil, nil, err
	}
	return gw, bufio.NewReader(gw), nil
}

func rewriteStartup(from *pgproto3.StartupMessage, user, database string) *pgproto3.StartupMessage {
	sm := &pgproto3.StartupMessage{ProtocolVersion: from.ProtocolVersion, Parameters: map[string]string{}}
	if sm.ProtocolVersion == 0 {
		sm.ProtocolVersion = pgproto3.ProtocolVersionNumber
	}
	for k, v := range from.Parameters {
		sm.Parameters[k] = v
	}
	sm.Parameters["user"] = user
	sm.Parameters["database"] = database
	return sm
}

// errGatewayRefused means the gateway sent an ErrorResponse, already relayed to the client.
var errGatewayRefused = errors.New("gateway refused the session")

// authenticate answers the gateway's authentication requests with the token
// and relays everything else (notices, errors) to the client. It returns after
// AuthenticationOk has been written to the client.
func (f *pgForwarder) authenticate(gw net.Conn, br *bufio.Reader, client net.Conn) error {
	var scram *scramClient
	for {
		typ, msg, err := readPGMessage(br, maxAuthMsgLen)
		if err != nil {
			return fmt.Errorf("reading from the gateway: %w", err)
		}
		body := msg[5:]
		switch typ {
		case 'R':
			if len(body) < 4 {
				return errors.New("short authentication message from the gateway")
			}
			var reply pgproto3.FrontendMessage
			switch code := binary.BigEndian.Uint32(body); code {
			case pgAuthOk:
				_, err := client.Write(msg)
				return err
			case pgAuthCleartext:
				reply = &pgproto3.PasswordMessage{Password: f.token}
			case pgAuthMD5:
				var m pgproto3.AuthenticationMD5Password
				if err := m.Decode(body); err != nil {
					return err
				}
				reply = &pgproto3.PasswordMessage{Password: md5Password(f.user, f.token, m.Salt)}
			case pgAuthSASL:
				var m pgproto3.AuthenticationSASL
				if err := m.Decode(body); err != nil {
					return err
				}
				if !contains(m.AuthMechanisms, scramSHA256) {
					return fmt.Errorf("the gateway asks for SASL mechanisms %v; only %s is supported", m.AuthMechanisms, scramSHA256)
				}
				scram, err = newSCRAMClient(f.token)
				if err != nil {
					return err
				}
				reply = &pgproto3.SASLInitialResponse{AuthMechanism: scramSHA256, Data: scram.clientFirst()}
			case pgproto3.AuthTypeSASLContinue:
				var m pgproto3.AuthenticationSASLContinue
				if err := m.Decode(body); err != nil || scram == nil {
					return errors.New("unexpected SASL continue from the gateway")
				}
				final, err := scram.clientFinal(m.Data)
				if err != nil {
					return err
				}
				reply = &pgproto3.SASLResponse{Data: final}
			case pgproto3.AuthTypeSASLFinal:
				var m pgproto3.AuthenticationSASLFinal
				if err := m.Decode(body); err != nil || scram == nil {
					return errors.New("unexpected SASL final from the gateway")
				}
				if err := scram.verifyServerFinal(m.Data); err != nil {
					return err
				}
				continue
			default:
				return fmt.Errorf("the gateway asks for unsupported authentication method %d", code)
			}
			out, err := reply.Encode(nil)
			if err != nil {
				return err
			}
			if _, err := gw.Write(out); err != nil {
				return fmt.Errorf("writing to the gateway: %w", err)
			}
		case 'E':
			_, _ = client.Write(msg)
			return errGatewayRefused
		default:
			// NoticeResponse ("waiting for approval …") and the like.
			if _, err := client.Write(msg); err != nil {
				return err
			}
		}
	}
}

// readPGMessage reads one typed backend message and returns it whole (type and
// length included).
func readPGMessage(r *bufio.Reader, max int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > max {
		return 0, nil, fmt.Errorf("invalid message length %d (type %q)", n, hdr[0])
	}
	msg := make([]byte, 1+n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[5:]); err != nil {
		return 0, nil, err
	}
	return hdr[0], msg, nil
}

func md5Password(user, password string, salt [4]byte) string {
	inner := md5.Sum([]byte(password + user))
	h := md5.New()
	h.Write([]byte(hex.EncodeToString(inner[:])))
	h.Write(salt[:])
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

// forwardCancel sends a client's CancelRequest to the gateway on its own
// connection (over TLS when the gateway offers it, like the session itself).
func (f *pgForwarder) forwardCancel(ctx context.Context, pkt []byte) error {
	gw, err := f.dialGateway(ctx)
	if err != nil {
		return err
	}
	defer gw.Close()
	if _, err := gw.Write(pkt); err != nil {
		return err
	}
	// The server closes the connection without answering; wait briefly for that.
	_ = gw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, gw)
	return nil
}

// relay copies bytes both ways until either side closes, then closes both.
// gwr holds any bytes already buffered from the gateway.
func relay(client, gw net.Conn, gwr io.Reader) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			gw.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(gw, client)
		closeBoth()
	}()
	_, _ = io.Copy(client, gwr)
	closeBoth()
	<-done
}

// writePGError sends a FATAL ErrorResponse to a local client.
func writePGError(w io.Writer, code, msg string) {
	b, err := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	if err == nil {
		_, _ = w.Write(b)
	}
}

// isLoopbackHost reports whether host names the local machine's loopback.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
