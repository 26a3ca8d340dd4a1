package masking

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		c    Config
		want string // substring of the error
	}{
		{Config{Detectors: []string{"email", "passport"}}, `unknown detector "passport"`},
		{Config{Style: "blur"}, `unknown style "blur"`},
		{Config{Style: "hash"}, "hash key"},
		{Config{Columns: []string{"email"}}, `column "email"`},
		{Config{Columns: []string{"customers."}}, `column "customers."`},
		{Config{Columns: []string{"a.b.c.d"}}, `column "a.b.c.d"`},
		{Config{Columns: []string{"cust omers.email"}}, `column "cust omers.email"`},
		{Config{Columns: []string{"customers.*"}}, `column "customers.*"`},
		{Config{Patterns: []Pattern{{Name: "x", Regex: "EMP-[0-9"}}}, `pattern "x"`},
		{Config{Patterns: []Pattern{{Name: "x", Regex: "a*"}}}, `pattern "x" matches the empty string`},
		{Config{Patterns: []Pattern{{Name: "", Regex: "a"}}}, "pattern 1 has no name"},
		{Config{Patterns: []Pattern{{Name: "x", Regex: ""}}}, `pattern "x" has no regex`},
		{Config{Patterns: []Pattern{{Name: "x", Regex: "a"}, {Name: "x", Regex: "b"}}}, `pattern name "x" is already used`},
		{Config{Patterns: []Pattern{{Name: "email", Regex: "b"}}}, `pattern name "email" is already used`},
	}
	for _, c := range cases {
		_, err := Compile(c.c)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want it to mention %s", c.c, err, c.want)
		}
	}
	p, err := Compile(Config{})
	if err != nil || p.Enabled() || p.Detecting() || p.Style() != Partial {
		t.Errorf("empty config: %v %v", p, err)
	}
	p = mustCompile(t, Config{Columns: []string{"t.c"}})
	if !p.Enabled() || p.Detecting() {
		t.Error("columns only: Enabled and not Detecting")
	}
	p = mustCompile(t, Config{Patterns: []Pattern{{Name: "x", Regex: "x"}}})
	if !p.Enabled() || !p.Detecting() {
		t.Error("patterns only: Enabled and Detecting")
	}
}

