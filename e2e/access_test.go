package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/webhook"
	"github.com/sluice-gw/sluice/internal/server"
)

// newUser creates a user in groups and returns an access token and its id.
func newUser(t *testing.T, name string, groups ...string) (token, id string) {
	t.Helper()
	if groups == nil {
		groups = []string{}
	}
	E.must("PUT", "/api/v1/users/"+name, map[string]any{"password": name + "-pw", "groups": groups})
	var tok struct{ Token, ID string }
	json.Unmarshal(E.must("POST", "/api/v1/users/"+name+"/tokens", map[string]any{"ttl": "1h"}), &tok)
	if tok.Token == "" {
		t.Fatal("no token issued")
	}
	return tok.Token, tok.ID
}

func userConninfo(user, connection, token string) string {
	host, port := splitHostPort(E.gw.PGAddr)
	return fmt.Sprintf("host=%s port=%s user=%s dbname=%s password=%s sslmode=require", host, port, user, connection, token)
}

// TestAccessRules: no rule → 42501 before anything reaches the agent; a
// rule for the user's group → allowed; a rule outside its hours → denied,
// saying when.
func TestAccessRules(t *testing.T) {
	tok, _ := newUser(t, "carol", "analysts")
	conn := userConninfo("carol", "pg-demo", tok)

	e := connectErr(t, conn)
	if e.Code != "42501" || !strings.Contains(e.Message, "no access rule") {
		t.Fatalf("without a rule: %s %q", e.Code, e.Message)
	}
	// Hours that never include now: the other half of the week.
	day := time.Now().UTC().Weekday()
	other := time.Weekday((int(day) + 3) % 7).String()[:3]
	E.must("PUT", "/api/v1/rules/analysts-offhours", map[string]any{"groups": []string{"analysts"}, "connections": []string{"pg-demo"}, "hours": other + " 00:00-23:59 UTC"})
	e = connectErr(t, conn)
	if e.Code != "42501" || !strings.Contains(e.Message, other) {
		t.Fatalf("outside hours: %s %q", e.Code, e.Message)
	}
	E.must("PUT", "/api/v1/rules/analysts", map[string]any{"groups": []string{"analysts"}, "connections": []string{"pg-demo"}})
	defer E.api("DELETE", "/api/v1/rules/analysts", nil)
	defer E.api("DELETE", "/api/v1/rules/analysts-offhours", nil)
	out, stderr, err := runTool(t, nil, E.psql, conn, "-X", "-At", "-c", "select 40+2")
	if err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("with a rule: %v %q %s", err, out, stderr)
	}
	// The rule names the connection: another one stays closed.
	if e := connectErr(t, userConninfo("carol", "pg-md5", tok)); e.Code != "42501" {
		t.Fatalf("other connection: %s %q", e.Code, e.Message)
	}
	waitSessionOutcome(t, "pg-md5", "denied")
}

// TestTokenRevokedMidSession: revoking a token ends the sessions it opened,
// with a native error.
func TestTokenRevokedMidSession(t *testing.T) {
	tok, id := newUser(t, "dave", "users")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, userConninfo("dave", "pg-demo", tok))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	E.must("DELETE", "/api/v1/tokens/"+id, nil)
	err = c.WaitForNotification(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" || !strings.Contains(pgErr.Message, "revoked") {
		t.Fatalf("after revocation got %v, want FATAL 57P01 saying the token was revoked", err)
	}
	if e := connectErr(t, userConninfo("dave", "pg-demo", tok)); e.Code != "28P01" {
		t.Fatalf("revoked token still logs in: %s %q", e.Code, e.Message)
	}
}

