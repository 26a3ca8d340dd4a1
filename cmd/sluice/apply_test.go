package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-gw/sluice/engine"
)

func TestParseApplyDocsOrderAndFields(t *testing.T) {
	in := `
kind: connection
name: pg-demo
agent: demo-agent
type: postgres
target: postgres://app:secret@127.0.0.1:5432/app
---
kind: user
name: alice
password: "s3cret"
groups: [dev, ops]
---
kind: agent
name: demo-agent
---
kind: user
name: bob
---
`
	docs, err := parseApplyDocs(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.ref())
	}
	want := "agent/demo-agent user/alice user/bob connection/pg-demo"
	if strings.Join(got, " ") != want {
		t.Fatalf("order = %v, want %s", got, want)
	}
	if docs[0].index != 3 || docs[3].index != 1 {
		t.Errorf("document numbers: %d %d", docs[0].index, docs[3].index)
	}
	alice := docs[1]
	if alice.user.Password == nil || *alice.user.Password != "s3cret" {
		t.Errorf("alice password = %v", alice.user.Password)
	}
	if alice.user.Groups == nil || strings.Join(*alice.user.Groups, ",") != "dev,ops" {
		t.Errorf("alice groups = %v", alice.user.Groups)
	}
	bob := docs[2]
	if bob.user.Password != nil || bob.user.Groups != nil {
		t.Errorf("bob should send neither password nor groups: %+v", bob.user)
	}
	c := docs[3].conn
	if c.Agent != "demo-agent" || c.Type != "postgres" || c.Target != "postgres://app:secret@127.0.0.1:5432/app" {
		t.Errorf("connection = %+v", c)
	}
}

func TestParseApplyDocsErrors(t *testing.T) {
	const conn = "kind: connection\nname: c\nagent: a\ntype: postgres\ntarget: x\n"
	cases := []struct{ name, in, want string }{
		{"unknown kind", "kind: agent\nname: a\n---\nkind: database\nname: x\n", `document 2 (line 4): unknown kind "database"`},
		{"unknown field", "kind: agent\nname: a\n---\nkind: user\nname: u\n---\nkind: agent\nname: b\ncolor: red\n", `document 3 (agent/b), line 9: unknown field "color"`},
		{"guardrails unknown field", conn + "guardrails:\n  block: [drop]\n", `document 1 (connection/c), line 7: unknown field "block" in guardrails (allowed: deny, deny_tables)`},
		{"guardrails not a mapping", conn + "guardrails: [drop]\n", `document 1 (connection/c), line 6: guardrails must be a mapping`},
		{"deny not a list", conn + "guardrails:\n  deny: drop\n", `line 7: guardrails.deny must be a list of strings`},
		{"deny item not a string", conn + "guardrails:\n  deny:\n    - drop\n    - {x: y}\n", `line 9: guardrails.deny must be a list of strings`},
		{"deny twice", conn + "guardrails:\n  deny: [drop]\n  deny: [alter]\n", `line 8: field guardrails.deny appears twice`},
		{"unknown rule", conn + "guardrails:\n  deny: [drop, dorp]\n", `document 1 (connection/c), line 6: guardrails.deny: unknown rule "dorp"`},
		{"masking unknown field", conn + "masking:\n  style: partial\n  colums: [a.b]\n", `line 8: unknown field "colums" in masking`},
		{"pattern unknown field", conn + "masking:\n  patterns:\n    - name: x\n      regexp: 'a'\n", `line 9: unknown field "regexp" in masking.patterns[0] (allowed: name, regex)`},
		{"pattern not a mapping", conn + "masking:\n  patterns: [abc]\n", `line 7: masking.patterns[0] must be a mapping`},
		{"bad regex", conn + "masking:\n  patterns:\n    - {name: x, regex: 'a['}\n", `line 6: masking.patterns[0] (x): bad regex`},
		{"unknown detector", conn + "masking:\n  detectors: [zip]\n", `masking.detectors: unknown detector "zip"`},
		{"bad style", conn + "masking:\n  style: [partial]\n", `line 7: masking.style must be a string`},
		{"bad column", conn + "masking:\n  columns: [email]\n", `masking.columns: bad column "email"`},
		{"missing kind", "name: a\n", "document 1 (line 1): missing kind"},
		{"missing name", "kind: agent\n", "document 1 (line 1): agent without a name"},
		{"missing connection fields", "kind: connection\nname: c\ntype: postgres\n", "document 1 (connection/c): missing agent, target"},
		{"duplicate", "kind: agent\nname: a\n---\nkind: agent\nname: a\n", "document 2: agent/a is already defined in document 1"},
		{"not a mapping", "- a\n- b\n", "document 1 (line 1): want a mapping"},
		{"bad yaml", "kind: agent\nname: a\n---\nkind: [\n", "document 2:"},
		{"groups not a list", "kind: user\nname: u\ngroups: {a: b}\n", "groups must be a list"},
		{"empty", "---\n", "no documents to apply"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseApplyDocs(strings.NewReader(tc.in), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseApplyDocsPolicy(t *testing.T) {
	in := `kind: connection
name: pg-demo
agent: demo-agent
type: postgres
target: postgres://app:secret@127.0.0.1:5432/app
guardrails:
  deny: [drop, truncate, alter, grant, delete-without-where, update-without-where]
  deny_tables: [audit_log]
masking:
  columns: [customers.email, "*.ssn"]
  detectors: [email, credit_card, iban, ssn, phone]
  style: partial
  patterns:
    - name: employee_id
      regex: 'EMP-[0-9]{6}'
---
kind: connection
name: plain
agent: demo-agent
type: postgres
target: x
guardrails:
masking: {}
`
	docs, err := parseApplyDocs(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := connectionPut{
		Agent: "demo-agent", Type: "postgres", Target: "postgres://app:secret@127.0.0.1:5432/app",
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
	if !reflect.DeepEqual(docs[0].conn, want) {
		t.Errorf("pg-demo = %+v %+v %+v", docs[0].conn, docs[0].conn.Guardrails, docs[0].conn.Masking)
	}
	// Empty blocks send no policy.
	if p := docs[1].conn; p.Guardrails != nil || p.Masking != nil {
		t.Errorf("plain = %+v %+v", p.Guardrails, p.Masking)
	}
}
