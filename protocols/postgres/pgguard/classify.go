package pgguard

import (
	"encoding/json"
	"errors"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Target kinds reported by Classify, besides KindInsert, KindUpdate,
// KindDelete and KindDDL.
const (
	KindMerge    = "merge"
	KindTruncate = "truncate"
	// KindCopy is COPY ... FROM: a write into the table. COPY ... TO is a read
	// (its query, if any, is classified like any other).
	KindCopy = "copy"
	// KindOpaque: the statement runs SQL that cannot be seen from its text: a
	// DO block with dynamic SQL (EXECUTE of a non-constant string) or in a
	// language other than plpgsql, CALL of a procedure, EXECUTE of a prepared
	// statement, or nesting deeper than the classifier follows. Callers that
	// need the classification treat it as matching everything (fail closed).
	KindOpaque = "opaque"
	// KindPrepare: the statement creates or drops named prepared statements
	// behind the extended protocol's back (PREPARE, DEALLOCATE, DISCARD
	// ALL). Not a write.
	KindPrepare = "prepare"
)

// AllTables is the Table of a Target that may affect every table of its
// schema (Schema "" for any schema): DROP SCHEMA ... CASCADE, ALTER SCHEMA
// ... RENAME, DROP OWNED.
const AllTables = "*"

// maxTargets bounds one classification; beyond it an opaque target is added
// (a caller matching rules must not miss a target, so it fails closed).
const maxTargets = 64

// Target is one thing a statement does now: a kind and, when the kind acts
// on a table, the table.
type Target struct {
	Kind string // insert, update, delete, merge, truncate, copy, ddl, opaque or prepare
	// Schema and Table as the parser resolved them: unquoted identifiers
	// folded to lower case, quoted ones verbatim. Schema is "" when the name
	// is not qualified; Table is "" when the statement names no table for
	// this kind (CREATE ROLE), AllTables when it may affect every table of
	// Schema.
	Schema, Table string
}

// IsWrite reports whether t changes table data: insert, update, delete,
// merge, truncate or copy (COPY FROM).
func (t Target) IsWrite() bool {
	switch t.Kind {
	case KindInsert, KindUpdate, KindDelete, KindMerge, KindTruncate, KindCopy:
		return true
	}
	return false
}

func (t Target) String() string {
	switch {
	case t.Table == "":
		return t.Kind
	case t.Schema == "":
		return t.Kind + ":" + t.Table
	}
	return t.Kind + ":" + t.Schema + "." + t.Table
}

// ErrUnparseable wraps the parser's error when Classify cannot parse its
// input (or a body nested in it).
var ErrUnparseable = errors.New("pgguard: statement cannot be parsed")

// classifyWords are the words without which no statement has a target (see
// the prefilter): every write, every DDL statement, and the statements that
// run hidden SQL. FuzzClassify checks the property.
var classifyWords = []string{
	"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY",
	"CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "REASSIGN", "COMMENT", "SECURITY",
	"REFRESH", "IMPORT", "INTO",
	"DO", "CALL", "EXECUTE",
	"PREPARE", "DEALLOCATE", "DISCARD",
}

var classifyFilter = func() prefilter {
	p := prefilter{words: map[string]struct{}{}}
	for _, w := range classifyWords {
		p.words[w] = struct{}{}
		p.maxLen = max(p.maxLen, len(w))
	}
	return p
}()

// Classify reports what sql (one statement or several, as sent in a Query or
// a Parse) does when it runs: its writes (insert, update, delete, merge,
// truncate, COPY FROM) with their tables, including writes in data-modifying
// CTEs, EXPLAIN ANALYZE and DO blocks; its DDL with the tables it names;
// opaque targets for SQL that cannot be seen; and a prepare target when it
// creates or drops prepared statements. A read-only statement has no target. Targets are deduplicated, in order of appearance.
//
// A statement without any word that can introduce a target (see
// classifyWords) is answered without parsing and without allocating.
// Functions called by a statement (SELECT f()) are not looked into.
//
// An input that does not parse returns an error wrapping ErrUnparseable.
func Classify(sql string) ([]Target, error) {
	if classifyFilter.allows(sql) {
		return nil, nil
	}
	return fullClassify(sql)
}

func fullClassify(sql string) ([]Target, error) {
	c := classifier{}
	if err := c.sql(sql, 0); err != nil {
		return nil, err
	}
	return c.out, nil
}

// Classifier is Classify with a cache of parsed classifications by
// statement text, bounded in bytes. It is safe for concurrent use.
type Classifier struct {
	cache *lruCache[classResult]
}

type classResult struct {
	targets []Target
	err     error
}

func classResultSize(r classResult) int {
	n := 0
	for _, t := range r.targets {
		n += 48 + len(t.Kind) + len(t.Schema) + len(t.Table)
	}
	if r.err != nil {
		n += 64 + len(r.err.Error())
	}
	return n
}

// NewClassifier returns a Classifier; opts.CacheBytes as for Compile.
func NewClassifier(opts Options) *Classifier {
	c := &Classifier{}
	size := opts.CacheBytes
	if size == 0 {
		size = DefaultCacheBytes
	}
	if size > 0 {
		c.cache = newLRUCache(size, classResultSize)
	}
	return c
}

// Classify is the package's Classify, cached. The returned slice is shared:
// callers must not modify it.
func (c *Classifier) Classify(sql string) ([]Target, error) {
	if classifyFilter.allows(sql) {
		return nil, nil
	}
	if c == nil || c.cache == nil {
		return fullClassify(sql)
	}
	if r, ok := c.cache.get(sql); ok {
		return r.targets, r.err
	}
	t, err := fullClassify(sql)
	c.cache.put(sql, classResult{t, err})
	return t, err
}

// classifier collects the targets of one input.
type classifier struct {
	out []Target
}

func (c *classifier) add(t Target) {
	for _, o := range c.out {
		if o == t {
			return
		}
	}
	if len(c.out) >= maxTargets {
		if c.out[len(c.out)-1].Kind != KindOpaque {
			c.out = append(c.out, Target{Kind: KindOpaque})
		}
		return
	}
	c.out = append(c.out, t)
}

func (c *classifier) rangeVar(kind string, rv *pg_query.RangeVar) {
	if rv == nil {
		c.add(Target{Kind: kind})
		return
	}
	c.add(Target{Kind: kind, Schema: rv.Schemaname, Table: rv.Relname})
}

// sql parses and walks one piece of SQL (top level, or a nested body).
func (c *classifier) sql(sql string, depth int) error {
	if depth > maxDepth {
		c.add(Target{Kind: KindOpaque})
		return nil
	}
	res, err := pg_query.Parse(sql)
	if err != nil {
		return &unparseableError{detail: parseErrDetail(err)}
	}
	for _, raw := range res.Stmts {
		if err := c.statement(raw.Stmt, depth); err != nil {
			return err
		}
	}
	return nil
}

type unparseableError struct{ detail string }

func (e *unparseableError) Error() string { return ErrUnparseable.Error() + ": " + e.detail }
func (e *unparseableError) Unwrap() error { return ErrUnparseable }

// statement classifies one top-level statement.
func (c *classifier) statement(n *pg_query.Node, depth int) error {
	if n == nil || n.Node == nil {
		return nil
	}
	return c.walk(n.ProtoReflect(), depth)
}

// isDDL reports whether a parse-tree message is a DDL statement (as
// kindOfNode classifies them, TRUNCATE aside: it is a write here).
func isDDL(name protoreflect.Name) bool {
	s := string(name)
	if !strings.HasSuffix(s, "Stmt") {
		return false
	}
	switch {
	case strings.HasPrefix(s, "Create"), strings.HasPrefix(s, "Alter"), strings.HasPrefix(s, "Drop"),
		createExtra[name], grantStmts[name]:
		return true
	}
	switch s {
	case "RenameStmt", "CommentStmt", "SecLabelStmt", "RefreshMatViewStmt":
		return true
	}
	return false
}

// walk visits m and everything below it, in field order.
func (c *classifier) walk(m protoreflect.Message, depth int) error {
	descend, err := c.visit(m, depth)
	if err != nil || !descend {
		return err
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = c.walk(l.Get(i).Message(), depth)
			}
			return err == nil
		}
		err = c.walk(v.Message(), depth)
		return err == nil
	})
	return err
}

