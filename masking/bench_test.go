package masking

import (
	"testing"
)

// corpus is a set of row values laid out in one buffer, like a DataRow.
type corpus struct {
	pristine []byte
	work     []byte
	bounds   [][2]int
}

func newCorpus(n int, next func() string) *corpus {
	c := &corpus{}
	for range n {
		v := next()
		c.bounds = append(c.bounds, [2]int{len(c.pristine), len(c.pristine) + len(v)})
		c.pristine = append(c.pristine, v...)
	}
	c.work = make([]byte, len(c.pristine))
	return c
}

func benchCorpora() map[string]*corpus {
	g := newGen(7)
	return map[string]*corpus{
		// ~5% of values hold PII, ~14% are look-alikes, the rest names,
		// addresses, free text, amounts, JSON, statuses
		"realistic-mix": newCorpus(20000, func() string { return g.realistic(0.05) }),
		"no-pii":        newCorpus(20000, func() string { return g.realistic(0) }),
		"all-pii": newCorpus(20000, func() string {
			return g.positive(piiKinds[g.n(len(piiKinds))])
		}),
		"free-text": newCorpus(5000, func() string { return g.sentence(20, 60) }),
	}
}

// BenchmarkMaskValue masks every value of a corpus with all built-in
// detectors on, style partial (in place). Each iteration first restores the
// corpus with one copy (included in the time: a conservative figure).
func BenchmarkMaskValue(b *testing.B) {
	corpora := benchCorpora()
	for _, name := range []string{"realistic-mix", "no-pii", "all-pii", "free-text"} {
		c := corpora[name]
		for _, style := range []string{"partial", "redact", "hash"} {
			if name == "free-text" && style != "partial" {
				continue
			}
			b.Run(name+"/"+style, func(b *testing.B) {
				p := allPolicy(b, style)
				dst := make([]byte, 0, 4096)
				b.SetBytes(int64(len(c.pristine)))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					copy(c.work, c.pristine)
					for _, bd := range c.bounds {
						p.MaskValue(dst[:0], c.work[bd[0]:bd[1]], false)
					}
				}
				b.ReportMetric(float64(len(c.bounds)), "values/op")
			})
		}
	}
}

// BenchmarkMaskValueForced masks whole values of a column rule.
func BenchmarkMaskValueForced(b *testing.B) {
	c := benchCorpora()["realistic-mix"]
	for _, style := range []string{"partial", "redact", "hash"} {
		b.Run(style, func(b *testing.B) {
			p := mustCompile(b, Config{Columns: []string{"*.ssn"}, Style: style, HashKey: []byte("k")})
			dst := make([]byte, 0, 4096)
			b.SetBytes(int64(len(c.pristine)))
			b.ReportAllocs()
			for b.Loop() {
				copy(c.work, c.pristine)
				for _, bd := range c.bounds {
					p.MaskValue(dst[:0], c.work[bd[0]:bd[1]], true)
				}
			}
		})
	}
}

// BenchmarkMaskValuePatterns shows the cost of a user-defined pattern on top
// of the built-in detectors (regexp; allocates).
func BenchmarkMaskValuePatterns(b *testing.B) {
	c := benchCorpora()["realistic-mix"]
	p := mustCompile(b, Config{Detectors: allDetectors, Patterns: []Pattern{{Name: "employee_id", Regex: `EMP-[0-9]{6}`}}})
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(len(c.pristine)))
	b.ReportAllocs()
	for b.Loop() {
		copy(c.work, c.pristine)
		for _, bd := range c.bounds {
			p.MaskValue(dst[:0], c.work[bd[0]:bd[1]], false)
		}
	}
}

func TestMaskValueDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (hash style) allocate")
	}
	c := benchCorpora()["realistic-mix"]
	for _, style := range []string{"partial", "redact", "hash"} {
		p := allPolicy(t, style)
		dst := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(5, func() {
			copy(c.work, c.pristine)
			for _, bd := range c.bounds {
				p.MaskValue(dst[:0], c.work[bd[0]:bd[1]], false)
				p.MaskValue(dst[:0], c.work[bd[0]:bd[1]], true)
			}
		})
		if allocs > 0 {
			t.Errorf("style %s: %.1f allocations per corpus pass", style, allocs)
		}
	}
}
