package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-gw/sluice/internal/scratchmysql"
	"github.com/sluice-gw/sluice/internal/scratchpg"
)

const (
	pgUser     = "bench"
	pgPassword = "bench-secret"
	pgDB       = "bench"
	sluiceUser = "bench"
	agentName  = "bench-agent"
	connPolicy = "bench-policy"
	connPlain  = "bench-nopolicy"
	connDetect = "bench-detectors"
)

// path is one way from the client to PostgreSQL (or MariaDB).
type path struct {
	Name     string
	connInfo string        // libpq key=value string
	my       *mysql.Config // the MySQL paths' client configuration
	hops     []*proc       // proxy processes measured: first hop, second hop
	hopNames []string
	Skipped  string // reason the path is not run
}

// env is everything the harness started; cleanup undoes it in reverse.
type env struct {
	tmp      string
	pg       *scratchpg.Server
	procs    []*proc
	cleanups []func()
	paths    map[string]*path
	pgbench  string
	sluice   string
	relayBin string
	token    string
	// copyRefused is why COPY TO fails on the sluice path ("" if it works):
	// a column masking rule makes COPY fail closed.
	copyRefused string
	apiAddr     string
	admin       string
	versions    map[string]string
	// my is the scratch MariaDB of the MySQL paths (nil when they do not
	// run, mySkipped says why).
	my        *scratchmysql.Server
	mySkipped string
}

func (e *env) cleanup() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop()
	}
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

func (e *env) start(dir, name string, extraEnv []string, cred *syscall.Credential, bin string, args ...string) (*proc, error) {
	p, err := startProc(dir, name, extraEnv, cred, bin, args...)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	return p, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sluicebench: "+format+"\n", args...)
}

