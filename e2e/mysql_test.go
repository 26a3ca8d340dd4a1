package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gmclient "github.com/go-mysql-org/go-mysql/client"
	"github.com/go-sql-driver/mysql"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-gw/sluice/internal/scratchmysql"
	"github.com/sluice-gw/sluice/internal/server"
)

const mysqlSchema = `
CREATE DATABASE appdb;
CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');
GRANT ALL ON appdb.* TO 'app'@'%';
CREATE TABLE appdb.customers (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), ssn VARCHAR(20), card BIGINT, note TEXT);
INSERT INTO appdb.customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '123-45-6789', 4111111111111111, 'call +1 415 555 0100'),
  (2, 'Alan Turing', 'alan@example.org', '987-65-4320', 5500000000000004, NULL);
CREATE TABLE appdb.audit_log (id INT AUTO_INCREMENT PRIMARY KEY, what TEXT);
CREATE TABLE appdb.blobs (id INT PRIMARY KEY, b LONGBLOB);
CREATE PROCEDURE appdb.two_results() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END;
`

// mysqlWorld starts MariaDB (internal/scratchmysql, stopped when the test
// ends) and publishes my-demo (no policy), my-policy (guardrails + masking).
func mysqlWorld(t *testing.T) *scratchmysql.Server {
	t.Helper()
	db := scratchmysql.MustStart(t, scratchmysql.Options{})
	if err := db.Exec(context.Background(), mysqlSchema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	target := db.URL("app", "app-secret", "appdb")
	E.must("PUT", "/api/v1/connections/my-demo", map[string]any{"agent": "demo-agent", "type": "mysql", "target": target})
	E.must("PUT", "/api/v1/connections/my-policy", map[string]any{
		"agent": "demo-agent", "type": "mysql", "target": target,
		"guardrails": map[string]any{
			"deny":        []string{"drop", "truncate", "alter", "grant", "delete-without-where", "update-without-where"},
			"deny_tables": []string{"audit_log"},
		},
		"masking": map[string]any{
			"columns":   []string{"customers.email", "customers.card"},
			"detectors": []string{"ssn", "phone"},
			"style":     "partial",
		},
	})
	return db
}

var registerTLS sync.Once

func gatewayTLS(t *testing.T) *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(E.gw.PKI.CAPEM()) {
		t.Fatal("bad CA PEM")
	}
	host, _ := splitHostPort(E.gw.MySQLAddr)
	return &tls.Config{RootCAs: pool, ServerName: host}
}

// myDSN is the go-sql-driver DSN of a Sluice connection (server-side
// prepared statements: interpolateParams stays off).
func myDSN(t *testing.T, connection string, extra string) string {
	registerTLS.Do(func() { mysql.RegisterTLSConfig("sluice", gatewayTLS(t)) })
	return fmt.Sprintf("alice:%s@tcp(%s)/%s?tls=sluice&allowCleartextPasswords=true&multiStatements=true%s", E.aliceToken, E.gw.MySQLAddr, connection, extra)
}

