package scratchpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Superuser is the name of the bootstrap superuser created by initdb.
// It can always connect over the unix socket without a password.
const Superuser = "postgres"

// Host is the address the server listens on for TCP connections.
const Host = "127.0.0.1"

// DefaultStartTimeout bounds how long Start waits for the server to accept
// connections when Options.StartTimeout is zero.
const DefaultStartTimeout = 30 * time.Second

// stopTimeout bounds each escalation step of Stop.
const stopTimeout = 30 * time.Second

// Options configures Start. The zero value is valid.
type Options struct {
	// Dir is the data directory. If empty, a fresh directory is created with
	// os.MkdirTemp and removed by Stop. If set, it must be empty or absent;
	// it is created if needed and never removed. The unix socket and the
	// server log also live here.
	Dir string

	// Port is the TCP port to listen on; 0 picks a free one (and retries
	// with another port if it is taken before postgres binds it).
	Port int

	// HostAuth is the pg_hba.conf method for TCP connections from
	// 127.0.0.1/32: "scram-sha-256" (default), "md5", "password" or "trust".
	// Roles made with CreateUser get their own rule (see CreateUser).
	HostAuth string

	// TLS generates a self-signed certificate and key into the data
	// directory and starts the server with ssl=on. See Server.CertPath.
	TLS bool

	// Settings are extra server parameters passed as `-c key=value`, after
	// (and therefore overriding) the built-in ones.
	Settings map[string]string

	// SuperuserPassword, if set, is given to the Superuser role so it can
	// log in over TCP with password authentication.
	SuperuserPassword string

	// StartTimeout bounds the wait for the server to accept connections;
	// zero means DefaultStartTimeout. The ctx passed to Start also bounds it.
	StartTimeout time.Duration

	// BinDir overrides FindBinDir.
	BinDir string
}

// Server is a running throwaway PostgreSQL server. Its methods are safe for
// concurrent use.
type Server struct {
	binDir    string
	dir       string
	removeDir bool
	port      int
	logPath   string
	certPath  string
	owner     *runAs // nil: current user
	hostAuth  string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the postmaster has exited
	waitErr error         // valid after done is closed

	hbaMu     sync.Mutex
	userRules []string // per-role pg_hba.conf lines, before the catch-all

	stopOnce sync.Once
	stopErr  error
}

var validHostAuth = map[string]bool{"scram-sha-256": true, "md5": true, "password": true, "trust": true}

// Start initialises a new cluster and starts a PostgreSQL server on
// 127.0.0.1, returning once it accepts connections. The caller must call
// Stop. ctx bounds only the start-up, not the server's lifetime.
//
// If the PostgreSQL server binaries are missing, the error wraps
// ErrNotInstalled and says to run `apt-get install -y postgresql-15`.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	hostAuth := opts.HostAuth
	if hostAuth == "" {
		hostAuth = "scram-sha-256"
	}
	if !validHostAuth[hostAuth] {
		return nil, fmt.Errorf("scratchpg: unsupported HostAuth %q (want scram-sha-256, md5, password or trust)", opts.HostAuth)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if !hasServerBinaries(binDir) {
		return nil, fmt.Errorf("%w in Options.BinDir %s; install the PostgreSQL server with: %s", ErrNotInstalled, binDir, InstallHint)
	}
	owner, err := serverUser(ctx)
	if err != nil {
		return nil, err
	}

	s := &Server{binDir: binDir, owner: owner, hostAuth: hostAuth}
	if opts.Dir == "" {
		if s.dir, err = os.MkdirTemp("", "scratchpg-"); err != nil {
			return nil, fmt.Errorf("scratchpg: create temp dir: %w", err)
		}
		s.removeDir = true
	} else {
		if s.dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, fmt.Errorf("scratchpg: %w", err)
		}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("scratchpg: create data dir: %w", err)
		}
	}
	defer func() {
		if err != nil {
			s.kill()
			if s.removeDir {
				os.RemoveAll(s.dir)
			}
		}
	}()
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("scratchpg: chmod data dir: %w", err)
	}
	if err := owner.chown(s.dir); err != nil {
		return nil, err
	}
	if err := owner.checkTraversable(s.dir); err != nil {
		return nil, err
	}

	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	if err := s.writeHBA(); err != nil {
		return nil, err
	}
	if opts.TLS {
		s.certPath = filepath.Join(s.dir, "server.crt")
		if err := writeSelfSignedCert(s.certPath, filepath.Join(s.dir, "server.key"), owner); err != nil {
			return nil, err
		}
	}
	s.logPath = filepath.Join(s.dir, "postgres.log")

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	startCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	const maxAttempts = 5
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		err = s.startPostmaster(startCtx, port, opts)
		if err == nil {
			break
		}
		if opts.Port != 0 || attempt == maxAttempts || !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}

	if opts.SuperuserPassword != "" {
		if err := s.Exec(ctx, "ALTER ROLE "+quoteIdent(Superuser)+" PASSWORD "+quoteLiteral(opts.SuperuserPassword)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, "initdb"),
		"-D", s.dir, "-U", Superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = s.dir
	cmd.Env = cleanEnv("LC_ALL=C")
	cmd.SysProcAttr = s.owner.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scratchpg: initdb -D %s (as %s) failed: %v\n%s", s.dir, s.owner, err, bytes.TrimSpace(out))
	}
	return nil
}

