package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/auth"
	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// errMsg decodes {"error": …}.
func errMsg(t *testing.T, raw string) string {
	t.Helper()
	var ej struct{ Error string }
	if err := json.Unmarshal([]byte(raw), &ej); err != nil {
		t.Fatalf("not an error body: %q", raw)
	}
	return ej.Error
}

type tokenInfo struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Revoked   bool      `json:"revoked"`
	Expired   bool      `json:"expired"`
	Token     string    `json:"token"`
}

func TestTokenListNameRevoke(t *testing.T) {
	e := newEnv(t, nil)
	e.now = t0.Add(time.Minute) // after the fixture's tokens, so the list order is known
	var issued tokenInfo
	raw := e.want(200, "POST", "/api/v1/users/alice/tokens", e.alice, `{"name":"laptop","ttl":"1h"}`, &issued)
	if issued.Name != "laptop" || !auth.LooksLikeToken(issued.Token) || !strings.Contains(raw, `"name":"laptop"`) {
		t.Fatalf("issued %s", raw)
	}
	e.want(200, "GET", "/api/v1/me", issued.Token, "", nil)
	e.want(400, "POST", "/api/v1/users/alice/tokens", e.alice, `{"name":"a\u0007b"}`, nil)
	e.want(400, "POST", "/api/v1/users/alice/tokens", e.alice, `{"name":"`+strings.Repeat("n", MaxTokenName+1)+`"}`, nil)

	var list []tokenInfo
	raw = e.want(200, "GET", "/api/v1/users/alice/tokens", e.alice, "", &list)
	if len(list) != 2 || list[1].ID != issued.ID || list[1].Name != "laptop" || list[1].User != "alice" ||
		!list[1].ExpiresAt.Equal(t0.Add(time.Hour+time.Minute)) || !list[1].CreatedAt.Equal(t0.Add(time.Minute)) || list[1].Revoked || list[1].Expired {
		t.Fatalf("list %s", raw)
	}
	if strings.Contains(raw, issued.Token) || strings.Contains(raw, auth.Hash(issued.Token)) || strings.Contains(raw, `"token"`) || strings.Contains(raw, "hash") {
		t.Fatalf("secret or hash listed: %s", raw)
	}
	e.want(200, "GET", "/api/v1/users/alice/tokens", e.admin, "", &list)
	e.want(404, "GET", "/api/v1/users/ghost/tokens", e.admin, "", nil)
	e.now = t0.Add(2 * time.Hour)
	e.want(200, "GET", "/api/v1/users/alice/tokens", e.admin, "", &list)
	if !list[1].Expired {
		t.Fatalf("expired not reported: %+v", list[1])
	}
	e.now = t0

	// Owner revokes: the token stops working; the other one still works.
	e.want(204, "DELETE", "/api/v1/tokens/"+issued.ID, e.alice, "", nil)
	e.want(401, "GET", "/api/v1/me", issued.Token, "", nil)
	e.want(200, "GET", "/api/v1/me", e.alice, "", nil)
	e.want(200, "GET", "/api/v1/users/alice/tokens", e.alice, "", &list)
	if !list[1].Revoked {
		t.Fatalf("not revoked: %+v", list[1])
	}
	// Alice cannot revoke the admin's token (404, like an unknown id); the
	// admin can revoke anyone's.
	adminTok, _, _ := e.auth.IssueToken(context.Background(), "admin", time.Hour)
	adminList, _ := e.st.ListTokens(context.Background(), "admin")
	last := adminList[len(adminList)-1].ID
	if msg := errMsg(t, e.want(404, "DELETE", "/api/v1/tokens/"+last, e.alice, "", nil)); msg != "token not found" {
		t.Fatalf("msg %q", msg)
	}
	e.want(200, "GET", "/api/v1/me", adminTok, "", nil)
	e.want(204, "DELETE", "/api/v1/tokens/"+list[0].ID, e.admin, "", nil)
	e.want(401, "GET", "/api/v1/me", e.alice, "", nil)
	e.want(404, "DELETE", "/api/v1/tokens/nope", e.admin, "", nil)
}

type fakeRevoker struct {
	mu  sync.Mutex
	ids []string
	st  store.Store
}

func (f *fakeRevoker) RevokeToken(ctx context.Context, id string) error {
	f.mu.Lock()
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	return f.st.RevokeToken(ctx, id)
}

func TestRevokeGoesThroughRevoker(t *testing.T) {
	rv := &fakeRevoker{}
	e := newEnv(t, func(c *Config) { rv.st = c.Store; c.Revoker = rv })
	list, _ := e.st.ListTokens(context.Background(), "alice")
	e.want(204, "DELETE", "/api/v1/tokens/"+list[0].ID, e.alice, "", nil)
	if !slices.Equal(rv.ids, []string{list[0].ID}) {
		t.Fatalf("revoker calls %v", rv.ids)
	}
}

