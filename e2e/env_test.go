package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-gw/sluice/internal/scratchpg"
	"github.com/sluice-gw/sluice/internal/server"
	"github.com/sluice-gw/sluice/protocols/postgres"
)

// env is the one shared world of the suite: starting PostgreSQL and the
// gateway once keeps `make test` fast.
type env struct {
	pg          *scratchpg.Server
	gw          *server.Gateway
	adminToken  string
	aliceToken  string
	stopAgent   func()
	psql        string
	pgbench     string
	dataDir     string
	maxMessage  int
	startupWait time.Duration
}

var E *env

const testMaxMessage = 160 << 20 // above the 100 MB tests, below what TestOversizeMessage sends

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	e, err := setup(ctx)
	if e != nil {
		defer e.teardown()
	}
	if err != nil {
		return 1, err
	}
	E = e
	code := m.Run()
	e.teardown()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreCurrent(),
			goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak after the suite:", err)
			return 1, nil
		}
	}
	return code, nil
}

func setup(ctx context.Context) (*env, error) {
	e := &env{maxMessage: testMaxMessage, startupWait: 2 * time.Second}
	var err error
	for _, tool := range []struct {
		dst  *string
		name string
	}{{&e.psql, "psql"}, {&e.pgbench, "pgbench"}} {
		if *tool.dst, err = exec.LookPath(tool.name); err != nil {
			return nil, fmt.Errorf("%s not found: install it with `apt-get install -y postgresql-client` (or run `make deps`)", tool.name)
		}
	}
	e.pg, err = scratchpg.Start(ctx, scratchpg.Options{HostAuth: "scram-sha-256", Settings: map[string]string{"max_connections": "60"}})
	if err != nil {
		return nil, err
	}
	if err := e.pg.CreateUser(ctx, "app", "app-secret", "scram-sha-256"); err != nil {
		return e, err
	}
	if err := e.pg.CreateUser(ctx, "app_md5", "md5-secret", "md5"); err != nil {
		return e, err
	}
	if err := e.pg.CreateDatabase(ctx, "app", "app"); err != nil {
		return e, err
	}
	if err := e.pg.ExecIn(ctx, "app", "GRANT ALL ON SCHEMA public TO app_md5"); err != nil {
		return e, err
	}

	e.dataDir, err = os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		return e, err
	}
	cfg := server.DefaultGatewayConfig()
	cfg.DataDir = e.dataDir
	cfg.APIAddr, cfg.TunnelAddr, cfg.PGAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.MySQLAddr = "127.0.0.1:0"
	cfg.Logger = testLogger()
	cfg.Postgres = postgres.DefaultConfig()
	cfg.Postgres.MaxMessage = e.maxMessage
	cfg.Postgres.StartupTimeout = e.startupWait
	cfg.WebhookAllowHTTP = true // webhook tests use a loopback http receiver
	cfg.ReviewTimeout = 6 * time.Second
	e.gw, err = server.StartGateway(ctx, cfg)
	if err != nil {
		return e, err
	}
	if e.adminToken, err = e.gw.AdminToken(); err != nil {
		return e, err
	}

	dsn := e.createAgent("demo-agent")
	e.stopAgent = e.startAgent(dsn)
	e.must("PUT", "/api/v1/connections/pg-demo", map[string]any{"agent": "demo-agent", "type": "postgres", "target": e.pg.URL("app", "app-secret", "app")})
	e.must("PUT", "/api/v1/connections/pg-md5", map[string]any{"agent": "demo-agent", "type": "postgres", "target": e.pg.URL("app_md5", "md5-secret", "app")})
	// Access is granted by rules to groups: alice is in "users", which may use
	// every connection (tests of denials add narrower users of their own).
	e.must("PUT", "/api/v1/rules/users", map[string]any{"groups": []string{"users"}, "connections": []string{"*"}})
	e.must("PUT", "/api/v1/users/alice", map[string]any{"password": "alice-pw", "groups": []string{"users"}})
	var tok struct{ Token string }
	json.Unmarshal(e.must("POST", "/api/v1/users/alice/tokens", map[string]any{"ttl": "1h"}), &tok)
	e.aliceToken = tok.Token
	if e.aliceToken == "" {
		return e, fmt.Errorf("no token issued for alice")
	}
	if err := e.waitOnline("demo-agent"); err != nil {
		return e, err
	}
	return e, nil
}

func (e *env) teardown() {
	if e.stopAgent != nil {
		e.stopAgent()
		e.stopAgent = nil
	}
	if e.gw != nil {
		e.gw.Close()
		e.gw = nil
	}
	if e.pg != nil {
		e.pg.Stop()
		e.pg = nil
	}
	if e.dataDir != "" {
		os.RemoveAll(e.dataDir)
		e.dataDir = ""
	}
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// createAgent registers an agent and returns its DSN.
func (e *env) createAgent(name string) string {
	var out struct{ DSN string }
	json.Unmarshal(e.must("POST", "/api/v1/agents", map[string]any{"name": name}), &out)
	if out.DSN == "" {
		panic("create agent returned no dsn")
	}
	return tunnelDSN(out.DSN)
}

// tunnelDSN switches an agent DSN to the transport under test:
// SLUICE_E2E_TUNNEL=quic runs the suite over QUIC (same key, pin and port).
func tunnelDSN(dsn string) string {
	if os.Getenv("SLUICE_E2E_TUNNEL") == "quic" {
		if rest, ok := strings.CutPrefix(dsn, "grpcs://"); ok {
			return "quic://" + rest
		}
	}
	return dsn
}

// startAgent runs an in-process agent; the returned func stops it.
func (e *env) startAgent(dsn string) func() {
	a, err := server.NewAgent(server.AgentConfig{DSN: dsn, Logger: testLogger()})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	return func() { cancel(); <-done }
}

func (e *env) waitOnline(agent string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if e.gw.Hub.Online(agent) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("agent %s did not come online", agent)
}

// api calls the REST API as admin.
func (e *env) api(method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+e.gw.APIAddr+path, r)
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) must(method, path string, body any) []byte {
	code, b := e.api(method, path, body)
	if code/100 != 2 {
		panic(fmt.Sprintf("%s %s: %d %s", method, path, code, b))
	}
	return b
}

// conninfo is what a user pastes into psql.
func (e *env) conninfo(connection, token string) string {
	host, port := splitHostPort(e.gw.PGAddr)
	return fmt.Sprintf("host=%s port=%s user=alice dbname=%s password=%s sslmode=require", host, port, connection, token)
}

func (e *env) directConninfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=app password=app-secret sslmode=disable", e.pg.Port())
}

func splitHostPort(a string) (string, string) {
	i := strings.LastIndexByte(a, ':')
	return a[:i], a[i+1:]
}

// runTool runs a client binary with stdin, returning stdout and stderr.
func runTool(t testing.TB, stdin io.Reader, bin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20", "PSQLRC=/dev/null")
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}