func setup(ctx context.Context, cfg config) (*env, error) {
	e := &env{paths: map[string]*path{}, versions: map[string]string{}}
	var err error
	if e.tmp, err = os.MkdirTemp("", "sluicebench-"); err != nil {
		return e, err
	}
	e.cleanups = append(e.cleanups, func() { os.RemoveAll(e.tmp) })
	// The pgbouncer user (when root) must reach files in the temp dir.
	_ = os.Chmod(e.tmp, 0o755)
	if e.pgbench, err = exec.LookPath("pgbench"); err != nil {
		return e, fmt.Errorf("pgbench not found (run `make deps`): %w", err)
	}
	if out, err := exec.Command(e.pgbench, "--version").Output(); err == nil {
		e.versions["pgbench"] = strings.TrimSpace(string(out))
	}

	logf("building sluice and the relay")
	e.sluice = cfg.sluiceBin
	if e.sluice == "" {
		e.sluice = filepath.Join(e.tmp, "sluice")
		if err := goBuild(ctx, e.sluice, "./cmd/sluice"); err != nil {
			return e, err
		}
	}
	e.relayBin = filepath.Join(e.tmp, "relay")
	if err := goBuild(ctx, e.relayBin, "./bench/cmd/relay"); err != nil {
		return e, err
	}

	logf("starting PostgreSQL")
	e.pg, err = scratchpg.Start(ctx, scratchpg.Options{
		HostAuth: "scram-sha-256",
		Settings: map[string]string{"max_connections": "100", "shared_buffers": "256MB"},
	})
	if err != nil {
		return e, err
	}
	e.cleanups = append(e.cleanups, func() { _ = e.pg.Stop() })
	if err := e.pg.CreateUser(ctx, pgUser, pgPassword, "scram-sha-256"); err != nil {
		return e, err
	}
	if err := e.pg.CreateDatabase(ctx, pgDB, pgUser); err != nil {
		return e, err
	}
	if v, err := e.pg.Query(ctx, "SHOW server_version"); err == nil {
		e.versions["postgres"] = v
	}
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s password=%s sslmode=disable", e.pg.Port(), pgUser, pgDB, pgPassword)
	e.paths["direct"] = &path{Name: "direct", connInfo: direct}

	logf("pgbench -i -s %d and %d rows of bench_people", cfg.scale, cfg.selectRows)
	// Server-side data generation (G) is the fastest initialisation.
	cmd := exec.CommandContext(ctx, e.pgbench, "-i", "-q", "-I", "dtGvp", "-s", strconv.Itoa(cfg.scale), direct)
	if out, err := cmd.CombinedOutput(); err != nil {
		return e, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	people := fmt.Sprintf(`CREATE TABLE bench_people(id int PRIMARY KEY, name text, email text, note text);
INSERT INTO bench_people
  SELECT i, 'name ' || i, 'user' || i || '@example.com', 'note ' || md5(i::text)
  FROM generate_series(1, %d) i;
ALTER TABLE bench_people OWNER TO %s;
VACUUM ANALYZE bench_people;`, cfg.selectRows, pgUser)
	if err := e.pg.ExecIn(ctx, pgDB, people); err != nil {
		return e, err
	}

	if err := e.startMySQL(ctx, cfg); err != nil {
		return e, err
	}
	if err := e.startSluice(ctx); err != nil {
		return e, err
	}
	if e.my == nil {
		for _, name := range myPaths {
			e.paths[name] = &path{Name: name, hopNames: []string{"gateway", "agent"}, Skipped: e.mySkipped}
		}
		e.paths["mysql-direct"].hopNames = nil
	}
	if err := e.startRelays(ctx, direct); err != nil {
		return e, err
	}
	e.startPgbouncer(ctx)
	return e, nil
}

func goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func (e *env) startSluice(ctx context.Context) error {
	logf("starting sluice gateway and agent")
	data := filepath.Join(e.tmp, "sluice-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	var addrs [4]string // API, tunnel, PostgreSQL, MySQL
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	e.apiAddr = addrs[0]
	genv := []string{"SLUICE_DATA_DIR=" + data, "SLUICE_API_ADDR=" + addrs[0], "SLUICE_TUNNEL_ADDR=" + addrs[1],
		"SLUICE_PG_ADDR=" + addrs[2], "SLUICE_MYSQL_ADDR=" + addrs[3], "SLUICE_LOG_LEVEL=warn", "SLUICE_HOME=" + filepath.Join(e.tmp, "sluice-home")}
	gw, err := e.start(e.tmp, "gateway", genv, nil, e.sluice, "gateway")
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := waitTCP(ctx, a, gw, 30*time.Second); err != nil {
			return err
		}
	}
	tokenPath := filepath.Join(data, "admin.token")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(tokenPath)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			e.admin = string(bytes.TrimSpace(b))
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no admin token in %s: %v", tokenPath, err)
		}
	}
	var ag struct{ DSN string }
	if err := e.api("POST", "/api/v1/agents", map[string]any{"name": agentName}, &ag); err != nil {
		return err
	}
	agent, err := e.start(e.tmp, "agent", []string{"SLUICE_KEY=" + ag.DSN, "SLUICE_LOG_LEVEL=warn"}, nil, e.sluice, "agent")
	if err != nil {
		return err
	}
	target := e.pg.URL(pgUser, pgPassword, pgDB)
	guardrails := map[string]any{
		"deny":        []string{"drop", "truncate", "alter", "grant", "delete-without-where", "update-without-where"},
		"deny_tables": []string{"bench_secrets"}, // configured, never matched by the workloads
	}
	policy := map[string]any{
		"agent": agentName, "type": "postgres", "target": target, "guardrails": guardrails,
		"masking": map[string]any{
			"columns":   []string{"bench_people.email"},
			"detectors": []string{"email", "credit_card"},
			"style":     "partial",
		},
	}
	if err := e.api("PUT", "/api/v1/connections/"+connPolicy, policy, nil); err != nil {
		return err
	}
	// Same policy without the column rule: COPY TO fails closed with a
	// column rule, so this is "masking configured" for the COPY stream.
	detect := map[string]any{
		"agent": agentName, "type": "postgres", "target": target, "guardrails": guardrails,
		"masking": map[string]any{"detectors": []string{"email", "credit_card"}, "style": "partial"},
	}
	if err := e.api("PUT", "/api/v1/connections/"+connDetect, detect, nil); err != nil {
		return err
	}
	if err := e.api("PUT", "/api/v1/connections/"+connPlain, map[string]any{"agent": agentName, "type": "postgres", "target": target}, nil); err != nil {
		return err
	}
	if err := e.api("PUT", "/api/v1/rules/bench", map[string]any{"groups": []string{"bench"}, "connections": []string{"*"}}, nil); err != nil {
		return err
	}
	if err := e.api("PUT", "/api/v1/users/"+sluiceUser, map[string]any{"password": "bench-user-pw", "groups": []string{"bench"}}, nil); err != nil {
		return err
	}
	var tok struct{ Token string }
	if err := e.api("POST", "/api/v1/users/"+sluiceUser+"/tokens", map[string]any{"ttl": "2h"}, &tok); err != nil {
		return err
	}
	e.token = tok.Token
	// Wait for the agent's tunnel.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var agents []struct {
			Name   string
			Online bool
		}
		if err := e.api("GET", "/api/v1/agents", nil, &agents); err == nil {
			online := false
			for _, a := range agents {
				online = online || (a.Name == agentName && a.Online)
			}
			if online {
				break
			}
		}
		if agent.exited() {
			return fmt.Errorf("agent exited (%v):\n%s", agent.waitErr, agent.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent did not come online in 30 s:\n%s", agent.logTail())
		}
	}
	host, port, _ := net.SplitHostPort(addrs[2])
	for _, c := range []struct{ path, conn string }{{"sluice", connPolicy}, {"sluice-detectors", connDetect}, {"sluice-nopolicy", connPlain}} {
		p := &path{Name: c.path, hops: []*proc{gw, agent}, hopNames: []string{"gateway", "agent"},
			connInfo: fmt.Sprintf("host=%s port=%s user=%s dbname=%s password=%s sslmode=%s", host, port, sluiceUser, c.conn, e.token, sluiceSSLMode())}
		if err := probe(ctx, p.connInfo, 20*time.Second); err != nil {
			return fmt.Errorf("path %s: %w\ngateway log:\n%s\nagent log:\n%s", c.path, err, gw.logTail(), agent.logTail())
		}
		e.paths[c.path] = p
	}
	// The policy must really be in force, or the sluice row measures nothing.
	if err := execOne(ctx, e.paths["sluice"].connInfo, "DROP TABLE IF EXISTS bench_guard_probe"); err == nil {
		return errors.New("guardrails not in force on " + connPolicy + ": DROP TABLE passed")
	}
	// A refusal by policy (SQLSTATE 42501) is by design; any other COPY
	// failure shows up as an error in the measured row.
	if err := execOne(ctx, e.paths["sluice"].connInfo, "COPY (SELECT 1) TO STDOUT"); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			e.copyRefused = pgErr.Message
		}
	}
	if err := e.addMySQLPaths(ctx, addrs[3], []*proc{gw, agent}); err != nil {
		return fmt.Errorf("%w\ngateway log:\n%s\nagent log:\n%s", err, gw.logTail(), agent.logTail())
	}
	if out, err := exec.Command(e.sluice, "version").Output(); err == nil {
		e.versions["sluice"] = strings.TrimSpace(string(out))
	}
	return nil
}

