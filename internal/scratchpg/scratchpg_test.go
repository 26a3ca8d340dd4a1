package scratchpg

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// psqlTCP runs sql over TCP as user with PGPASSWORD and returns trimmed
// tuples-only output.
func psqlTCP(t *testing.T, s *Server, user, password, db, sql string, extraEnv ...string) (string, error) {
	t.Helper()
	bin, err := findPsql(s.BinDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
		"-h", s.Host(), "-p", strconv.Itoa(s.Port()), "-U", user, "-d", db, "-c", sql)
	cmd.Env = cleanEnv(append([]string{"PGPASSWORD=" + password}, extraEnv...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestStartUsersAndStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := Start(ctx, Options{HostAuth: "scram-sha-256"})
	if err != nil {
		t.Fatalf("Start: %v", err) // includes the install hint if PostgreSQL is missing: fail, never skip
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	t.Logf("bindir=%s port=%d dir=%s", s.BinDir(), s.Port(), s.DataDir())

	if s.Host() != "127.0.0.1" || s.Port() <= 0 {
		t.Fatalf("Host/Port = %q/%d", s.Host(), s.Port())
	}
	if _, err := os.Stat(s.LogPath()); err != nil {
		t.Fatalf("log: %v", err)
	}

	const (
		scramUser, scramPW = "alice", "s3cret 'quoted' pw"
		md5User, md5PW     = "bob_md5", "md5-pass:word"
	)
	if err := s.CreateUser(ctx, scramUser, scramPW, "scram-sha-256"); err != nil {
		t.Fatalf("CreateUser scram: %v", err)
	}
	if err := s.CreateUser(ctx, md5User, md5PW, "md5"); err != nil {
		t.Fatalf("CreateUser md5: %v", err)
	}
	if err := s.CreateDatabase(ctx, "appdb", scramUser); err != nil {
		t.Fatalf("CreateDatabase: %v", err)
	}

	for _, c := range []struct{ user, pw string }{{scramUser, scramPW}, {md5User, md5PW}} {
		out, err := psqlTCP(t, s, c.user, c.pw, "appdb", "SELECT 1")
		if err != nil || out != "1" {
			t.Fatalf("psql over TCP as %s: out=%q err=%v", c.user, out, err)
		}
		if out, err := psqlTCP(t, s, c.user, "wrong", "appdb", "SELECT 1"); err == nil {
			t.Fatalf("psql as %s with wrong password succeeded: %q", c.user, out)
		}
	}

	// The md5 role really has an md5 hash; the other one a SCRAM verifier.
	for user, want := range map[string]string{md5User: "md5%", scramUser: "SCRAM-SHA-256$%"} {
		got, err := s.Query(ctx, "SELECT rolpassword LIKE '"+want+"' FROM pg_authid WHERE rolname='"+user+"'")
		if err != nil || got != "t" {
			t.Fatalf("rolpassword of %s LIKE %s: got %q err %v", user, want, got, err)
		}
	}
	// Users without their own rule get HostAuth (scram-sha-256): an md5 hash made
	// without CreateUser must be rejected, proving the catch-all rule is scram.
	if err := s.Exec(ctx, "SET password_encryption='md5'; CREATE ROLE carol LOGIN PASSWORD 'pw';"); err != nil {
		t.Fatal(err)
	}
	if out, err := psqlTCP(t, s, "carol", "pw", "postgres", "SELECT 1"); err == nil {
		t.Fatalf("md5 role under scram-sha-256 catch-all logged in: %q", out)
	}

	if err := s.Exec(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("Exec of failing SQL returned nil")
	}
	if err := s.ExecIn(ctx, "appdb", "CREATE TABLE t(x int); INSERT INTO t VALUES (42); GRANT SELECT ON t TO alice;"); err != nil {
		t.Fatal(err)
	}
	if out, err := psqlTCP(t, s, scramUser, scramPW, "appdb", "SELECT x FROM t"); err != nil || out != "42" {
		t.Fatalf("ExecIn result: %q %v", out, err)
	}

	if u := s.URL("alice", "p@ss/w", "appdb"); u != "postgres://alice:p%40ss%2Fw@127.0.0.1:"+strconv.Itoa(s.Port())+"/appdb" {
		t.Fatalf("URL = %s", u)
	}

	port, dir := s.Port(), s.DataDir()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d still open after Stop", port)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir %s still exists after Stop (err=%v)", dir, err)
	}
}

func TestTLSAndSettings(t *testing.T) {
	s := MustStart(t, Options{TLS: true, HostAuth: "md5", SuperuserPassword: "su-pw",
		Settings: map[string]string{"application_name": "scratchpg-test", "max_connections": "30"}})

	ctx := context.Background()
	if got, err := s.Query(ctx, "SHOW max_connections"); err != nil || got != "30" {
		t.Fatalf("max_connections = %q, %v", got, err)
	}
	if s.CertPath() == "" {
		t.Fatal("CertPath empty with TLS")
	}
	out, err := psqlTCP(t, s, Superuser, "su-pw", "postgres", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
		"PGSSLMODE=verify-full", "PGSSLROOTCERT="+s.CertPath())
	if err != nil || out != "t" {
		t.Fatalf("TLS connection: out=%q err=%v", out, err)
	}
	// Under HostAuth md5, a default (scram) role without its own rule still logs in
	// (md5 rules fall back to SCRAM for SCRAM verifiers).
	if err := s.Exec(ctx, "CREATE ROLE dave LOGIN PASSWORD 'pw'"); err != nil {
		t.Fatal(err)
	}
	if out, err := psqlTCP(t, s, "dave", "pw", "postgres", "SELECT 1"); err != nil || out != "1" {
		t.Fatalf("dave: %q %v", out, err)
	}
}

func TestOptionsDirKeptAndBadHostAuth(t *testing.T) {
	if _, err := Start(context.Background(), Options{HostAuth: "ident"}); err == nil {
		t.Fatal("HostAuth ident accepted")
	}
	// Not t.TempDir(): its 0700 parent is not searchable by the postgres user
	// that runs the server when the tests run as root.
	parent, err := os.MkdirTemp("", "scratchpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := parent + "/data"
	s := MustStart(t, Options{Dir: dir, HostAuth: "trust"})
	if s.DataDir() != dir {
		t.Fatalf("DataDir = %s", s.DataDir())
	}
	if out, err := psqlTCP(t, s, Superuser, "", "postgres", "SELECT 1"); err != nil || out != "1" {
		t.Fatalf("trust login: %q %v", out, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/PG_VERSION"); err != nil {
		t.Fatalf("caller-provided dir should be kept: %v", err)
	}
}

func TestMissingBinariesErrorSaysWhatToInstall(t *testing.T) {
	old := debianPGRoot
	debianPGRoot = t.TempDir()
	defer func() { debianPGRoot = old }()
	t.Setenv("PATH", t.TempDir()) // hide pg_config
	_, err := FindBinDir()
	if err == nil || !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install -y postgresql-15") {
		t.Fatalf("FindBinDir error = %v", err)
	}
	_, err = Start(context.Background(), Options{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y postgresql-15") {
		t.Fatalf("Start error = %v", err)
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil || p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d, %v", p, err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("port %d from FreePort not bindable: %v", p, err)
	}
	l.Close()
}

func TestParseVersionOrdering(t *testing.T) {
	if !versionLess(parseVersion("9.6"), parseVersion("15")) || !versionLess(parseVersion("15"), parseVersion("17beta1")) {
		t.Fatal("version ordering wrong")
	}
}
