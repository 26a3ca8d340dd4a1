package mysql

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // literal values for the parser
)

// Guardrail rule names: the same names as the Postgres guard where they mean
// the same thing. "copy-from-program" has no MySQL form and never matches.
var guardRules = map[string]bool{
	"drop": true, "truncate": true, "alter": true, "grant": true,
	"delete-without-where": true, "update-without-where": true, "create": true,
	"copy-from-program": true, "set-role": true,
}

// ruleKeywords are the words whose presence (anywhere, case-insensitively)
// makes the prefilter hand a statement to the parser.
var ruleKeywords = map[string][]string{
	"drop":                 {"drop"},
	"truncate":             {"truncate"},
	"alter":                {"alter", "rename"},
	"grant":                {"grant", "revoke"},
	"delete-without-where": {"delete"},
	"update-without-where": {"update"},
	"create":               {"create"},
	"set-role":             {"role"},
}

// dynamicKeywords can hide a statement from the parse: always checked.
var dynamicKeywords = []string{"prepare", "execute", "immediate"}

var writeKeywords = []string{"insert", "replace", "update", "delete", "drop", "truncate", "alter", "rename", "load", "create"}

type tableRef struct{ schema, name string }

// guard decides whether SQL may run. Safe for concurrent use.
type guard struct {
	deny     map[string]bool
	tables   []tableRef
	keywords []string
	parsers  sync.Pool
}

type guardDecision struct {
	allow        bool
	rule, reason string
	parsed       bool
}

func compileGuard(deny, tables []string) (*guard, error) {
	g := &guard{deny: map[string]bool{}}
	kw := map[string]bool{}
	for _, d := range deny {
		n := strings.ToLower(strings.TrimSpace(d))
		if !guardRules[n] {
			return nil, fmt.Errorf("unknown guardrail rule %q", d)
		}
		g.deny[n] = true
		for _, k := range ruleKeywords[n] {
			kw[k] = true
		}
	}
	for _, t := range tables {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return nil, fmt.Errorf("empty table name in deny_tables")
		}
		parts := strings.Split(t, ".")
		switch len(parts) {
		case 1:
			g.tables = append(g.tables, tableRef{name: parts[0]})
		case 2:
			g.tables = append(g.tables, tableRef{schema: parts[0], name: parts[1]})
		default:
			return nil, fmt.Errorf("bad table name %q in deny_tables (want table or schema.table)", t)
		}
		for _, k := range writeKeywords {
			kw[k] = true
		}
	}
	for _, k := range dynamicKeywords {
		kw[k] = true
	}
	for k := range kw {
		g.keywords = append(g.keywords, k)
	}
	g.parsers.New = func() any { return parser.New() }
	return g, nil
}

// prefilterAllows reports whether no rule can match sql: none of the
// keywords occurs in it at all (in any case, inside any token).
func (g *guard) prefilterAllows(sql string) bool {
	for i := 0; i < len(sql); i++ {
		c := sql[i] | 0x20
		for _, k := range g.keywords {
			if c == k[0] && len(sql)-i >= len(k) && strings.EqualFold(sql[i:i+len(k)], k) {
				return false
			}
		}
	}
	return true
}

func (g *guard) check(sql string) guardDecision {
	if g.prefilterAllows(sql) {
		return guardDecision{allow: true}
	}
	return g.checkParsed(sql, 0)
}

func (g *guard) checkParsed(sql string, depth int) guardDecision {
	p := g.parsers.Get().(*parser.Parser)
	stmts, _, err := p.Parse(sql, "", "")
	g.parsers.Put(p)
	if err != nil || depth > 4 {
		return denied("unparseable", "the statement could not be parsed; guardrails fail closed", sql)
	}
	for _, s := range stmts {
		text := s.Text()
		if text == "" {
			text = sql
		}
		if d := g.checkStmt(s, text, depth); !d.allow {
			return d
		}
	}
	return guardDecision{allow: true, parsed: true}
}

func (g *guard) checkStmt(s ast.StmtNode, text string, depth int) guardDecision {
	typ := fmt.Sprintf("%T", s)
	rule := ""
	switch n := s.(type) {
	case *ast.TruncateTableStmt:
		rule = "truncate"
	case *ast.RenameTableStmt:
		rule = "alter"
	case *ast.GrantStmt, *ast.GrantRoleStmt, *ast.RevokeStmt, *ast.RevokeRoleStmt, *ast.GrantProxyStmt:
		rule = "grant"
	case *ast.SetRoleStmt, *ast.SetDefaultRoleStmt:
		rule = "set-role"
	case *ast.DeleteStmt:
		if n.Where == nil {
			rule = "delete-without-where"
		}
	case *ast.UpdateStmt:
		if n.Where == nil {
			rule = "update-without-where"
		}
	case *ast.PrepareStmt:
		if n.SQLVar != nil {
			return denied("dynamic-sql", "PREPARE from a variable cannot be checked", text)
		}
		if d := g.checkParsed(n.SQLText, depth+1); !d.allow {
			return d
		}
	default:
		switch {
		case strings.HasPrefix(typ, "*ast.Drop"):
			rule = "drop"
		case strings.HasPrefix(typ, "*ast.Alter"):
			rule = "alter"
		case strings.HasPrefix(typ, "*ast.Create"):
			rule = "create"
		}
	}
	if rule != "" && g.deny[rule] {
		return denied(rule, "", text)
	}
	if len(g.tables) > 0 && isWrite(s) {
		var v tableCollector
		s.Accept(&v)
		for _, t := range v.names {
			for _, d := range g.tables {
				if strings.EqualFold(t.Name.O, d.name) && (d.schema == "" || strings.EqualFold(t.Schema.O, d.schema)) {
					return denied("deny_tables", "writes to "+t.Name.O, text)
				}
			}
		}
	}
	return guardDecision{allow: true, parsed: true}
}

func isWrite(s ast.StmtNode) bool {
	switch s.(type) {
	case *ast.InsertStmt, *ast.UpdateStmt, *ast.DeleteStmt, *ast.TruncateTableStmt, *ast.RenameTableStmt, *ast.LoadDataStmt:
		return true
	}
	typ := fmt.Sprintf("%T", s)
	return strings.HasPrefix(typ, "*ast.Drop") || strings.HasPrefix(typ, "*ast.Alter") || strings.HasPrefix(typ, "*ast.Create")
}

type tableCollector struct{ names []*ast.TableName }

func (v *tableCollector) Enter(n ast.Node) (ast.Node, bool) {
	if t, ok := n.(*ast.TableName); ok {
		v.names = append(v.names, t)
	}
	return n, false
}
func (v *tableCollector) Leave(n ast.Node) (ast.Node, bool) { return n, true }

func denied(rule, detail, text string) guardDecision {
	var b strings.Builder
	fmt.Fprintf(&b, "statement denied by guardrail %q", rule)
	if detail != "" {
		b.WriteString(" (" + detail + ")")
	}
	b.WriteString(": ")
	b.WriteString(snippet(text, 160))
	return guardDecision{rule: rule, reason: b.String(), parsed: true}
}

func snippet(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
