package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is an httptest stand-in for the gateway REST API.
type fakeAPI struct {
	t     *testing.T
	srv   *httptest.Server
	token string // the bearer token it accepts

	mu       sync.Mutex
	requests []string // "METHOD /path body"
	agents   map[string]bool
	info     *gatewayInfo
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, token: "tok-admin", agents: map[string]bool{"old-agent": true}}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+f.token {
				fail(w, 401, "invalid or expired token")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /api/v1/login", func(w http.ResponseWriter, r *http.Request) {
		var req loginRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.User != "alice" || req.Password != "pw-alice" {
			fail(w, 401, "invalid user or password")
			return
		}
		reply(w, map[string]string{"token": "tok-alice", "user": "alice", "expires_at": "2999-01-01T00:00:00Z"})
	})
	mux.HandleFunc("POST /api/v1/agents", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Name string }
		json.NewDecoder(r.Body).Decode(&req)
		reply(w, map[string]string{"name": req.Name, "key": "k", "dsn": "grpc://" + req.Name + ":k@127.0.0.1:8010?mode=standard"})
	}))
	mux.HandleFunc("PUT /api/v1/agents/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		f.mu.Lock()
		existed := f.agents[name]
		f.agents[name] = true
		f.mu.Unlock()
		if existed {
			reply(w, map[string]string{"name": name})
			return
		}
		reply(w, map[string]string{"name": name, "key": "k", "dsn": "grpc://" + name + ":k@127.0.0.1:8010?mode=standard"})
	}))
	mux.HandleFunc("PUT /api/v1/users/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"name": r.PathValue("name")})
	}))
	mux.HandleFunc("PUT /api/v1/connections/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		var req connectionPut
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		ok := f.agents[req.Agent]
		f.mu.Unlock()
		if !ok {
			fail(w, 400, "agent \""+req.Agent+"\" does not exist")
			return
		}
		reply(w, map[string]string{"name": r.PathValue("name")})
	}))
	mux.HandleFunc("GET /api/v1/agents", authed(func(w http.ResponseWriter, r *http.Request) {
		reply(w, []map[string]any{
			{"name": "demo-agent", "online": true, "created_at": "2025-01-02T03:04:05.123Z"},
			{"name": "old-agent", "online": false, "created_at": "2024-01-02T03:04:05Z"},
		})
	}))
	mux.HandleFunc("GET /api/v1/connections", authed(func(w http.ResponseWriter, r *http.Request) {
		reply(w, []map[string]any{{"name": "pg-demo", "agent": "demo-agent", "type": "postgres", "online": true},
			{"name": "pg-safe", "agent": "demo-agent", "type": "postgres", "online": false,
				"guardrails": map[string]any{"deny": []string{"drop", "truncate"}, "deny_tables": []string{"audit_log"}},
				"masking":    map[string]any{"detectors": []string{"email"}, "style": "partial"}}})
	}))
	mux.HandleFunc("GET /api/v1/sessions", authed(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") != "7" {
			fail(w, 400, "want limit=7, got "+r.URL.RawQuery)
			return
		}
		reply(w, []map[string]any{{"id": 42, "user": "alice", "connection": "pg-demo", "protocol": "postgres",
			"client_addr": "127.0.0.1:5555", "start": "2025-01-02T03:04:05Z", "end": nil,
			"bytes_in": 10, "bytes_out": 20, "outcome": "ok", "error": ""}})
	}))
	mux.HandleFunc("POST /api/v1/users/{name}/tokens", authed(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]string
		json.NewDecoder(r.Body).Decode(&req)
		reply(w, map[string]string{"id": "t1", "token": "tok-for-" + r.PathValue("name") + "-" + req["ttl"], "user": r.PathValue("name"), "expires_at": "2999-01-01T00:00:00Z"})
	}))
	mux.HandleFunc("DELETE /api/v1/users/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		fail(w, 404, "user \""+r.PathValue("name")+"\" not found")
	}))
	mux.HandleFunc("GET /api/v1/info", func(w http.ResponseWriter, r *http.Request) {
		if f.info == nil {
			fail(w, 404, "no info")
			return
		}
		reply(w, f.info)
	})
	mux.HandleFunc("GET /api/v1/me", authed(func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"name": "alice", "groups": []string{"dev"}})
	}))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI with a private environment (no real HOME or env vars).
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return env[k] },
	}
	code := a.run(args)
	return cliResult{code, out.String(), errb.String()}
}

func testEnv(t *testing.T, f *fakeAPI) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"SLUICE_API":      f.srv.URL,
		"SLUICE_TOKEN":    f.token,
		"HOME":            filepath.Join(dir, "home"),
		"SLUICE_DATA_DIR": filepath.Join(dir, "data"),
	}
}

