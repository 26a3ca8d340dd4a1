package e2e

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gmclient "github.com/go-mysql-org/go-mysql/client"
	"github.com/go-sql-driver/mysql"
)

// scratchMariaDB is a throwaway MariaDB server in a temp dir on a free
// loopback port, started by the test and stopped at its end.
type scratchMariaDB struct {
	dir, sock string
	port      int
	cmd       *exec.Cmd
	exited    chan struct{}
}

func findBin(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
			if p := filepath.Join(d, n); fileExists(p) {
				return p
			}
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func startMariaDB(t *testing.T) *scratchMariaDB {
	t.Helper()
	install := findBin("mariadb-install-db", "mysql_install_db")
	server := findBin("mariadbd", "mysqld")
	if install == "" || server == "" {
		t.Fatal("MariaDB server not found: install it with `apt-get install -y mariadb-server mariadb-client` (or run `make deps`)")
	}
	base, err := os.MkdirTemp("", "sluice-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	db := &scratchMariaDB{dir: filepath.Join(base, "data"), sock: filepath.Join(base, "mysqld.sock"), exited: make(chan struct{})}
	if err := os.Mkdir(db.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	var runAs []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			t.Fatal("running as root needs the mysql user (created by the mariadb-server package)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(base, uid, gid)
		os.Chown(db.dir, uid, gid)
		runAs = []string{"--user=mysql"}
	}
	out, err := exec.Command(install, append([]string{"--no-defaults", "--datadir=" + db.dir, "--auth-root-authentication-method=normal", "--skip-test-db"}, runAs...)...).CombinedOutput()
	if err != nil {
		os.RemoveAll(base)
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	db.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := append([]string{"--no-defaults", "--datadir=" + db.dir, "--socket=" + db.sock, "--port=" + strconv.Itoa(db.port),
		"--bind-address=127.0.0.1", "--max-allowed-packet=256M", "--innodb-buffer-pool-size=64M",
		"--log-error=" + filepath.Join(base, "error.log"), "--pid-file=" + filepath.Join(base, "mysqld.pid"),
		"--skip-log-bin", "--max-connections=100"}, runAs...)
	db.cmd = exec.Command(server, args...)
	db.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := db.cmd.Start(); err != nil {
		os.RemoveAll(base)
		t.Fatal(err)
	}
	go func() { db.cmd.Wait(); close(db.exited) }()
	t.Cleanup(func() {
		db.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-db.exited:
		case <-time.After(30 * time.Second):
			db.cmd.Process.Kill()
			<-db.exited
		}
		os.RemoveAll(base)
	})
	root := db.rootDB(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := root.Ping()
		if err == nil {
			break
		}
		select {
		case <-db.exited:
			log, _ := os.ReadFile(filepath.Join(base, "error.log"))
			t.Fatalf("mariadbd exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return db
}

func (db *scratchMariaDB) rootDB(t *testing.T) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", "root@unix("+db.sock+")/?multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

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

// mysqlWorld starts MariaDB (once per test binary run of TestMySQL) and
// publishes my-demo (no policy), my-policy (guardrails + masking).
func mysqlWorld(t *testing.T) *scratchMariaDB {
	t.Helper()
	db := startMariaDB(t)
	root := db.rootDB(t)
	if _, err := root.Exec(mysqlSchema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	target := fmt.Sprintf("mysql://app:app-secret@127.0.0.1:%d/appdb", db.port)
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
	mysqlWorld(t)

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

	t.Run("MariaDBClient", func(t *testing.T) {
		cli := findBin("mariadb", "mysql")
		if cli == "" {
			t.Fatal("mysql client not found: apt-get install -y mariadb-client")
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
