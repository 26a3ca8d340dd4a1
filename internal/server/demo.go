package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-gw/sluice/internal/scratchmysql"
	"github.com/sluice-gw/sluice/internal/scratchpg"
)

// DemoConfig configures `sluice demo`.
type DemoConfig struct {
	Gateway GatewayConfig // listen addresses; DataDir is replaced by a temp dir
	// Check runs one query through the gateway and returns instead of
	// waiting for ctx (used by tests and CI to prove the demo works).
	Check  bool
	Out    io.Writer // the instructions for the user
	Binary string    // how the user runs sluice, for the printed commands (default "sluice")
	Logger *slog.Logger
	// MariaDBBinDir, if set, is the only place the scratch MariaDB's
	// binaries are looked for (default: $PATH and /usr/sbin).
	MariaDBBinDir string
}

// demoSchema is the small data set the demo publishes: PII on purpose, so
// masking has something to hide.
const demoSchema = `
CREATE TABLE customers (
  id          serial PRIMARY KEY,
  name        text NOT NULL,
  email       text NOT NULL,
  card_number text NOT NULL,
  phone       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email, card_number, phone) VALUES
  ('Ada Lovelace',     'ada@example.com',      '4111 1111 1111 1111', '+44 20 7946 0958'),
  ('Alan Turing',      'alan.turing@example.org', '5500 0000 0000 0004', '+44 161 496 0735'),
  ('Grace Hopper',     'grace@navy.example',   '3400 000000 00009',   '+1 202 555 0143'),
  ('Edsger Dijkstra',  'ewd@example.nl',       '6011 0000 0000 0004', '+31 20 794 0000'),
  ('Barbara Liskov',   'liskov@mit.example',   '3530 1113 3330 0000', '+1 617 555 0199'),
  ('Donald Knuth',     'knuth@stanford.example', '4012 8888 8888 1881', '+1 650 555 0110');
GRANT SELECT, INSERT, UPDATE, DELETE ON customers TO app;
GRANT USAGE ON SEQUENCE customers_id_seq TO app;
`

// demoMySQLSchema is the same data set in the scratch MariaDB.
const demoMySQLSchema = `
CREATE DATABASE app CHARACTER SET utf8mb4;
CREATE USER 'app'@'%' IDENTIFIED BY 'secret';
CREATE TABLE app.customers (
  id          INT AUTO_INCREMENT PRIMARY KEY,
  name        VARCHAR(100) NOT NULL,
  email       VARCHAR(200) NOT NULL,
  card_number VARCHAR(30) NOT NULL,
  phone       VARCHAR(30) NOT NULL,
  created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO app.customers (name, email, card_number, phone) VALUES
  ('Ada Lovelace',     'ada@example.com',      '4111 1111 1111 1111', '+44 20 7946 0958'),
  ('Alan Turing',      'alan.turing@example.org', '5500 0000 0000 0004', '+44 161 496 0735'),
  ('Grace Hopper',     'grace@navy.example',   '3400 000000 00009',   '+1 202 555 0143'),
  ('Edsger Dijkstra',  'ewd@example.nl',       '6011 0000 0000 0004', '+31 20 794 0000'),
  ('Barbara Liskov',   'liskov@mit.example',   '3530 1113 3330 0000', '+1 617 555 0199'),
  ('Donald Knuth',     'knuth@stanford.example', '4012 8888 8888 1881', '+1 650 555 0110');
GRANT SELECT, INSERT, UPDATE, DELETE ON app.customers TO 'app'@'%';
`

// startDemoMySQL starts the scratch MariaDB behind mysql-demo. A nil
// server with a note means the demo runs without it: MariaDB is not
// installed, the MySQL listener is off, or (not in check mode) it failed.
func startDemoMySQL(ctx context.Context, cfg DemoConfig, log *slog.Logger) (*scratchmysql.Server, string, error) {
	if cfg.Gateway.MySQLAddr == "" {
		return nil, "the MySQL listener is off (--mysql-addr is empty)", nil
	}
	my, err := scratchmysql.Start(ctx, scratchmysql.Options{BinDir: cfg.MariaDBBinDir})
	if err == nil {
		if err = my.Exec(ctx, demoMySQLSchema); err == nil {
			return my, "", nil
		}
		my.Stop()
	}
	if errors.Is(err, scratchmysql.ErrNotInstalled) {
		return nil, "MariaDB is not installed (" + scratchmysql.InstallHint + ")", nil
	}
	if cfg.Check {
		return nil, "", fmt.Errorf("scratch mariadb: %w", err)
	}
	log.Warn("scratch MariaDB did not start; the demo runs without mysql-demo", "error", err)
	return nil, "MariaDB did not start (see the log above)", nil
}

