package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/sluice-gw/sluice/internal/scratchmysql"
)

var update = flag.Bool("update", false, "record testdata/capture again from a real MariaDB (TestCaptureMariaDB)")

const captureDir = "testdata/capture"

// capture is one recorded connection: everything the client sent and
// everything the server sent, as on the wire.
type capture struct {
	name     string
	c2s, s2c []byte
}

func loadCaptures(tb testing.TB) []capture {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(captureDir, "*-c2s.bin"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no captures in %s (record them with go test ./protocols/mysql -run TestCaptureMariaDB -update): %v", captureDir, err)
	}
	var out []capture
	for _, f := range files {
		c2s, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		s2c, err := os.ReadFile(strings.Replace(f, "-c2s", "-s2c", 1))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, capture{name: strings.TrimSuffix(filepath.Base(f), "-c2s.bin"), c2s: c2s, s2c: s2c})
	}
	return out
}

type pkt struct {
	payload []byte
	seq     byte
}

// packetsOf splits a stream into logical packets.
func packetsOf(tb testing.TB, b []byte) []pkt {
	tb.Helper()
	r := bytes.NewReader(b)
	var out []pkt
	for r.Len() > 0 {
		p, seq, _, err := readPacket(r, nil, 1<<30)
		if err != nil {
			tb.Fatalf("framing: %v after %d packets", err, len(out))
		}
		out = append(out, pkt{p, seq})
	}
	return out
}

// phases splits a capture at the end of the login: the client's handshake
// response, the command packets (the client's packets from its first
// sequence-0 packet on) and the server's bytes after its login OK.
type phases struct {
	handshake []byte
	cmds      []pkt
	c2sCmds   []byte // raw client bytes of the command phase
	s2cCmds   []byte // raw server bytes after the login OK
}

func splitPhases(tb testing.TB, c capture) phases {
	tb.Helper()
	var ph phases
	cp := packetsOf(tb, c.c2s)
	off := 0
	for i, p := range cp {
		if i == 0 {
			ph.handshake = p.payload
		}
		if i > 0 && p.seq == 0 && len(ph.cmds) == 0 {
			ph.c2sCmds = c.c2s[off:]
		}
		if i > 0 && (p.seq == 0 || len(ph.cmds) > 0) {
			ph.cmds = append(ph.cmds, p)
		}
		off += 4*partsOf(len(p.payload)) + len(p.payload)
	}
	off = 0
	for _, p := range packetsOf(tb, c.s2c) {
		off += 4*partsOf(len(p.payload)) + len(p.payload)
		if len(p.payload) > 0 && p.payload[0] == 0x00 {
			ph.s2cCmds = c.s2c[off:]
			break
		}
	}
	if ph.handshake == nil || len(ph.cmds) == 0 || ph.s2cCmds == nil {
		tb.Fatalf("%s: cannot find the end of the login", c.name)
	}
	return ph
}

// kinds is what the server owes for the commands, in order.
func (ph phases) kinds() []respKind {
	var ks []respKind
	for _, p := range ph.cmds {
		if p.seq != 0 || len(p.payload) == 0 {
			continue
		}
		if k := commandKind(p.payload[0]); k != respNone {
			ks = append(ks, k)
		}
	}
	return ks
}

// captureSchema is what the recorded sessions query: the e2e PII table and
// a table with a column of (nearly) every type, for binary rows.
const captureSchema = `
CREATE DATABASE appdb;
CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');
GRANT ALL ON appdb.* TO 'app'@'%';
INSTALL SONAME 'auth_ed25519';
CREATE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret');
GRANT ALL ON appdb.* TO 'edu'@'%';
CREATE TABLE appdb.customers (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), ssn VARCHAR(20), card BIGINT, note TEXT);
INSERT INTO appdb.customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '123-45-6789', 4111111111111111, 'call +1 415 555 0100'),
  (2, 'Alan Turing', 'alan@example.org', '987-65-4320', 5500000000000004, NULL);
CREATE TABLE appdb.audit_log (id INT AUTO_INCREMENT PRIMARY KEY, what TEXT);
CREATE TABLE appdb.types (id INT PRIMARY KEY, ti TINYINT, si SMALLINT, mi MEDIUMINT, bi BIGINT UNSIGNED, f FLOAT, d DOUBLE,
  de DECIMAL(12,3), dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP NULL, y YEAR, ch CHAR(4), vc VARCHAR(40), tx TEXT,
  bl BLOB, bt BIT(10), en ENUM('a','b'), st SET('x','y'), js JSON);
INSERT INTO appdb.types VALUES
  (1, -7, 300, -70000, 18446744073709551615, 1.5, -2.25, 123456.789, '2024-02-29', '-12:34:56.789', '2024-02-29 23:59:58.123456',
   '2024-01-01 00:00:01', 2024, 'ab', 'ada@example.com', 'a longer text', X'00FF10', b'1010101010', 'b', 'x,y', '{"k": [1, 2]}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE PROCEDURE appdb.two_results() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END;
`

