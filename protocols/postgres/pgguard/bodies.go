package pgguard

import (
	"encoding/json"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Bodies of DO blocks and functions are checked against all rules:
//
//   - LANGUAGE sql with a string body: the body is parsed and checked.
//   - LANGUAGE sql with a standard body (BEGIN ATOMIC ... END, RETURN ...): already
//     part of the parse tree, walked like any other node.
//   - LANGUAGE plpgsql: libpg_query's PL/pgSQL parser turns the body into a tree;
//     every embedded SQL statement and expression is parsed and checked. EXECUTE,
//     FOR ... IN EXECUTE, OPEN ... FOR EXECUTE and RETURN QUERY EXECUTE of a constant
//     string check that string; of anything else are denied as "dynamic-sql".
//   - any other language (plpython3u, plperl, c, internal, ...): cannot be checked,
//     denied as "dynamic-sql".

func (w *walker) checkDo(n *pg_query.DoStmt) *finding {
	lang, body := "plpgsql", ""
	for _, a := range n.Args {
		de := a.GetDefElem()
		if de == nil {
			continue
		}
		switch de.Defname {
		case "as":
			body = de.Arg.GetString_().GetSval()
		case "language":
			lang = strings.ToLower(de.Arg.GetString_().GetSval())
		}
	}
	if lang != "plpgsql" {
		return w.find(RuleDynamicSQL, "DO block in language "+lang+" cannot be checked")
	}
	js, err := pg_query.ParsePlPgSqlToJSON("DO " + quoteLiteral(body))
	if err != nil {
		return w.find(RuleUnparseable, "PL/pgSQL: "+parseErrDetail(err))
	}
	return w.checkPlpgsql(js)
}

func (w *walker) checkFunction(n *pg_query.CreateFunctionStmt) *finding {
	lang := ""
	var body []string
	for _, o := range n.Options {
		de := o.GetDefElem()
		if de == nil {
			continue
		}
		switch de.Defname {
		case "language":
			lang = strings.ToLower(de.Arg.GetString_().GetSval())
		case "as":
			for _, it := range de.Arg.GetList().GetItems() {
				body = append(body, it.GetString_().GetSval())
			}
		}
	}
	if n.SqlBody != nil {
		return nil // standard SQL body: walked as part of the tree
	}
	switch lang {
	case "sql":
		for _, b := range body {
			if w.g.pf.allows(b) {
				continue
			}
			if f := w.g.checkSQL(b, w.depth+1); f != nil {
				return f
			}
		}
		return nil
	case "plpgsql":
		text := w.text
		if w.top.GetCreateFunctionStmt() != n {
			// Not the statement whose text we hold: rebuild the text.
			pr := &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{
				Node: &pg_query.Node_CreateFunctionStmt{CreateFunctionStmt: n}}}}}
			var err error
			if text, err = pg_query.Deparse(pr); err != nil {
				return w.find(RuleUnparseable, "cannot rebuild function text")
			}
		}
		js, err := pg_query.ParsePlPgSqlToJSON(text)
		if err != nil {
			return w.find(RuleUnparseable, "PL/pgSQL: "+parseErrDetail(err))
		}
		return w.checkPlpgsql(js)
	case "":
		return w.find(RuleDynamicSQL, "function without LANGUAGE cannot be checked")
	}
	return w.find(RuleDynamicSQL, "function body in language "+lang+" cannot be checked")
}

