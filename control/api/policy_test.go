package api

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-gw/sluice/engine"
)

const demoPolicy = `"guardrails":{"deny":["drop","truncate","alter","grant","delete-without-where","update-without-where"],"deny_tables":["audit_log"]},
"masking":{"columns":["customers.email","*.ssn"],"detectors":["email","credit_card","iban","ssn","phone"],"style":"partial",
"patterns":[{"name":"employee_id","regex":"EMP-[0-9]{6}"}]}`

func TestConnectionPolicy(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.want(200, "PUT", "/api/v1/agents/dc1", e.admin, `{}`, nil)
	// Alice reaches pg through an access rule that adds no policy of its own.
	e.want(200, "PUT", "/api/v1/rules/dev-pg", e.admin, `{"groups":["dev"],"connections":["pg"]}`, nil)
	id := engine.Identity{User: "alice", Groups: []string{"dev"}}

	// No policy yet: the plan has none.
	e.want(200, "PUT", "/api/v1/connections/pg", e.admin, `{"agent":"dc1","target":"postgres://h/app"}`, nil)
	plan, err := e.auth.Authorize(ctx, id, "pg", "postgres")
	if err != nil || !plan.Policy.Empty() {
		t.Fatalf("plan before: %+v %v", plan, err)
	}

	// A policy set by PUT is in the very next plan, and in the listings.
	var put connectionJSON
	e.want(200, "PUT", "/api/v1/connections/pg", e.admin, `{"agent":"dc1","target":"postgres://h/app",`+demoPolicy+`}`, &put)
	want := engine.Policy{
		Guardrails: &engine.GuardrailPolicy{
			Deny:       []string{"drop", "truncate", "alter", "grant", "delete-without-where", "update-without-where"},
			DenyTables: []string{"audit_log"},
		},
		Masking: &engine.MaskingPolicy{
			Columns:   []string{"customers.email", "*.ssn"},
			Detectors: []string{"email", "credit_card", "iban", "ssn", "phone"},
			Style:     "partial",
			Patterns:  []engine.MaskPattern{{Name: "employee_id", Regex: "EMP-[0-9]{6}"}},
		},
	}
	if !reflect.DeepEqual(engine.Policy{Guardrails: put.Guardrails, Masking: put.Masking}, want) {
		t.Fatalf("put answer: %+v %+v", put.Guardrails, put.Masking)
	}
	plan, err = e.auth.Authorize(ctx, id, "pg", "postgres")
	if err != nil || !reflect.DeepEqual(plan.Policy, want) {
		t.Fatalf("plan after PUT: %+v %v", plan, err)
	}
	for _, tok := range []string{e.admin, e.alice} {
		var list []connectionJSON
		e.want(200, "GET", "/api/v1/connections", tok, "", &list)
		if len(list) != 1 || !reflect.DeepEqual(engine.Policy{Guardrails: list[0].Guardrails, Masking: list[0].Masking}, want) {
			t.Fatalf("list: %+v", list)
		}
	}

	// Another PUT changes the next plan again; the style defaults to partial.
	e.want(200, "PUT", "/api/v1/connections/pg", e.admin,
		`{"agent":"dc1","target":"postgres://h/app","masking":{"detectors":["EMAIL"," iban "]}}`, nil)
	plan, err = e.auth.Authorize(ctx, id, "pg", "postgres")
	want2 := engine.Policy{Masking: &engine.MaskingPolicy{Detectors: []string{"email", "iban"}, Style: "partial"}}
	if err != nil || !reflect.DeepEqual(plan.Policy, want2) {
		t.Fatalf("plan after second PUT: %+v %+v %v", plan.Policy.Guardrails, plan.Policy.Masking, err)
	}

	// PUT replaces: without the blocks the policy is gone, and so it is in
	// the JSON.
	_, raw := e.do("PUT", "/api/v1/connections/pg", e.admin, `{"agent":"dc1","target":"postgres://h/app"}`, nil)
	if strings.Contains(raw, "guardrails") || strings.Contains(raw, "masking") {
		t.Fatalf("empty policy shown: %s", raw)
	}
	plan, err = e.auth.Authorize(ctx, id, "pg", "postgres")
	if err != nil || !plan.Policy.Empty() {
		t.Fatalf("plan after clearing: %+v %v", plan, err)
	}
}