func TestColumnRule(t *testing.T) {
	p := mustCompile(t, Config{Columns: []string{"customers.email", "*.SSN", "billing.cards.number"}})
	cases := []struct {
		table, column string
		want          bool
	}{
		{"customers", "email", true},
		{"CUSTOMERS", "Email", true},
		{"public.customers", "email", true},
		{"customers", "name", false},
		{"xcustomers", "email", false},
		{"orders", "ssn", true},
		{"", "ssn", true},
		{"cards", "number", false},
		{"billing.cards", "number", true},
		{"other.cards", "number", false},
	}
	for _, c := range cases {
		if got := p.ColumnRule(c.table, c.column); got != c.want {
			t.Errorf("ColumnRule(%q, %q) = %v", c.table, c.column, got)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { p.ColumnRule("public.customers", "EMAIL") }); allocs != 0 {
		t.Errorf("ColumnRule allocates %.0f", allocs)
	}
	var nilp *Policy
	if nilp.Enabled() || nilp.ColumnRule("a", "b") {
		t.Error("nil policy")
	}
}

func TestForced(t *testing.T) {
	cases := []struct{ style, in, want string }{
		{"partial", "abc", "***"},
		{"partial", "1234567", "*******"},
		{"partial", "12345678", "****5678"},
		{"partial", "secret-value-1234", "*************1234"},
		{"partial", "Zoë Müller", "********ller"}, // 10 runes, 12 bytes; the 2-byte ones become "**"
		{"partial", "éèêëàâ€ü", "******€ü"[0:0] + strings.Repeat("*", len("éèêë")) + "àâ€ü"},
		{"redact", "ada@example.com", "[masked]"},
		{"redact", "8 chars!", "[masked]"},
		{"partial", "", ""},
	}
	for _, c := range cases {
		p := mustCompile(t, Config{Style: c.style, Columns: []string{"*.x"}})
		v := []byte(c.in)
		dst := []byte("prefix:")
		out, res := p.MaskValue(dst, v, true)
		got := string(out)
		if !res.InPlace && res.Changed {
			got = strings.TrimPrefix(got, "prefix:")
		}
		if got != c.want {
			t.Errorf("%s %q: %q, want %q", c.style, c.in, got, c.want)
		}
		if c.in == "" {
			if res.Changed {
				t.Error("empty value changed")
			}
			continue
		}
		if !res.Changed || res.Kinds != 1<<KindColumn {
			t.Errorf("%s %q: %+v", c.style, c.in, res)
		}
		if res.InPlace != (len(c.want) == len(c.in)) {
			t.Errorf("%s %q: InPlace %v", c.style, c.in, res.InPlace)
		}
	}
	// hash: deterministic, key-dependent, "h:" + 16 hex
	h1 := mustCompile(t, Config{Style: "hash", HashKey: []byte("k1")})
	h2 := mustCompile(t, Config{Style: "hash", HashKey: []byte("k2")})
	a, _ := h1.MaskValue(nil, []byte("ada@example.com"), true)
	b, _ := h1.MaskValue(nil, []byte("ada@example.com"), true)
	c, _ := h2.MaskValue(nil, []byte("ada@example.com"), true)
	if string(a) != string(b) || string(a) == string(c) || !regexp.MustCompile(`^h:[0-9a-f]{16}$`).Match(a) {
		t.Errorf("hash: %q %q %q", a, b, c)
	}
	// a value of the token's length is rewritten in place
	v := []byte("123456789012345678")
	out, res := h1.MaskValue(nil, v, true)
	if !res.InPlace || &out[0] != &v[0] || !bytes.HasPrefix(v, []byte("h:")) {
		t.Errorf("hash in place: %q %+v", out, res)
	}
}

func TestStyles(t *testing.T) {
	in := "contact ada@example.com or 4111 1111 1111 1111, ssn 123-45-6789"
	// partial
	p := allPolicy(t, "partial")
	v := []byte(in)
	out, res := p.MaskValue(nil, v, false)
	if string(out) != "contact ***@example.com or **** **** **** 1111, ssn ***-**-6789" || !res.InPlace || &out[0] != &v[0] {
		t.Errorf("partial: %q %+v", out, res)
	}
	// redact: appended to dst
	p = allPolicy(t, "redact")
	dst := make([]byte, 3, 256)
	copy(dst, "XYZ")
	out, res = p.MaskValue(dst, []byte(in), false)
	if string(out) != "XYZcontact [email] or [credit_card], ssn [ssn]" || res.InPlace || !res.Changed {
		t.Errorf("redact: %q %+v", out, res)
	}
	if res.Kinds != 1<<KindEmail|1<<KindCreditCard|1<<KindSSN {
		t.Errorf("redact kinds %v", res.Kinds)
	}
	// redact in place when the token happens to fit: "[ipv4]" for 6-byte "1.2.3.4"? no, 7 bytes;
	// "[ssn]" never fits an SSN; a 7-byte ipv4 with "[ipv4]" (6) does not either. Use a
	// pattern whose token has the span's length.
	pp := mustCompile(t, Config{Style: "redact", Patterns: []Pattern{{Name: "id", Regex: `ID[0-9]{2}`}}})
	v = []byte("see ID42 and ID43")
	out, res = pp.MaskValue(nil, v, false)
	if string(out) != "see [id] and [id]" || !res.InPlace {
		t.Errorf("redact same length: %q %+v", out, res)
	}
	// hash: equal inputs give equal outputs; card formats hash alike
	p = allPolicy(t, "hash")
	o1, _ := p.MaskValue(nil, []byte("card 4111 1111 1111 1111"), false)
	o2, _ := p.MaskValue(nil, []byte("card 4111111111111111"), false)
	o3, _ := p.MaskValue(nil, []byte("card 4111-1111-1111-1111"), false)
	o4, _ := p.MaskValue(nil, []byte("card 5555555555554444"), false)
	if string(o1) != string(o2) || string(o2) != string(o3) || string(o1) == string(o4) ||
		!regexp.MustCompile(`^card h:[0-9a-f]{16}$`).Match(o1) {
		t.Errorf("hash: %q %q %q %q", o1, o2, o3, o4)
	}
	e1, _ := p.MaskValue(nil, []byte("Ada@Example.com"), false)
	e2, _ := p.MaskValue(nil, []byte("ada@example.com"), false)
	if string(e1) != string(e2) {
		t.Errorf("hash e-mail not case-insensitive: %q %q", e1, e2)
	}
	// nothing detected: v returned untouched
	v = []byte("nothing to see here 42")
	out, res = p.MaskValue(dst[:0], v, false)
	if res.Changed || res.InPlace || &out[0] != &v[0] {
		t.Errorf("no PII: %q %+v", out, res)
	}
}

func TestPatterns(t *testing.T) {
	p := mustCompile(t, Config{
		Detectors: allDetectors,
		Patterns:  []Pattern{{Name: "employee_id", Regex: `EMP-[0-9]{6}`}, {Name: "ticket", Regex: `TCK[0-9]+`}},
	})
	v := []byte("EMP-123456 mailed ada@example.com about TCK77 and EMP-654321")
	out, res := p.MaskValue(nil, v, false)
	if string(out) != "***-****** mailed ***@example.com about ***** and ***-******" {
		t.Errorf("partial patterns: %q", out)
	}
	if !res.Kinds.Has(KindPattern0) || !res.Kinds.Has(KindPattern0+1) || !res.Kinds.Has(KindEmail) {
		t.Errorf("kinds %v", res.Kinds)
	}
	if p.KindName(KindPattern0+1) != "ticket" || p.KindName(KindEmail) != "email" {
		t.Error("KindName")
	}
	r := mustCompile(t, Config{
		Style:     "redact",
		Detectors: allDetectors,
		Patterns:  []Pattern{{Name: "employee_id", Regex: `EMP-[0-9]{6}`}},
	})
	out, _ = r.MaskValue(nil, []byte("EMP-123456 / 10.0.0.1 / EMP-000001"), false)
	if string(out) != "[employee_id] / [ipv4] / [employee_id]" {
		t.Errorf("redact patterns: %q", out)
	}
	// a built-in span wins over a pattern match starting inside it
	o := mustCompile(t, Config{Detectors: []string{"email"}, Style: "redact", Patterns: []Pattern{{Name: "ex", Regex: `example`}}})
	out, _ = o.MaskValue(nil, []byte("ada@example.com and example"), false)
	if string(out) != "[email] and [ex]" {
		t.Errorf("overlap: %q", out)
	}
}

// spansOf lists the spans the detectors find (without masking).
func spansOf(p *Policy, v []byte) [][3]int {
	var spans [][3]int
	m := masker{p: p, v: v, lim: len(v), dry: true}
	m.spans = func(k Kind, s, e int) { spans = append(spans, [3]int{int(k), s, e}) }
	m.scan(0)
	return spans
}

// TestInPlaceOnlyTouchesSpans: partial masking keeps the length, writes only
// '*' and only inside the detected spans; redact output is exactly the
// value with each span replaced by its token.
func TestInPlaceOnlyTouchesSpans(t *testing.T) {
	partial := allPolicy(t, "partial")
	redact := allPolicy(t, "redact")
	g := newGen(99)
	var values []string
	for range 3000 {
		values = append(values, g.realistic(0.3)+" "+g.realistic(0.3))
	}
	for _, r := range readFixture(t) {
		values = append(values, r.value)
	}
	for _, s := range values {
		spans := spansOf(partial, []byte(s))
		in := make([]bool, len(s))
		for _, sp := range spans {
			for j := sp[1]; j < sp[2]; j++ {
				in[j] = true
			}
		}
		v := []byte(s)
		out, res := partial.MaskValue(nil, v, false)
		if res.Changed != (len(spans) > 0) || len(out) != len(s) || (res.Changed && !res.InPlace) {
			t.Fatalf("%q: %q %+v spans %v", s, out, res, spans)
		}
		for j := range s {
			if out[j] != s[j] && (!in[j] || out[j] != '*') {
				t.Fatalf("%q → %q: byte %d changed outside a span or not to '*' (spans %v)", s, out, j, spans)
			}
		}
		// redact
		var want []byte
		last := 0
		for _, sp := range spans {
			want = append(want, s[last:sp[1]]...)
			want = append(want, redact.tokens[sp[0]]...)
			last = sp[2]
		}
		want = append(want, s[last:]...)
		out, _ = redact.MaskValue(nil, []byte(s), false)
		if string(out) != string(want) {
			t.Fatalf("redact %q: %q, want %q", s, out, want)
		}
	}
}

// TestConcurrent: one Policy shared by goroutines gives the same results as
// sequential use (run with -race).
func TestConcurrent(t *testing.T) {
	p := allPolicy(t, "hash")
	g := newGen(5)
	var values []string
	for range 500 {
		values = append(values, g.realistic(0.5))
	}
	want := make([]string, len(values))
	for i, s := range values {
		out, _ := p.MaskValue(nil, []byte(s), false)
		want[i] = string(out)
	}
	done := make(chan error, 4)
	for range 4 {
		go func() {
			for i, s := range values {
				if out, _ := p.MaskValue(nil, []byte(s), false); string(out) != want[i] {
					done <- fmt.Errorf("%q: %q, want %q", s, out, want[i])
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