// visit classifies one node of a non-DDL statement and says whether to
// descend into it.
func (c *classifier) visit(m protoreflect.Message, depth int) (bool, error) {
	if isDDL(m.Descriptor().Name()) {
		c.ddl(m)
		return false, nil
	}
	switch n := m.Interface().(type) {
	case *pg_query.InsertStmt:
		c.rangeVar(KindInsert, n.Relation)
	case *pg_query.UpdateStmt:
		c.rangeVar(KindUpdate, n.Relation)
	case *pg_query.DeleteStmt:
		c.rangeVar(KindDelete, n.Relation)
	case *pg_query.MergeStmt:
		c.rangeVar(KindMerge, n.Relation)
		// Its actions write the same table: a rule on one of them matches.
		for _, w := range n.MergeWhenClauses {
			switch w.GetMergeWhenClause().GetCommandType() {
			case pg_query.CmdType_CMD_INSERT:
				c.rangeVar(KindInsert, n.Relation)
			case pg_query.CmdType_CMD_UPDATE:
				c.rangeVar(KindUpdate, n.Relation)
			case pg_query.CmdType_CMD_DELETE:
				c.rangeVar(KindDelete, n.Relation)
			}
		}
	case *pg_query.TruncateStmt:
		for _, r := range n.Relations {
			c.rangeVar(KindTruncate, r.GetRangeVar())
		}
		if len(n.Relations) == 0 {
			c.add(Target{Kind: KindTruncate})
		}
		return false, nil
	case *pg_query.CopyStmt:
		if n.IsFrom {
			c.rangeVar(KindCopy, n.Relation)
		}
	case *pg_query.SelectStmt:
		if n.IntoClause != nil { // SELECT ... INTO creates a table
			c.rangeVar(KindDDL, n.IntoClause.Rel)
			c.add(Target{Kind: KindDDL})
		}
	case *pg_query.ExplainStmt:
		return explainAnalyze(n), nil // EXPLAIN without ANALYZE runs nothing
	case *pg_query.DoStmt:
		return false, c.do(n, depth)
	case *pg_query.CallStmt, *pg_query.ExecuteStmt:
		c.add(Target{Kind: KindOpaque})
		return false, nil
	case *pg_query.PrepareStmt:
		c.add(Target{Kind: KindPrepare})
		return false, nil // runs nothing now; its EXECUTE is opaque
	case *pg_query.DeallocateStmt:
		c.add(Target{Kind: KindPrepare})
	case *pg_query.DiscardStmt:
		if n.Target == pg_query.DiscardMode_DISCARD_ALL {
			c.add(Target{Kind: KindPrepare})
		}
	}
	return true, nil
}