// TestWebhookRetries: a flaky endpoint gets the session events signed,
// at least once, after retries.
func TestWebhookRetries(t *testing.T) {
	const secret = "whsec-e2e"
	var mu sync.Mutex
	attempts := 0
	var started []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts <= 2 { // the first two deliveries fail
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		if ev["type"] == webhook.SessionStarted {
			started = append(started, ev)
		}
	}))
	defer srv.Close()
	E.must("PUT", "/api/v1/webhooks/e2e", map[string]any{"url": srv.URL, "secret": secret, "format": "json", "events": []string{webhook.SessionStarted}})
	defer E.api("DELETE", "/api/v1/webhooks/e2e", nil)
	E.gw.Control.Webhooks.Reload(context.Background())

	if out, stderr, err := runTool(t, nil, E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-At", "-c", "select 1"); err != nil {
		t.Fatalf("psql: %v %s %s", err, out, stderr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, a := len(started), attempts
		mu.Unlock()
		if n > 0 {
			if a < 3 {
				t.Fatalf("delivered after %d attempts, want retries", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session.started delivered after %d attempts", a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	data, _ := started[0]["data"].(map[string]any)
	mu.Unlock()
	if data["user"] != "alice" || data["connection"] != "pg-demo" {
		t.Fatalf("event data %v", data)
	}
}

// TestSharedPostgresStore: two gateways on one PostgreSQL store see each
// other's users, rules and reviews.
func TestSharedPostgresStore(t *testing.T) {
	ctx := context.Background()
	db := fmt.Sprintf("sluice_store_%d", time.Now().UnixNano()%1e6)
	if err := E.pg.CreateDatabase(ctx, db, "app"); err != nil {
		t.Fatal(err)
	}
	dsn := E.pg.URL("app", "app-secret", db)
	start := func() (*server.Gateway, string) {
		cfg := server.DefaultGatewayConfig()
		cfg.DataDir = t.TempDir()
		cfg.APIAddr, cfg.TunnelAddr, cfg.PGAddr, cfg.MySQLAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
		cfg.Logger = testLogger()
		cfg.Store = dsn
		g, err := server.StartGateway(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		return g, g.APIAddr
	}
	a, apiA := start()
	admin, err := a.AdminToken()
	if err != nil {
		t.Fatal(err)
	}
	_, apiB := start() // the admin user exists already: B writes no token of its own
	call := func(api, method, path string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, "http://"+api+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, b := call(apiA, "PUT", "/api/v1/users/erin", map[string]any{"password": "erin-pw", "groups": []string{"ops"}}); code != 200 {
		t.Fatalf("A put user: %d %s", code, b)
	}
	if code, b := call(apiA, "PUT", "/api/v1/rules/ops", map[string]any{"groups": []string{"ops"}, "connections": []string{"*"}, "require_review": true}); code != 200 {
		t.Fatalf("A put rule: %d %s", code, b)
	}
	if code, b := call(apiB, "GET", "/api/v1/users", nil); code != 200 || !strings.Contains(string(b), `"erin"`) {
		t.Fatalf("B does not see A's user: %d %s", code, b)
	}
	if code, b := call(apiB, "GET", "/api/v1/rules/ops", nil); code != 200 || !strings.Contains(string(b), "ops") {
		t.Fatalf("B does not see A's rule: %d %s", code, b)
	}
	// A review requested on A is decided through B.
	r := &store.Review{Kind: store.ReviewSession, User: "erin", Connection: "pg-demo", SessionID: "s1", Reason: "ops"}
	if err := a.Control.Store.CreateReview(ctx, r); err != nil {
		t.Fatal(err)
	}
	if code, b := call(apiB, "POST", fmt.Sprintf("/api/v1/reviews/%d/approve", r.ID), map[string]any{"duration": "1h"}); code != 200 {
		t.Fatalf("B approve: %d %s", code, b)
	}
	got, err := a.Control.Store.GetReview(ctx, r.ID)
	if err != nil || got.Status != store.ReviewApproved {
		t.Fatalf("A sees review %+v, %v", got, err)
	}
	if code, _ := call(apiA, "POST", fmt.Sprintf("/api/v1/reviews/%d/approve", r.ID), map[string]any{}); code != http.StatusConflict {
		t.Fatalf("second approval on A: %d, want 409", code)
	}
}
