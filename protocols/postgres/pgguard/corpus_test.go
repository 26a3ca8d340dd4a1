package pgguard

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// corpusRules is the fixed rule set testdata/corpus.tsv is written for.
var corpusRules = Rules{
	Deny:       KnownRules(),
	DenyTables: []string{"audit_log", "billing.ledger"},
}

type corpusCase struct {
	line   int
	expect string // "allow" or "deny:<rule>"
	sql    string
}

// unescapeTSV undoes the corpus escapes: \n, \r, \t and \\.
func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case 'r':
				b.WriteByte('\r')
				i++
				continue
			case 't':
				b.WriteByte('\t')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func loadCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	f, err := os.Open("testdata/corpus.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		expect, sql, ok := strings.Cut(line, "\t")
		if !ok {
			tb.Fatalf("corpus.tsv:%d: no tab", n)
		}
		if expect != "allow" && !strings.HasPrefix(expect, "deny:") {
			tb.Fatalf("corpus.tsv:%d: bad decision %q", n, expect)
		}
		out = append(out, corpusCase{line: n, expect: expect, sql: unescapeTSV(sql)})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func decisionString(d Decision) string {
	if d.Allow {
		return "allow"
	}
	return "deny:" + d.Rule
}

func TestCorpus(t *testing.T) {
	g, err := Compile(corpusRules, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := loadCorpus(t)
	if len(cases) < 300 {
		t.Errorf("corpus has %d statements, want at least 300", len(cases))
	}
	agree, allows, parsed := 0, 0, 0
	for _, c := range cases {
		d := g.Check(c.sql)
		if got := decisionString(d); got != c.expect {
			t.Errorf("corpus.tsv:%d: %q: got %s (%s), want %s", c.line, c.sql, got, d.Reason, c.expect)
			continue
		}
		agree++
		if d.Allow {
			allows++
		} else if !strings.Contains(d.Reason, `"`+d.Rule+`"`) {
			t.Errorf("corpus.tsv:%d: reason %q does not name rule %q", c.line, d.Reason, d.Rule)
		}
		if d.Parsed {
			parsed++
		}
		// The cached answer must be the same.
		if d2 := g.Check(c.sql); d2 != d {
			t.Errorf("corpus.tsv:%d: second Check differs: %+v vs %+v", c.line, d2, d)
		}
	}
	t.Logf("corpus: %d/%d statements agree (%.1f%%); %d allowed, %d denied; %d needed the parse, %d answered by the prefilter",
		agree, len(cases), 100*float64(agree)/float64(len(cases)), allows, agree-allows, parsed, agree-parsed)
}

// TestCorpusPrefilterProperty checks prefilterAllows ⇒ fullCheck allows over the
// corpus, for the full rule set and for every rule on its own.
func TestCorpusPrefilterProperty(t *testing.T) {
	cases := loadCorpus(t)
	for _, g := range propertyGuards(t) {
		for _, c := range cases {
			if msg := prefilterViolation(g, c.sql); msg != "" {
				t.Errorf("corpus.tsv:%d: %s", c.line, msg)
			}
		}
	}
}

func TestNoRules(t *testing.T) {
	g, err := Compile(Rules{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Enabled() {
		t.Fatal("guard with no rules is enabled")
	}
	for _, c := range loadCorpus(t) {
		d := g.Check(c.sql)
		if !d.Allow || d.Parsed || d.Rule != "" || d.Reason != "" {
			t.Errorf("corpus.tsv:%d: no rules: got %+v", c.line, d)
		}
	}
	if e, _ := g.CacheStats(); e != 0 {
		t.Errorf("no rules: cache has %d entries", e)
	}
}