func TestConnectionPolicyRejected(t *testing.T) {
	e := newEnv(t, nil)
	e.want(200, "PUT", "/api/v1/agents/dc1", e.admin, `{}`, nil)
	for _, tc := range []struct{ body, want string }{
		{`"guardrails":{"deny":["dorp"]}`, `guardrails.deny: unknown rule "dorp"`},
		{`"guardrails":{"block":["drop"]}`, `unknown field "block"`},
		{`"guardrails":{"deny":"drop"}`, `field "guardrails.deny"`},
		{`"guardrails":{"deny_tables":["a.b.c"]}`, `guardrails.deny_tables: bad table "a.b.c"`},
		{`"guardrails":{"deny_tables":["\"open"]}`, `guardrails.deny_tables: bad table`},
		{`"guardrails":{"deny_tables":[""]}`, `guardrails.deny_tables: bad table ""`},
		{`"masking":{"detectors":["zip"]}`, `masking.detectors: unknown detector "zip"`},
		{`"masking":{"detectors":["employee_id"]}`, `unknown detector "employee_id"`},
		{`"masking":{"style":"blur","detectors":["email"]}`, `masking.style: unknown style "blur"`},
		{`"masking":{"columns":["email"]}`, `masking.columns: bad column "email"`},
		{`"masking":{"columns":["a.b.c.d"]}`, `bad column "a.b.c.d"`},
		{`"masking":{"columns":["*.*"]}`, `bad column "*.*"`},
		{`"masking":{"columns":["x.*.y"]}`, `bad column "x.*.y"`},
		{`"masking":{"columns":["t.1col"]}`, `bad column "t.1col"`},
		{`"masking":{"patterns":[{"name":"emp","regex":"EMP-[0-9"}]}`, `masking.patterns[0] (emp): bad regex`},
		{`"masking":{"patterns":[{"name":"emp","regex":"x*"}]}`, `matches the empty string`},
		{`"masking":{"patterns":[{"name":"","regex":"x"}]}`, `masking.patterns[0]: name is required`},
		{`"masking":{"patterns":[{"name":"email","regex":"x"}]}`, `name "email" is reserved`},
		{`"masking":{"patterns":[{"name":"a","regex":"x"},{"name":"a","regex":"y"}]}`, `masking.patterns[1]: name "a" is used twice`},
		{`"masking":{"patterns":[{"name":"a","regex":"x","flags":"i"}]}`, `unknown field "flags"`},
		{`"masking":{"colums":["t.c"]}`, `unknown field "colums"`},
	} {
		_, raw := e.do("PUT", "/api/v1/connections/pg", e.admin, `{"agent":"dc1","target":"x",`+tc.body+`}`, nil)
		var ej errorJSON
		json.Unmarshal([]byte(raw), &ej)
		if !strings.Contains(ej.Error, tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.body, raw, tc.want)
		}
	}
	var list []connectionJSON
	e.want(200, "GET", "/api/v1/connections", e.admin, "", &list)
	if len(list) != 0 {
		t.Fatalf("a rejected PUT stored something: %+v", list)
	}
}

func TestValidatePolicyNormalises(t *testing.T) {
	p := engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{" DROP", "drop", "Set-Role"}, DenyTables: []string{" billing.ledger ", `public."Weird.Name"`, `"A""B"`}},
		Masking: &engine.MaskingPolicy{
			Columns:   []string{"billing.cards.pan", " *.ssn", "*.ssn"},
			Detectors: []string{"IPv4", "emp"},
			Style:     " Hash ",
			Patterns:  []engine.MaskPattern{{Name: " emp ", Regex: `EMP-\d+`}},
		},
	}
	if err := ValidatePolicy(&p); err != nil {
		t.Fatal(err)
	}
	want := engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop", "set-role"}, DenyTables: []string{"billing.ledger", `public."Weird.Name"`, `"A""B"`}},
		Masking: &engine.MaskingPolicy{
			Columns:   []string{"billing.cards.pan", "*.ssn"},
			Detectors: []string{"ipv4", "emp"},
			Style:     "hash",
			Patterns:  []engine.MaskPattern{{Name: "emp", Regex: `EMP-\d+`}},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v %+v", p.Guardrails, p.Masking)
	}
	// Blocks without a rule are dropped.
	empty := engine.Policy{Guardrails: &engine.GuardrailPolicy{}, Masking: &engine.MaskingPolicy{Style: "redact"}}
	if err := ValidatePolicy(&empty); err != nil || empty.Guardrails != nil || empty.Masking != nil {
		t.Fatalf("empty blocks: %+v %v", empty, err)
	}
}
