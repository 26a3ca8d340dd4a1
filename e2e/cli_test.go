package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/internal/scratchpg"
)

var buildOnce struct {
	sync.Once
	bin string
	err error
}

// sluiceBin builds cmd/sluice once per test binary.
func sluiceBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.bin = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", buildOnce.bin, "../cmd/sluice").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.bin
}

// proc is a background sluice process, stopped with SIGTERM at cleanup.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuf
	done   chan error
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func startProc(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, stderr: &lockedBuf{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and requires a prompt, clean exit.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.cmd.Args[1], err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("%s did not stop within 15s of SIGTERM", p.cmd.Args[1])
	}
}

// cli runs one sluice command and returns its stdout.
func cli(t *testing.T, env []string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(sluiceBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sluice %v: %v\nstderr: %s", args, err, errb.String())
	}
	return string(out)
}

func freeAddr(t *testing.T) string {
	p, err := scratchpg.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// TestCLIEndToEnd drives the documented CLI contract with real processes:
// gateway, agent, admin apply/get/create/delete, login, token, ls, connect.
func TestCLIEndToEnd(t *testing.T) {
	bin := sluiceBin(t)
	data := t.TempDir()
	apiAddr, tunAddr, pgAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := []string{
		"SLUICE_DATA_DIR=" + data, "SLUICE_API_ADDR=" + apiAddr, "SLUICE_TUNNEL_ADDR=" + tunAddr,
		"SLUICE_PG_ADDR=" + pgAddr, "SLUICE_MYSQL_ADDR=127.0.0.1:0", "SLUICE_API=http://" + apiAddr, "SLUICE_HOME=" + filepath.Join(data, "home"),
		"SLUICE_LOG_LEVEL=warn", "SLUICE_METRICS_ADDR=127.0.0.1:0",
	}
	gw := startProc(t, env, bin, "gateway")
	waitHTTP(t, "http://"+apiAddr+"/healthz", gw)
	if fi, err := os.Stat(filepath.Join(data, "admin.token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v, want mode 0600", err, fi)
	}

	dsn := strings.TrimSpace(cli(t, env, "", "admin", "create", "agent", "cli-agent"))
	if strings.Count(dsn, "\n") != 0 || !strings.HasPrefix(dsn, "grpcs://cli-agent:") || !strings.Contains(dsn, "ca=sha256:") {
		t.Fatalf("create agent printed %q, want one grpcs DSN line pinning the CA", dsn)
	}
	startProc(t, append(env, "SLUICE_KEY="+tunnelDSN(dsn)), bin, "agent")

	yaml := fmt.Sprintf(`kind: rule
name: cli-users
groups: [cli-users]
connections: [pg-cli]
---
kind: user
name: bob
password: "bob-pw"
groups: [cli-users]
---
kind: connection
name: pg-cli
agent: cli-agent
type: postgres
target: %s
`, E.pg.URL("app", "app-secret", "app"))
	f := filepath.Join(data, "apply.yaml")
	os.WriteFile(f, []byte(yaml), 0o600)
	cli(t, env, "", "admin", "apply", "-f", f)

	var conns []struct {
		Name   string
		Online bool
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		json.Unmarshal([]byte(cli(t, env, "", "admin", "get", "connections", "-o", "json")), &conns)
		if len(conns) == 1 && conns[0].Name == "pg-cli" && conns[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg-cli never online: %+v", conns)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A user logs in, lists, and connects with psql needing no password.
	userEnv := append(append([]string{}, env...), "SLUICE_TOKEN=", "SLUICE_HOME="+filepath.Join(data, "bob-home"))
	cli(t, userEnv, "bob-pw\n", "login", "--user", "bob")
	tok := strings.TrimSpace(cli(t, userEnv, "", "token"))
	if !strings.HasPrefix(tok, "slc_") {
		t.Fatalf("sluice token printed %q", tok)
	}
	if ls := cli(t, userEnv, "", "ls"); !strings.Contains(ls, "pg-cli") {
		t.Fatalf("sluice ls: %q", ls)
	}
	localAddr := freeAddr(t)
	_, localPort := splitHostPort(localAddr)
	connect := startProc(t, userEnv, bin, "connect", "pg-cli", "--port", localPort)
	waitStderr(t, connect, "listening on")
	out, errOut, err := runTool(t, nil, E.psql, "host=127.0.0.1 port="+localPort+" dbname=pg-cli", "-X", "-At", "-c", "SELECT current_user, 1+1")
	if err != nil || strings.TrimSpace(out) != "app|2" {
		t.Fatalf("psql via sluice connect: %q %v %s", out, err, errOut)
	}

	// An admin-issued token works directly with psql.
	adminTok := strings.TrimSpace(cli(t, env, "", "admin", "create", "token", "bob", "--ttl", "1h"))
	host, port := splitHostPort(pgAddr)
	out, errOut, err = runTool(t, nil, E.psql, fmt.Sprintf("host=%s port=%s user=bob dbname=pg-cli password=%s", host, port, adminTok), "-X", "-At", "-c", "SELECT 7")
	if err != nil || strings.TrimSpace(out) != "7" {
		t.Fatalf("psql with admin-issued token: %q %v %s", out, err, errOut)
	}

	// Sessions are recorded (written in batches: allow a moment).
	var sessions []struct{ User, Connection, Outcome string }
	for deadline := time.Now().Add(10 * time.Second); ; {
		json.Unmarshal([]byte(cli(t, env, "", "admin", "get", "sessions", "-o", "json")), &sessions)
		ok := 0
		for _, s := range sessions {
			if s.User == "bob" && s.Connection == "pg-cli" && s.Outcome == "ok" {
				ok++
			}
		}
		if ok >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions not recorded: %+v", sessions)
		}
		time.Sleep(100 * time.Millisecond)
	}

	cli(t, env, "", "admin", "delete", "agent", "cli-agent")
	if agents := cli(t, env, "", "admin", "get", "agents"); strings.Contains(agents, "cli-agent") {
		t.Fatalf("deleted agent still listed: %s", agents)
	}
	e := connectErr(t, fmt.Sprintf("host=%s port=%s user=bob dbname=pg-cli password=%s", host, port, adminTok))
	if e.Code != "08006" {
		t.Fatalf("after deleting the agent got %s %s, want 08006", e.Code, e.Message)
	}
}

func waitHTTP(t *testing.T, url string, p *proc) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("%s never answered\n%s", url, p.stderr.String())
}

func waitStderr(t *testing.T, p *proc, s string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), s) {
			return
		}
	}
	t.Fatalf("never saw %q in:\n%s", s, p.stderr.String())
}

// TestDemoCheck runs what `make demo` runs, in its self-check mode.
func TestDemoCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin(t), "demo", "--check", "--api-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0", "--mysql-addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice demo --check: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	var psqlLine, check string
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, `psql "host=`) {
			psqlLine = l
		}
		if strings.HasPrefix(l, "check:") {
			check = l
		}
	}
	if psqlLine == "" || check != "check: 6 customers through the gateway" {
		t.Fatalf("demo output lacks the psql line or the check:\n%s", out)
	}
}
