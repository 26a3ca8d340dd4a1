package mysql

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/masking"
)

// sessionPolicy is a compiled engine.Policy for one session.
type sessionPolicy struct {
	guard *guard        // nil: no guardrails
	mask  *maskingRules // nil: no masking
}

type maskingRules struct {
	p       *masking.Policy
	columns bool
}

// policyCache shares compiled policies between sessions of a connection.
type policyCache struct {
	mu sync.Mutex
	m  map[string]*sessionPolicy
}

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
		gd, err := compileGuard(g.Deny, g.DenyTables)
		if err != nil {
			return nil, fmt.Errorf("guardrails: %w", err)
		}
		p.guard = gd
	}
	if m := spec.Masking; m != nil && len(m.Columns)+len(m.Detectors)+len(m.Patterns) > 0 {
		mac := hmac.New(sha256.New, hashKey)
		mac.Write([]byte(connection))
		cfg := masking.Config{Columns: m.Columns, Style: m.Style, HashKey: mac.Sum(nil)}
		own := map[string]bool{}
		for _, pt := range m.Patterns {
			cfg.Patterns = append(cfg.Patterns, masking.Pattern{Name: pt.Name, Regex: pt.Regex})
			own[pt.Name] = true
		}
		for _, d := range m.Detectors {
			if !own[d] {
				cfg.Detectors = append(cfg.Detectors, d)
			}
		}
		mp, err := masking.Compile(cfg)
		if err != nil {
			return nil, fmt.Errorf("masking: %w", err)
		}
		p.mask = &maskingRules{p: mp, columns: len(m.Columns) > 0}
	}
	if p.guard == nil && p.mask == nil {
		p = nil
	}
	pc.mu.Lock()
	if pc.m == nil || len(pc.m) >= 256 {
		pc.m = map[string]*sessionPolicy{}
	}
	pc.m[key] = p
	pc.mu.Unlock()
	return p, nil
}
