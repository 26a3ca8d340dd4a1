package main

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-gw/sluice/control/api"
	"github.com/sluice-gw/sluice/engine"
)

// The fields of a connection's guardrails: and masking: blocks and of a
// masking pattern (the engine.Policy YAML names).
var (
	guardrailFields = []string{"deny", "deny_tables"}
	maskingFields   = []string{"columns", "detectors", "style", "patterns"}
	patternFields   = []string{"name", "regex"}
)

// parsePolicy reads the optional guardrails: and masking: blocks of a
// connection or rule document into *guard and *mask. Decoding is strict
// (unknown or repeated fields and wrong shapes are errors with their line),
// and the values are checked as the API checks them, so a bad policy
// applies nothing.
func parsePolicy(where string, fields map[string]*yaml.Node, keyLine map[string]int, guard **engine.GuardrailPolicy, mask **engine.MaskingPolicy) error {
	if n, ok := fields["guardrails"]; ok {
		m, err := yamlMapping(where, "guardrails", n, guardrailFields)
		if err != nil {
			return err
		}
		if m != nil {
			g := &engine.GuardrailPolicy{}
			if g.Deny, err = yamlStrings(where, "guardrails.deny", m["deny"]); err != nil {
				return err
			}
			if g.DenyTables, err = yamlStrings(where, "guardrails.deny_tables", m["deny_tables"]); err != nil {
				return err
			}
			*guard = g
		}
	}
	if n, ok := fields["masking"]; ok {
		m, err := yamlMapping(where, "masking", n, maskingFields)
		if err != nil {
			return err
		}
		if m != nil {
			mp := &engine.MaskingPolicy{}
			if mp.Columns, err = yamlStrings(where, "masking.columns", m["columns"]); err != nil {
				return err
			}
			if mp.Detectors, err = yamlStrings(where, "masking.detectors", m["detectors"]); err != nil {
				return err
			}
			if mp.Style, err = yamlString(where, "masking.style", m["style"]); err != nil {
				return err
			}
			if mp.Patterns, err = yamlPatterns(where, m["patterns"]); err != nil {
				return err
			}
			*mask = mp
		}
	}
	// Validate each block on its own so the error points at its line.
	for _, b := range []struct {
		key string
		p   engine.Policy
	}{{"guardrails", engine.Policy{Guardrails: *guard}}, {"masking", engine.Policy{Masking: *mask}}} {
		if err := api.ValidatePolicy(&b.p); err != nil {
			return fmt.Errorf("%s, line %d: %v", where, keyLine[b.key], err)
		}
		switch b.key {
		case "guardrails":
			*guard = b.p.Guardrails
		case "masking":
			*mask = b.p.Masking
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// yamlMapping returns the fields of the mapping n (nil for an empty value),
// rejecting fields not in allowed and repeated ones.
func yamlMapping(where, path string, n *yaml.Node, allowed []string) (map[string]*yaml.Node, error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s, line %d: %s must be a mapping", where, n.Line, path)
	}
	out := map[string]*yaml.Node{}
	for k := 0; k+1 < len(n.Content); k += 2 {
		key := n.Content[k]
		if !contains(allowed, key.Value) {
			return nil, fmt.Errorf("%s, line %d: unknown field %q in %s (allowed: %s)", where, key.Line, key.Value, path, strings.Join(allowed, ", "))
		}
		if _, dup := out[key.Value]; dup {
			return nil, fmt.Errorf("%s, line %d: field %s.%s appears twice", where, key.Line, path, key.Value)
		}
		out[key.Value] = n.Content[k+1]
	}
	return out, nil
}

// yamlString returns the scalar n ("" when absent or empty).
func yamlString(where, path string, n *yaml.Node) (string, error) {
	n = deref(n)
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s, line %d: %s must be a string", where, n.Line, path)
	}
	return n.Value, nil
}

// yamlStrings returns the list of scalars n (nil when absent or empty).
func yamlStrings(where, path string, n *yaml.Node) ([]string, error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s, line %d: %s must be a list of strings", where, n.Line, path)
	}
	out := make([]string, 0, len(n.Content))
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			return nil, fmt.Errorf("%s, line %d: %s must be a list of strings", where, e.Line, path)
		}
		out = append(out, e.Value)
	}
	return out, nil
}

// yamlPatterns returns masking.patterns: a list of {name, regex}.
func yamlPatterns(where string, n *yaml.Node) ([]engine.MaskPattern, error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s, line %d: masking.patterns must be a list of {name, regex}", where, n.Line)
	}
	var out []engine.MaskPattern
	for i, e := range n.Content {
		path := fmt.Sprintf("masking.patterns[%d]", i)
		m, err := yamlMapping(where, path, e, patternFields)
		if err != nil {
			return nil, err
		}
		var p engine.MaskPattern
		if p.Name, err = yamlString(where, path+".name", m["name"]); err != nil {
			return nil, err
		}
		if p.Regex, err = yamlString(where, path+".regex", m["regex"]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
