package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
)

// routesOf returns the route table of a fresh server.
func routesOf(t *testing.T) []route {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{Store: st, TunnelAddr: "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	return s.routes
}

func key(rt route) string { return rt.Method + " " + rt.Path }

// fill puts sample values in a route's path parameters.
func fill(path string, vals map[string]string) string {
	for k, v := range vals {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return path
}

var sample = map[string]string{"name": "x", "id": "1"}

// TestEveryRouteAuthorisation walks the whole route table: no token is 401
// on every route that needs one, a non-admin is 403 on every admin route
// and gets the documented answer on every user route (a user route without
// an expectation here fails the test), and an admin is let through.
func TestEveryRouteAuthorisation(t *testing.T) {
	e, _ := newFullEnv(t, nil)
	ctx := context.Background()
	// Objects of the admin, which alice must not reach.
	e.st.WriteSessions(ctx, []store.Session{{ID: "s-admin", User: "admin", Connection: "pg", Start: t0, Outcome: "ok"}})
	e.st.WriteStatements(ctx, []store.Statement{{SessionID: "s-admin", Seq: 1, At: t0, Text: "select 1", Outcome: "ok"}})
	rv := store.Review{Kind: store.ReviewSession, User: "admin", Connection: "pg", CreatedAt: t0}
	if err := e.st.CreateReview(ctx, &rv); err != nil {
		t.Fatal(err)
	}
	adminTokens, _ := e.st.ListTokens(ctx, "admin")

	// What alice (group dev) gets on each user route, with the path used.
	type expect struct {
		path   string
		status int
	}
	user := map[string]expect{
		"GET /api/v1/me":                       {"/api/v1/me", 200},
		"GET /api/v1/connections":              {"/api/v1/connections", 200},
		"GET /api/v1/users/{name}/tokens":      {"/api/v1/users/admin/tokens", 403},
		"POST /api/v1/users/{name}/tokens":     {"/api/v1/users/admin/tokens", 403},
		"DELETE /api/v1/tokens/{id}":           {"/api/v1/tokens/" + adminTokens[0].ID, 404},
		"GET /api/v1/sessions":                 {"/api/v1/sessions?user=admin", 403},
		"GET /api/v1/sessions/{id}":            {"/api/v1/sessions/s-admin", 404},
		"GET /api/v1/sessions/{id}/statements": {"/api/v1/sessions/s-admin/statements", 404},
		"GET /api/v1/reviews":                  {"/api/v1/reviews?user=admin", 403},
		"GET /api/v1/reviews/{id}":             {"/api/v1/reviews/1", 404},
	}
	expired, _, _ := e.auth.IssueToken(ctx, "admin", time.Minute)
	e.now = e.now.Add(2 * time.Minute)

	seen := map[string]bool{}
	for _, rt := range routesOf(t) {
		k := key(rt)
		path := fill(rt.Path, sample)
		switch rt.Access {
		case public:
			if got, raw := e.do(rt.Method, path, "", "{}", nil); authRefusal(got, raw) {
				t.Errorf("%s: public route answered %d without a token: %s", k, got, raw)
			}
			continue
		case anyUser, adminOnly:
			for _, tok := range []string{"", "slc_bogus", expired} {
				if got, raw := e.do(rt.Method, path, tok, "{}", nil); got != 401 {
					t.Errorf("%s with token %q: status %d, want 401: %s", k, tok, got, raw)
				}
			}
		}
		if rt.Access == adminOnly {
			if got, raw := e.do(rt.Method, path, e.alice, "{}", nil); got != 403 || !strings.Contains(raw, "admin access required") {
				t.Errorf("%s as non-admin: status %d, want 403: %s", k, got, raw)
			}
		} else {
			x, ok := user[k]
			if !ok {
				t.Errorf("%s: user route with no authorisation expectation in this test", k)
				continue
			}
			seen[k] = true
			if got, raw := e.do(rt.Method, x.path, e.alice, "{}", nil); got != x.status {
				t.Errorf("%s (%s) as non-admin: status %d, want %d: %s", k, x.path, got, x.status, raw)
			}
		}
		// The admin is let through (whatever the route then answers).
		if got, raw := e.do(rt.Method, path, e.admin, "{}", nil); authRefusal(got, raw) {
			t.Errorf("%s as admin: status %d: %s", k, got, raw)
		}
	}
	for k := range user {
		if !seen[k] {
			t.Errorf("expectation for %s, which is not a user route", k)
		}
	}
}

// authRefusal reports whether an answer is the authentication layer's
// refusal (as opposed to a handler's own 401 or 403, e.g. a wrong login).
func authRefusal(status int, raw string) bool {
	return (status == 401 && (strings.Contains(raw, "missing bearer token") || strings.Contains(raw, "invalid or expired token"))) ||
		(status == 403 && strings.Contains(raw, "admin access required"))
}

// wrongType is, per route with a body, a body with a field of the wrong
// JSON type ("" for a route whose body has no fields).
var wrongType = map[string]string{
	"POST /api/v1/login":                       `{"user":1,"password":"x"}`,
	"PUT /api/v1/users/{name}":                 `{"groups":"admin"}`,
	"POST /api/v1/users/{name}/tokens":         `{"ttl":5}`,
	"PUT /api/v1/groups/{name}":                `{"description":["a"]}`,
	"POST /api/v1/agents":                      `{"name":true}`,
	"PUT /api/v1/agents/{name}":                ``,
	"PUT /api/v1/connections/{name}":           `{"agent":1,"target":"x"}`,
	"PUT /api/v1/rules/{name}":                 `{"groups":"dev","connections":["*"]}`,
	"POST /api/v1/sessions/{id}/kill":          ``,
	"POST /api/v1/reviews/{id}/approve":        `{"duration":7200}`,
	"POST /api/v1/reviews/{id}/reject":         `{"note":false}`,
	"PUT /api/v1/webhooks/{name}":              `{"url":"http://127.0.0.1/","events":"session.started"}`,
	"POST /api/v1/dead-letters/{id}/redeliver": ``,
}

// badQuery is, per query parameter, a value every route taking it refuses.
var badQuery = map[string]string{
	"limit":      "abc",
	"since":      "yesterday",
	"until":      "2025-13-01",
	"user":       "a%20b",
	"connection": "a:b",
	"outcome":    "Not-An-Outcome",
	"status":     "maybe",
	"kind":       "query",
	"webhook":    "a%20b",
}

// TestBadInput sends every route that reads a body or a query malformed,
// oversize, unknown and mistyped input, as an admin, and wants 400 with a
// message saying what is wrong.
func TestBadInput(t *testing.T) {
	e, _ := newFullEnv(t, nil)
	check := func(k, method, path, body, want string) {
		t.Helper()
		got, raw := e.do(method, path, e.admin, body, nil)
		var ej struct{ Error string }
		json.Unmarshal([]byte(raw), &ej)
		if got != 400 || !strings.Contains(ej.Error, want) {
			if len(raw) > 200 {
				raw = raw[:200]
			}
			t.Errorf("%s %q: status %d, want 400 with %q: %s", k, truncate(body), got, want, raw)
		}
	}
	for _, rt := range routesOf(t) {
		k := key(rt)
		path := fill(rt.Path, sample)
		if rt.Body {
			wt, ok := wrongType[k]
			if !ok {
				t.Errorf("%s: body route without a wrong-type case in this test", k)
			}
			check(k, rt.Method, path, `{"user" 1}`, "malformed JSON at offset")
			check(k, rt.Method, path, `{"a":`, "invalid request body")
			check(k, rt.Method, path, `[]`, "request body must be a JSON object")
			check(k, rt.Method, path, `"x"`, "request body must be a JSON object")
			check(k, rt.Method, path, `{"zzz_unknown":1}`, `unknown field "zzz_unknown"`)
			check(k, rt.Method, path, `{} {}`, "data after the JSON object")
			check(k, rt.Method, path, `{"x":"`+strings.Repeat("a", MaxBodyBytes)+`"}`, "request body exceeds 1048576 bytes")
			if wt != "" {
				check(k, rt.Method, path, wt, "expected")
			}
		}
		// Every route refuses unknown and repeated query parameters.
		check(k, rt.Method, path+"?zzz=1", "{}", `unknown query parameter "zzz"`)
		for _, q := range rt.Query {
			bad, ok := badQuery[q]
			if !ok {
				t.Errorf("%s: query parameter %q without a bad value in this test", k, q)
				continue
			}
			check(k, rt.Method, path+"?"+q+"="+bad, "{}", q)
			check(k, rt.Method, path+"?"+q+"=1&"+q+"=2", "{}", "given more than once")
		}
	}
	// Cross-field query checks.
	check("sessions", "GET", "/api/v1/sessions?since=2025-06-02T00:00:00Z&until=2025-06-01T00:00:00Z", "", "since must be before until")
	check("sessions", "GET", "/api/v1/sessions?limit=10001", "", "limit must be an integer from 1 to 10000")
	check("statements", "GET", "/api/v1/sessions/x/statements?limit=0", "", "limit must be")
	check("session id", "GET", "/api/v1/sessions/.hidden", "", "invalid session id")
	check("review id", "GET", "/api/v1/reviews/-3", "", "invalid review id")
	check("dead letter id", "DELETE", "/api/v1/dead-letters/abc", "", "invalid dead letter id")
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// openAPIDocument is what the route test reads of docs/openapi.yaml.
type openAPIDocument struct {
	OpenAPI    string                          `yaml:"openapi"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas         map[string]any `yaml:"schemas"`
		Responses       map[string]any `yaml:"responses"`
		Parameters      map[string]any `yaml:"parameters"`
		SecuritySchemes map[string]any `yaml:"securitySchemes"`
	} `yaml:"components"`
	Security []map[string][]string `yaml:"security"`
}

type openAPIOperation struct {
	OperationID string                 `yaml:"operationId"`
	Summary     string                 `yaml:"summary"`
	Security    *[]map[string][]string `yaml:"security"`
	RequestBody map[string]any         `yaml:"requestBody"`
	Parameters  []map[string]any       `yaml:"parameters"`
	Responses   map[string]any         `yaml:"responses"`
	Extensions  map[string]any         `yaml:",inline"`
}

func loadOpenAPI(t *testing.T, data []byte) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: %q, want 3.1.0", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPIMatchesRoutes checks docs/openapi.yaml against the route
// table both ways, and each operation against its route: security (none,
// or bearer), the 401/403 answers, a request body iff the route reads one,
// and the query parameters. It also checks the embedded copy is current and
// every $ref resolves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	docFile, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docFile, openAPIDoc) {
		t.Fatal("control/api/openapi.yaml differs from docs/openapi.yaml: run `go generate ./control/api`")
	}
	doc := loadOpenAPI(t, docFile)
	if _, ok := doc.Components.SecuritySchemes["bearer"]; !ok {
		t.Fatal("no securitySchemes.bearer")
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Fatalf("top-level security = %v, want [{bearer: []}]", doc.Security)
	}
	routes := routesOf(t)
	inTable := map[string]route{}
	for _, rt := range routes {
		inTable[strings.ToLower(rt.Method)+" "+rt.Path] = rt
	}
	opIDs := map[string]bool{}
	for path, ops := range doc.Paths {
		var pathParams []map[string]any
		if n, ok := ops["parameters"]; ok {
			if err := n.Decode(&pathParams); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for method, node := range ops {
			if method == "parameters" {
				continue
			}
			var op openAPIOperation
			if err := node.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			k := method + " " + path
			rt, ok := inTable[k]
			if !ok {
				t.Errorf("openapi.yaml documents %s, which the server does not serve", k)
				continue
			}
			delete(inTable, k)
			if op.OperationID == "" || opIDs[op.OperationID] {
				t.Errorf("%s: missing or duplicate operationId %q", k, op.OperationID)
			}
			opIDs[op.OperationID] = true
			if op.Summary == "" {
				t.Errorf("%s: no summary", k)
			}
			isPublic := op.Security != nil && len(*op.Security) == 0
			if isPublic != (rt.Access == public) {
				t.Errorf("%s: security says public=%v, the route's access is %s", k, isPublic, rt.Access)
			}
			if got, _ := op.Extensions["x-sluice-access"].(string); got != rt.Access.String() {
				t.Errorf("%s: x-sluice-access %q, want %q", k, got, rt.Access)
			}
			has := func(code string) bool { _, ok := op.Responses[code]; return ok }
			if rt.Access != public && !has("401") {
				t.Errorf("%s: no 401 response", k)
			}
			if rt.Access == adminOnly && !has("403") {
				t.Errorf("%s: no 403 response", k)
			}
			if (rt.Body || len(rt.Query) > 0 || strings.Contains(rt.Path, "{")) && rt.Access != public && !has("400") {
				t.Errorf("%s: takes input but documents no 400", k)
			}
			if (op.RequestBody != nil) != rt.Body {
				t.Errorf("%s: requestBody documented %v, route reads a body %v", k, op.RequestBody != nil, rt.Body)
			}
			var qs []string
			for _, p := range append(slices.Clone(pathParams), op.Parameters...) {
				p = resolveParam(t, doc, p)
				if p["in"] == "query" {
					qs = append(qs, p["name"].(string))
				}
			}
			slices.Sort(qs)
			want := slices.Clone(rt.Query)
			slices.Sort(want)
			if !slices.Equal(qs, want) {
				t.Errorf("%s: documented query parameters %v, route accepts %v", k, qs, want)
			}
		}
	}
	for k := range inTable {
		t.Errorf("route %s is not in openapi.yaml", k)
	}
	// Every $ref points at something.
	var raw any
	yaml.Unmarshal(docFile, &raw)
	walkRefs(raw, func(ref string) {
		if !refExists(raw, ref) {
			t.Errorf("unresolved $ref %q", ref)
		}
	})
}

func resolveParam(t *testing.T, doc openAPIDocument, p map[string]any) map[string]any {
	ref, ok := p["$ref"].(string)
	if !ok {
		return p
	}
	name := strings.TrimPrefix(ref, "#/components/parameters/")
	q, ok := doc.Components.Parameters[name].(map[string]any)
	if !ok {
		t.Fatalf("parameter %s not found", ref)
	}
	return q
}

func walkRefs(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "$ref" {
				f(s)
				continue
			}
			walkRefs(c, f)
		}
	case []any:
		for _, c := range x {
			walkRefs(c, f)
		}
	}
}

func refExists(root any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	cur := root
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/openapi.yaml", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(buf.Bytes(), openAPIDoc) {
		t.Fatalf("status %d type %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), buf.Len())
	}
	loadOpenAPI(t, buf.Bytes())
}