// ddl classifies a DDL statement: ddl, plus ddl:TABLE for the tables it
// names.
func (c *classifier) ddl(m protoreflect.Message) {
	c.add(Target{Kind: KindDDL})
	switch s := m.Interface().(type) {
	case *pg_query.ViewStmt: // the query of a view runs later, if ever
		c.rangeVar(KindDDL, s.View)
		return
	case *pg_query.CreateTableAsStmt:
		c.rangeVar(KindDDL, s.GetInto().GetRel())
		return
	case *pg_query.CreateFunctionStmt: // its body runs later
		return
	case *pg_query.DropStmt:
		c.dropNames(s)
	case *pg_query.DropOwnedStmt:
		c.add(Target{Kind: KindDDL, Table: AllTables})
	case *pg_query.RenameStmt:
		if s.RenameType == pg_query.ObjectType_OBJECT_SCHEMA {
			c.add(Target{Kind: KindDDL, Schema: s.Subname, Table: AllTables})
		}
	}
	// Every relation named anywhere in it (conservative: ALTER TABLE ...
	// ATTACH PARTITION, CREATE TRIGGER ... ON, CREATE INDEX ON, ...).
	var rec func(m protoreflect.Message)
	rec = func(m protoreflect.Message) {
		if rv, ok := m.Interface().(*pg_query.RangeVar); ok {
			c.rangeVar(KindDDL, rv)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
				return true
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					rec(l.Get(i).Message())
				}
				return true
			}
			rec(v.Message())
			return true
		})
	}
	rec(m)
}