// sluiceGreeting rewrites a server greeting to what Sluice's gateway offers
// its clients (serverCaps; no CLIENT_DEPRECATE_EOF, session tracking,
// compression, LOCAL INFILE, or MariaDB extended capabilities), so that
// the recorded clients negotiate what they would through Sluice.
func sluiceGreeting(p []byte) ([]byte, error) {
	i := bytes.IndexByte(p[1:], 0)
	if p[0] != 10 || i < 0 || len(p) < 1+i+1+4+8+1+2+1+2+2+1+10 {
		return nil, fmt.Errorf("not a HandshakeV10: %x", p)
	}
	q := append([]byte(nil), p...)
	o := 1 + i + 1 + 4 + 8 + 1 // caps, low half
	caps := uint32(binary.LittleEndian.Uint16(q[o:])) | uint32(binary.LittleEndian.Uint16(q[o+5:]))<<16
	caps = caps&serverCaps | capLongPassword // capLongPassword set: a MySQL greeting, no MariaDB extension bytes
	binary.LittleEndian.PutUint16(q[o:], uint16(caps))
	binary.LittleEndian.PutUint16(q[o+5:], uint16(caps>>16))
	clear(q[o+8 : o+18]) // reserved (MariaDB puts its extended capabilities in the last 4)
	return q, nil
}

// record runs session against upstream through a recording proxy and
// returns what each side sent. The session must use one connection.
func record(t *testing.T, upstream string, session func(addr string) error) (c2s, s2c []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var cb, sb bytes.Buffer
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			errc <- err
			return
		}
		defer u.Close()
		var inner sync.WaitGroup
		inner.Add(2)
		go func() {
			defer inner.Done()
			io.Copy(io.MultiWriter(u, &cb), c)
			u.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			defer inner.Done()
			defer c.(*net.TCPConn).CloseWrite()
			g, seq, _, err := readPacket(u, nil, 1<<16)
			if err == nil {
				g, err = sluiceGreeting(g)
			}
			if err != nil {
				errc <- err
				return
			}
			b, _ := appendPacket(nil, seq, g)
			c.Write(b)
			sb.Write(b)
			io.Copy(io.MultiWriter(c, &sb), u)
		}()
		inner.Wait()
	}()
	if err := session(ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return cb.Bytes(), sb.Bytes()
}

// agentOptions are the capabilities the agent's upstream login uses.
func agentOptions(c *client.Conn) error {
	c.UnsetCapability(gomysql.CLIENT_DEPRECATE_EOF)
	c.UnsetCapability(gomysql.CLIENT_QUERY_ATTRIBUTES)
	if err := c.SetCapability(gomysql.CLIENT_MULTI_STATEMENTS); err != nil {
		return err
	}
	return c.SetCapability(gomysql.CLIENT_MULTI_RESULTS)
}

