package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func (a *app) runConnect(args []string) error {
	fs := a.newFlagSet("connect", "sluice connect NAME [--port N] [--gateway HOST:PORT]")
	port := fs.Int("port", 0, "local port on 127.0.0.1 (default: a free port)")
	gateway := fs.String("gateway", "", "gateway Postgres address (default $SLUICE_PG_ADDR, else pg_addr from the API)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return usagef("--port %d out of range", *port)
	}
	name := pos[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fw, err := a.prepareForwarder(ctx, name, *gateway)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	lport := ln.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(a.stderr, "listening on 127.0.0.1:%d — psql \"host=127.0.0.1 port=%d dbname=%s\"\n", lport, lport, name)
	return serveForwarder(ctx, ln, fw)
}

// prepareForwarder resolves the user, the gateway's Postgres address and its CA.
func (a *app) prepareForwarder(ctx context.Context, name, gatewayFlag string) (*pgForwarder, error) {
	c, cfg, err := a.authedClient()
	if err != nil {
		return nil, err
	}
	user := ""
	if cfg.tokenSource == "login" && cfg.creds != nil {
		user = cfg.creds.User
	}
	if user == "" {
		me, err := c.me(ctx)
		if err != nil {
			return nil, fmt.Errorf("finding out who the token belongs to: %w", err)
		}
		user = me.Name
	}
	override := gatewayFlag
	if override == "" {
		override = a.getenv("SLUICE_PG_ADDR")
	}
	info, err := c.info(ctx)
	if err != nil {
		if override == "" {
			return nil, fmt.Errorf("asking the gateway for its Postgres address: %w", err)
		}
		fmt.Fprintf(a.stderr, "sluice: warning: %v; verifying the gateway with the system CAs\n", err)
		info = &gatewayInfo{}
	}
	addr := override
	if addr == "" {
		addr = info.PGAddr
	}
	if addr == "" {
		return nil, errors.New("the gateway has no Postgres listener (empty pg_addr); use --gateway HOST:PORT")
	}
	addr, err = resolveGatewayAddr(addr, cfg.api)
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if info.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(info.CAPEM)) {
			return nil, errors.New("the gateway's ca_pem holds no usable certificate")
		}
		tlsCfg.RootCAs = pool
	}
	return &pgForwarder{
		gatewayAddr: addr,
		tlsConfig:   tlsCfg,
		user:        user,
		token:       cfg.token,
		database:    name,
		logf: func(format string, args ...any) {
			fmt.Fprintf(a.stderr, "sluice: "+format+"\n", args...)
		},
	}, nil
}

// resolveGatewayAddr fills in the host of a listener address like ":15432" or
// "0.0.0.0:15432" with the host of the API URL.
func resolveGatewayAddr(addr, api string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("bad gateway Postgres address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		u, err := url.Parse(api)
		if err != nil || u.Hostname() == "" {
			return "", fmt.Errorf("cannot tell the gateway's host from %q; use --gateway HOST:PORT", addr)
		}
		host = u.Hostname()
	}
	return net.JoinHostPort(host, port), nil
}

// serveForwarder accepts local connections until ctx ends.
func serveForwarder(ctx context.Context, ln net.Listener, fw *pgForwarder) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Transient (e.g. too many open files): back off and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go fw.handle(ctx, conn)
	}
}
