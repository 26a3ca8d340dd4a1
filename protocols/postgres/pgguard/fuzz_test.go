package pgguard

import (
	"fmt"
	"sync"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

var (
	propGuardsOnce sync.Once
	propGuards     []*Guard
	propGuardsErr  error
)

// propertyGuards: the corpus rule set, each rule alone, and deny_tables alone.
// Each has a different keyword set, so each needs the property on its own.
func propertyGuards(tb testing.TB) []*Guard {
	propGuardsOnce.Do(func() {
		sets := []Rules{corpusRules, {DenyTables: corpusRules.DenyTables}}
		for _, r := range KnownRules() {
			sets = append(sets, Rules{Deny: []string{r}})
		}
		for _, rs := range sets {
			g, err := Compile(rs, Options{CacheBytes: -1})
			if err != nil {
				propGuardsErr = err
				return
			}
			propGuards = append(propGuards, g)
		}
	})
	if propGuardsErr != nil {
		tb.Fatal(propGuardsErr)
	}
	return propGuards
}

// prefilterViolation returns a message when the prefilter allows sql but the full
// check denies it. A top-level parse failure is no violation: with no word any rule
// depends on in the text, no rule needs the parse (see README).
func prefilterViolation(g *Guard, sql string) string {
	if !g.prefilterAllows(sql) {
		return ""
	}
	d := g.fullCheck(sql)
	if d.Allow {
		return ""
	}
	if d.Rule == RuleUnparseable {
		if _, err := pg_query.Parse(sql); err != nil {
			return ""
		}
	}
	return fmt.Sprintf("rules %v %v: prefilter allows %q but the full check denies: %s",
		keys(g.deny), g.tables, sql, d.Reason)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func addCorpusSeeds(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add(c.sql)
	}
}

// FuzzPrefilter: prefilterAllows(sql) ⇒ fullCheck(sql) allows, for every rule set
// of propertyGuards.
func FuzzPrefilter(f *testing.F) {
	addCorpusSeeds(f)
	guards := propertyGuards(f)
	f.Fuzz(func(t *testing.T, sql string) {
		for _, g := range guards {
			if msg := prefilterViolation(g, sql); msg != "" {
				t.Fatal(msg)
			}
		}
	})
}

// FuzzCheck: no panic on any input, and a denial always names a rule.
func FuzzCheck(f *testing.F) {
	addCorpusSeeds(f)
	g, err := Compile(corpusRules, Options{CacheBytes: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		d := g.Check(sql)
		if !d.Allow && (d.Rule == "" || d.Reason == "") {
			t.Fatalf("denial without rule/reason: %+v", d)
		}
		if d.Kind == "" {
			t.Fatalf("no kind: %+v", d)
		}
	})
}

// FuzzClassify: no panic on any input; an input the classifier's prefilter
// lets through has no target (or does not parse); a parsed classification is
// deduplicated and bounded; the cached answer equals the uncached one.
func FuzzClassify(f *testing.F) {
	addCorpusSeeds(f)
	for _, s := range []string{"WITH d AS (DELETE FROM a RETURNING *) SELECT 1", "DO $$BEGIN EXECUTE 'TRUNCATE x'; END$$",
		"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "COPY t FROM STDIN", "DROP SCHEMA s CASCADE", "CALL p()"} {
		f.Add(s)
	}
	cl := NewClassifier(Options{CacheBytes: 64 << 10})
	f.Fuzz(func(t *testing.T, sql string) {
		got, err := fullClassify(sql)
		if classifyFilter.allows(sql) && err == nil && len(got) > 0 {
			t.Fatalf("prefilter allows %q but it has targets %v", sql, got)
		}
		if len(got) > maxTargets+1 {
			t.Fatalf("%d targets", len(got))
		}
		seen := map[Target]bool{}
		for _, tg := range got {
			if seen[tg] || tg.Kind == "" {
				t.Fatalf("duplicate or empty target in %v", got)
			}
			seen[tg] = true
		}
		cached, cerr := cl.Classify(sql)
		if !classifyFilter.allows(sql) && ((err == nil) != (cerr == nil) || targetsString(cached) != targetsString(got)) {
			t.Fatalf("cached %v %v, uncached %v %v", cached, cerr, got, err)
		}
	})
}