func (e *env) startRelays(ctx context.Context, direct string) error {
	logf("starting two relays in series")
	a2, err := freeAddr()
	if err != nil {
		return err
	}
	r2, err := e.start(e.tmp, "relay2", nil, nil, e.relayBin, "-listen", a2, "-target", e.pg.Addr())
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, a2, r2, 10*time.Second); err != nil {
		return err
	}
	a1, err := freeAddr()
	if err != nil {
		return err
	}
	r1, err := e.start(e.tmp, "relay1", nil, nil, e.relayBin, "-listen", a1, "-target", a2)
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, a1, r1, 10*time.Second); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(a1)
	// sslmode=prefer: the relay must answer the SSLRequest with 'N'.
	p := &path{Name: "relay-x2", hops: []*proc{r1, r2}, hopNames: []string{"relay1", "relay2"},
		connInfo: fmt.Sprintf("host=%s port=%s user=%s dbname=%s password=%s sslmode=prefer", host, port, pgUser, pgDB, pgPassword)}
	if err := probe(ctx, p.connInfo, 10*time.Second); err != nil {
		return fmt.Errorf("relay-x2: %w", err)
	}
	p.connInfo = strings.Replace(p.connInfo, "sslmode=prefer", "sslmode=disable", 1)
	e.paths[p.Name] = p
	return nil
}