// writeHBA (re)writes pg_hba.conf. Caller holds hbaMu or is Start.
func (s *Server) writeHBA() error {
	var b strings.Builder
	b.WriteString("# generated by github.com/sluice-gw/sluice/internal/scratchpg\n")
	b.WriteString("local all all trust\n")
	b.WriteString("local replication all trust\n")
	for _, rule := range s.userRules {
		b.WriteString(rule)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "host all all 127.0.0.1/32 %s\n", s.hostAuth)
	fmt.Fprintf(&b, "host replication all 127.0.0.1/32 %s\n", s.hostAuth)
	return writeOwned(filepath.Join(s.dir, "pg_hba.conf"), []byte(b.String()), 0o600, s.owner)
}

// errPortTaken marks a start failure caused by the port being in use.
var errPortTaken = errors.New("port already in use")

func (s *Server) startPostmaster(ctx context.Context, port int, opts Options) error {
	args := []string{
		"-D", s.dir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=" + Host,
		"-c", "unix_socket_directories=" + s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	}
	if s.certPath != "" {
		args = append(args, "-c", "ssl=on",
			"-c", "ssl_cert_file="+s.certPath,
			"-c", "ssl_key_file="+filepath.Join(s.dir, "server.key"))
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+opts.Settings[k])
	}

	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("scratchpg: open server log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	if err := s.owner.chown(s.logPath); err != nil {
		return err
	}
	logStart, _ := logf.Seek(0, 2)

	cmd := exec.Command(filepath.Join(s.binDir, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = cleanEnv("LC_ALL=C")
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = s.owner.sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("scratchpg: start postgres: %w", err)
	}
	done := make(chan struct{})
	s.cmd, s.done, s.port = cmd, done, port
	go func() {
		s.waitErr = cmd.Wait()
		close(done)
	}()

	if err := s.waitReady(ctx); err != nil {
		s.kill()
		logTail := tail(s.logPath, 30)
		if strings.Contains(logSince(s.logPath, logStart), "could not bind") ||
			strings.Contains(logSince(s.logPath, logStart), "could not create any TCP/IP sockets") {
			err = fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return fmt.Errorf("scratchpg: postgres on port %d (data dir %s, as %s) did not become ready: %w\n--- tail of server log %s ---\n%s",
			port, s.dir, s.owner, err, s.logPath, logTail)
	}
	return nil
}

func logSince(path string, off int64) string {
	data, err := os.ReadFile(path)
	if err != nil || off > int64(len(data)) {
		return ""
	}
	return string(data[off:])
}

// waitReady polls until the server accepts connections, the postmaster
// exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	probe := s.readyProbe()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited: %v", s.waitErr)
		default:
		}
		if probe(ctx) {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for connections: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// readyProbe returns a function reporting whether the server accepts
// connections: pg_isready over the unix socket, or psql if it is missing.
func (s *Server) readyProbe() func(context.Context) bool {
	port := strconv.Itoa(s.port)
	if isready := filepath.Join(s.binDir, "pg_isready"); isExecutable(isready) {
		return func(ctx context.Context) bool {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, isready, "-q", "-h", s.dir, "-p", port, "-U", Superuser, "-d", "postgres", "-t", "2")
			cmd.Env = cleanEnv()
			return cmd.Run() == nil
		}
	}
	return func(ctx context.Context) bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := s.psql(cctx, "postgres", "SELECT 1", true)
		return err == nil
	}
}

