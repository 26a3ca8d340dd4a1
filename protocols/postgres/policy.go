package postgres

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols/postgres/pgguard"
)

// statementGuard decides whether SQL may run (pgguard implements it).
type statementGuard interface {
	check(sql string) guardDecision
}

type guardDecision struct {
	allow        bool
	rule, reason string
	parsed       bool // false when the keyword prefilter answered
}

// valueMasker hides PII in result values (the masking library implements it).
type valueMasker interface {
	// columnRule reports whether table.column is always masked.
	columnRule(table, column string) bool
	hasColumnRules() bool
	detecting() bool
	// mask masks v: in place (returning v) when the length is kept, else
	// appended to dst. kinds has a bit per detector that fired (none: nothing
	// was masked).
	mask(dst, v []byte, forced bool) (out []byte, kinds uint64)
	kindName(k int) string
}

// sessionPolicy is a compiled engine.Policy for one session.
type sessionPolicy struct {
	guard statementGuard // nil: no guardrails
	mask  valueMasker    // nil: no masking
}

// guardAdapter adapts pgguard to statementGuard.
type guardAdapter struct{ g *pgguard.Guard }

func (a guardAdapter) check(sql string) guardDecision {
	d := a.g.Check(sql)
	return guardDecision{allow: d.Allow, rule: d.Rule, reason: d.Reason, parsed: d.Parsed}
}

// policyCache shares compiled policies (and their statement caches) between
// sessions with the same configuration.
type policyCache struct {
	mu sync.Mutex
	m  map[string]*sessionPolicy
}

const maxCachedPolicies = 256

// compile returns the compiled policy for raw on connection, nil when it has
// no rule. hashKey seeds deterministic hashing so that a value hashes alike
// across the sessions of one connection.
func (pc *policyCache) compile(raw []byte, connection string, hashKey []byte) (*sessionPolicy, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	key := connection + "\x00" + string(raw)
	pc.mu.Lock()
	p, ok := pc.m[key]
	pc.mu.Unlock()
	if ok {
		return p, nil
	}
	var spec engine.Policy
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p = &sessionPolicy{}
	if g := spec.Guardrails; g != nil && len(g.Deny)+len(g.DenyTables) > 0 {
		guard, err := pgguard.Compile(pgguard.Rules{Deny: g.Deny, DenyTables: g.DenyTables}, pgguard.Options{})
		if err != nil {
			return nil, fmt.Errorf("guardrails: %w", err)
		}
		p.guard = guardAdapter{guard}
	}
	if m := spec.Masking; m != nil && len(m.Columns)+len(m.Detectors)+len(m.Patterns) > 0 {
		mac := hmac.New(sha256.New, hashKey)
		mac.Write([]byte(connection))
		mk, err := compileMasking(m, mac.Sum(nil))
		if err != nil {
			return nil, fmt.Errorf("masking: %w", err)
		}
		p.mask = mk
	}
	if p.guard == nil && p.mask == nil {
		p = nil
	}
	pc.mu.Lock()
	if pc.m == nil || len(pc.m) >= maxCachedPolicies {
		pc.m = map[string]*sessionPolicy{}
	}
	pc.m[key] = p
	pc.mu.Unlock()
	return p, nil
}
