package pgguard

import (
	"fmt"
	"sort"
	"strings"
)

// Rule names accepted in Rules.Deny.
const (
	RuleDrop               = "drop"
	RuleTruncate           = "truncate"
	RuleAlter              = "alter"
	RuleGrant              = "grant"
	RuleDeleteWithoutWhere = "delete-without-where"
	RuleUpdateWithoutWhere = "update-without-where"
	RuleCreate             = "create"
	RuleCopyFromProgram    = "copy-from-program"
	RuleSetRole            = "set-role"
)

// Rule names that appear in a Decision but are not configured by name.
const (
	// RuleDenyTables: a write to a relation listed in Rules.DenyTables.
	RuleDenyTables = "deny_tables"
	// RuleUnparseable: the statement (or a body nested in it) could not be parsed
	// while a rule needed the parse (fail closed).
	RuleUnparseable = "unparseable"
	// RuleDynamicSQL: a DO block or function body executes SQL that cannot be checked
	// (EXECUTE of a non-constant string, or a body in a language other than sql and
	// plpgsql). Active whenever any rule is configured.
	RuleDynamicSQL = "dynamic-sql"
)

// Statement kinds reported in Decision.Kind (for metrics).
const (
	KindSelect  = "select"
	KindInsert  = "insert"
	KindUpdate  = "update"
	KindDelete  = "delete"
	KindDDL     = "ddl"
	KindUtility = "utility"
	KindOther   = "other"
)

// DefaultCacheBytes is the decision cache budget used when Options.CacheBytes is 0.
const DefaultCacheBytes = 4 << 20

// knownRules is the set of rule names accepted in Rules.Deny.
var knownRules = map[string]bool{
	RuleDrop: true, RuleTruncate: true, RuleAlter: true, RuleGrant: true,
	RuleDeleteWithoutWhere: true, RuleUpdateWithoutWhere: true, RuleCreate: true,
	RuleCopyFromProgram: true, RuleSetRole: true,
}

// KnownRules returns the rule names accepted in Rules.Deny, sorted.
func KnownRules() []string {
	out := make([]string, 0, len(knownRules))
	for r := range knownRules {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Rules is the guardrail configuration of one connection (YAML "guardrails:").
type Rules struct {
	Deny       []string `yaml:"deny" json:"deny"`
	DenyTables []string `yaml:"deny_tables" json:"deny_tables"`
}

// Options tune a Guard.
type Options struct {
	// CacheBytes bounds the decision cache (keys + decisions, in bytes).
	// 0 means DefaultCacheBytes; a negative value disables the cache.
	CacheBytes int
}

// Decision is the verdict on one SQL string.
type Decision struct {
	Allow bool
	// Rule is the rule that denied ("drop", "deny_tables", "unparseable",
	// "dynamic-sql", ...); "" when allowed.
	Rule string
	// Reason is a human sentence for the client, e.g.
	// `statement denied by guardrail "drop": DROP TABLE customers`; "" when allowed.
	Reason string
	// Parsed is false when the keyword prefilter answered (or the guard is disabled).
	Parsed bool
	// Kind is the statement kind of the first statement, or of the denied one:
	// select, insert, update, delete, ddl, utility or other.
	Kind string
}

// Guard is a compiled rule set. It is safe for concurrent use.
type Guard struct {
	deny    map[string]bool // configured rule names
	tables  []tableName
	enabled bool
	pf      prefilter
	cache   *lruCache[Decision]
}

// Compile validates r and builds a Guard. Unknown rule names and malformed table
// names are errors.
func Compile(r Rules, opts Options) (*Guard, error) {
	g := &Guard{deny: map[string]bool{}}
	for _, name := range r.Deny {
		n := strings.ToLower(strings.TrimSpace(name))
		if !knownRules[n] {
			return nil, fmt.Errorf("pgguard: unknown guardrail rule %q (known: %s)", name, strings.Join(KnownRules(), ", "))
		}
		g.deny[n] = true
	}
	for _, t := range r.DenyTables {
		tn, err := parseTableName(t)
		if err != nil {
			return nil, err
		}
		g.tables = append(g.tables, tn)
	}
	g.enabled = len(g.deny) > 0 || len(g.tables) > 0
	g.pf = buildPrefilter(g.deny, len(g.tables) > 0)
	size := opts.CacheBytes
	if size == 0 {
		size = DefaultCacheBytes
	}
	if size > 0 && g.enabled {
		g.cache = newLRUCache(size, decisionSize)
	}
	return g, nil
}

// Enabled reports whether any rule is configured. A disabled Guard allows everything
// without looking at it beyond its first word.
func (g *Guard) Enabled() bool { return g != nil && g.enabled }

// Check decides whether sql (one statement or several separated by semicolons, as
// sent in a simple-protocol Query or an extended-protocol Parse message) may run.
func (g *Guard) Check(sql string) Decision {
	if g == nil || !g.enabled || g.pf.allows(sql) {
		return Decision{Allow: true, Kind: firstWordKind(sql)}
	}
	if g.cache != nil {
		if d, ok := g.cache.get(sql); ok {
			return d
		}
	}
	d := g.fullCheck(sql)
	if g.cache != nil {
		g.cache.put(sql, d)
	}
	return d
}

// prefilterAllows reports whether the keyword prefilter alone allows sql.
func (g *Guard) prefilterAllows(sql string) bool {
	return !g.enabled || g.pf.allows(sql)
}

// CacheStats reports the decision cache's entry count and bytes in use.
func (g *Guard) CacheStats() (entries, bytes int) {
	if g == nil || g.cache == nil {
		return 0, 0
	}
	return g.cache.stats()
}

func allowDecision(kind string) Decision {
	return Decision{Allow: true, Parsed: true, Kind: kind}
}

func denyDecision(rule, detail, stmtText, kind string) Decision {
	var b strings.Builder
	b.WriteString("statement denied by guardrail ")
	b.WriteString(fmt.Sprintf("%q", rule))
	if detail != "" {
		b.WriteString(" (")
		b.WriteString(detail)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(snippet(stmtText, 160))
	return Decision{Allow: false, Rule: rule, Reason: b.String(), Parsed: true, Kind: kind}
}

// snippet collapses whitespace and truncates s to about max bytes (on a rune boundary).
func snippet(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}
