package auth

import (
	"slices"
	"strings"

	"github.com/sluice-gw/sluice/engine"
)

// MergePolicies stacks policies (a connection's own, then every applicable
// rule's) into one; the strictest wins:
//
//   - guardrails: the union of Deny and of DenyTables;
//   - masking: the union of Columns, Detectors and Patterns; patterns of
//     the same name with different regexes become one pattern whose regex
//     matches any of them, so everything either rule hides stays hidden;
//   - masking style: engine.MaskingPolicy has one style for all its rules,
//     so the merged style is the strictest style of any input that has a
//     masking block: redact > hash > partial ("" counts as partial, the
//     default). An unknown style outranks them all, so the agent refuses it
//     (fail closed) rather than masking less.
//
// Lists keep the order of first appearance, without duplicates, so merging
// a policy with empty ones returns an equal copy of it. A block is nil when
// no input has one. The result shares no memory with the inputs.
func MergePolicies(ps ...engine.Policy) engine.Policy {
	var out engine.Policy
	var patterns [][]engine.MaskPattern
	for _, p := range ps {
		if g := p.Guardrails; g != nil {
			if out.Guardrails == nil {
				out.Guardrails = &engine.GuardrailPolicy{}
			}
			out.Guardrails.Deny = union(out.Guardrails.Deny, g.Deny)
			out.Guardrails.DenyTables = union(out.Guardrails.DenyTables, g.DenyTables)
		}
		if m := p.Masking; m != nil {
			if out.Masking == nil {
				out.Masking = &engine.MaskingPolicy{Style: m.Style}
			} else if styleRank(m.Style) > styleRank(out.Masking.Style) {
				out.Masking.Style = m.Style
			}
			out.Masking.Columns = union(out.Masking.Columns, m.Columns)
			out.Masking.Detectors = union(out.Masking.Detectors, m.Detectors)
			patterns = append(patterns, m.Patterns)
		}
	}
	if out.Masking != nil {
		out.Masking.Patterns = mergePatterns(patterns...)
	}
	return out
}

// styleRank orders masking styles by strictness.
func styleRank(style string) int {
	switch strings.ToLower(strings.TrimSpace(style)) {
	case "", "partial":
		return 1
	case "hash":
		return 2
	case "redact":
		return 3
	default:
		return 4
	}
}

// union appends to dst the items of src it lacks; nil when both are empty.
func union(dst, src []string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

// mergePatterns stacks pattern lists: a name seen once keeps its pattern; a
// name given several different regexes gets one regex matching any of them,
// "(?:a)|(?:b)". Each part is wrapped, so flags like (?i) stay scoped to
// their own part. No part matches the empty string (the API validates
// that), so neither does the alternation.
func mergePatterns(lists ...[]engine.MaskPattern) []engine.MaskPattern {
	var names []string
	regexes := map[string][]string{}
	for _, l := range lists {
		for _, p := range l {
			rs, seen := regexes[p.Name]
			if !seen {
				names = append(names, p.Name)
			}
			if !slices.Contains(rs, p.Regex) {
				regexes[p.Name] = append(rs, p.Regex)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	out := make([]engine.MaskPattern, 0, len(names))
	for _, n := range names {
		rs := regexes[n]
		re := rs[0]
		if len(rs) > 1 {
			re = "(?:" + strings.Join(rs, ")|(?:") + ")"
		}
		out = append(out, engine.MaskPattern{Name: n, Regex: re})
	}
	return out
}
