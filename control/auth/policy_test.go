package auth

import (
	"reflect"
	"regexp"
	"testing"

	"github.com/sluice-gw/sluice/engine"
)

func TestMergePolicies(t *testing.T) {
	g := func(deny, tables []string) *engine.GuardrailPolicy {
		return &engine.GuardrailPolicy{Deny: deny, DenyTables: tables}
	}
	m := func(style string, cols, dets []string, pats ...engine.MaskPattern) *engine.MaskingPolicy {
		return &engine.MaskingPolicy{Style: style, Columns: cols, Detectors: dets, Patterns: pats}
	}
	pat := func(name, re string) engine.MaskPattern { return engine.MaskPattern{Name: name, Regex: re} }
	s := func(v ...string) []string { return v }
	demo := engine.Policy{Guardrails: g(s("drop", "truncate"), s("audit_log")), Masking: m("partial", s("*.ssn"), s("email"), pat("emp", "EMP-[0-9]+"))}

	for _, tc := range []struct {
		name string
		in   []engine.Policy
		want engine.Policy
	}{
		{"none", nil, engine.Policy{}},
		{"empties", []engine.Policy{{}, {}}, engine.Policy{}},
		{"identity", []engine.Policy{demo}, demo},
		{"with empty rules", []engine.Policy{demo, {}, {}}, demo},
		{"empty connection", []engine.Policy{{}, demo}, demo},
		{"guardrail union keeps order, drops duplicates",
			[]engine.Policy{{Guardrails: g(s("drop"), nil)}, {Guardrails: g(s("truncate", "drop"), s("t1"))}, {Guardrails: g(nil, s("t1", "t2"))}},
			engine.Policy{Guardrails: g(s("drop", "truncate"), s("t1", "t2"))}},
		{"masking union",
			[]engine.Policy{{Masking: m("partial", s("a.b"), s("email"))}, {Masking: m("partial", s("*.ssn", "a.b"), s("iban", "email"))}},
			engine.Policy{Masking: m("partial", s("a.b", "*.ssn"), s("email", "iban"))}},
		{"redact beats partial", []engine.Policy{{Masking: m("partial", nil, s("email"))}, {Masking: m("redact", nil, s("email"))}},
			engine.Policy{Masking: m("redact", nil, s("email"))}},
		{"redact beats hash, in any order", []engine.Policy{{Masking: m("redact", nil, s("email"))}, {Masking: m("hash", nil, s("phone"))}},
			engine.Policy{Masking: m("redact", nil, s("email", "phone"))}},
		{"hash beats partial", []engine.Policy{{Masking: m("", nil, s("email"))}, {Masking: m("hash", nil, nil)}, {Masking: m("partial", nil, nil)}},
			engine.Policy{Masking: m("hash", nil, s("email"))}},
		{"unknown style outranks all (agent fails closed)", []engine.Policy{{Masking: m("redact", nil, s("email"))}, {Masking: m("sparkles", nil, nil)}},
			engine.Policy{Masking: m("sparkles", nil, s("email"))}},
		{"blocks from different policies", []engine.Policy{{Guardrails: g(s("drop"), nil)}, {Masking: m("partial", nil, s("email"))}},
			engine.Policy{Guardrails: g(s("drop"), nil), Masking: m("partial", nil, s("email"))}},
		{"same pattern twice", []engine.Policy{{Masking: m("partial", nil, nil, pat("emp", "E[0-9]+"))}, {Masking: m("partial", nil, nil, pat("emp", "E[0-9]+"))}},
			engine.Policy{Masking: m("partial", nil, nil, pat("emp", "E[0-9]+"))}},
		{"same name, different regexes: either matches",
			[]engine.Policy{{Masking: m("partial", nil, nil, pat("emp", "E[0-9]+"), pat("x", "X+"))}, {Masking: m("partial", nil, nil, pat("emp", "(?i)staff-[0-9]+"))}, {Masking: m("partial", nil, nil, pat("emp", "E[0-9]+"))}},
			engine.Policy{Masking: m("partial", nil, nil, pat("emp", "(?:E[0-9]+)|(?:(?i)staff-[0-9]+)"), pat("x", "X+"))}},
	} {
		got := MergePolicies(tc.in...)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %s, want %s", tc.name, got.Encode(), tc.want.Encode())
		}
	}
}

func TestMergePoliciesAlternationSemantics(t *testing.T) {
	got := MergePolicies(
		engine.Policy{Masking: &engine.MaskingPolicy{Patterns: []engine.MaskPattern{{Name: "emp", Regex: "E[0-9]+"}}}},
		engine.Policy{Masking: &engine.MaskingPolicy{Patterns: []engine.MaskPattern{{Name: "emp", Regex: "(?i)staff-[0-9]+"}}}},
	)
	re := regexp.MustCompile(got.Masking.Patterns[0].Regex)
	for s, want := range map[string]bool{"E123": true, "STAFF-9": true, "staff-9": true, "e123": false, "": false} {
		if re.MatchString(s) != want {
			t.Errorf("%q: match %v, want %v (flag leaked or part lost)", s, !want, want)
		}
	}
}

func TestMergePoliciesCopies(t *testing.T) {
	in := engine.Policy{
		Guardrails: &engine.GuardrailPolicy{Deny: []string{"drop"}},
		Masking:    &engine.MaskingPolicy{Detectors: []string{"email"}, Patterns: []engine.MaskPattern{{Name: "p", Regex: "x+"}}},
	}
	out := MergePolicies(in)
	out.Guardrails.Deny[0] = "changed"
	out.Masking.Detectors[0] = "changed"
	out.Masking.Patterns[0].Regex = "changed"
	out.Guardrails.Deny = append(out.Guardrails.Deny, "more")
	if in.Guardrails.Deny[0] != "drop" || in.Masking.Detectors[0] != "email" || in.Masking.Patterns[0].Regex != "x+" || len(in.Guardrails.Deny) != 1 {
		t.Fatalf("MergePolicies aliases its input: %s", in.Encode())
	}
}
