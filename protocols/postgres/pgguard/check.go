package pgguard

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxDepth bounds nesting of separately parsed SQL (function bodies, DO blocks,
// constant EXECUTE strings, ...). Deeper nesting is denied as unparseable.
const maxDepth = 8

// finding is one rule match.
type finding struct {
	rule   string
	detail string
	text   string // the statement text the finding is about
}

// fullCheck parses sql and walks every statement in it. It neither consults the
// prefilter nor the cache.
func (g *Guard) fullCheck(sql string) Decision {
	res, err := pg_query.Parse(sql)
	if err != nil {
		return denyDecision(RuleUnparseable, parseErrDetail(err), sql, firstWordKind(sql))
	}
	first := ""
	for _, raw := range res.Stmts {
		kind := kindOfNode(raw.Stmt)
		if first == "" {
			first = kind
		}
		w := walker{g: g, depth: 0, text: stmtText(sql, raw), top: raw.Stmt}
		if f := w.run(); f != nil {
			return denyDecision(f.rule, f.detail, f.text, kind)
		}
	}
	if first == "" {
		first = KindOther
	}
	return allowDecision(first)
}

func parseErrDetail(err error) string {
	msg := err.Error()
	if len(msg) > 120 {
		msg = snippet(msg, 120)
	}
	return msg
}

// stmtText returns the source text of one raw statement (StmtLen 0 means "to the end").
func stmtText(sql string, raw *pg_query.RawStmt) string {
	start := int(raw.StmtLocation)
	if start < 0 || start > len(sql) {
		return sql
	}
	end := len(sql)
	if raw.StmtLen > 0 && start+int(raw.StmtLen) <= len(sql) {
		end = start + int(raw.StmtLen)
	}
	return strings.TrimSpace(sql[start:end])
}

// checkSQL parses a nested piece of SQL (a body, a constant EXECUTE string) and
// checks every statement in it.
func (g *Guard) checkSQL(sql string, depth int) *finding {
	if depth > maxDepth {
		return &finding{rule: RuleUnparseable, detail: "nesting too deep", text: sql}
	}
	res, err := pg_query.Parse(sql)
	if err != nil {
		return &finding{rule: RuleUnparseable, detail: parseErrDetail(err), text: sql}
	}
	for _, raw := range res.Stmts {
		w := walker{g: g, depth: depth, text: stmtText(sql, raw), top: raw.Stmt}
		if f := w.run(); f != nil {
			return f
		}
	}
	return nil
}

// walker walks one parsed statement.
type walker struct {
	g     *Guard
	depth int
	text  string
	top   *pg_query.Node
}

func (w *walker) run() *finding {
	if w.top == nil {
		return nil
	}
	return w.walk(w.top.ProtoReflect())
}

// walk visits m and, unless told not to, everything below it, in field order.
func (w *walker) walk(m protoreflect.Message) *finding {
	f, descend := w.visit(m)
	if f != nil || !descend {
		return f
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if f = w.walk(l.Get(i).Message()); f != nil {
					return false
				}
			}
			return true
		}
		if fd.IsMap() {
			return true
		}
		f = w.walk(v.Message())
		return f == nil
	})
	return f
}

func (w *walker) on(rule string) bool { return w.g.deny[rule] }

func (w *walker) find(rule, detail string) *finding {
	return &finding{rule: rule, detail: detail, text: w.text}
}

func (w *walker) table(t tableName, ok bool) *finding {
	if !ok {
		return nil
	}
	return w.find(RuleDenyTables, "write to protected table "+t.String())
}

// createExtra are CREATE statements whose node name does not start with "Create".
var createExtra = map[protoreflect.Name]bool{
	"DefineStmt": true, "IndexStmt": true, "ViewStmt": true, "RuleStmt": true,
	"CompositeTypeStmt": true, "ImportForeignSchemaStmt": true,
}

var grantStmts = map[protoreflect.Name]bool{
	"GrantStmt": true, "GrantRoleStmt": true, "AlterDefaultPrivilegesStmt": true,
	"ReassignOwnedStmt": true,
}

