package scratchmysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Host is the address the server listens on for TCP connections.
const Host = "127.0.0.1"

// DefaultStartTimeout bounds the wait for the server to accept connections
// when Options.StartTimeout is zero (mariadb-install-db included).
const DefaultStartTimeout = 90 * time.Second

// stopTimeout bounds the graceful shutdown before SIGKILL.
const stopTimeout = 30 * time.Second

// Options configures Start. The zero value is valid.
type Options struct {
	// Port is the TCP port; 0 picks a free one (and retries with another
	// if it is taken before mariadbd binds it).
	Port int
	// TLS, if set, starts the server with this certificate and key
	// (ssl-cert, ssl-key, and ssl-ca when CAPEM is set).
	TLS *TLS
	// Settings are extra server options, passed as --name=value after the
	// built-in ones (so they override them), e.g. {"max-connections": "200"}.
	Settings map[string]string
	// StartTimeout bounds initialisation and start-up; zero means
	// DefaultStartTimeout. The ctx given to Start bounds it too.
	StartTimeout time.Duration
	// BinDir, if set, is the only place mariadb-install-db and mariadbd
	// are looked for (default: $PATH, /usr/sbin, /usr/bin, /usr/local/...).
	BinDir string
}

// Server is a running throwaway MariaDB. Its methods are safe for concurrent
// use.
type Server struct {
	base    string // temporary directory: data/, socket, logs, TLS files
	port    int
	owner   *syscall.Credential // nil: the current user
	version string
	db      *sql.DB // root over the unix socket

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Start initialises a data directory and starts mariadbd on 127.0.0.1,
// returning once root can run a query. The caller must call Stop. ctx
// bounds only the start-up.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	installDB, server, err := FindBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	s := &Server{}
	if s.owner, err = serverUser(); err != nil {
		return nil, err
	}
	if s.base, err = os.MkdirTemp("", "scratchmysql-"); err != nil {
		return nil, fmt.Errorf("scratchmysql: temp dir: %w", err)
	}
	defer func() {
		if err != nil {
			s.kill()
			if s.db != nil {
				s.db.Close()
			}
			os.RemoveAll(s.base)
		}
	}()
	if err := os.Chmod(s.base, 0o750); err != nil {
		return nil, err
	}
	if err := s.chown(s.base); err != nil {
		return nil, err
	}
	if err := s.checkTraversable(); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	data := filepath.Join(s.base, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		return nil, err
	}
	if err := s.chown(data); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, installDB, "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	cmd.Dir = s.base
	cmd.SysProcAttr = s.sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("scratchmysql: %s --datadir=%s (as %s) failed: %v\n%s", installDB, data, s.ownerName(), err, lastLines(out, 20))
	}

	args := []string{"--no-defaults", "--datadir=" + data, "--socket=" + s.Socket(),
		"--bind-address=" + Host, "--skip-name-resolve", "--skip-log-bin",
		"--log-error=" + s.LogPath(), "--pid-file=" + filepath.Join(s.base, "mysqld.pid"),
		"--max-allowed-packet=256M", "--innodb-buffer-pool-size=64M", "--max-connections=200",
		"--innodb-flush-log-at-trx-commit=2", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"}
	if opts.TLS != nil {
		tlsArgs, err := s.writeTLS(opts.TLS)
		if err != nil {
			return nil, err
		}
		args = append(args, tlsArgs...)
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--"+strings.TrimPrefix(k, "--")+"="+opts.Settings[k])
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		err = s.startServer(ctx, server, append(args, "--port="+strconv.Itoa(port)), port)
		if err == nil {
			break
		}
		if opts.Port != 0 || attempt == 5 || !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	if err := s.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.version); err != nil {
		return nil, fmt.Errorf("scratchmysql: SELECT VERSION(): %w", err)
	}
	return s, nil
}

var errPortTaken = errors.New("port already in use")

