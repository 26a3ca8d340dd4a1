package engine

import "encoding/json"

// Policy is the data-plane policy of a session, as configured on its
// connection. It travels to the agent in the stream header (as JSON) and is
// compiled there: guardrails and masking run in the agent (ARCHITECTURE §2).
type Policy struct {
	Guardrails *GuardrailPolicy `json:"guardrails,omitempty" yaml:"guardrails,omitempty"`
	Masking    *MaskingPolicy   `json:"masking,omitempty" yaml:"masking,omitempty"`
}

// GuardrailPolicy lists the statement rules to deny.
type GuardrailPolicy struct {
	Deny       []string `json:"deny,omitempty" yaml:"deny,omitempty"`
	DenyTables []string `json:"deny_tables,omitempty" yaml:"deny_tables,omitempty"`
}

// MaskingPolicy lists what to hide in result data.
type MaskingPolicy struct {
	Columns   []string      `json:"columns,omitempty" yaml:"columns,omitempty"`
	Detectors []string      `json:"detectors,omitempty" yaml:"detectors,omitempty"`
	Style     string        `json:"style,omitempty" yaml:"style,omitempty"`
	Patterns  []MaskPattern `json:"patterns,omitempty" yaml:"patterns,omitempty"`
}

// MaskPattern is a user-defined detector.
type MaskPattern struct {
	Name  string `json:"name" yaml:"name"`
	Regex string `json:"regex" yaml:"regex"`
}

// Empty reports whether p has no rule at all.
func (p *Policy) Empty() bool {
	if p == nil {
		return true
	}
	g, m := p.Guardrails, p.Masking
	return (g == nil || len(g.Deny)+len(g.DenyTables) == 0) &&
		(m == nil || len(m.Columns)+len(m.Detectors)+len(m.Patterns) == 0)
}

// Encode returns the wire form of p, nil when p is empty.
func (p *Policy) Encode() []byte {
	if p.Empty() {
		return nil
	}
	b, _ := json.Marshal(p) // plain structs: cannot fail
	return b
}