func openMy(t *testing.T, connection string) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", myDSN(t, connection, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func myErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func TestMySQL(t *testing.T) {
	db := mysqlWorld(t)

	t.Run("Query", func(t *testing.T) {
		d := openMy(t, "my-demo")
		var u, dbname string
		var n int
		if err := d.QueryRow("SELECT CURRENT_USER(), DATABASE(), 6*7").Scan(&u, &dbname, &n); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u, "app@") || dbname != "appdb" || n != 42 {
			t.Fatalf("got %q %q %d", u, dbname, n)
		}
	})

	t.Run("PreparedStatements", func(t *testing.T) {
		d := openMy(t, "my-demo")
		st, err := d.Prepare("SELECT name, card, id FROM customers WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for i, want := range []string{"Ada Lovelace", "Alan Turing"} {
			var name string
			var card, id int64
			if err := st.QueryRow(i+1).Scan(&name, &card, &id); err != nil {
				t.Fatal(err)
			}
			if name != want || id != int64(i+1) || card == 0 {
				t.Fatalf("row %d: %q %d %d", i+1, name, card, id)
			}
		}
		if _, err := d.Exec("INSERT INTO audit_log (what) VALUES (?)", "prepared insert"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MultiResults", func(t *testing.T) {
		d := openMy(t, "my-demo")
		rows, err := d.Query("SELECT 1; SELECT 'two', 2; CALL two_results()")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		sets := 0
		for {
			for rows.Next() {
			}
			sets++
			if !rows.NextResultSet() {
				break
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if sets < 4 {
			t.Fatalf("saw %d result sets, want at least 4", sets)
		}
	})

	t.Run("LargePackets", func(t *testing.T) {
		d := openMy(t, "my-demo")
		big := bytes.Repeat([]byte("0123456789abcdef"), (17<<20)/16+5) // > 16 MiB: a continued packet
		if _, err := d.Exec("REPLACE INTO blobs VALUES (1, '" + string(big) + "')"); err != nil {
			t.Fatalf("text insert: %v", err)
		}
		if _, err := d.Exec("REPLACE INTO blobs VALUES (?, ?)", 2, big); err != nil {
			t.Fatalf("prepared insert: %v", err)
		}
		for _, id := range []int{1, 2} {
			var got []byte
			if err := d.QueryRow("SELECT b FROM blobs WHERE id = ?", id).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(big) {
				t.Fatalf("id %d: %d bytes back, want %d", id, len(got), len(big))
			}
			var txt string
			if err := d.QueryRow(fmt.Sprintf("SELECT b FROM blobs WHERE id = %d", id)).Scan(&txt); err != nil || len(txt) != len(big) {
				t.Fatalf("text select id %d: %v (%d bytes)", id, err, len(txt))
			}
		}
	})

	t.Run("MaskingTextAndBinary", func(t *testing.T) {
		d := openMy(t, "my-policy")
		check := func(how string, name, email, ssn string, card sql.NullInt64, note sql.NullString) {
			t.Helper()
			t.Logf("%s: %q %q %q %v %q", how, name, email, ssn, card, note.String)
			if email == "ada@example.com" || !strings.Contains(email, "*") {
				t.Fatalf("%s: email not masked: %q", how, email)
			}
			if ssn == "123-45-6789" {
				t.Fatalf("%s: ssn not masked: %q", how, ssn)
			}
			if card.Valid {
				t.Fatalf("%s: a BIGINT column under a rule must become NULL, got %d", how, card.Int64)
			}
			if note.String == "call +1 415 555 0100" {
				t.Fatalf("%s: phone in note not masked", how)
			}
			if name != "Ada Lovelace" {
				t.Fatalf("%s: name changed: %q", how, name)
			}
		}
		var name, email, ssn string
		var card sql.NullInt64
		var note sql.NullString
		// text protocol (no args), with an alias: column rules follow the column
		if err := d.QueryRow("SELECT name, email AS contact, ssn, card, note FROM customers WHERE id = 1").Scan(&name, &email, &ssn, &card, &note); err != nil {
			t.Fatal(err)
		}
		check("text", name, email, ssn, card, note)
		// binary protocol (server-side prepared)
		if err := d.QueryRow("SELECT name, email AS contact, ssn, card, note FROM customers WHERE id = ?", 1).Scan(&name, &email, &ssn, &card, &note); err != nil {
			t.Fatal(err)
		}
		check("binary", name, email, ssn, card, note)
	})

	// One connection: text, then prepared (COM_STMT_PREPARE/EXECUTE/CLOSE),
	// then text and prepared again. A command without a response
	// (COM_STMT_CLOSE) must not shift later responses off their commands.
	t.Run("MaskingAfterStmtClose", func(t *testing.T) {
		d := openMy(t, "my-policy")
		d.SetMaxOpenConns(1)
		for i := range 3 {
			for _, args := range [][]any{nil, {1}} {
				q := "SELECT email FROM customers WHERE id = 1"
				if args != nil {
					q = "SELECT email FROM customers WHERE id = ?"
				}
				var email string
				if err := d.QueryRow(q, args...).Scan(&email); err != nil {
					t.Fatal(err)
				}
				if email == "ada@example.com" {
					t.Fatalf("round %d (%d args): email not masked", i, len(args))
				}
			}
		}
		if _, err := d.Exec("DROP TABLE customers"); myErrNo(err) != 1142 {
			t.Fatalf("a denial after prepared statements: %v", err)
		}
	})

	t.Run("GuardrailDenials", func(t *testing.T) {
		d := openMy(t, "my-policy")
		d.SetMaxOpenConns(1)
		for _, q := range []string{"DROP TABLE customers", "DELETE FROM customers", "UPDATE customers SET name = 'x'",
			"INSERT INTO audit_log (what) VALUES ('x')", "TRUNCATE customers", "SELECT 1; DROP TABLE customers", "SELEC broken DROP"} {
			_, err := d.Exec(q)
			if myErrNo(err) != 1142 {
				t.Fatalf("%s: got %v, want ERR 1142", q, err)
			}
		}
		// prepared: the denial comes at prepare time
		if _, err := d.Prepare("DELETE FROM customers"); myErrNo(err) != 1142 {
			t.Fatalf("prepare: %v", err)
		}
		// the session goes on
		var n int
		if err := d.QueryRow("SELECT COUNT(*) FROM customers WHERE id > ?", 0).Scan(&n); err != nil || n != 2 {
			t.Fatalf("after denials: %d, %v", n, err)
		}
		if _, err := d.Exec("DELETE FROM customers WHERE id = 99"); err != nil {
			t.Fatalf("allowed delete: %v", err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		bad, _ := sql.Open("mysql", strings.Replace(myDSN(t, "my-demo", ""), E.aliceToken, "not-a-token", 1))
		defer bad.Close()
		if err := bad.Ping(); myErrNo(err) != 1045 {
			t.Fatalf("bad token: %v", err)
		}
		unknown, _ := sql.Open("mysql", myDSN(t, "no-such-conn", ""))
		defer unknown.Close()
		if err := unknown.Ping(); myErrNo(err) != 1049 {
			t.Fatalf("unknown connection: %v", err)
		}
		d := openMy(t, "my-demo")
		if _, err := d.Exec("SELECT * FROM no_such_table"); myErrNo(err) != 1146 {
			t.Fatalf("upstream error not relayed: %v", err)
		}
		if _, err := d.Exec("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE audit_log"); err == nil {
			t.Fatal("LOAD DATA LOCAL INFILE was not refused")
		}
	})

	t.Run("KillQuery", func(t *testing.T) {
		tc := gatewayTLS(t)
		a, err := gmclient.Connect(E.gw.MySQLAddr, "alice", E.aliceToken, "my-demo", func(c *gmclient.Conn) error { c.SetTLSConfig(tc); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		id := a.GetConnectionID()
		done := make(chan error, 1)
		start := time.Now()
		go func() { _, err := a.Execute("SELECT SLEEP(30)"); done <- err }()
		time.Sleep(500 * time.Millisecond)
		d := openMy(t, "my-demo")
		if _, err := d.Exec(fmt.Sprintf("KILL QUERY %d", id)); err != nil {
			t.Fatalf("KILL QUERY %d: %v", id, err)
		}
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("SELECT SLEEP(30) was not interrupted")
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("too slow")
		}
		if _, err := a.Execute("SELECT 1"); err != nil {
			t.Fatalf("session after KILL QUERY: %v", err)
		}
		if _, err := d.Exec("KILL QUERY 1"); myErrNo(err) != 1094 {
			t.Fatalf("unknown id: %v", err)
		}
	})

	// Only a command that is nothing but KILL [QUERY|CONNECTION] <gateway id>
	// is mapped; a KILL anywhere else would name an upstream thread and is
	// refused with ERR 1227, while the session goes on.
	t.Run("KillInMultiStatement", func(t *testing.T) {
		tc := gatewayTLS(t)
		a, err := gmclient.Connect(E.gw.MySQLAddr, "alice", E.aliceToken, "my-demo", func(c *gmclient.Conn) error { c.SetTLSConfig(tc); return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		r, err := a.Execute("SELECT CONNECTION_ID()")
		if err != nil {
			t.Fatal(err)
		}
		upstreamID, _ := r.GetInt(0, 0)
		done := make(chan error, 1)
		go func() {
			r, err := a.Execute("SELECT SLEEP(3)")
			if err == nil {
				if v, _ := r.GetInt(0, 0); v != 0 {
					err = fmt.Errorf("SLEEP(3) returned %d: it was interrupted", v)
				}
			}
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)

		d := openMy(t, "my-demo")
		d.SetMaxOpenConns(1)
		for _, q := range []string{
			fmt.Sprintf("SELECT 1; KILL QUERY %d", upstreamID),          // the upstream id, hidden after a statement
			fmt.Sprintf("SELECT 1; KILL QUERY %d", a.GetConnectionID()), // the gateway id: still not this form
			fmt.Sprintf("/* x */ KILL %d", upstreamID),
			fmt.Sprintf("SELECT 1 /*!50000 ; KILL %d */", upstreamID),
		} {
			_, err := d.Exec(q)
			if myErrNo(err) != 1227 || !strings.Contains(err.Error(), "must be sent alone") {
				t.Fatalf("%s: got %v, want ERR 1227", q, err)
			}
		}
		if _, err := d.Prepare("KILL ?"); myErrNo(err) != 1227 {
			t.Fatalf("prepared KILL: %v", err)
		}
		// Large enough to stream through the agent, KILL at the end: the
		// upstream never gets the whole command, the session is closed.
		big := fmt.Sprintf("SELECT '%s'; KILL %d", strings.Repeat("x", 200<<10), upstreamID)
		closed := openMy(t, "my-demo") // its session ends
		if _, err := closed.Exec(big); myErrNo(err) != 1227 || !strings.Contains(err.Error(), "session is closed") {
			t.Fatalf("large command with a KILL at the end: %v", err)
		}
		var word string
		if err := d.QueryRow("SELECT 'kill' AS w").Scan(&word); err != nil || word != "kill" {
			t.Fatalf("a string with the word: %q %v", word, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the sleeping session was disturbed: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("SELECT SLEEP(3) never finished")
		}
		r, err = a.Execute("SELECT 1")
		if err != nil {
			t.Fatalf("the other session after the refused KILLs: %v", err)
		}
	})

	// Statement timing with protocol="mysql", on the gateway and on an
	// agent with its own registry, scraped and linted like Postgres's.
	t.Run("Metrics", func(t *testing.T) {
		reg := server.NewAgentRegistry()
		dsn := E.createAgent("my-metrics-agent")
		a, err := server.NewAgent(server.AgentConfig{DSN: dsn, Logger: testLogger(), Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { defer close(stopped); a.Run(ctx) }()
		defer func() { cancel(); <-stopped }()
		agentMetrics := httptest.NewServer(server.MetricsHandler(reg))
		defer agentMetrics.Close()
		if err := E.waitOnline("my-metrics-agent"); err != nil {
			t.Fatal(err)
		}
		E.must("PUT", "/api/v1/connections/my-metrics", map[string]any{"agent": "my-metrics-agent", "type": "mysql", "target": db.URL("app", "app-secret", "appdb")})
		conn := map[string]string{"connection": "my-metrics", "protocol": "mysql"}
		// The gateway outlives this test (go test -count=N): compare with before.
		before := scrape(t, "http://"+E.gw.APIAddr+"/metrics")
		was := func(name string) float64 { v, _ := lookup(before, name, conn); return v }
		d := openMy(t, "my-metrics")
		d.SetMaxOpenConns(1)
		// 5 commands with a response: 3 COM_QUERY, then COM_STMT_PREPARE + COM_STMT_EXECUTE
		// (go-sql-driver's COM_STMT_CLOSE gets none); BEGIN ... COMMIT is one transaction.
		for _, q := range []string{"BEGIN", "SELECT COUNT(*) FROM customers", "COMMIT"} {
			if _, err := d.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := d.QueryRow("SELECT COUNT(*) FROM customers WHERE id > ?", 0).Scan(&n); err != nil {
			t.Fatal(err)
		}
		d.Close()
		var gw map[string]*dto.MetricFamily
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			gw = scrape(t, "http://"+E.gw.APIAddr+"/metrics")
			if v, ok := lookup(gw, "sluice_sessions_total", conn); ok && v >= was("sluice_sessions_total")+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("session never counted")
			}
		}
		ag := scrape(t, agentMetrics.URL+"/metrics")
		for _, c := range []struct {
			gateway bool
			name    string
			want    float64
		}{
			{true, "sluice_statement_duration_seconds", 5},
			{true, "sluice_queries_total", 5},
			{true, "sluice_transactions_total", 3}, // BEGIN..COMMIT, then the prepare and the execute each autocommit
			{false, "sluice_upstream_statement_duration_seconds", 5},
			{false, "sluice_upstream_queries_total", 5},
			{false, "sluice_upstream_transactions_total", 3},
		} {
			var got float64
			if c.gateway {
				got = value(t, gw, c.name, conn) - was(c.name)
			} else {
				got = value(t, ag, c.name, conn)
			}
			// go-sql-driver may ping or reset a pooled connection; never fewer.
			if got < c.want || got > c.want+2 {
				t.Errorf("%s{connection=my-metrics,protocol=mysql} = %v, want %v", c.name, got, c.want)
			}
		}
		if value(t, gw, "sluice_query_seconds_total", conn) <= was("sluice_query_seconds_total") || value(t, ag, "sluice_upstream_transaction_seconds_total", conn) <= 0 {
			t.Error("no time counted")
		}
		if value(t, gw, "sluice_proxy_overhead_seconds", map[string]string{"protocol": "mysql", "stage": "relay"}) == 0 {
			t.Error("no gateway overhead observed")
		}
		if value(t, gw, "sluice_client_wait_seconds_total", map[string]string{"protocol": "mysql"}) <= 0 {
			t.Error("no client wait counted")
		}
	})

	t.Run("MariaDBClient", func(t *testing.T) {
		cli, err := scratchmysql.ClientPath()
		if err != nil {
			t.Fatal(err)
		}
		host, port := splitHostPort(E.gw.MySQLAddr)
		ca := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(ca, E.gw.PKI.CAPEM(), 0o600)
		run := func(conn, q string) (string, string, error) {
			cmd := exec.Command(cli, "--no-defaults", "-h", host, "-P", port, "-u", "alice", "--ssl", "--ssl-ca="+ca,
				"-D", conn, "-N", "-B", "-e", q)
			cmd.Env = append(os.Environ(), "MYSQL_PWD="+E.aliceToken)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			return strings.TrimSpace(out.String()), errb.String(), err
		}
		out, errOut, err := run("my-demo", "SELECT 6*7; SELECT name FROM customers ORDER BY id")
		if err != nil {
			t.Fatalf("%v: %s", err, errOut)
		}
		if out != "42\nAda Lovelace\nAlan Turing" {
			t.Fatalf("got %q", out)
		}
		out, _, _ = run("my-policy", "SELECT email FROM customers WHERE id = 1")
		if out == "ada@example.com" || out == "" {
			t.Fatalf("mariadb client saw %q", out)
		}
		_, errOut, err = run("my-policy", "DROP TABLE customers")
		if err == nil || !strings.Contains(errOut, "1142") {
			t.Fatalf("drop via mariadb client: %v %s", err, errOut)
		}
	})
}

// TestMySQLUpstreamTLS: the agent logs in to a MariaDB that has a
// certificate from a throwaway CA, for an account that REQUIRES SSL, with
// the target's tls / tls-ca parameters.
func TestMySQLUpstreamTLS(t *testing.T) {
	files, err := scratchmysql.NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	db := scratchmysql.MustStart(t, scratchmysql.Options{TLS: files})
	if err := db.Exec(context.Background(), `CREATE DATABASE tlsdb;
		CREATE USER 'sec'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('sec-pw') REQUIRE SSL;
		GRANT ALL ON tlsdb.* TO 'sec'@'%'`); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "upstream-ca.pem") // a file on the agent's host
	if err := os.WriteFile(ca, files.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := db.URL("sec", "sec-pw", "tlsdb")
	for _, c := range []struct {
		name, query string
		ok          bool
		errPart     string
	}{
		{"my-tls-ca", "?tls=true&tls-ca=" + ca, true, ""},
		{"my-tls-ca-only", "?tls-ca=" + ca, true, ""}, // tls-ca alone means tls=true
		{"my-tls-verify-ca", "?tls=verify-ca&tls-ca=" + ca, true, ""},
		{"my-tls-skip", "?tls=skip-verify", true, ""},
		{"my-tls-system-roots", "?tls=true", false, "certificate"},                 // the throwaway CA is not trusted
		{"my-tls-off", "", false, "Access denied"},                                 // the server requires TLS for this account
		{"my-tls-bad-ca", "?tls=true&tls-ca=/nonexistent/ca.pem", false, "tls-ca"}, // a clear error, not a fallback
	} {
		t.Run(c.name, func(t *testing.T) {
			E.must("PUT", "/api/v1/connections/"+c.name, map[string]any{"agent": "demo-agent", "type": "mysql", "target": base + c.query})
			d := openMy(t, c.name)
			var name, cipher string
			err := d.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher)
			if !c.ok {
				if myErrNo(err) != 2003 || !strings.Contains(err.Error(), c.errPart) {
					t.Fatalf("want ERR 2003 mentioning %q, got %v", c.errPart, err)
				}
				return
			}
			if err != nil || cipher == "" {
				t.Fatalf("upstream session not on TLS: cipher %q, %v", cipher, err)
			}
			var user string
			if err := d.QueryRow("SELECT CURRENT_USER()").Scan(&user); err != nil || !strings.HasPrefix(user, "sec@") {
				t.Fatalf("CURRENT_USER() = %q, %v", user, err)
			}
		})
	}
}

// TestMySQLDemo runs `sluice demo --check` (what `make demo` runs) with
// MariaDB, then as if it were not installed: the demo still runs, on
// PostgreSQL only, and says so.
func TestMySQLDemo(t *testing.T) {
	run := func(extra ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := append([]string{"demo", "--check", "--api-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0", "--mysql-addr", "127.0.0.1:0"}, extra...)
		out, err := exec.CommandContext(ctx, sluiceBin(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run()
	for _, want := range []string{"upstream: scratch MariaDB", "-u demo -D mysql-demo --ssl --ssl-ca=", "check: 6 customers through mysql-demo (MySQL)\n", "check: 6 customers through the gateway\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	out = run("--mariadb-bin-dir", t.TempDir())
	for _, want := range []string{"MySQL        not started: MariaDB is not installed (apt-get install -y mariadb-server", "check: mysql-demo not checked: MariaDB is not installed", "check: 6 customers through the gateway\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo without MariaDB: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "mariadb -h") {
		t.Fatalf("demo without MariaDB prints a mariadb line:\n%s", out)
	}
}