func (s *Server) startServer(ctx context.Context, bin string, args []string, port int) error {
	logf, err := os.OpenFile(filepath.Join(s.base, "mariadbd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	logStart := int64(0)
	if fi, err := os.Stat(s.LogPath()); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.base
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = s.sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("scratchmysql: start %s: %w", bin, err)
	}
	s.cmd, s.done, s.port = cmd, make(chan struct{}), port
	done := s.done
	go func() { s.waitErr = cmd.Wait(); close(done) }()

	if s.db == nil {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = "root", "unix", s.Socket()
		cfg.MultiStatements = true
		cfg.Timeout = 5 * time.Second
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		s.db = sql.OpenDB(conn)
		s.db.SetMaxIdleConns(2)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.db.PingContext(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			log := logSince(s.LogPath(), logStart)
			if strings.Contains(log, "Address already in use") || strings.Contains(log, "another server running on port") {
				return fmt.Errorf("%w: port %d", errPortTaken, port)
			}
			return fmt.Errorf("scratchmysql: mariadbd on port %d (data %s, as %s) exited: %v\n--- %s ---\n%s", port, s.base, s.ownerName(), s.waitErr, s.LogPath(), lastLines([]byte(log), 30))
		case <-ctx.Done():
			s.kill()
			return fmt.Errorf("scratchmysql: mariadbd on port %d did not accept connections: %v (last error: %v)\n--- %s ---\n%s", port, ctx.Err(), err, s.LogPath(), lastLines([]byte(logSince(s.LogPath(), logStart)), 30))
		case <-tick.C:
		}
	}
}

// writeTLS writes the PEM files into the server's directory (readable by
// the server's user only) and returns the options naming them.
func (s *Server) writeTLS(t *TLS) ([]string, error) {
	if len(t.CertPEM) == 0 || len(t.KeyPEM) == 0 {
		return nil, errors.New("scratchmysql: Options.TLS needs CertPEM and KeyPEM")
	}
	files := []struct {
		name, opt string
		pem       []byte
	}{{"server-cert.pem", "ssl-cert", t.CertPEM}, {"server-key.pem", "ssl-key", t.KeyPEM}, {"ca.pem", "ssl-ca", t.CAPEM}}
	var args []string
	for _, f := range files {
		if len(f.pem) == 0 {
			continue
		}
		p := filepath.Join(s.base, f.name)
		if err := os.WriteFile(p, f.pem, 0o600); err != nil {
			return nil, err
		}
		if err := s.chown(p); err != nil {
			return nil, err
		}
		args = append(args, "--"+f.opt+"="+p)
	}
	return args, nil
}

// kill stops a server that is starting, at once.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Stop shuts the server down (SIGTERM, SIGKILL after 30 s), waits for it and
// removes its directory. It is idempotent.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		s.db.Close()
		select {
		case <-s.done:
		default:
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(stopTimeout):
				errs = append(errs, fmt.Errorf("scratchmysql: mariadbd did not stop within %v of SIGTERM; killed", stopTimeout))
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		if err := os.RemoveAll(s.base); err != nil {
			errs = append(errs, fmt.Errorf("scratchmysql: remove %s: %w", s.base, err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// Exec runs sql (several statements allowed, separated by ';') as root.
func (s *Server) Exec(ctx context.Context, sql string) error {
	if _, err := s.db.ExecContext(ctx, sql); err != nil {
		return fmt.Errorf("scratchmysql: %w", err)
	}
	return nil
}

// DB is root's connection pool over the unix socket (multi-statements on).
// Stop closes it.
func (s *Server) DB() *sql.DB { return s.db }

// URL returns mysql://user:password@127.0.0.1:port/db, the form Sluice's
// connection targets take. An empty password is left out.
func (s *Server) URL(user, password, db string) string {
	u := url.URL{Scheme: "mysql", Host: s.Addr(), Path: "/" + db}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// Port is the TCP port.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(Host, strconv.Itoa(s.port)) }

// Socket is the unix socket path.
func (s *Server) Socket() string { return filepath.Join(s.base, "mysqld.sock") }

// Dir is the temporary directory holding the data directory and logs.
func (s *Server) Dir() string { return s.base }

// LogPath is the server's error log.
func (s *Server) LogPath() string { return filepath.Join(s.base, "error.log") }

// Version is the server's SELECT VERSION(), e.g. "10.11.6-MariaDB-0+deb12u1".
func (s *Server) Version() string { return s.version }

// FreePort returns a TCP port on 127.0.0.1 that was free when asked.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		return 0, fmt.Errorf("scratchmysql: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TB is the part of testing.TB MustStart uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	Logf(format string, args ...any)
}

// MustStart starts a server, fails tb (never skips) when that fails, for
// instance when MariaDB is not installed, and stops it when the test ends.
func MustStart(tb TB, opts Options) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultStartTimeout)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		tb.Fatalf("scratchmysql.Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Logf("scratchmysql: stop: %v", err)
		}
	})
	return s
}

// serverUser is nil when not root; as root, the mysql system user.
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, fmt.Errorf("scratchmysql: running as root needs the mysql system user to run mariadbd as (the mariadb-server package creates it; %s): %w", InstallHint, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("scratchmysql: user mysql has a non-numeric uid/gid %s/%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) ownerName() string {
	if s.owner == nil {
		return "the current user"
	}
	return "mysql"
}

func (s *Server) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Credential: s.owner}
	setParentDeathSignal(a)
	return a
}

func (s *Server) chown(p string) error {
	if s.owner == nil {
		return nil
	}
	if err := os.Lchown(p, int(s.owner.Uid), int(s.owner.Gid)); err != nil {
		return fmt.Errorf("scratchmysql: chown %s to mysql: %w", p, err)
	}
	return nil
}

// checkTraversable fails early, with the remedy, when the server's user
// cannot reach the temporary directory (root's TMPDIR under /root).
func (s *Server) checkTraversable() error {
	if s.owner == nil {
		return nil
	}
	for p := filepath.Dir(s.base); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("scratchmysql: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			m := fi.Mode().Perm()
			if !((st.Uid == s.owner.Uid && m&0o100 != 0) || (st.Gid == s.owner.Gid && m&0o010 != 0) || m&0o001 != 0) {
				return fmt.Errorf("scratchmysql: %s is not searchable by the mysql user that runs mariadbd; set TMPDIR to a world-searchable directory such as /tmp", p)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func logSince(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
