package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/transport"
)

var _ Agents = (*transport.Hub)(nil)

type fakeAgents struct {
	mu           sync.Mutex
	online       map[string]bool
	disconnected []string
}

func (f *fakeAgents) Online(n string) bool { f.mu.Lock(); defer f.mu.Unlock(); return f.online[n] }
func (f *fakeAgents) Disconnect(n string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected = append(f.disconnected, n)
	delete(f.online, n)
}

type env struct {
	t      *testing.T
	srv    *httptest.Server
	st     store.Store
	agents *fakeAgents
	auth   *auth.Service
	now    time.Time
	admin  string // admin token
	alice  string // non-admin token
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, agents: &fakeAgents{online: map[string]bool{}}, now: t0}
	clock := func() time.Time { return e.now }
	cfg := Config{
		Store: st, Clock: clock, TunnelAddr: "127.0.0.1:8010", TunnelTLS: true,
		CAFingerprint: "sha256:abcd", CAPEM: []byte("-----BEGIN CERTIFICATE-----\n"), PGAddr: "127.0.0.1:15432",
		Agents: e.agents, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(s.Handler())
	t.Cleanup(e.srv.Close)
	e.auth = auth.New(st, clock, nil)
	ctx := context.Background()
	st.PutUser(ctx, store.User{Name: "admin", Groups: []string{"admin"}, CreatedAt: t0})
	st.PutUser(ctx, store.User{Name: "alice", Groups: []string{"dev"}, CreatedAt: t0})
	e.admin, _, _ = e.auth.IssueToken(ctx, "admin", 24*time.Hour)
	e.alice, _, _ = e.auth.IssueToken(ctx, "alice", 24*time.Hour)
	return e
}

// do sends a request and returns the status and the raw body; a JSON
// response is decoded into out when out is non-nil.
func (e *env) do(method, path, token, body string, out any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		var ej map[string]any
		if err := json.Unmarshal(raw, &ej); err != nil || len(ej) != 1 || ej["error"] == "" {
			e.t.Fatalf("%s %s: status %d, error body not {\"error\":...}: %q", method, path, resp.StatusCode, raw)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			e.t.Fatalf("%s %s: error content type %q", method, path, resp.Header.Get("Content-Type"))
		}
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

func (e *env) want(status int, method, path, token, body string, out any) string {
	e.t.Helper()
	got, raw := e.do(method, path, token, body, out)
	if got != status {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, raw)
	}
	return raw
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
}

func TestHealthReadyInfo(t *testing.T) {
	ready := error(nil)
	e := newEnv(t, func(c *Config) { c.Ready = func() error { return ready } })
	if body := e.want(200, "GET", "/healthz", "", "", nil); body != "ok" {
		t.Fatalf("healthz %q", body)
	}
	e.want(200, "GET", "/readyz", "", "", nil)
	ready = io.ErrUnexpectedEOF
	e.want(503, "GET", "/readyz", "", "", nil)
	ready = nil
	e.st.Close()
	e.want(503, "GET", "/readyz", "", "", nil)
}

func TestInfo(t *testing.T) {
	e := newEnv(t, nil)
	var info map[string]string
	e.want(200, "GET", "/api/v1/info", "", "", &info)
	want := map[string]string{"pg_addr": "127.0.0.1:15432", "tunnel_addr": "127.0.0.1:8010", "ca_fingerprint": "sha256:abcd", "ca_pem": "-----BEGIN CERTIFICATE-----\n"}
	for k, v := range want {
		if info[k] != v {
			t.Fatalf("info[%s] = %q, want %q", k, info[k], v)
		}
	}
}

func TestUnknownRouteAndMethodAreJSON(t *testing.T) {
	e := newEnv(t, nil)
	e.want(404, "GET", "/api/v1/nope", e.admin, "", nil)
	e.want(405, "PATCH", "/api/v1/users/x", e.admin, "", nil)
}