func TestCreateAgentPrintsOneLine(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, testEnv(t, f), "", "admin", "create", "agent", "demo-agent")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := "grpc://demo-agent:k@127.0.0.1:8010?mode=standard\n"
	if r.stdout != want {
		t.Fatalf("stdout = %q, want %q", r.stdout, want)
	}
	if f.requests[0] != `POST /api/v1/agents {"name":"demo-agent"}` {
		t.Errorf("request = %q", f.requests[0])
	}
}

func TestCreateToken(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, testEnv(t, f), "", "admin", "create", "token", "bob", "--ttl", "8h")
	if r.code != 0 || r.stdout != "tok-for-bob-8h\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestGetJSONAndTable(t *testing.T) {
	f := newFakeAPI(t)
	env := testEnv(t, f)
	r := runCLI(t, env, "", "admin", "get", "agents", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var agents []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &agents); err != nil || len(agents) != 2 || agents[0]["name"] != "demo-agent" {
		t.Fatalf("json output %q: %v", r.stdout, err)
	}

	r = runCLI(t, env, "", "admin", "get", "agents")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("exit %d, table %q", r.code, r.stdout)
	}
	if !strings.HasPrefix(lines[0], "NAME        ONLINE  CREATED") ||
		!strings.HasPrefix(lines[1], "demo-agent  yes     2025-01-02T03:04:05Z") ||
		!strings.HasPrefix(lines[2], "old-agent   no      2024-01-02T03:04:05Z") {
		t.Errorf("table:\n%s", r.stdout)
	}

	r = runCLI(t, env, "", "admin", "get", "sessions", "--limit", "7")
	if r.code != 0 || !strings.Contains(r.stdout, "42  alice") || !strings.Contains(r.stdout, "BYTES_OUT") {
		t.Errorf("sessions exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, env, "", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "pg-demo  postgres  demo-agent  yes") {
		t.Errorf("ls exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "", "admin", "get", "connections")
	lines = strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasSuffix(lines[0], "POLICY") ||
		!strings.HasSuffix(lines[1], "  -") || !strings.HasSuffix(lines[2], "  guardrails:3 masking:1") {
		t.Errorf("connections exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestErrorsSurfaceAPIMessage(t *testing.T) {
	f := newFakeAPI(t)
	env := testEnv(t, f)
	r := runCLI(t, env, "", "admin", "delete", "user", "nobody")
	if r.code != 1 || r.stdout != "" || r.stderr != "sluice: user \"nobody\" not found (HTTP 404)\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	env["SLUICE_TOKEN"] = "wrong"
	r = runCLI(t, env, "", "admin", "get", "agents")
	if r.code != 1 || !strings.Contains(r.stderr, "sluice: invalid or expired token") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	env := testEnv(t, f)
	for _, args := range [][]string{{"frobnicate"}, {}, {"admin", "get"}, {"admin", "get", "widgets"},
		{"admin", "create", "agent"}, {"admin", "get", "agents", "-o", "yaml"}, {"admin", "get", "agents", "--bogus"}} {
		r := runCLI(t, env, "", args...)
		if r.code != 2 || r.stdout != "" || r.stderr == "" {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("usage errors reached the API: %v", f.requests)
	}
	if r := runCLI(t, env, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "sluice ") {
		t.Errorf("version: %+v", r)
	}
}

func TestApplyAgainstAPI(t *testing.T) {
	f := newFakeAPI(t)
	env := testEnv(t, f)
	yml := `kind: connection
name: pg-demo
agent: demo-agent
type: postgres
target: postgres://app:secret@127.0.0.1:5432/app
---
kind: agent
name: old-agent
---
kind: user
name: alice
groups: [dev]
---
kind: agent
name: demo-agent
`
	r := runCLI(t, env, yml, "admin", "apply", "-f", "-")
	if r.code != 0 {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if r.stdout != "agent/demo-agent dsn: grpc://demo-agent:k@127.0.0.1:8010?mode=standard\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	wantErr := "agent/old-agent applied\nagent/demo-agent created\nuser/alice applied\nconnection/pg-demo applied\n"
	if r.stderr != wantErr {
		t.Errorf("stderr = %q, want %q", r.stderr, wantErr)
	}
	want := []string{
		"PUT /api/v1/agents/old-agent {}",
		"PUT /api/v1/agents/demo-agent {}",
		`PUT /api/v1/users/alice {"groups":["dev"]}`,
		`PUT /api/v1/connections/pg-demo {"agent":"demo-agent","type":"postgres","target":"postgres://app:secret@127.0.0.1:5432/app"}`,
	}
	if strings.Join(f.requests, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(f.requests, "\n"), strings.Join(want, "\n"))
	}

	// Policy blocks travel in the PUT, checked and normalised.
	f.requests = nil
	pol := `kind: connection
name: pg-safe
agent: demo-agent
type: postgres
target: x
guardrails:
  deny: [DROP, truncate]
masking:
  detectors: [email, employee_id]
  patterns:
    - name: employee_id
      regex: 'EMP-[0-9]{6}'
`
	if r = runCLI(t, env, pol, "admin", "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply policy: exit %d stderr %q", r.code, r.stderr)
	}
	wantPut := `PUT /api/v1/connections/pg-safe {"agent":"demo-agent","type":"postgres","target":"x",` +
		`"guardrails":{"deny":["drop","truncate"]},` +
		`"masking":{"detectors":["email","employee_id"],"style":"partial","patterns":[{"name":"employee_id","regex":"EMP-[0-9]{6}"}]}}`
	if len(f.requests) != 1 || f.requests[0] != wantPut {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(f.requests, "\n"), wantPut)
	}

	// A reference the API rejects: the message and the document surface.
	bad := "kind: connection\nname: c2\nagent: ghost\ntype: postgres\ntarget: x\n"
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte(bad), 0o644)
	r = runCLI(t, env, "", "admin", "apply", "-f", file)
	if r.code != 1 || !strings.Contains(r.stderr, `sluice: connection/c2 (document 1): agent "ghost" does not exist (HTTP 400)`) {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
	// A parse error applies nothing.
	n := len(f.requests)
	r = runCLI(t, env, "kind: agent\nname: z\n---\nkind: bogus\nname: q\n", "admin", "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "document 2") || len(f.requests) != n {
		t.Errorf("exit %d stderr %q requests %d->%d", r.code, r.stderr, n, len(f.requests))
	}
}

func TestLoginTokenAndFallbacks(t *testing.T) {
	f := newFakeAPI(t)
	env := testEnv(t, f)
	delete(env, "SLUICE_TOKEN")

	// Not logged in, no admin token.
	r := runCLI(t, env, "", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	// The admin.token convenience on the gateway host.
	os.MkdirAll(env["SLUICE_DATA_DIR"], 0o700)
	os.WriteFile(filepath.Join(env["SLUICE_DATA_DIR"], "admin.token"), []byte(f.token+"\n"), 0o600)
	if r = runCLI(t, env, "", "admin", "get", "agents"); r.code != 0 {
		t.Fatalf("admin.token: exit %d stderr %q", r.code, r.stderr)
	}
	if r = runCLI(t, env, "", "token"); r.code != 1 {
		t.Errorf("token must not print the admin token: %+v", r)
	}

	r = runCLI(t, env, "wrong\n", "login", "--user", "alice")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid user or password") {
		t.Fatalf("bad login: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, env, "pw-alice\n", "login", "--user", "alice")
	if r.code != 0 {
		t.Fatalf("login: exit %d stderr %q", r.code, r.stderr)
	}
	path := filepath.Join(env["HOME"], ".sluice", "credentials.json")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", st, err)
	}
	var c credentials
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &c); err != nil || c.API != f.srv.URL || c.User != "alice" || c.Token != "tok-alice" || c.ExpiresAt == "" {
		t.Fatalf("credentials = %s (%v)", b, err)
	}
	r = runCLI(t, env, "", "token")
	if r.code != 0 || r.stdout != "tok-alice\n" {
		t.Fatalf("token: %+v", r)
	}
	// The saved login now wins over admin.token: alice's token is not the admin's.
	if r = runCLI(t, env, "", "admin", "get", "agents"); r.code != 1 {
		t.Errorf("expected alice's token to be used: %+v", r)
	}
	// Without SLUICE_API, the saved login's API is used.
	delete(env, "SLUICE_API")
	env["SLUICE_TOKEN"] = f.token
	if r = runCLI(t, env, "", "ls"); r.code != 0 {
		t.Errorf("saved API: %+v", r)
	}
	// An expired login says so.
	c.ExpiresAt = "2001-01-01T00:00:00Z"
	writeCredentials(path, &c)
	delete(env, "SLUICE_TOKEN")
	os.Remove(filepath.Join(env["SLUICE_DATA_DIR"], "admin.token"))
	if r = runCLI(t, env, "", "token"); r.code != 1 || !strings.Contains(r.stderr, "expired") {
		t.Errorf("expired token: %+v", r)
	}
	if r = runCLI(t, env, "", "ls"); r.code != 1 || !strings.Contains(r.stderr, "expired") {
		t.Errorf("expired ls: %+v", r)
	}
}