// RunDemo starts a scratch PostgreSQL and, when MariaDB is installed, a
// scratch MariaDB, a gateway and an agent, publishes the connections
// pg-demo and mysql-demo to user "demo", prints how to connect and runs
// until ctx ends; everything it started is stopped and removed on return.
func RunDemo(ctx context.Context, cfg DemoConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	out := cfg.Out
	if out == nil {
		out = os.Stdout
	}
	pg, err := scratchpg.Start(ctx, scratchpg.Options{})
	if err != nil {
		return fmt.Errorf("scratch postgres: %w", err)
	}
	defer pg.Stop()
	if err := pg.CreateUser(ctx, "app", "secret", "scram-sha-256"); err != nil {
		return err
	}
	if err := pg.CreateDatabase(ctx, "app", "app"); err != nil {
		return err
	}
	if err := pg.ExecIn(ctx, "app", demoSchema); err != nil {
		return fmt.Errorf("demo schema: %w", err)
	}
	my, myNote, err := startDemoMySQL(ctx, cfg, log)
	if err != nil {
		return err
	}
	if my != nil {
		defer my.Stop()
	}

	dir, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gcfg := cfg.Gateway
	gcfg.DataDir = dir
	gcfg.Logger = log
	g, err := StartGateway(ctx, gcfg)
	if err != nil {
		return err
	}
	defer g.Close()
	admin, err := g.AdminToken()
	if err != nil {
		return err
	}
	call := func(method, path string, body any, into any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+g.APIAddr+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s", method, path, rb)
		}
		if into != nil {
			return json.Unmarshal(rb, into)
		}
		return nil
	}
	var agentOut struct{ DSN string }
	if err := call("POST", "/api/v1/agents", map[string]string{"name": "demo-agent"}, &agentOut); err != nil {
		return err
	}
	a, err := NewAgent(AgentConfig{DSN: agentOut.DSN, Logger: log})
	if err != nil {
		return err
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); a.Run(actx) }()
	defer func() { stopAgent(); <-agentDone }()

	if err := call("PUT", "/api/v1/connections/pg-demo", map[string]string{"agent": "demo-agent", "type": "postgres", "target": pg.URL("app", "secret", "app")}, nil); err != nil {
		return err
	}
	if my != nil && g.MySQLAddr != "" {
		if err := call("PUT", "/api/v1/connections/mysql-demo", map[string]string{"agent": "demo-agent", "type": "mysql", "target": my.URL("app", "secret", "app")}, nil); err != nil {
			return err
		}
	}
	if err := call("PUT", "/api/v1/rules/demo", map[string]any{"groups": []string{"demo"}, "connections": []string{"*"}}, nil); err != nil {
		return err
	}
	if err := call("PUT", "/api/v1/users/demo", map[string]any{"password": "demo", "groups": []string{"demo"}}, nil); err != nil {
		return err
	}
	var tok struct{ Token string }
	if err := call("POST", "/api/v1/users/demo/tokens", map[string]string{"ttl": "12h"}, &tok); err != nil {
		return err
	}
	for deadline := time.Now().Add(15 * time.Second); !g.Hub.Online("demo-agent"); {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo agent did not connect")
		}
		time.Sleep(20 * time.Millisecond)
	}

	bin := cfg.Binary
	if bin == "" {
		bin = "sluice"
	}
	host, port, _ := net.SplitHostPort(g.PGAddr)
	conninfo := fmt.Sprintf("host=%s port=%s user=demo dbname=pg-demo password=%s", host, port, tok.Token)
	myLine, myClient := "not started: "+myNote, "  (no MySQL: "+myNote+")"
	if my != nil {
		myHost, myPort, _ := net.SplitHostPort(g.MySQLAddr)
		myLine = fmt.Sprintf("%s   (upstream: scratch MariaDB %s on port %d)", g.MySQLAddr, my.Version(), my.Port())
		myClient = fmt.Sprintf("  mariadb -h %s -P %s -u demo -D mysql-demo --ssl --ssl-ca=%s -p'%s'\n"+
			"  (Oracle's mysql client: add --enable-cleartext-plugin; the password is the token)",
			myHost, myPort, filepath.Join(dir, "ca.crt"), tok.Token)
	}
	fmt.Fprintf(out, `
Sluice demo is running.
  gateway API  http://%s   (admin token: %s/admin.token)
  tunnel       %s
  PostgreSQL   %s   (upstream: scratch PostgreSQL on port %d)
  MySQL        %s

Connect through the gateway:

  psql "%s"

%s

or log in and let Sluice hold the token:

  SLUICE_API=http://%s %s login --user demo     # password: demo
  %s connect pg-demo --port 5433 &  psql -h 127.0.0.1 -p 5433

Try: SELECT * FROM customers;
Press Ctrl-C to stop; everything started here is removed.
`, g.APIAddr, dir, g.TunnelAddr, g.PGAddr, pg.Port(), myLine, conninfo, myClient, g.APIAddr, bin, bin)

	if cfg.Check {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// MySQL first: the last line is the Postgres check, as scripts expect.
		if my != nil {
			n, err := demoMySQLCheck(cctx, g, tok.Token)
			if err != nil {
				return fmt.Errorf("demo check (mysql-demo): %w", err)
			}
			fmt.Fprintf(out, "check: %d customers through mysql-demo (MySQL)\n", n)
		} else {
			fmt.Fprintf(out, "check: mysql-demo not checked: %s\n", myNote)
		}
		conn, err := pgx.Connect(cctx, conninfo+" sslmode=require")
		if err != nil {
			return fmt.Errorf("demo check: %w", err)
		}
		defer conn.Close(cctx)
		var n int
		if err := conn.QueryRow(cctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
			return fmt.Errorf("demo check: %w", err)
		}
		fmt.Fprintf(out, "check: %d customers through the gateway\n", n)
		return nil
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping demo")
	return nil
}

// demoMySQLCheck counts the customers through the gateway's MySQL listener
// as a client would: TLS checked against the gateway's CA, the token sent
// with mysql_clear_password.
func demoMySQLCheck(ctx context.Context, g *Gateway, token string) (int, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(g.PKI.CAPEM())
	host, _, _ := net.SplitHostPort(g.MySQLAddr)
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr, mc.DBName = "demo", token, "tcp", g.MySQLAddr, "mysql-demo"
	mc.AllowCleartextPasswords = true
	mc.TLS = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return 0, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM customers").Scan(&n)
	return n, err
}
