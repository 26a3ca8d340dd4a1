package postgres

import (
	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/masking"
)

// maskAdapter adapts the masking library to valueMasker.
type maskAdapter struct {
	p       *masking.Policy
	columns bool
}

// compileMasking builds the valueMasker for a masking policy. A pattern's
// name may be listed among the detectors (the API allows it); the library
// takes patterns separately, so such names are dropped from Detectors.
func compileMasking(m *engine.MaskingPolicy, hashKey []byte) (valueMasker, error) {
	cfg := masking.Config{Columns: m.Columns, Style: m.Style, HashKey: hashKey}
	own := map[string]bool{}
	for _, p := range m.Patterns {
		cfg.Patterns = append(cfg.Patterns, masking.Pattern{Name: p.Name, Regex: p.Regex})
		own[p.Name] = true
	}
	for _, d := range m.Detectors {
		if !own[d] {
			cfg.Detectors = append(cfg.Detectors, d)
		}
	}
	p, err := masking.Compile(cfg)
	if err != nil {
		return nil, err
	}
	return maskAdapter{p: p, columns: len(m.Columns) > 0}, nil
}

func (a maskAdapter) columnRule(table, column string) bool { return a.p.ColumnRule(table, column) }
func (a maskAdapter) hasColumnRules() bool                 { return a.columns }
func (a maskAdapter) detecting() bool                      { return a.p.Detecting() }

func (a maskAdapter) mask(dst, v []byte, forced bool) ([]byte, uint64) {
	out, r := a.p.MaskValue(dst, v, forced)
	if !r.Changed {
		return v, 0
	}
	if r.Kinds == 0 {
		return out, 1 << 63 // changed without a detector kind: count as "column"
	}
	return out, uint64(r.Kinds)
}

func (a maskAdapter) kindName(k int) string {
	if k == 63 {
		return "column"
	}
	return a.p.KindName(masking.Kind(k))
}
