package api

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sluice-gw/sluice/engine"
)

// The names below mirror what the agent compiles (pgguard and masking). The
// control plane checks them early so that a typo is a 400 on PUT rather
// than a failed session; the agent still compiles the policy itself and
// fails closed on anything it does not accept.

// GuardrailRules are the rule names accepted in guardrails.deny.
var GuardrailRules = []string{
	"drop", "truncate", "alter", "grant", "delete-without-where",
	"update-without-where", "create", "copy-from-program", "set-role",
}

// MaskDetectors are the built-in detector names accepted in
// masking.detectors (the names of the connection's own patterns are
// accepted too).
var MaskDetectors = []string{"email", "credit_card", "iban", "ssn", "phone", "ipv4", "ipv6"}

// MaskStyles are the accepted masking.style values; the first is the default.
var MaskStyles = []string{"partial", "redact", "hash"}

// MaxMaskPatterns is how many masking.patterns a connection may have.
const MaxMaskPatterns = 56

// reservedPatternNames cannot name a pattern: they are masking tokens.
var reservedPatternNames = []string{"column", "masked"}

// ValidatePolicy checks p and normalises it in place: names are trimmed and
// lower-cased, duplicates dropped, a masking block gets the default style,
// and blocks without any rule become nil. The error names the bad item,
// e.g. `guardrails.deny: unknown rule "dorp" (want one of ...)`.
func ValidatePolicy(p *engine.Policy) error {
	if g := p.Guardrails; g != nil {
		if err := validateGuardrails(g); err != nil {
			return err
		}
		if len(g.Deny)+len(g.DenyTables) == 0 {
			p.Guardrails = nil
		}
	}
	if m := p.Masking; m != nil {
		if err := validateMasking(m); err != nil {
			return err
		}
		if len(m.Columns)+len(m.Detectors)+len(m.Patterns) == 0 {
			p.Masking = nil
		}
	}
	return nil
}

func validateGuardrails(g *engine.GuardrailPolicy) error {
	var deny []string
	for _, r := range g.Deny {
		n := strings.ToLower(strings.TrimSpace(r))
		if !slices.Contains(GuardrailRules, n) {
			return fmt.Errorf("guardrails.deny: unknown rule %q (want one of %s)", r, strings.Join(GuardrailRules, ", "))
		}
		if !slices.Contains(deny, n) {
			deny = append(deny, n)
		}
	}
	g.Deny = deny
	var tables []string
	for _, t := range g.DenyTables {
		n := strings.TrimSpace(t)
		if err := checkTableName(n); err != nil {
			return fmt.Errorf("guardrails.deny_tables: bad table %q: %v", t, err)
		}
		if !slices.Contains(tables, n) {
			tables = append(tables, n)
		}
	}
	g.DenyTables = tables
	return nil
}

var errTableName = errors.New("want table or schema.table")

// checkTableName accepts `table` or `schema.table`, each part an unquoted
// name (no blanks or quotes) or a "quoted" one ("" stands for a quote).
func checkTableName(s string) error {
	parts := 0
	for {
		parts++
		if s == "" {
			return errors.New("empty name")
		}
		if s[0] == '"' {
			i, n := 1, 0
			for ; i < len(s); i++ {
				if s[i] != '"' {
					n++
					continue
				}
				if i+1 < len(s) && s[i+1] == '"' {
					i++
					n++
					continue
				}
				break
			}
			if i >= len(s) || n == 0 {
				return errors.New("unterminated or empty quoted name")
			}
			s = s[i+1:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			if strings.TrimSpace(s[:i]) == "" || strings.ContainsAny(s[:i], "\" \t\r\n") {
				return errTableName
			}
			s = s[i:]
		}
		if s == "" {
			break
		}
		if s[0] != '.' {
			return errTableName
		}
		s = s[1:]
	}
	if parts > 2 {
		return errTableName
	}
	return nil
}

func validateMasking(m *engine.MaskingPolicy) error {
	style := strings.ToLower(strings.TrimSpace(m.Style))
	if style == "" {
		style = MaskStyles[0]
	}
	if !slices.Contains(MaskStyles, style) {
		return fmt.Errorf("masking.style: unknown style %q (want %s)", m.Style, strings.Join(MaskStyles, ", "))
	}
	m.Style = style

	if len(m.Patterns) > MaxMaskPatterns {
		return fmt.Errorf("masking.patterns: %d patterns, at most %d", len(m.Patterns), MaxMaskPatterns)
	}
	var names []string
	for i := range m.Patterns {
		p := &m.Patterns[i]
		p.Name = strings.TrimSpace(p.Name)
		switch {
		case p.Name == "":
			return fmt.Errorf("masking.patterns[%d]: name is required", i)
		case slices.Contains(MaskDetectors, p.Name) || slices.Contains(reservedPatternNames, p.Name):
			return fmt.Errorf("masking.patterns[%d]: name %q is reserved", i, p.Name)
		case slices.Contains(names, p.Name):
			return fmt.Errorf("masking.patterns[%d]: name %q is used twice", i, p.Name)
		case p.Regex == "":
			return fmt.Errorf("masking.patterns[%d] (%s): regex is required", i, p.Name)
		}
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			return fmt.Errorf("masking.patterns[%d] (%s): bad regex: %v", i, p.Name, err)
		}
		if re.MatchString("") {
			return fmt.Errorf("masking.patterns[%d] (%s): regex matches the empty string", i, p.Name)
		}
		names = append(names, p.Name)
	}

	var dets []string
	for _, d := range m.Detectors {
		n := strings.TrimSpace(d)
		if lower := strings.ToLower(n); slices.Contains(MaskDetectors, lower) {
			n = lower
		} else if !slices.Contains(names, n) {
			return fmt.Errorf("masking.detectors: unknown detector %q (want one of %s, or the name of a pattern)", d, strings.Join(MaskDetectors, ", "))
		}
		if !slices.Contains(dets, n) {
			dets = append(dets, n)
		}
	}
	m.Detectors = dets

	var cols []string
	for _, c := range m.Columns {
		n := strings.TrimSpace(c)
		if err := checkColumnSpec(n); err != nil {
			return fmt.Errorf("masking.columns: bad column %q: %v", c, err)
		}
		if !slices.Contains(cols, n) {
			cols = append(cols, n)
		}
	}
	m.Columns = cols
	return nil
}

// checkColumnSpec accepts table.column, schema.table.column and *.column,
// each part an SQL identifier (unquoted).
func checkColumnSpec(s string) error {
	const want = "want table.column, schema.table.column or *.column"
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return errors.New(want)
	}
	if parts[0] == "*" {
		if len(parts) != 2 {
			return errors.New(want)
		}
		parts = parts[1:]
	}
	for _, p := range parts {
		if !isIdent(p) {
			return fmt.Errorf("%q is not an identifier (%s)", p, want)
		}
	}
	return nil
}

// isIdent reports whether s is an unquoted SQL identifier: a letter, _ or a
// non-ASCII byte, then also digits and $.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= 0x80:
		case (c >= '0' && c <= '9') || c == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