type retryErr struct{ d time.Duration }

func (e retryErr) Error() string             { return "slow down" }
func (e retryErr) RetryAfter() time.Duration { return e.d }

func TestLoginRateLimitedAndAddr(t *testing.T) {
	errLimited := errors.New("rate limited")
	var mu sync.Mutex
	var addrs []string
	var next error
	e := newEnv(t, func(c *Config) {
		c.RateLimited = errLimited
		inner := auth.New(c.Store, c.Clock, nil)
		c.Login = func(ctx context.Context, user, password, addr string, ttl time.Duration) (string, store.Token, error) {
			mu.Lock()
			addrs = append(addrs, addr)
			err := next
			mu.Unlock()
			if err != nil {
				return "", store.Token{}, err
			}
			return inner.Login(ctx, user, password, ttl)
		}
	})
	e.want(200, "PUT", "/api/v1/users/bob", e.admin, `{"password":"pw-bob"}`, nil)
	e.want(200, "POST", "/api/v1/login", "", `{"user":"bob","password":"pw-bob"}`, nil)
	e.want(401, "POST", "/api/v1/login", "", `{"user":"bob","password":"nope"}`, nil)

	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("login bob: %w", errLimited), "60"},
		{fmt.Errorf("login bob: %w", retryErr{1500 * time.Millisecond}), "2"},
		{retryErr{0}, "1"},
	} {
		mu.Lock()
		next = c.err
		mu.Unlock()
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/login", strings.NewReader(`{"user":"bob","password":"pw-bob"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != c.want || !strings.Contains(string(body), "too many login attempts: try again in "+c.want+" seconds") {
			t.Errorf("%v: status %d Retry-After %q body %s", c.err, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range addrs {
		if a != "127.0.0.1" {
			t.Fatalf("login addr %q, want the client's host", a)
		}
	}
	if len(addrs) != 5 {
		t.Fatalf("login calls %d", len(addrs))
	}
}

func TestGroups(t *testing.T) {
	e := newEnv(t, nil)
	var g map[string]any
	e.want(200, "PUT", "/api/v1/users/carol", e.admin, `{"groups":["dev","ops"]}`, nil)
	e.want(200, "PUT", "/api/v1/groups/dev", e.admin, `{"description":"developers"}`, &g)
	if g["name"] != "dev" || g["description"] != "developers" || fmt.Sprint(g["members"]) != "[alice carol]" || g["created_at"] != "2025-06-01T12:00:00Z" {
		t.Fatalf("put %v", g)
	}
	e.now = t0.Add(time.Hour)
	e.want(200, "PUT", "/api/v1/groups/dev", e.admin, ``, &g) // empty body: no description
	if g["description"] != "" || g["created_at"] != "2025-06-01T12:00:00Z" {
		t.Fatalf("update %v", g)
	}
	e.want(200, "PUT", "/api/v1/groups/ops", e.admin, `{}`, nil)
	var list []map[string]any
	e.want(200, "GET", "/api/v1/groups", e.admin, "", &list)
	if len(list) != 2 || list[0]["name"] != "dev" || list[1]["name"] != "ops" || fmt.Sprint(list[1]["members"]) != "[carol]" {
		t.Fatalf("list %v", list)
	}
	e.want(200, "GET", "/api/v1/groups/ops", e.admin, "", &g)
	e.want(404, "GET", "/api/v1/groups/nope", e.admin, "", nil)
	e.want(400, "PUT", "/api/v1/groups/a%20b", e.admin, `{}`, nil)
	e.want(400, "PUT", "/api/v1/groups/x", e.admin, `{"description":"`+strings.Repeat("d", MaxGroupDescription+1)+`"}`, nil)
	if msg := errMsg(t, e.want(400, "DELETE", "/api/v1/groups/admin", e.admin, "", nil)); !strings.Contains(msg, "cannot be deleted") {
		t.Fatalf("admin group: %q", msg)
	}
	// Deleting a group takes it off its members.
	e.want(204, "DELETE", "/api/v1/groups/dev", e.admin, "", nil)
	e.want(404, "DELETE", "/api/v1/groups/dev", e.admin, "", nil)
	u, _ := e.st.GetUser(context.Background(), "carol")
	if !slices.Equal(u.Groups, []string{"ops"}) {
		t.Fatalf("carol's groups %v", u.Groups)
	}
}

func TestRules(t *testing.T) {
	hoursErr := errors.New(`want "Mon-Fri 08:00-18:00 UTC"`)
	var checked []string
	e := newEnv(t, func(c *Config) {
		c.HoursValidator = func(h string) error {
			checked = append(checked, h)
			if !strings.HasPrefix(h, "Mon") {
				return hoursErr
			}
			return nil
		}
	})
	var r map[string]any
	raw := e.want(200, "PUT", "/api/v1/rules/dev-pg", e.admin, `{"groups":["dev","dev"],"connections":["pg","*"],
		"guardrails":{"deny":["DROP"]},"masking":{"detectors":["email"]},"require_review":true,
		"review_statements":["ddl","write:payments","ddl"],"max_session":"90m","hours":" Mon-Fri 08:00-18:00 UTC "}`, &r)
	want := `{"name":"dev-pg","groups":["dev"],"connections":["pg","*"],"guardrails":{"deny":["drop"]},` +
		`"masking":{"detectors":["email"],"style":"partial"},"require_review":true,"review_statements":["ddl","write:payments"],` +
		`"max_session":"1h30m0s","hours":"Mon-Fri 08:00-18:00 UTC","created_at":"2025-06-01T12:00:00Z","updated_at":"2025-06-01T12:00:00Z"}`
	if strings.TrimSpace(raw) != want {
		t.Fatalf("put rule:\n%s\nwant\n%s", raw, want)
	}
	if !slices.Equal(checked, []string{"Mon-Fri 08:00-18:00 UTC"}) {
		t.Fatalf("hours validator saw %q", checked)
	}
	stored, err := e.st.GetRule(context.Background(), "dev-pg")
	if err != nil || stored.MaxSession != 90*time.Minute || !stored.RequireReview || stored.Policy.Guardrails == nil {
		t.Fatalf("stored %+v %v", stored, err)
	}
	// PUT replaces: a minimal rule drops the rest; CreatedAt stays.
	e.now = t0.Add(time.Hour)
	raw = e.want(200, "PUT", "/api/v1/rules/dev-pg", e.admin, `{"groups":["dev"],"connections":["pg"]}`, nil)
	want = `{"name":"dev-pg","groups":["dev"],"connections":["pg"],"require_review":false,"review_statements":[],` +
		`"created_at":"2025-06-01T12:00:00Z","updated_at":"2025-06-01T13:00:00Z"}`
	if strings.TrimSpace(raw) != want {
		t.Fatalf("replace rule:\n%s\nwant\n%s", raw, want)
	}
	e.want(200, "PUT", "/api/v1/rules/all", e.admin, `{"groups":["ops"],"connections":["*"]}`, nil)
	var list []map[string]any
	e.want(200, "GET", "/api/v1/rules", e.admin, "", &list)
	if len(list) != 2 || list[0]["name"] != "all" || list[1]["name"] != "dev-pg" {
		t.Fatalf("list %v", list)
	}
	e.want(200, "GET", "/api/v1/rules/all", e.admin, "", &r)

	for body, msg := range map[string]string{
		`{"connections":["pg"]}`:                                              "groups is required",
		`{"groups":["dev"]}`:                                                  "connections is required",
		`{"groups":["a b"],"connections":["pg"]}`:                             `invalid group name "a b"`,
		`{"groups":["dev"],"connections":["p g"]}`:                            `invalid connection name "p g"`,
		`{"groups":["dev"],"connections":["pg"],"guardrails":{"deny":["x"]}}`: `guardrails.deny: unknown rule "x"`,
		`{"groups":["dev"],"connections":["pg"],"masking":{"style":"blur"}}`:  `masking.style: unknown style "blur"`,
		`{"groups":["dev"],"connections":["pg"],"max_session":"2 hours"}`:     "max_session must be a positive Go duration",
		`{"groups":["dev"],"connections":["pg"],"max_session":"-1h"}`:         "max_session must be a positive Go duration",
		`{"groups":["dev"],"connections":["pg"],"hours":"weekdays"}`:          "hours: " + hoursErr.Error(),
		`{"groups":["dev"],"connections":["pg"],"review_statements":["a b"]}`: `review_statements: bad statement kind "a b"`,
		`{"groups":["dev"],"connections":["pg"],"require_review":"yes"}`:      `field "require_review": expected true or false`,
		``: "request body is empty",
	} {
		if got := errMsg(t, e.want(400, "PUT", "/api/v1/rules/r2", e.admin, body, nil)); !strings.Contains(got, msg) {
			t.Errorf("%s: %q, want %q", body, got, msg)
		}
	}
	e.want(400, "PUT", "/api/v1/rules/a:b", e.admin, `{"groups":["dev"],"connections":["pg"]}`, nil)
	if _, err := e.st.GetRule(context.Background(), "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused rule was stored")
	}
	e.want(204, "DELETE", "/api/v1/rules/all", e.admin, "", nil)
	e.want(404, "DELETE", "/api/v1/rules/all", e.admin, "", nil)
	e.want(404, "GET", "/api/v1/rules/all", e.admin, "", nil)
}

