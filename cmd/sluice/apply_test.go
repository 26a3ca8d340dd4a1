package main

import (
	"strings"
	"testing"
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
	docs, err := parseApplyDocs(strings.NewReader(in))
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
	cases := []struct{ name, in, want string }{
		{"unknown kind", "kind: agent\nname: a\n---\nkind: database\nname: x\n", `document 2 (line 4): unknown kind "database"`},
		{"unknown field", "kind: agent\nname: a\n---\nkind: user\nname: u\n---\nkind: agent\nname: b\ncolor: red\n", `document 3 (agent/b), line 9: unknown field "color"`},
		{"guardrails not yet", "kind: connection\nname: c\nagent: a\ntype: postgres\ntarget: x\nguardrails:\n  block: [drop]\n", `document 1 (connection/c), line 6: field "guardrails" is not supported yet`},
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
			_, err := parseApplyDocs(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
