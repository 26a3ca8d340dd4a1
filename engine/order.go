package engine

import "fmt"

// Order is THE ordered list of data-plane plugins. Requests pass it top to
// bottom, responses bottom to top. A name not in this list, or listed twice,
// is a start-up error. Plugins not configured for a session are skipped.
var Order = []string{
	"audit",     // outermost: records what the client sent and what it finally got (masked)
	"guardrail", // denies dangerous statements before anything later sees them
	"review",    // holds statements that need approval; after guardrails, which deny outright
	"mask",      // innermost: rewrites result rows as they leave the target
}

// Chain is a compiled, ordered plugin list.
type Chain []Plugin

// Compile orders plugins by Order, failing on unknown or duplicate names.
func Compile(plugins []Plugin) (Chain, error) {
	pos := make(map[string]int, len(Order))
	for i, n := range Order {
		pos[n] = i
	}
	slots := make([]Plugin, len(Order))
	for _, p := range plugins {
		i, ok := pos[p.Name()]
		if !ok {
			return nil, fmt.Errorf("plugin %q is not in engine.Order", p.Name())
		}
		if slots[i] != nil {
			return nil, fmt.Errorf("plugin %q configured twice", p.Name())
		}
		slots[i] = p
	}
	var c Chain
	for _, p := range slots {
		if p != nil {
			c = append(c, p)
		}
	}
	return c, nil
}