func TestAuthRequired(t *testing.T) {
	e := newEnv(t, nil)
	routes := [][2]string{
		{"GET", "/api/v1/me"}, {"GET", "/api/v1/users"}, {"PUT", "/api/v1/users/x"}, {"DELETE", "/api/v1/users/x"},
		{"POST", "/api/v1/users/x/tokens"}, {"GET", "/api/v1/agents"}, {"POST", "/api/v1/agents"},
		{"PUT", "/api/v1/agents/x"}, {"DELETE", "/api/v1/agents/x"}, {"GET", "/api/v1/connections"},
		{"PUT", "/api/v1/connections/x"}, {"DELETE", "/api/v1/connections/x"}, {"GET", "/api/v1/sessions"},
	}
	expired, _, _ := e.auth.IssueToken(context.Background(), "admin", time.Minute)
	e.now = e.now.Add(2 * time.Minute)
	for _, rt := range routes {
		e.want(401, rt[0], rt[1], "", "{}", nil)
		e.want(401, rt[0], rt[1], "slc_bogus", "{}", nil)
		e.want(401, rt[0], rt[1], expired, "{}", nil)
	}
	// Non-admin on admin routes.
	for _, rt := range routes {
		if rt[1] == "/api/v1/me" || (rt[1] == "/api/v1/connections" || rt[1] == "/api/v1/sessions") && rt[0] == "GET" || strings.HasSuffix(rt[1], "/tokens") {
			continue
		}
		e.want(403, rt[0], rt[1], e.alice, "{}", nil)
	}
	// Scheme is case-insensitive.
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/me", nil)
	req.Header.Set("Authorization", "bearer "+e.alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("lower-case bearer: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

func TestLoginAndMe(t *testing.T) {
	e := newEnv(t, nil)
	e.want(200, "PUT", "/api/v1/users/bob", e.admin, `{"password":"pw-bob","groups":["dev"]}`, nil)
	var lr struct {
		Token     string    `json:"token"`
		User      string    `json:"user"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	e.want(200, "POST", "/api/v1/login", "", `{"user":"bob","password":"pw-bob"}`, &lr)
	if lr.User != "bob" || !auth.LooksLikeToken(lr.Token) || !lr.ExpiresAt.Equal(t0.Add(12*time.Hour)) {
		t.Fatalf("login %+v", lr)
	}
	var me struct {
		Name   string   `json:"name"`
		Groups []string `json:"groups"`
	}
	e.want(200, "GET", "/api/v1/me", lr.Token, "", &me)
	if me.Name != "bob" || !slices.Equal(me.Groups, []string{"dev"}) {
		t.Fatalf("me %+v", me)
	}
	e.want(401, "POST", "/api/v1/login", "", `{"user":"bob","password":"nope"}`, nil)
	e.want(401, "POST", "/api/v1/login", "", `{"user":"ghost","password":"pw-bob"}`, nil)
	e.want(401, "POST", "/api/v1/login", "", `{"user":"admin","password":""}`, nil) // no password set
	e.want(400, "POST", "/api/v1/login", "", `{"user":"bob","password":"pw-bob","otp":1}`, nil)
	e.want(400, "POST", "/api/v1/login", "", `{"user":`, nil)
	e.want(400, "POST", "/api/v1/login", "", ``, nil)
	e.want(400, "POST", "/api/v1/login", "", `{"user":"bob","password":"pw-bob"} {}`, nil)
	e.want(400, "POST", "/api/v1/login", "", `{"user":"bob","password":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, nil)
}

func TestUsers(t *testing.T) {
	e := newEnv(t, nil)
	var u map[string]any
	e.want(200, "PUT", "/api/v1/users/carol", e.admin, `{"groups":["dev","dev","ops"]}`, &u)
	if u["name"] != "carol" || u["has_password"] != false || len(u["groups"].([]any)) != 2 || u["created_at"] != "2025-06-01T12:00:00Z" {
		t.Fatalf("put user %v", u)
	}
	// Password only: groups kept.
	e.now = t0.Add(time.Hour)
	e.want(200, "PUT", "/api/v1/users/carol", e.admin, `{"password":"x"}`, &u)
	if u["has_password"] != true || len(u["groups"].([]any)) != 2 || u["created_at"] != "2025-06-01T12:00:00Z" {
		t.Fatalf("update user %v", u)
	}
	e.want(200, "PUT", "/api/v1/users/carol", e.admin, `{"password":""}`, &u)
	if u["has_password"] != false {
		t.Fatalf("password not cleared %v", u)
	}
	e.want(200, "PUT", "/api/v1/users/dave", e.admin, ``, nil) // empty body: a user with nothing
	var list []map[string]any
	e.want(200, "GET", "/api/v1/users", e.admin, "", &list)
	var names []string
	for _, x := range list {
		names = append(names, x["name"].(string))
		if _, ok := x["password_hash"]; ok {
			t.Fatal("password hash exposed")
		}
	}
	if !slices.Equal(names, []string{"admin", "alice", "carol", "dave"}) {
		t.Fatalf("users %v", names)
	}
	e.want(400, "PUT", "/api/v1/users/carol", e.admin, `{"groups":"admin"}`, nil)
	e.want(400, "PUT", "/api/v1/users/carol", e.admin, `{"role":"admin"}`, nil)
	e.want(400, "PUT", "/api/v1/users/bad%20name", e.admin, `{}`, nil)
	e.want(400, "PUT", "/api/v1/users/carol", e.admin, `{"groups":["a b"]}`, nil)
	e.want(400, "PUT", "/api/v1/users/carol", e.admin, strings.Repeat(" ", MaxBodyBytes+1)+"{}", nil)

	e.want(204, "DELETE", "/api/v1/users/carol", e.admin, "", nil)
	e.want(404, "DELETE", "/api/v1/users/carol", e.admin, "", nil)
}

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	var tr struct {
		ID        string    `json:"id"`
		Token     string    `json:"token"`
		User      string    `json:"user"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	// Self-service, default TTL.
	e.want(200, "POST", "/api/v1/users/alice/tokens", e.alice, ``, &tr)
	if tr.User != "alice" || tr.ID == "" || !auth.LooksLikeToken(tr.Token) || !tr.ExpiresAt.Equal(t0.Add(8*time.Hour)) {
		t.Fatalf("token %+v", tr)
	}
	e.want(200, "GET", "/api/v1/me", tr.Token, "", nil)
	// Admin for another user, explicit TTL.
	e.want(200, "POST", "/api/v1/users/alice/tokens", e.admin, `{"ttl":"30m"}`, &tr)
	if !tr.ExpiresAt.Equal(t0.Add(30 * time.Minute)) {
		t.Fatalf("ttl %+v", tr)
	}
	// A non-admin cannot mint for someone else.
	e.want(403, "POST", "/api/v1/users/admin/tokens", e.alice, `{}`, nil)
	e.want(400, "POST", "/api/v1/users/alice/tokens", e.alice, `{"ttl":"forever"}`, nil)
	e.want(400, "POST", "/api/v1/users/alice/tokens", e.alice, `{"ttl":"-1h"}`, nil)
	e.want(400, "POST", "/api/v1/users/alice/tokens", e.alice, `{"ttl":"1h","scope":"x"}`, nil)
	e.want(404, "POST", "/api/v1/users/ghost/tokens", e.admin, `{}`, nil)
}

type keyResp struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	DSN  string `json:"dsn"`
}

func TestAgents(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	var k keyResp
	e.want(200, "POST", "/api/v1/agents", e.admin, `{"name":"dc1"}`, &k)
	if k.Name != "dc1" || len(k.Key) != 43 || k.DSN != "grpcs://dc1:"+k.Key+"@127.0.0.1:8010?mode=standard&ca=sha256:abcd" {
		t.Fatalf("create %+v", k)
	}
	if err := e.auth.VerifyAgent(ctx, "dc1", k.Key); err != nil {
		t.Fatalf("new key rejected: %v", err)
	}
	if len(e.agents.disconnected) != 0 {
		t.Fatal("disconnected on create")
	}
	// Rotate.
	e.agents.online["dc1"] = true
	var k2 keyResp
	e.want(200, "POST", "/api/v1/agents", e.admin, `{"name":"dc1"}`, &k2)
	if k2.Key == k.Key || e.auth.VerifyAgent(ctx, "dc1", k.Key) == nil || e.auth.VerifyAgent(ctx, "dc1", k2.Key) != nil {
		t.Fatal("key not rotated")
	}
	if !slices.Equal(e.agents.disconnected, []string{"dc1"}) {
		t.Fatalf("disconnected %v", e.agents.disconnected)
	}
	// A QUIC DSN on request; anything else is refused.
	var kq keyResp
	e.want(200, "POST", "/api/v1/agents", e.admin, `{"name":"dcq","transport":"quic"}`, &kq)
	if kq.DSN != "quic://dcq:"+kq.Key+"@127.0.0.1:8010?mode=standard&ca=sha256:abcd" {
		t.Fatalf("quic dsn %+v", kq)
	}
	e.want(400, "POST", "/api/v1/agents", e.admin, `{"name":"dcx","transport":"udp"}`, nil)
	e.want(204, "DELETE", "/api/v1/agents/dcq", e.admin, "", nil)
	// PUT: create new with key; existing untouched.
	var k3 keyResp
	e.want(200, "PUT", "/api/v1/agents/dc2", e.admin, `{}`, &k3)
	if k3.Name != "dc2" || k3.Key == "" || !strings.HasPrefix(k3.DSN, "grpcs://dc2:") {
		t.Fatalf("put new %+v", k3)
	}
	raw := e.want(200, "PUT", "/api/v1/agents/dc1", e.admin, `{}`, &k3)
	if strings.TrimSpace(raw) != `{"name":"dc1"}` || e.auth.VerifyAgent(ctx, "dc1", k2.Key) != nil {
		t.Fatalf("put existing %s", raw)
	}
	e.agents.online["dc2"] = true
	var list []map[string]any
	e.want(200, "GET", "/api/v1/agents", e.admin, "", &list)
	if len(list) != 2 || list[0]["name"] != "dc1" || list[0]["online"] != false || list[1]["online"] != true || list[0]["created_at"] != "2025-06-01T12:00:00Z" {
		t.Fatalf("list %v", list)
	}
	for _, a := range list {
		if _, ok := a["key"]; ok {
			t.Fatal("key listed")
		}
	}
	e.want(400, "POST", "/api/v1/agents", e.admin, `{"name":"a:b"}`, nil)
	e.want(400, "POST", "/api/v1/agents", e.admin, `{}`, nil)
	e.want(400, "POST", "/api/v1/agents", e.admin, `{"name":"x","key":"y"}`, nil)
	e.want(400, "PUT", "/api/v1/agents/dc3", e.admin, `{"name":"dc3"}`, nil)

	e.want(204, "DELETE", "/api/v1/agents/dc2", e.admin, "", nil)
	if e.auth.VerifyAgent(ctx, "dc2", k3.Key) == nil || e.agents.disconnected[len(e.agents.disconnected)-1] != "dc2" {
		t.Fatal("delete did not revoke and disconnect")
	}
	e.want(404, "DELETE", "/api/v1/agents/dc2", e.admin, "", nil)
}

func TestAgentDSNWithoutTLS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TunnelTLS = false; c.CAFingerprint = "" })
	var k keyResp
	e.want(200, "POST", "/api/v1/agents", e.admin, `{"name":"dc1"}`, &k)
	if k.DSN != "grpc://dc1:"+k.Key+"@127.0.0.1:8010?mode=standard" {
		t.Fatalf("dsn %s", k.DSN)
	}
}

func TestConnections(t *testing.T) {
	e := newEnv(t, nil)
	e.want(200, "PUT", "/api/v1/agents/dc1", e.admin, `{}`, nil)
	e.agents.online["dc1"] = true
	var c map[string]any
	e.want(200, "PUT", "/api/v1/connections/pg", e.admin, `{"agent":"dc1","target":"postgres://app:s3cret@db:5432/app"}`, &c)
	if c["type"] != "postgres" || c["target"] != "postgres://app:xxxxx@db:5432/app" || c["online"] != true {
		t.Fatalf("put %v", c)
	}
	e.want(400, "PUT", "/api/v1/connections/pg2", e.admin, `{"agent":"ghost","target":"x"}`, nil)
	e.want(400, "PUT", "/api/v1/connections/pg2", e.admin, `{"agent":"","target":"x"}`, nil)
	e.want(400, "PUT", "/api/v1/connections/pg2", e.admin, `{"agent":"dc1","target":""}`, nil)
	e.want(400, "PUT", "/api/v1/connections/pg2", e.admin, `{"agent":"dc1","target":"x","type":"gopher"}`, nil)
	e.want(400, "PUT", "/api/v1/connections/pg2", e.admin, `{"agent":"dc1","target":"x","extra":1}`, nil)
	e.want(400, "PUT", "/api/v1/connections/pg2", e.admin, `not json`, nil)
	e.want(200, "PUT", "/api/v1/connections/kv", e.admin, `{"agent":"dc1","type":"postgres","target":"host=db password=hunter2 user=app"}`, nil)

	var adminList, userList []map[string]any
	e.want(200, "GET", "/api/v1/connections", e.admin, "", &adminList)
	e.want(200, "GET", "/api/v1/connections", e.alice, "", &userList)
	if len(adminList) != 2 || adminList[0]["name"] != "kv" || adminList[0]["target"] != "host=db password=xxxxx user=app" {
		t.Fatalf("admin list %v", adminList)
	}
	for _, x := range userList {
		if _, ok := x["target"]; ok {
			t.Fatalf("target shown to non-admin: %v", x)
		}
		if x["agent"] != "dc1" || x["type"] != "postgres" || x["online"] != true {
			t.Fatalf("user list %v", x)
		}
	}
	got, _ := e.st.GetConnection(context.Background(), "pg")
	if got.Target != "postgres://app:s3cret@db:5432/app" {
		t.Fatalf("stored target altered: %s", got.Target)
	}
	e.want(204, "DELETE", "/api/v1/connections/pg", e.admin, "", nil)
	e.want(404, "DELETE", "/api/v1/connections/pg", e.admin, "", nil)
}

func TestRedactTarget(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h:5432/db?sslmode=require": "postgres://u:xxxxx@h:5432/db?sslmode=require",
		"postgres://u@h/db":                        "postgres://u@h/db",
		"postgres://h/db?password=p&user=u":        "postgres://h/db?password=xxxxx&user=u",
		"host=h password='a b' user=u":             "host=h password=xxxxx user=u",
		"host=h sslpassword=x":                     "host=h sslpassword=xxxxx",
		"env:DB_URL":                               "env:DB_URL",
	} {
		if got := RedactTarget(in); got != want {
			t.Errorf("RedactTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessions(t *testing.T) {
	e := newEnv(t, nil)
	var batch []store.Session
	for i := range 150 {
		s := store.Session{ID: "s" + string(rune('A'+i%26)) + strings.Repeat("x", i/26), User: "alice", Connection: "pg",
			Protocol: "postgres", ClientAddr: "127.0.0.1:1", Start: t0.Add(time.Duration(i) * time.Second), Outcome: "running"}
		if i == 149 {
			s.End, s.Outcome, s.BytesIn, s.BytesOut, s.Error = t0.Add(time.Hour), "error", 5, 6, "boom"
		}
		batch = append(batch, s)
	}
	if err := e.st.WriteSessions(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	e.want(200, "GET", "/api/v1/sessions", e.admin, "", &list)
	if len(list) != 100 {
		t.Fatalf("default limit: %d", len(list))
	}
	top := list[0]
	if top["id"] != batch[149].ID || top["outcome"] != "error" || top["error"] != "boom" || top["bytes_in"] != 5.0 ||
		top["bytes_out"] != 6.0 || top["end"] != "2025-06-01T13:00:00Z" || top["client_addr"] != "127.0.0.1:1" ||
		top["user"] != "alice" || top["connection"] != "pg" || top["protocol"] != "postgres" {
		t.Fatalf("newest %v", top)
	}
	if v, ok := list[1]["end"]; !ok || v != nil {
		t.Fatalf("running session end = %v (present %v), want null", v, ok)
	}
	e.want(200, "GET", "/api/v1/sessions?limit=3", e.admin, "", &list)
	if len(list) != 3 {
		t.Fatalf("limit=3: %d", len(list))
	}
	e.want(400, "GET", "/api/v1/sessions?limit=abc", e.admin, "", nil)
	e.want(400, "GET", "/api/v1/sessions?limit=0", e.admin, "", nil)
}
