package masking

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// FuzzMaskValue: for any input and each style, no panic; partial keeps the
// length and only writes '*'; the masked output never contains a card
// number or IBAN that the detectors (i.e. their checksums) still accept.
// Seeded from the labelled fixture.
func FuzzMaskValue(f *testing.F) {
	if data, err := os.ReadFile(fixturePath); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if p := strings.SplitN(line, "\t", 3); len(p) == 3 && !strings.HasPrefix(line, "#") {
				f.Add([]byte(p[2]))
			}
		}
	}
	f.Add([]byte("4111 1111 1111 4321 0000 0000 0000"))
	f.Add([]byte("DE89 3704 0044 0532 0130 00 4111 1111 1111 1111"))
	styles := map[string]*Policy{}
	for _, s := range []string{"partial", "redact", "hash"} {
		styles[s] = mustCompile(f, Config{
			Detectors: allDetectors, Style: s, HashKey: []byte("fuzz"),
			Patterns: []Pattern{{Name: "employee_id", Regex: `EMP-[0-9]{6}`}},
		})
	}
	checksums := mustCompile(f, Config{Detectors: []string{"credit_card", "iban"}})
	f.Fuzz(func(t *testing.T, in []byte) {
		for name, p := range styles {
			for _, forced := range []bool{false, true} {
				v := bytes.Clone(in)
				out, res := p.MaskValue(nil, v, forced)
				if name == "partial" {
					if len(out) != len(in) {
						t.Fatalf("partial changed the length: %q → %q", in, out)
					}
					for j := range in {
						if out[j] != in[j] && out[j] != '*' {
							t.Fatalf("partial wrote %q at %d: %q → %q", out[j], j, in, out)
						}
					}
				}
				if !res.Changed {
					if !bytes.Equal(out, in) || res.InPlace || res.Kinds != 0 {
						t.Fatalf("unchanged but %q → %q %+v", in, out, res)
					}
					continue
				}
				if res.InPlace && (len(out) != len(in) || &out[0] != &v[0]) {
					t.Fatalf("InPlace but not v: %q → %q", in, out)
				}
				if k := checksums.Scan(out); k != 0 {
					t.Fatalf("%s (forced %v): masked output %q of %q still holds %v", name, forced, out, in, k)
				}
			}
		}
	})
}