// dropNames adds the tables a DROP names: the relations of DROP
// TABLE/VIEW/..., the table of DROP TRIGGER/RULE/POLICY ... ON, and every
// table of a schema dropped with CASCADE.
func (c *classifier) dropNames(n *pg_query.DropStmt) {
	for _, obj := range n.Objects {
		items := obj.GetList().GetItems()
		switch {
		case relationObjectTypes[n.RemoveType]:
			c.nameList(items)
		case n.RemoveType == pg_query.ObjectType_OBJECT_TRIGGER ||
			n.RemoveType == pg_query.ObjectType_OBJECT_RULE ||
			n.RemoveType == pg_query.ObjectType_OBJECT_POLICY:
			if len(items) > 1 {
				c.nameList(items[:len(items)-1])
			}
		case n.RemoveType == pg_query.ObjectType_OBJECT_SCHEMA && n.Behavior == pg_query.DropBehavior_DROP_CASCADE:
			schema := obj.GetString_().GetSval()
			if schema == "" && len(items) == 1 {
				schema = items[0].GetString_().GetSval()
			}
			c.add(Target{Kind: KindDDL, Schema: schema, Table: AllTables})
		}
	}
}

func (c *classifier) nameList(items []*pg_query.Node) {
	var parts []string
	for _, it := range items {
		s, ok := it.GetNode().(*pg_query.Node_String_)
		if !ok {
			return
		}
		parts = append(parts, s.String_.Sval)
	}
	switch len(parts) {
	case 0:
	case 1:
		c.add(Target{Kind: KindDDL, Table: parts[0]})
	default:
		c.add(Target{Kind: KindDDL, Schema: parts[len(parts)-2], Table: parts[len(parts)-1]})
	}
}

// do classifies the SQL a DO block runs: every statement of a plpgsql body,
// constant EXECUTE strings included; anything else is opaque.
func (c *classifier) do(n *pg_query.DoStmt, depth int) error {
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
		c.add(Target{Kind: KindOpaque})
		return nil
	}
	if classifyFilter.allows(body) {
		return nil
	}
	js, err := pg_query.ParsePlPgSqlToJSON("DO " + quoteLiteral(body))
	if err != nil {
		return &unparseableError{detail: "PL/pgSQL: " + parseErrDetail(err)}
	}
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return &unparseableError{detail: "PL/pgSQL tree: " + err.Error()}
	}
	return c.plWalk(v, depth+1)
}

// plWalk classifies the statements and expressions of a PL/pgSQL tree (the
// JSON of ParsePlPgSqlToJSON), as the guard's walker reads it.
func (c *classifier) plWalk(v any, depth int) error {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if err := c.plWalk(e, depth); err != nil {
				return err
			}
		}
	case map[string]any:
		if dq, ok := t["dynquery"]; ok {
			if err := c.plDynamic(dq, depth); err != nil {
				return err
			}
		}
		for _, k := range sortedKeys(t) {
			val := t[k]
			switch k {
			case "PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors":
				if obj, ok := val.(map[string]any); ok {
					if err := c.plDynamic(obj["query"], depth); err != nil {
						return err
					}
				}
			case "PLpgSQL_expr":
				if obj, ok := val.(map[string]any); ok {
					if err := c.plExpr(obj, depth); err != nil {
						return err
					}
				}
				continue
			}
			if err := c.plWalk(val, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *classifier) plDynamic(v any, depth int) error {
	q, _, ok := exprQuery(v)
	if !ok {
		c.add(Target{Kind: KindOpaque})
		return nil
	}
	s, ok := constantString(q)
	if !ok {
		c.add(Target{Kind: KindOpaque})
		return nil
	}
	if classifyFilter.allows(s) {
		return nil
	}
	return c.sql(s, depth)
}

func (c *classifier) plExpr(obj map[string]any, depth int) error {
	q, mode, ok := exprQuery(obj)
	if !ok || classifyFilter.allows(q) {
		return nil
	}
	switch mode {
	case plModeDefault:
		return c.sql(q, depth)
	case plModeTypeName:
		return nil
	case plModeAssign1, plModeAssign2, plModeAssign3:
		return c.sql("SELECT "+assignRHS(q), depth)
	default:
		return c.sql("SELECT "+q, depth)
	}
}
