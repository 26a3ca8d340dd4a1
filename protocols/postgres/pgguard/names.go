package pgguard

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// tableName is a deny_tables entry after PostgreSQL identifier folding.
type tableName struct {
	schema string // "" matches any schema
	name   string
}

func (t tableName) String() string {
	if t.schema == "" {
		return t.name
	}
	return t.schema + "." + t.name
}

// parseTableName parses a configured name like `audit_log`, `billing.ledger`,
// `"Audit_Log"` or `public."Weird.Name"`: unquoted parts fold to lower case (ASCII,
// as PostgreSQL folds identifiers), quoted parts are taken verbatim ("" is a quote).
func parseTableName(s string) (tableName, error) {
	orig := s
	s = strings.TrimSpace(s)
	var parts []string
	for {
		if s == "" {
			return tableName{}, fmt.Errorf("pgguard: bad deny_tables entry %q: empty name", orig)
		}
		var part string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			closed := false
			for i < len(s) {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					closed = true
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed || b.Len() == 0 {
				return tableName{}, fmt.Errorf("pgguard: bad deny_tables entry %q: unterminated or empty quoted identifier", orig)
			}
			part, s = b.String(), s[i:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			raw := strings.TrimSpace(s[:i])
			if raw == "" || strings.ContainsAny(raw, "\" \t\n") {
				return tableName{}, fmt.Errorf("pgguard: bad deny_tables entry %q", orig)
			}
			part, s = foldIdent(raw), s[i:]
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return tableName{}, fmt.Errorf("pgguard: bad deny_tables entry %q", orig)
		}
		s = strings.TrimSpace(s[1:])
	}
	switch len(parts) {
	case 1:
		return tableName{name: parts[0]}, nil
	case 2:
		return tableName{schema: parts[0], name: parts[1]}, nil
	}
	return tableName{}, fmt.Errorf("pgguard: bad deny_tables entry %q: want table or schema.table", orig)
}

// foldIdent lower-cases ASCII letters, as PostgreSQL does for unquoted identifiers.
func foldIdent(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// matchTable returns the deny_tables entry that schema.name matches, if any. The
// parser has already folded unquoted identifiers, so comparison is exact.
func (g *Guard) matchTable(schema, name string) (tableName, bool) {
	for _, t := range g.tables {
		if t.name == name && (t.schema == "" || t.schema == schema) {
			return t, true
		}
	}
	return tableName{}, false
}

func (g *Guard) matchRangeVar(rv *pg_query.RangeVar) (tableName, bool) {
	if rv == nil {
		return tableName{}, false
	}
	return g.matchTable(rv.Schemaname, rv.Relname)
}

// matchNameList matches a qualified name given as a List of String nodes
// ([catalog.][schema.]name), as DROP TABLE carries it.
func (g *Guard) matchNameList(items []*pg_query.Node) (tableName, bool) {
	var parts []string
	for _, it := range items {
		s, ok := it.GetNode().(*pg_query.Node_String_)
		if !ok {
			return tableName{}, false
		}
		parts = append(parts, s.String_.Sval)
	}
	switch len(parts) {
	case 0:
		return tableName{}, false
	case 1:
		return g.matchTable("", parts[0])
	default:
		return g.matchTable(parts[len(parts)-2], parts[len(parts)-1])
	}
}

// schemaHoldsDenied reports whether dropping or renaming schema could affect a
// protected table: a qualified entry in that schema, or any unqualified entry.
func (g *Guard) schemaHoldsDenied(schema string) (tableName, bool) {
	for _, t := range g.tables {
		if t.schema == "" || t.schema == schema {
			return t, true
		}
	}
	return tableName{}, false
}
