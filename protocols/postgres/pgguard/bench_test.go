package pgguard

import (
	"strconv"
	"testing"
)

const benchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"

// benchParsed needs the parse under the full rule set (UPDATE, and it is allowed).
const benchParsed = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"

func BenchmarkCheckPrefiltered(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{})
	b.ReportAllocs()
	for b.Loop() {
		if d := g.Check(benchSelect); !d.Allow || d.Parsed {
			b.Fatal(d)
		}
	}
}

func BenchmarkCheckParsed(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{CacheBytes: -1})
	b.ReportAllocs()
	for b.Loop() {
		if d := g.Check(benchParsed); !d.Allow || !d.Parsed {
			b.Fatal(d)
		}
	}
}

// BenchmarkCheckParsedMiss: cache on, every statement text new (misses + inserts).
func BenchmarkCheckParsedMiss(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if d := g.Check(benchParsed + " AND " + strconv.Itoa(i) + " > 0"); !d.Allow {
			b.Fatal(d)
		}
	}
}

func BenchmarkCheckParsedDeny(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{CacheBytes: -1})
	b.ReportAllocs()
	for b.Loop() {
		if d := g.Check("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"); d.Allow {
			b.Fatal(d)
		}
	}
}

func BenchmarkCheckDoBlock(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{CacheBytes: -1})
	b.ReportAllocs()
	for b.Loop() {
		if d := g.Check("DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; UPDATE t SET a = n WHERE id = 1; END $$"); !d.Allow {
			b.Fatal(d)
		}
	}
}

func BenchmarkCheckCached(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{})
	g.Check(benchParsed)
	b.ReportAllocs()
	for b.Loop() {
		if d := g.Check(benchParsed); !d.Allow || !d.Parsed {
			b.Fatal(d)
		}
	}
}

func BenchmarkCheckCachedParallel(b *testing.B) {
	g := mustCompile(b, corpusRules, Options{})
	g.Check(benchParsed)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := g.Check(benchParsed); !d.Allow {
				b.Fatal(d)
			}
		}
	})
}

func BenchmarkCheckDisabled(b *testing.B) {
	g := mustCompile(b, Rules{}, Options{})
	b.ReportAllocs()
	for b.Loop() {
		g.Check(benchSelect)
	}
}
