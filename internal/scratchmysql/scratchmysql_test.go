package scratchmysql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// tcpDB opens user's pool over TCP (TLS when tc is set).
func tcpDB(t *testing.T, s *Server, user, password, db string, tc *tls.Config) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", s.Addr(), db
	cfg.TLS = tc
	cfg.Timeout = 5 * time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := sql.OpenDB(c)
	t.Cleanup(func() { d.Close() })
	return d
}

func TestStartExecTCPAndStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Settings: map[string]string{"max-connections": "50"}})
	if err != nil {
		t.Fatalf("Start: %v", err) // says what to install when MariaDB is missing: fail, never skip
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	t.Logf("version %s on %s, dir %s", s.Version(), s.Addr(), s.Dir())
	if !strings.Contains(s.Version(), "MariaDB") || s.Port() <= 0 {
		t.Fatalf("version %q port %d", s.Version(), s.Port())
	}
	if err := s.Exec(ctx, `CREATE DATABASE app; CREATE USER 'app'@'%' IDENTIFIED BY 'pw''quoted';
		GRANT ALL ON app.* TO 'app'@'%'; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO app.t VALUES (1, 'ümlaut')`); err != nil {
		t.Fatal(err)
	}
	var maxConn int
	var name string
	if err := s.DB().QueryRowContext(ctx, "SHOW VARIABLES LIKE 'max_connections'").Scan(&name, &maxConn); err != nil || maxConn != 50 {
		t.Fatalf("Settings not applied: %d %v", maxConn, err)
	}
	if got := s.URL("app", "pw'quoted", "app"); got != "mysql://app:pw%27quoted@"+s.Addr()+"/app" {
		t.Fatalf("URL = %s", got)
	}
	var v string
	if err := tcpDB(t, s, "app", "pw'quoted", "app", nil).QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "ümlaut" {
		t.Fatalf("TCP login as app: %q %v", v, err)
	}
	if err := s.Exec(ctx, "SELECT * FROM no_such.table_here"); err == nil {
		t.Fatal("Exec hid an error")
	}
	dir := s.Dir()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Stop: %v", dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestTLS(t *testing.T) {
	files, err := NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	s := MustStart(t, Options{TLS: files})
	ctx := context.Background()
	if err := s.Exec(ctx, "CREATE USER 'sec'@'%' IDENTIFIED BY 'pw' REQUIRE SSL"); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(files.CAPEM)
	var name, cipher string
	d := tcpDB(t, s, "sec", "pw", "", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := d.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Fatalf("verified TLS login: cipher %q, %v", cipher, err)
	}
	// The same account without TLS is refused by the server.
	var me *mysql.MySQLError
	if err := tcpDB(t, s, "sec", "pw", "", nil).PingContext(ctx); !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("plaintext login to a REQUIRE SSL account: %v", err)
	}
	// A client that trusts another CA does not get through.
	other, _ := NewTLS()
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM(other.CAPEM)
	if err := tcpDB(t, s, "sec", "pw", "", &tls.Config{RootCAs: pool2, ServerName: "127.0.0.1"}).PingContext(ctx); err == nil {
		t.Fatal("a certificate from an unknown CA was accepted")
	}
}

func TestMissingBinariesSayWhatToInstall(t *testing.T) {
	saved := binDirs
	binDirs = []string{t.TempDir()}
	defer func() { binDirs = saved }()
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), Options{})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install -y mariadb-server") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ClientPath(); err == nil || !strings.Contains(err.Error(), "mariadb-client") {
		t.Fatalf("ClientPath: %v", err)
	}
	binDirs = saved
	dir := t.TempDir()
	if _, err := Start(context.Background(), Options{BinDir: dir}); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("BinDir without MariaDB: %v", err)
	}
}