// visit applies the rules to one node. It returns a finding, or whether to descend.
func (w *walker) visit(m protoreflect.Message) (*finding, bool) {
	name := m.Descriptor().Name()
	if strings.HasSuffix(string(name), "Stmt") {
		s := string(name)
		switch {
		case strings.HasPrefix(s, "Drop"):
			if w.on(RuleDrop) {
				return w.find(RuleDrop, ""), false
			}
		case strings.HasPrefix(s, "Alter") || s == "RenameStmt":
			if w.on(RuleAlter) {
				return w.find(RuleAlter, ""), false
			}
		case strings.HasPrefix(s, "Create") || createExtra[name]:
			if w.on(RuleCreate) {
				return w.find(RuleCreate, ""), false
			}
		}
		if grantStmts[name] && w.on(RuleGrant) {
			return w.find(RuleGrant, ""), false
		}
	}

	switch n := m.Interface().(type) {
	case *pg_query.SelectStmt:
		if n.IntoClause != nil && w.on(RuleCreate) {
			return w.find(RuleCreate, "SELECT INTO creates a table"), false
		}
	case *pg_query.TruncateStmt:
		if w.on(RuleTruncate) {
			return w.find(RuleTruncate, ""), false
		}
		for _, r := range n.Relations {
			if f := w.table(w.g.matchRangeVar(r.GetRangeVar())); f != nil {
				return f, false
			}
		}
	case *pg_query.DeleteStmt:
		if n.WhereClause == nil && w.on(RuleDeleteWithoutWhere) {
			return w.find(RuleDeleteWithoutWhere, "DELETE without WHERE"), false
		}
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.UpdateStmt:
		if n.WhereClause == nil && w.on(RuleUpdateWithoutWhere) {
			return w.find(RuleUpdateWithoutWhere, "UPDATE without WHERE"), false
		}
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
		if w.on(RuleSetRole) && n.Relation != nil && n.Relation.Relname == "pg_settings" &&
			(n.Relation.Schemaname == "" || n.Relation.Schemaname == "pg_catalog") {
			return w.find(RuleSetRole, "UPDATE pg_settings changes settings"), false
		}
	case *pg_query.InsertStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.MergeStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.CopyStmt:
		if n.IsProgram && w.on(RuleCopyFromProgram) {
			return w.find(RuleCopyFromProgram, "COPY with PROGRAM"), false
		}
		if n.IsFrom {
			if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
				return f, false
			}
		}
	case *pg_query.VariableSetStmt:
		if w.on(RuleSetRole) {
			switch strings.ToLower(n.Name) {
			case "role", "session_authorization":
				return w.find(RuleSetRole, ""), false
			}
		}
	case *pg_query.DiscardStmt:
		if w.on(RuleSetRole) && n.Target == pg_query.DiscardMode_DISCARD_ALL {
			return w.find(RuleSetRole, "DISCARD ALL resets the session authorization"), false
		}
	case *pg_query.FuncCall:
		if w.on(RuleSetRole) && isSetConfigRole(n) {
			return w.find(RuleSetRole, "set_config of role or session_authorization"), false
		}
	case *pg_query.ExplainStmt:
		if !explainAnalyze(n) {
			return nil, false // EXPLAIN without ANALYZE does not execute its statement
		}
	case *pg_query.DoStmt:
		if f := w.checkDo(n); f != nil {
			return f, false
		}
	case *pg_query.CreateFunctionStmt:
		if f := w.checkFunction(n); f != nil {
			return f, false
		}
	case *pg_query.DropStmt:
		if f := w.dropTables(n); f != nil {
			return f, false
		}
	case *pg_query.AlterTableStmt:
		// The table itself, and any relation named in its commands (ATTACH/DETACH
		// PARTITION, INHERIT, ...): conservative.
		if f := w.anyRangeVar(m); f != nil {
			return f, false
		}
	case *pg_query.RenameStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
		if n.RenameType == pg_query.ObjectType_OBJECT_SCHEMA {
			for _, t := range w.g.tables {
				if t.schema != "" && t.schema == n.Subname {
					return w.table(t, true), false
				}
			}
		}
	case *pg_query.AlterObjectSchemaStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.AlterOwnerStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.CreateTrigStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.RuleStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.CreatePolicyStmt:
		if f := w.table(w.g.matchRangeVar(n.Table)); f != nil {
			return f, false
		}
	case *pg_query.AlterPolicyStmt:
		if f := w.table(w.g.matchRangeVar(n.Table)); f != nil {
			return f, false
		}
	case *pg_query.RefreshMatViewStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.IndexStmt:
		if f := w.table(w.g.matchRangeVar(n.Relation)); f != nil {
			return f, false
		}
	case *pg_query.ViewStmt:
		if n.Replace {
			if f := w.table(w.g.matchRangeVar(n.View)); f != nil {
				return f, false
			}
		}
	case *pg_query.CreateStmt:
		for _, r := range n.InhRelations { // PARTITION OF / INHERITS a protected table
			if f := w.table(w.g.matchRangeVar(r.GetRangeVar())); f != nil {
				return f, false
			}
		}
	}
	return nil, true
}

// anyRangeVar matches every RangeVar below m against deny_tables.
func (w *walker) anyRangeVar(m protoreflect.Message) *finding {
	if len(w.g.tables) == 0 {
		return nil
	}
	var f *finding
	var rec func(m protoreflect.Message) bool
	rec = func(m protoreflect.Message) bool {
		if rv, ok := m.Interface().(*pg_query.RangeVar); ok {
			if t, hit := w.g.matchRangeVar(rv); hit {
				f = w.table(t, true)
				return false
			}
		}
		cont := true
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
				return true
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					if !rec(l.Get(i).Message()) {
						cont = false
						return false
					}
				}
				return true
			}
			cont = rec(v.Message())
			return cont
		})
		return cont
	}
	rec(m)
	return f
}