// kill stops a postmaster started by startPostmaster immediately (SIGQUIT,
// then SIGKILL) and waits for it. Used on start-up failure.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Stop shuts the server down (fast shutdown: SIGINT to the postmaster,
// escalating to SIGQUIT and SIGKILL if it does not exit within 30 s each),
// waits for it to exit, and removes the data directory if Start created it.
// It is idempotent.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			errs = append(errs, fmt.Errorf("scratchpg: postgres did not stop within %v after SIGINT; sent SIGQUIT", stopTimeout))
			_ = s.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-s.done:
			case <-time.After(stopTimeout):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
	}
	if s.removeDir {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("scratchpg: remove data dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// psql runs sql through psql as Superuser over the unix socket, in database
// db, returning stdout. With tuplesOnly the output is unaligned tuples only.
func (s *Server) psql(ctx context.Context, db, sql string, tuplesOnly bool) (string, error) {
	bin, err := findPsql(s.binDir)
	if err != nil {
		return "", err
	}
	args := []string{"-v", "ON_ERROR_STOP=1", "-X", "-q",
		"-h", s.dir, "-p", strconv.Itoa(s.port), "-U", Superuser, "-d", db}
	if tuplesOnly {
		args = append(args, "-A", "-t")
	}
	args = append(args, "-f", "-")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	cmd.Dir = os.TempDir()
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("scratchpg: psql (db %s): %v: %s", db, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Exec runs sql (one or more statements; stops at the first error) as
// Superuser over the unix socket in the "postgres" database.
func (s *Server) Exec(ctx context.Context, sql string) error {
	return s.ExecIn(ctx, "postgres", sql)
}

// ExecIn is Exec in database db.
func (s *Server) ExecIn(ctx context.Context, db, sql string) error {
	_, err := s.psql(ctx, db, sql, false)
	return err
}

// Query runs sql as Superuser in the "postgres" database and returns psql's
// unaligned, tuples-only output (columns separated by '|', one row per
// line) with surrounding whitespace trimmed, e.g. "t" or "1".
func (s *Server) Query(ctx context.Context, sql string) (string, error) {
	out, err := s.psql(ctx, "postgres", sql, true)
	return strings.TrimSpace(out), err
}

// CreateUser creates a LOGIN role name with password, stored with method
// ("scram-sha-256", the default when empty, or "md5"; password_encryption is
// set in the same session, so an md5 role really has an md5 hash). It also
// adds a pg_hba.conf rule so TCP logins by this role from 127.0.0.1 use that
// same method, whatever Options.HostAuth is (a scram-sha-256 rule would
// reject an md5-hashed password), reloads the configuration and waits until
// the role can log in over TCP.
func (s *Server) CreateUser(ctx context.Context, name, password, method string) error {
	if method == "" {
		method = "scram-sha-256"
	}
	if method != "scram-sha-256" && method != "md5" {
		return fmt.Errorf("scratchpg: CreateUser %s: unsupported method %q (want scram-sha-256 or md5)", name, method)
	}
	if name == "" || strings.ContainsAny(name, "\"\x00\r\n") {
		return fmt.Errorf("scratchpg: CreateUser: invalid role name %q", name)
	}
	if strings.ContainsRune(password, 0) {
		return fmt.Errorf("scratchpg: CreateUser %s: password contains NUL", name)
	}
	sql := "SET password_encryption = " + quoteLiteral(method) + ";\n" +
		"CREATE ROLE " + quoteIdent(name) + " LOGIN PASSWORD " + quoteLiteral(password) + ";\n"
	if err := s.Exec(ctx, sql); err != nil {
		return err
	}

	s.hbaMu.Lock()
	s.userRules = append(s.userRules, fmt.Sprintf("host all %s 127.0.0.1/32 %s", quoteIdent(name), method))
	err := s.writeHBA()
	if err == nil {
		err = s.Exec(ctx, "SELECT pg_reload_conf();")
	}
	s.hbaMu.Unlock()
	if err != nil {
		return err
	}
	return s.waitLogin(ctx, name, password)
}

// waitLogin waits (up to 10 s) until user can log in over TCP, i.e. until
// the postmaster has reloaded pg_hba.conf.
func (s *Server) waitLogin(ctx context.Context, user, password string) error {
	bin, err := findPsql(s.binDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		cmd := exec.CommandContext(ctx, bin, "-X", "-q", "-A", "-t", "-w",
			"-h", Host, "-p", strconv.Itoa(s.port), "-U", user, "-d", "postgres", "-c", "SELECT 1")
		cmd.Env = cleanEnv("PGPASSWORD=" + password)
		cmd.Dir = os.TempDir()
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("scratchpg: role %s cannot log in over TCP: %v: %s", user, err, bytes.TrimSpace(out))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// CreateDatabase creates database name owned by owner (Superuser if empty).
func (s *Server) CreateDatabase(ctx context.Context, name, owner string) error {
	sql := "CREATE DATABASE " + quoteIdent(name)
	if owner != "" {
		sql += " OWNER " + quoteIdent(owner)
	}
	return s.Exec(ctx, sql+";")
}

// URL returns a postgres:// connection URL for user/password/db over TCP to
// 127.0.0.1 and the server's port. An empty password omits it.
func (s *Server) URL(user, password, db string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(Host, strconv.Itoa(s.port)), Path: "/" + db}
	switch {
	case password != "":
		u.User = url.UserPassword(user, password)
	case user != "":
		u.User = url.User(user)
	}
	return u.String()
}

// Port returns the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Host returns the TCP listen address, always "127.0.0.1".
func (s *Server) Host() string { return Host }

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(Host, strconv.Itoa(s.port)) }

// BinDir returns the directory of the PostgreSQL server binaries in use.
func (s *Server) BinDir() string { return s.binDir }

// DataDir returns the data directory (removed by Stop if Start created it).
func (s *Server) DataDir() string { return s.dir }

// SocketDir returns the directory holding the server's unix socket
// (the data directory); use it as host for libpq/pgx unix connections.
func (s *Server) SocketDir() string { return s.dir }

// LogPath returns the server's log file (inside the data directory).
func (s *Server) LogPath() string { return s.logPath }

// CertPath returns the self-signed server certificate (PEM) when started
// with Options.TLS, usable as sslrootcert with sslmode=verify-full;
// otherwise "".
func (s *Server) CertPath() string { return s.certPath }

// FreePort returns a TCP port on 127.0.0.1 that was free at the time of the
// call (the OS picks it; it may be taken by someone else afterwards).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		return 0, fmt.Errorf("scratchpg: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TB is the subset of testing.TB used by MustStart (so this package does not
// import "testing").
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	Logf(format string, args ...any)
}

// MustStart starts a server with Start, fails tb loudly (never skips) if
// that fails, for instance when PostgreSQL is not installed, and stops the
// server when the test ends.
func MustStart(tb TB, opts Options) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultStartTimeout)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		tb.Fatalf("scratchpg.Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Logf("scratchpg: stop: %v", err)
		}
	})
	return s
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes s as a SQL string literal (standard_conforming_strings
// is on by default, so backslashes are literal).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