// TestCaptureMariaDB records real sessions of the mariadb CLI, go-mysql
// and go-sql-driver with a real MariaDB into testdata/capture:
//
//	go test ./protocols/mysql -run TestCaptureMariaDB -update
func TestCaptureMariaDB(t *testing.T) {
	if !*update {
		t.Skip("run with -update to record " + captureDir + " again from a real MariaDB")
	}
	db := scratchmysql.MustStart(t, scratchmysql.Options{})
	if err := db.Exec(context.Background(), captureSchema); err != nil {
		t.Fatal(err)
	}
	cli, err := scratchmysql.ClientPath()
	if err != nil {
		t.Fatal(err)
	}
	sessions := map[string]func(addr string) error{
		// The real CLI: libmariadb's handshake with connect attributes, text results.
		"mariadb-cli": func(addr string) error {
			host, port, _ := net.SplitHostPort(addr)
			cmd := exec.Command(cli, "--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", "app", "-D", "appdb", "--skip-ssl",
				"-e", "SELECT id, name, email, card, note FROM customers ORDER BY id; SELECT * FROM types ORDER BY id; SELECT 1 FROM DUAL WHERE 1 = 0; SHOW WARNINGS")
			cmd.Env = append(os.Environ(), "MYSQL_PWD=app-secret")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		},
		// go-mysql as the agent logs in: text results, multi-statements,
		// multi-results, OK, ERR, transactions, PING, INIT_DB, FIELD_LIST.
		"gomysql-text": func(addr string) error {
			c, err := client.Connect(addr, "app", "app-secret", "appdb", agentOptions)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, q := range []string{"SELECT id, name, email, ssn, card, note FROM customers ORDER BY id", "SELECT * FROM types ORDER BY id",
				"INSERT INTO audit_log (what) VALUES ('captured')", "SELECT * FROM no_such_table", "BEGIN",
				"UPDATE customers SET note = note WHERE id = 2", "COMMIT", "SELECT 'kill' AS word, 'Kill Bill' AS title"} {
				c.Execute(q) // errors are part of the capture
			}
			cb := func(*gomysql.Result, error) {}
			if _, err := c.ExecuteMultiple("SELECT 1 AS one; SELECT 'two' AS two, 2; DO 1; SELECT * FROM no_such_table; SELECT 3", cb); err != nil {
				return err
			}
			if _, err := c.ExecuteMultiple("CALL two_results()", cb); err != nil {
				return err
			}
			if err := c.Ping(); err != nil {
				return err
			}
			if err := c.UseDB("appdb"); err != nil {
				return err
			}
			_, err = c.FieldList("customers", "")
			return err
		},
		// Binary rows: COM_STMT_PREPARE, EXECUTE (every type, NULLs), CLOSE.
		"gomysql-binary": func(addr string) error {
			c, err := client.Connect(addr, "app", "app-secret", "appdb", agentOptions)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Prepare("SELECT * FROM types WHERE id = ? OR id = ? ORDER BY id")
			if err != nil {
				return err
			}
			if _, err := st.Execute(1, 2); err != nil {
				return err
			}
			st.Close()
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"SELECT name, email, ssn, card FROM customers WHERE id > ?", []any{0}},
				{"INSERT INTO audit_log (what) VALUES (?)", []any{"prepared"}},
				{"SELECT ? AS n, ? AS s, ? AS f", []any{nil, "str", 2.5}},
			} {
				if _, err := c.Execute(q.sql, q.args...); err != nil {
					return err
				}
			}
			_, err = c.Prepare("SELECT * FROM no_such_table WHERE id = ?")
			if err == nil {
				return fmt.Errorf("prepare of a missing table succeeded")
			}
			return nil
		},
		// An auth switch: the greeting offers mysql_native_password, the
		// account uses ed25519.
		"gomysql-authswitch": func(addr string) error {
			c, err := client.Connect(addr, "edu", "ed-secret", "appdb", agentOptions)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Execute("SELECT CURRENT_USER()")
			return err
		},
		// go-sql-driver: its handshake, server-side prepared statements.
		"gosqldriver": func(addr string) error {
			cfg := mysql.NewConfig()
			cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "app", "app-secret", "tcp", addr, "appdb"
			cfg.MultiStatements = true
			conn, err := mysql.NewConnector(cfg)
			if err != nil {
				return err
			}
			d := sql.OpenDB(conn)
			d.SetMaxOpenConns(1)
			defer d.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var n int
			if err := d.QueryRowContext(ctx, "SELECT COUNT(*) FROM customers WHERE id > ?", 0).Scan(&n); err != nil {
				return err
			}
			rows, err := d.QueryContext(ctx, "SELECT * FROM types WHERE id IN (?, ?)", 1, 2)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			rows.Close()
			if _, err := d.ExecContext(ctx, "INSERT INTO audit_log (what) VALUES ('a'); INSERT INTO audit_log (what) VALUES ('b')"); err != nil {
				return err
			}
			return d.PingContext(ctx)
		},
	}
	if err := os.MkdirAll(captureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, session := range sessions {
		c2s, s2c := record(t, db.Addr(), session)
		for suffix, b := range map[string][]byte{"-c2s.bin": c2s, "-s2c.bin": s2c} {
			if err := os.WriteFile(filepath.Join(captureDir, name+suffix), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d bytes from the client, %d from the server", name, len(c2s), len(s2c))
	}
	t.Logf("recorded from %s", db.Version())
}