var relationObjectTypes = map[pg_query.ObjectType]bool{
	pg_query.ObjectType_OBJECT_TABLE:         true,
	pg_query.ObjectType_OBJECT_VIEW:          true,
	pg_query.ObjectType_OBJECT_MATVIEW:       true,
	pg_query.ObjectType_OBJECT_FOREIGN_TABLE: true,
	pg_query.ObjectType_OBJECT_SEQUENCE:      true,
	pg_query.ObjectType_OBJECT_INDEX:         true,
}

// dropTables applies deny_tables to DROP TABLE/VIEW/..., DROP TRIGGER/RULE/POLICY
// ... ON t, and DROP SCHEMA ... CASCADE.
func (w *walker) dropTables(n *pg_query.DropStmt) *finding {
	if len(w.g.tables) == 0 {
		return nil
	}
	for _, obj := range n.Objects {
		items := obj.GetList().GetItems()
		switch {
		case relationObjectTypes[n.RemoveType]:
			if f := w.table(w.g.matchNameList(items)); f != nil {
				return f
			}
		case n.RemoveType == pg_query.ObjectType_OBJECT_TRIGGER ||
			n.RemoveType == pg_query.ObjectType_OBJECT_RULE ||
			n.RemoveType == pg_query.ObjectType_OBJECT_POLICY:
			if len(items) > 1 {
				if f := w.table(w.g.matchNameList(items[:len(items)-1])); f != nil {
					return f
				}
			}
		case n.RemoveType == pg_query.ObjectType_OBJECT_SCHEMA && n.Behavior == pg_query.DropBehavior_DROP_CASCADE:
			schema := obj.GetString_().GetSval()
			if schema == "" && len(items) == 1 {
				schema = items[0].GetString_().GetSval()
			}
			if f := w.table(w.g.schemaHoldsDenied(schema)); f != nil {
				return f
			}
		}
	}
	return nil
}

func explainAnalyze(n *pg_query.ExplainStmt) bool {
	for _, o := range n.Options {
		de := o.GetDefElem()
		if de == nil || !strings.EqualFold(de.Defname, "analyze") {
			continue
		}
		if !defElemFalse(de) {
			return true
		}
	}
	return false
}

// defElemFalse reports whether an option's argument is clearly false.
func defElemFalse(de *pg_query.DefElem) bool {
	if de.Arg == nil {
		return false
	}
	switch a := de.Arg.Node.(type) {
	case *pg_query.Node_String_:
		switch strings.ToLower(a.String_.Sval) {
		case "false", "off", "no", "0", "f", "of", "fa", "fal", "fals", "n":
			return true
		}
	case *pg_query.Node_Integer:
		return a.Integer.Ival == 0
	case *pg_query.Node_Boolean:
		return !a.Boolean.Boolval
	case *pg_query.Node_AConst:
		if b, ok := a.AConst.Val.(*pg_query.A_Const_Boolval); ok {
			return !b.Boolval.Boolval
		}
		if i, ok := a.AConst.Val.(*pg_query.A_Const_Ival); ok {
			return i.Ival.Ival == 0
		}
	}
	return false
}

// isSetConfigRole: set_config('role' | 'session_authorization' | <non-constant>, ...).
func isSetConfigRole(n *pg_query.FuncCall) bool {
	if len(n.Funcname) == 0 {
		return false
	}
	if n.Funcname[len(n.Funcname)-1].GetString_().GetSval() != "set_config" {
		return false
	}
	if len(n.Args) == 0 {
		return true
	}
	c := n.Args[0].GetAConst()
	if c == nil {
		return true // non-constant setting name: cannot tell
	}
	s, ok := c.Val.(*pg_query.A_Const_Sval)
	if !ok {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(s.Sval.Sval)) {
	case "role", "session_authorization":
		return true
	}
	return false
}

// kindOfNode classifies a top-level statement for metrics.
func kindOfNode(n *pg_query.Node) string {
	if n == nil || n.Node == nil {
		return KindOther
	}
	switch n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		return KindSelect
	case *pg_query.Node_InsertStmt:
		return KindInsert
	case *pg_query.Node_UpdateStmt:
		return KindUpdate
	case *pg_query.Node_DeleteStmt:
		return KindDelete
	case *pg_query.Node_MergeStmt:
		return KindOther
	}
	m := n.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().Get(0))
	if fd == nil || fd.Kind() != protoreflect.MessageKind {
		return KindOther
	}
	name := string(fd.Message().Name())
	switch {
	case strings.HasPrefix(name, "Create"), strings.HasPrefix(name, "Alter"), strings.HasPrefix(name, "Drop"),
		createExtra[protoreflect.Name(name)], grantStmts[protoreflect.Name(name)]:
		return KindDDL
	}
	switch name {
	case "RenameStmt", "TruncateStmt", "CommentStmt", "SecLabelStmt", "RefreshMatViewStmt":
		return KindDDL
	}
	return KindUtility
}

func (f *finding) String() string { return fmt.Sprintf("%s (%s): %s", f.rule, f.detail, f.text) }