// startPgbouncer never fails the run: a pgbouncer that cannot run is a
// skipped path with its reason.
func (e *env) startPgbouncer(ctx context.Context) {
	p := &path{Name: "pgbouncer", hopNames: []string{"pgbouncer"}}
	e.paths[p.Name] = p
	if err := e.setupPgbouncer(ctx, p); err != nil {
		p.Skipped = err.Error()
		logf("pgbouncer path skipped: %v", err)
	}
}

func (e *env) setupPgbouncer(ctx context.Context, p *path) error {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			return errors.New("pgbouncer is not installed (scripts/install-bench-deps.sh could not install it)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	logf("starting pgbouncer (session mode)")
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		e.versions["pgbouncer"] = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	dir := filepath.Join(e.tmp, "pgbouncer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	// pgbouncer refuses to run as root: run it as the postgres user.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and no postgres user to run pgbouncer as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		_ = os.Chown(dir, uid, gid)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	ini := fmt.Sprintf(`[databases]
%s = host=127.0.0.1 port=%d dbname=%s user=%s password=%s

[pgbouncer]
listen_addr = %s
listen_port = %s
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = session
max_client_conn = 200
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
server_tls_sslmode = disable
`, pgDB, e.pg.Port(), pgDB, pgUser, pgPassword, host, port, filepath.Join(dir, "userlist.txt"))
	files := map[string]string{"pgbouncer.ini": ini, "userlist.txt": fmt.Sprintf("%q \"\"\n", pgUser)}
	for name, content := range files {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			return err
		}
		if cred != nil {
			_ = os.Chown(f, int(cred.Uid), int(cred.Gid))
		}
	}
	pb, err := e.start(dir, "pgbouncer", nil, cred, bin, filepath.Join(dir, "pgbouncer.ini"))
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, addr, pb, 10*time.Second); err != nil {
		return err
	}
	p.hops = []*proc{pb}
	p.connInfo = fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", host, port, pgUser, pgDB)
	if err := probe(ctx, p.connInfo, 10*time.Second); err != nil {
		return fmt.Errorf("pgbouncer does not pass a query: %v\n%s", err, pb.logTail())
	}
	return nil
}

// probe retries one query until it works or timeout passes.
func probe(ctx context.Context, connInfo string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := execOne(ctx, connInfo, "SELECT 1")
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func execOne(ctx context.Context, connInfo, sql string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(cctx, connInfo)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(cctx, sql).ReadAll()
	return err
}

// api calls the gateway's REST API as admin; out (if not nil) receives the
// JSON answer.
func (e *env) api(method, p string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+e.apiAddr+p, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, p, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// sluiceSSLMode is the client sslmode on the sluice paths. Every path's
// client is on loopback, and the others run plaintext, so the sluice paths
// do too by default: the comparison is then the proxies' own work (the
// gateway-agent tunnel is TLS either way). BENCH_SLUICE_SSLMODE=require
// measures client TLS as well.
func sluiceSSLMode() string {
	if m := os.Getenv("BENCH_SLUICE_SSLMODE"); m != "" {
		return m
	}
	return "disable"
}