// quoteLiteral quotes s as a standard SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// checkPlpgsql walks the JSON produced by ParsePlPgSqlToJSON.
func (w *walker) checkPlpgsql(js string) *finding {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return w.find(RuleUnparseable, "PL/pgSQL tree: "+err.Error())
	}
	return w.plWalk(v)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (w *walker) plWalk(v any) *finding {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if f := w.plWalk(e); f != nil {
				return f
			}
		}
	case map[string]any:
		// Dynamic SQL: EXECUTE and FOR ... IN EXECUTE hold it in "query",
		// OPEN ... FOR EXECUTE and RETURN QUERY EXECUTE in "dynquery".
		if dq, ok := t["dynquery"]; ok {
			if f := w.plDynamic(dq); f != nil {
				return f
			}
		}
		for _, k := range sortedKeys(t) {
			val := t[k]
			switch k {
			case "PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors":
				if obj, ok := val.(map[string]any); ok {
					if f := w.plDynamic(obj["query"]); f != nil {
						return f
					}
				}
			case "PLpgSQL_expr":
				if obj, ok := val.(map[string]any); ok {
					if f := w.plExpr(obj); f != nil {
						return f
					}
				}
				continue
			}
			if f := w.plWalk(val); f != nil {
				return f
			}
		}
	}
	return nil
}

// exprQuery extracts query text and parse mode from {"PLpgSQL_expr": {...}} or {...}.
func exprQuery(v any) (string, int, bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", 0, false
	}
	if inner, ok := obj["PLpgSQL_expr"].(map[string]any); ok {
		obj = inner
	}
	q, ok := obj["query"].(string)
	if !ok {
		return "", 0, false
	}
	mode := 0
	if n, ok := obj["parseMode"].(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			mode = int(i)
		}
	}
	return q, mode, true
}

// plDynamic checks the string expression of an EXECUTE-like statement.
func (w *walker) plDynamic(v any) *finding {
	q, _, ok := exprQuery(v)
	if !ok {
		return w.find(RuleDynamicSQL, "EXECUTE of a non-constant string")
	}
	s, ok := constantString(q)
	if !ok {
		return &finding{rule: RuleDynamicSQL, detail: "EXECUTE of a non-constant string", text: "EXECUTE " + q}
	}
	if w.g.pf.allows(s) {
		return nil
	}
	return w.g.checkSQL(s, w.depth+1)
}

// constantString reports whether expr is a single string constant, and its value.
func constantString(expr string) (string, bool) {
	res, err := pg_query.Parse("SELECT " + expr)
	if err != nil || len(res.Stmts) != 1 {
		return "", false
	}
	sel := res.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || sel.FromClause != nil || sel.WhereClause != nil {
		return "", false
	}
	c := sel.TargetList[0].GetResTarget().GetVal().GetAConst()
	if c == nil {
		return "", false
	}
	s, ok := c.Val.(*pg_query.A_Const_Sval)
	if !ok {
		return "", false
	}
	return s.Sval.Sval, true
}

// PL/pgSQL expression parse modes (RawParseMode in PostgreSQL).
const (
	plModeDefault  = 0
	plModeTypeName = 1
	plModeExpr     = 2
	plModeAssign1  = 3
	plModeAssign2  = 4
	plModeAssign3  = 5
)

// plExpr checks one embedded statement or expression.
func (w *walker) plExpr(obj map[string]any) *finding {
	q, mode, ok := exprQuery(obj)
	if !ok || w.g.pf.allows(q) {
		return nil
	}
	switch mode {
	case plModeDefault:
		return w.g.checkSQL(q, w.depth+1)
	case plModeTypeName:
		return nil
	case plModeAssign1, plModeAssign2, plModeAssign3:
		return w.g.checkSQL("SELECT "+assignRHS(q), w.depth+1)
	default:
		return w.g.checkSQL("SELECT "+q, w.depth+1)
	}
}

// assignRHS returns the expression of a PL/pgSQL assignment "target := expr" or
// "target = expr". A wrong split fails to parse and is denied (fail closed).
func assignRHS(q string) string {
	if i := topLevelIndex(q, ":="); i >= 0 {
		return q[i+2:]
	}
	if i := topLevelIndex(q, "="); i >= 0 {
		return q[i+1:]
	}
	return q
}

// topLevelIndex finds op outside quotes and brackets.
func topLevelIndex(q, op string) int {
	depth := 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '\'', '"':
			j := i + 1
			for j < len(q) && q[j] != c {
				j++
			}
			i = j
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		default:
			if depth == 0 && strings.HasPrefix(q[i:], op) {
				return i
			}
		}
	}
	return -1
}