func TestRulesWithoutHoursValidator(t *testing.T) {
	e := newEnv(t, nil)
	e.want(200, "PUT", "/api/v1/rules/r", e.admin, `{"groups":["dev"],"connections":["pg"],"hours":"whenever"}`, nil)
	e.want(400, "PUT", "/api/v1/rules/r", e.admin, `{"groups":["dev"],"connections":["pg"],"hours":"a\u0000b"}`, nil)
}

func writeTestSessions(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	err := st.WriteSessions(ctx, []store.Session{
		{ID: "a1", User: "alice", Connection: "pg", Protocol: "postgres", Start: t0, End: t0.Add(time.Minute), Outcome: "ok", TokenID: "tk1", Rule: "dev-pg"},
		{ID: "a2", User: "alice", Connection: "my", Protocol: "mysql", Start: t0.Add(time.Hour), Outcome: "running"},
		{ID: "b1", User: "bob", Connection: "pg", Protocol: "postgres", Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour), Outcome: "error", Error: "boom"},
		{ID: "b2", User: "bob", Connection: "pg", Protocol: "postgres", Start: t0.Add(3 * time.Hour), Outcome: "denied"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.WriteStatements(ctx, []store.Statement{
		{SessionID: "a1", Seq: 2, At: t0.Add(2 * time.Second), Duration: 1500 * time.Microsecond, Text: "select 2", Rows: 1, Outcome: "ok"},
		{SessionID: "a1", Seq: 1, At: t0.Add(time.Second), Duration: time.Millisecond, Text: "drop table t", Rows: -1, Outcome: "denied", Rule: "drop"},
		{SessionID: "zz", Seq: 1, At: t0, Text: "select 0", Outcome: "ok"},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func ids(list []map[string]any) string {
	var out []string
	for _, x := range list {
		out = append(out, fmt.Sprint(x["id"]))
	}
	return strings.Join(out, ",")
}

func TestSessionQueries(t *testing.T) {
	e := newEnv(t, nil)
	writeTestSessions(t, e.st)
	var list []map[string]any
	for q, want := range map[string]string{
		"":                            "b2,b1,a2,a1",
		"?user=alice":                 "a2,a1",
		"?connection=pg":              "b2,b1,a1",
		"?outcome=error":              "b1",
		"?since=2025-06-01T13:00:00Z": "b2,b1,a2",
		"?until=2025-06-01T13:00:00Z": "a1",
		"?since=2025-06-01T12:30:00%2B00:00&until=2025-06-01T14:00:00Z": "a2",
		"?user=bob&connection=pg&limit=1":                               "b2",
		"?user=nobody":                                                  "",
	} {
		e.want(200, "GET", "/api/v1/sessions"+q, e.admin, "", &list)
		if got := ids(list); got != want {
			t.Errorf("admin %q: %s, want %s", q, got, want)
		}
	}
	// A user sees their own sessions only.
	for q, want := range map[string]string{"": "a2,a1", "?user=alice": "a2,a1", "?connection=pg": "a1"} {
		e.want(200, "GET", "/api/v1/sessions"+q, e.alice, "", &list)
		if got := ids(list); got != want {
			t.Errorf("alice %q: %s, want %s", q, got, want)
		}
	}
	e.want(403, "GET", "/api/v1/sessions?user=bob", e.alice, "", nil)

	var one map[string]any
	e.want(200, "GET", "/api/v1/sessions/a1", e.alice, "", &one)
	if one["id"] != "a1" || one["token_id"] != "tk1" || one["rule"] != "dev-pg" || one["end"] != "2025-06-01T12:01:00Z" {
		t.Fatalf("get %v", one)
	}
	e.want(200, "GET", "/api/v1/sessions/b1", e.admin, "", &one)
	e.want(404, "GET", "/api/v1/sessions/b1", e.alice, "", nil)
	e.want(404, "GET", "/api/v1/sessions/nope", e.admin, "", nil)

	var st []map[string]any
	e.want(200, "GET", "/api/v1/sessions/a1/statements", e.alice, "", &st)
	if len(st) != 2 || st[0]["seq"] != 1.0 || st[0]["text"] != "drop table t" || st[0]["rule"] != "drop" ||
		st[0]["outcome"] != "denied" || st[0]["rows"] != -1.0 || st[1]["duration_ms"] != 1.5 || st[1]["at"] != "2025-06-01T12:00:02Z" {
		t.Fatalf("statements %v", st)
	}
	e.want(200, "GET", "/api/v1/sessions/a1/statements?limit=1", e.admin, "", &st)
	if len(st) != 1 {
		t.Fatalf("limit: %v", st)
	}
	e.want(200, "GET", "/api/v1/sessions/b1/statements", e.admin, "", &st) // known session, no statements
	if len(st) != 0 {
		t.Fatalf("b1 statements %v", st)
	}
	e.want(200, "GET", "/api/v1/sessions/zz/statements", e.admin, "", &st) // statements before their session
	if len(st) != 1 {
		t.Fatalf("zz statements %v", st)
	}
	e.want(404, "GET", "/api/v1/sessions/zz/statements", e.alice, "", nil)
	e.want(404, "GET", "/api/v1/sessions/b1/statements", e.alice, "", nil)
	e.want(404, "GET", "/api/v1/sessions/none/statements", e.admin, "", nil)
}

// getRaw does a GET and returns the whole response (body read).
func getRaw(t *testing.T, e *env, path, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// frames decodes a recording stream into "C:…" / "S:…" / "E:…" parts.
func frames(t *testing.T, data string) []string {
	t.Helper()
	dec := recording.NewDecoder(strings.NewReader(data))
	var out []string
	for {
		f, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, string(rune(f.Kind))+":"+string(f.Data))
	}
}

func TestRecordingStreamAndVerify(t *testing.T) {
	e, sv := newFullEnv(t, nil)
	sv.recs.record(t, "r1", "select 1;", "1 row", false)
	open := sv.recs.record(t, "r2", "begin;", "BEGIN", true)

	resp, body := getRaw(t, e, "/api/v1/sessions/r1/recording", e.admin)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Trailer.Get(TrailerRecordingStatus) != "complete" || resp.Trailer.Get(TrailerRecordingError) != "" {
		t.Fatalf("r1: %d %v trailer %v", resp.StatusCode, resp.Header, resp.Trailer)
	}
	if got := strings.Join(frames(t, body), "|"); got != "C:select 1;|S:1 row|E:" {
		t.Fatalf("r1 frames %q", got)
	}
	resp, body = getRaw(t, e, "/api/v1/sessions/r2/recording", e.admin)
	if resp.StatusCode != 200 || resp.Trailer.Get(TrailerRecordingStatus) != "incomplete" {
		t.Fatalf("r2: %d trailer %v", resp.StatusCode, resp.Trailer)
	}
	if got := strings.Join(frames(t, body), "|"); got != "C:begin;|S:BEGIN" {
		t.Fatalf("r2 frames %q", got)
	}
	e.want(404, "GET", "/api/v1/sessions/none/recording", e.admin, "", nil)

	var rep map[string]any
	e.want(200, "GET", "/api/v1/sessions/r1/verify", e.admin, "", &rep)
	if rep["result"] != "ok" || rep["intact"] != true || rep["complete"] != true || rep["session_id"] != "r1" ||
		rep["client_bytes"] != 9.0 || rep["server_bytes"] != 5.0 || len(rep["head"].(string)) != 64 || fmt.Sprint(rep["problems"]) != "[]" {
		t.Fatalf("verify r1 %v", rep)
	}
	e.want(200, "GET", "/api/v1/sessions/r2/verify", e.admin, "", &rep)
	if rep["result"] != "incomplete" || rep["intact"] != true || rep["complete"] != false {
		t.Fatalf("verify r2 %v", rep)
	}
	e.want(404, "GET", "/api/v1/sessions/none/verify", e.admin, "", nil)
	open.Close()

	// Tamper with r1's first chunk: verify says corrupt and names it; the
	// stream refuses before the first byte.
	rows, _ := sv.recs.manifest.ListRecordingChunks(context.Background(), "r1")
	fsRoot := sv.recs.blobRoot
	path := filepath.Join(fsRoot, filepath.FromSlash(rows[0].Key))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.want(200, "GET", "/api/v1/sessions/r1/verify", e.admin, "", &rep)
	probs, _ := rep["problems"].([]any)
	if rep["result"] != "corrupt" || rep["intact"] != false || len(probs) != 1 ||
		probs[0].(map[string]any)["kind"] != "hash_mismatch" || probs[0].(map[string]any)["seq"] != 0.0 {
		t.Fatalf("verify tampered %v", rep)
	}
	msg := errMsg(t, e.want(500, "GET", "/api/v1/sessions/r1/recording", e.admin, "", nil))
	if !strings.Contains(msg, "corrupt") || !strings.Contains(msg, "sluice admin audit verify r1") {
		t.Fatalf("tampered stream: %q", msg)
	}
}

func TestOptionalServicesAre501(t *testing.T) {
	e := newEnv(t, nil)
	writeTestSessions(t, e.st)
	for _, c := range [][3]string{
		{"GET", "/api/v1/sessions/a1/recording", ""},
		{"GET", "/api/v1/sessions/a1/verify", ""},
		{"POST", "/api/v1/sessions/a1/kill", ""},
		{"POST", "/api/v1/reviews/1/approve", "{}"},
		{"POST", "/api/v1/reviews/1/reject", "{}"},
		{"POST", "/api/v1/dead-letters/1/redeliver", ""},
	} {
		if msg := errMsg(t, e.want(501, c[0], c[1], e.admin, c[2], nil)); !strings.Contains(msg, "not available on this gateway") {
			t.Errorf("%s %s: %q", c[0], c[1], msg)
		}
	}
}

func TestKill(t *testing.T) {
	e, sv := newFullEnv(t, nil)
	writeTestSessions(t, e.st)
	sv.live.start("a2")
	e.want(204, "POST", "/api/v1/sessions/a2/kill", e.admin, "", nil)
	var cause error
	for i := 0; i < 500 && cause == nil; i++ {
		time.Sleep(time.Millisecond)
		cause = sv.live.cause("a2")
	}
	var ee *engine.Error
	if !errors.As(cause, &ee) || ee.Code != engine.CodeSessionEnded || ee.Message != "session ended by an administrator" {
		t.Fatalf("cause %v", cause)
	}
	// Not live here any more: 409 with its outcome; unknown: 404.
	for i := 0; i < 500 && sv.live.Len() > 0; i++ {
		time.Sleep(time.Millisecond)
	}
	if msg := errMsg(t, e.want(409, "POST", "/api/v1/sessions/a2/kill", e.admin, "{}", nil)); !strings.Contains(msg, "not running on this gateway") {
		t.Fatalf("409 msg %q", msg)
	}
	e.want(404, "POST", "/api/v1/sessions/ghost/kill", e.admin, "", nil)
}

func TestReviews(t *testing.T) {
	e, _ := newFullEnv(t, nil)
	ctx := context.Background()
	mk := func(kind, user, conn, stmt string) int64 {
		r := store.Review{Kind: kind, User: user, Connection: conn, Statement: stmt, Reason: "rule dev-pg", CreatedAt: t0}
		if err := e.st.CreateReview(ctx, &r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	r1 := mk(store.ReviewSession, "alice", "pg", "")
	r2 := mk(store.ReviewStatement, "alice", "pg", "delete from t")
	r3 := mk(store.ReviewSession, "bob", "my", "")
	r4 := mk(store.ReviewSession, "admin", "pg", "")

	var list []map[string]any
	for q, want := range map[string]string{
		"":                 "4,3,2,1",
		"?status=pending":  "4,3,2,1",
		"?kind=statement":  "2",
		"?user=bob":        "3",
		"?connection=pg":   "4,2,1",
		"?limit=2":         "4,3",
		"?status=approved": "",
	} {
		e.want(200, "GET", "/api/v1/reviews"+q, e.admin, "", &list)
		if got := ids(list); got != want {
			t.Errorf("admin %q: %s, want %s", q, got, want)
		}
	}
	e.want(200, "GET", "/api/v1/reviews", e.alice, "", &list)
	if got := ids(list); got != "2,1" {
		t.Fatalf("alice sees %s", got)
	}
	e.want(403, "GET", "/api/v1/reviews?user=bob", e.alice, "", nil)
	var one map[string]any
	e.want(200, "GET", fmt.Sprintf("/api/v1/reviews/%d", r2), e.alice, "", &one)
	if one["statement"] != "delete from t" || one["status"] != "pending" || one["grant_until"] != nil || one["decided_at"] != nil {
		t.Fatalf("get %v", one)
	}
	e.want(404, "GET", fmt.Sprintf("/api/v1/reviews/%d", r3), e.alice, "", nil)
	e.want(404, "GET", "/api/v1/reviews/99", e.admin, "", nil)

	// Approve with a grant and a note.
	e.want(200, "POST", fmt.Sprintf("/api/v1/reviews/%d/approve", r1), e.admin, `{"duration":"2h","note":"ticket 42"}`, &one)
	if one["status"] != "approved" || one["decider"] != "admin" || one["decision_note"] != "ticket 42" ||
		one["grant_until"] != "2025-06-01T14:00:00Z" || one["decided_at"] != "2025-06-01T12:00:00Z" {
		t.Fatalf("approve %v", one)
	}
	if g, err := e.st.ActiveGrant(ctx, "alice", "pg", t0.Add(time.Hour)); err != nil || g.ID != r1 {
		t.Fatalf("grant %v %v", g, err)
	}
	// Deciding again: 409, naming the decision.
	msg := errMsg(t, e.want(409, "POST", fmt.Sprintf("/api/v1/reviews/%d/reject", r1), e.admin, ``, nil))
	if msg != "review is already approved (by admin): only a pending review can be decided" {
		t.Fatalf("409 %q", msg)
	}
	e.want(200, "POST", fmt.Sprintf("/api/v1/reviews/%d/reject", r3), e.admin, `{"note":"no"}`, &one)
	if one["status"] != "rejected" || one["grant_until"] != nil {
		t.Fatalf("reject %v", one)
	}
	e.want(404, "POST", "/api/v1/reviews/99/approve", e.admin, `{}`, nil)
	// The decider's own refusal (own review) is 403 with its message.
	if msg := errMsg(t, e.want(403, "POST", fmt.Sprintf("/api/v1/reviews/%d/approve", r4), e.admin, `{}`, nil)); msg != "you cannot decide your own review" {
		t.Fatalf("self %q", msg)
	}
	for body, want := range map[string]string{
		`{"duration":"forever"}`: "duration must be a positive Go duration",
		`{"duration":"721h"}`:    "duration must be a positive Go duration up to 720h0m0s",
		`{"note":"` + strings.Repeat("n", MaxReviewNote+1) + `"}`: "note is longer than 4096 bytes",
	} {
		if got := errMsg(t, e.want(400, "POST", fmt.Sprintf("/api/v1/reviews/%d/approve", r2), e.admin, body, nil)); !strings.Contains(got, want) {
			t.Errorf("%s: %q", truncate(body), got)
		}
	}
	if got := errMsg(t, e.want(400, "POST", fmt.Sprintf("/api/v1/reviews/%d/reject", r2), e.admin, `{"duration":"1h"}`, nil)); !strings.Contains(got, `unknown field "duration"`) {
		t.Errorf("reject with duration: %q", got)
	}
	if r, _ := e.st.GetReview(ctx, r2); r.Status != store.ReviewPending {
		t.Fatalf("a refused request decided the review: %+v", r)
	}
}

func TestWebhooksAndDeadLetters(t *testing.T) {
	e, _ := newFullEnv(t, nil)
	rc := newReceiver(t)
	ctx := context.Background()
	hookURL := rc.srv.URL + "/hooks/T000/B000/s3cretpath"
	var wh map[string]any
	raw := e.want(200, "PUT", "/api/v1/webhooks/ops", e.admin, `{"url":"`+hookURL+`","secret":"k1","events":["session.started","session.started","review.requested"]}`, &wh)
	if strings.Contains(raw, "k1") || strings.Contains(raw, "s3cretpath") || wh["has_secret"] != true || wh["format"] != "json" ||
		wh["url"] != rc.srv.URL+"/…" || fmt.Sprint(wh["events"]) != "[session.started review.requested]" {
		t.Fatalf("put %s", raw)
	}
	// Omitted url and secret are kept; format and events are replaced.
	raw = e.want(200, "PUT", "/api/v1/webhooks/ops", e.admin, `{"format":"slack"}`, &wh)
	stored, _ := e.st.GetWebhook(ctx, "ops")
	if stored.URL != hookURL || stored.Secret != "k1" || stored.Format != "slack" || len(stored.Events) != 0 || wh["has_secret"] != true {
		t.Fatalf("update kept %+v / %s", stored, raw)
	}
	// "secret": "" removes it, which a json webhook does not allow.
	if msg := errMsg(t, e.want(400, "PUT", "/api/v1/webhooks/ops", e.admin, `{"secret":""}`, nil)); !strings.Contains(msg, "secret is empty") {
		t.Fatalf("json without secret: %q", msg)
	}
	e.want(200, "PUT", "/api/v1/webhooks/ops", e.admin, `{"secret":"","format":"slack"}`, &wh)
	if wh["has_secret"] != false {
		t.Fatalf("secret not removed %v", wh)
	}
	e.want(200, "PUT", "/api/v1/webhooks/ops", e.admin, `{"secret":"k2"}`, nil)
	for body, want := range map[string]string{
		`{"secret":"k"}`:                                                            "url is required for a new webhook",
		`{"url":"ftp://x/","secret":"k"}`:                                           `URL scheme is "ftp"`,
		`{"url":"http://example.com/","secret":"k"}`:                                "loopback host only",
		`{"url":"https://u:p@example.com/","secret":"k"}`:                           "URL carries user credentials",
		`{"url":"https://example.com/","secret":"k","format":"x"}`:                  `format "x"`,
		`{"url":"https://example.com/","secret":"k","events":["session.exploded"]}`: `unknown event type "session.exploded"`,
	} {
		if got := errMsg(t, e.want(400, "PUT", "/api/v1/webhooks/new", e.admin, body, nil)); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
	e.want(400, "PUT", "/api/v1/webhooks/a%20b", e.admin, `{}`, nil)
	var list []map[string]any
	e.want(200, "GET", "/api/v1/webhooks", e.admin, "", &list)
	if len(list) != 1 || list[0]["name"] != "ops" {
		t.Fatalf("list %v", list)
	}
	e.want(200, "GET", "/api/v1/webhooks/ops", e.admin, "", &wh)
	e.want(404, "GET", "/api/v1/webhooks/new", e.admin, "", nil)

	// Dead letters.
	e.want(200, "PUT", "/api/v1/webhooks/other", e.admin, `{"url":"https://example.com/x","secret":"k"}`, nil)
	add := func(hook, payload string) int64 {
		d := store.DeadLetter{Webhook: hook, Event: "session.started", Payload: []byte(payload), Attempts: 8, LastError: "HTTP 503", CreatedAt: t0}
		if err := e.st.AddDeadLetter(ctx, &d); err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	d1 := add("ops", `{"id":"e1"}`)
	d2 := add("other", `{"id":"e2"}`)
	d3 := add("ops", `{"id":"e3"}`)
	e.want(200, "GET", "/api/v1/webhooks/ops/dead-letters", e.admin, "", &list)
	if ids(list) != fmt.Sprintf("%d,%d", d3, d1) || list[0]["payload"] != `{"id":"e3"}` || list[0]["attempts"] != 8.0 ||
		list[0]["last_error"] != "HTTP 503" || list[0]["event"] != "session.started" || list[0]["webhook"] != "ops" {
		t.Fatalf("ops dead letters %v", list)
	}
	e.want(200, "GET", "/api/v1/webhooks/ops/dead-letters?limit=1", e.admin, "", &list)
	if len(list) != 1 {
		t.Fatalf("limit %v", list)
	}
	e.want(404, "GET", "/api/v1/webhooks/nope/dead-letters", e.admin, "", nil)
	e.want(200, "GET", "/api/v1/dead-letters", e.admin, "", &list)
	if ids(list) != fmt.Sprintf("%d,%d,%d", d3, d2, d1) {
		t.Fatalf("all dead letters %v", ids(list))
	}
	e.want(200, "GET", "/api/v1/dead-letters?webhook=other", e.admin, "", &list)
	if ids(list) != fmt.Sprint(d2) {
		t.Fatalf("other's %v", ids(list))
	}

	// Redeliver: the receiver gets the exact payload and the dead letter
	// goes; a failure is 502 and it stays.
	e.want(204, "POST", fmt.Sprintf("/api/v1/dead-letters/%d/redeliver", d1), e.admin, "", nil)
	if got := rc.got(); len(got) != 1 || got[0] != `{"id":"e1"}` {
		t.Fatalf("receiver got %q", got)
	}
	rc.answer(http.StatusInternalServerError)
	msg := errMsg(t, e.want(502, "POST", fmt.Sprintf("/api/v1/dead-letters/%d/redeliver", d3), e.admin, "{}", nil))
	if !strings.Contains(msg, "redelivery failed") || strings.Contains(msg, "s3cretpath") {
		t.Fatalf("502 %q", msg)
	}
	e.want(200, "GET", "/api/v1/webhooks/ops/dead-letters", e.admin, "", &list)
	if ids(list) != fmt.Sprint(d3) {
		t.Fatalf("after redelivery %v", ids(list))
	}
	e.want(404, "POST", fmt.Sprintf("/api/v1/dead-letters/%d/redeliver", d1), e.admin, "", nil)
	e.want(204, "DELETE", fmt.Sprintf("/api/v1/dead-letters/%d", d3), e.admin, "", nil)
	e.want(404, "DELETE", fmt.Sprintf("/api/v1/dead-letters/%d", d3), e.admin, "", nil)

	// Deleting a webhook deletes its dead letters.
	e.want(204, "DELETE", "/api/v1/webhooks/other", e.admin, "", nil)
	e.want(404, "DELETE", "/api/v1/webhooks/other", e.admin, "", nil)
	e.want(200, "GET", "/api/v1/dead-letters", e.admin, "", &list)
	if len(list) != 0 {
		t.Fatalf("left %v", ids(list))
	}
}
