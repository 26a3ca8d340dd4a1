package pgguard

// The keyword prefilter.
//
// Every statement form any rule denies needs at least one PostgreSQL keyword (DROP,
// DELETE, SET, ...) or one specific identifier (set_config) to be spelled out in the
// text. PostgreSQL keywords cannot be quoted, escaped or split by comments: the lexer
// only recognises them as a run of identifier characters, compared case-insensitively
// (ASCII folding only). So when none of the words that matter occurs anywhere in the
// text as a word (inside literals and comments included: that is merely conservative),
// no rule can match and the statement is allowed without parsing.
//
// Word boundaries are drawn conservatively (a word may be found where the lexer sees
// none, never the reverse): a word starts at a letter, '_' or byte >= 0x80 that does
// not follow one of those, and runs over letters, '_' and bytes >= 0x80; digits and '$'
// end it. The lexer's identifiers run over digits and '$' too, so "drop1" or "x$drop"
// here yield the word "drop" (a needless parse), whereas "updated_at" stays one word.
//
// The one way to spell an identifier without its letters is a Unicode-escaped quoted
// identifier, U&"\0073et_config"; when a rule depends on an identifier (set-role on
// set_config), "U&" forces the parse.
//
// FuzzPrefilter checks the property prefilterAllows(sql) ⇒ fullCheck(sql) allows.

const maxKeywordLen = 16

type prefilter struct {
	words      map[string]struct{} // upper-case words that force a parse
	maxLen     int
	unicodeIDs bool // "U&" forces a parse
}

// ruleKeywords lists, per rule, the words whose presence can make that rule match.
var ruleKeywords = map[string][]string{
	RuleDrop:               {"DROP"},
	RuleTruncate:           {"TRUNCATE"},
	RuleAlter:              {"ALTER"},
	RuleGrant:              {"GRANT", "REVOKE", "REASSIGN"},
	RuleDeleteWithoutWhere: {"DELETE"},
	RuleUpdateWithoutWhere: {"UPDATE"},
	RuleCreate:             {"CREATE", "INTO", "IMPORT"},
	RuleCopyFromProgram:    {"COPY"},
	// SET/RESET ROLE and SESSION AUTHORIZATION, DISCARD ALL, set_config('role', ...),
	// UPDATE pg_settings.
	RuleSetRole: {"SET", "RESET", "DISCARD", "SET_CONFIG", "UPDATE"},
}

// denyTablesKeywords: every statement that writes to a named relation.
var denyTablesKeywords = []string{
	"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "ALTER", "DROP",
	"CREATE", // CREATE TRIGGER/RULE/POLICY ON t, CREATE TABLE ... PARTITION OF t, CREATE OR REPLACE VIEW t
	"REFRESH",
}

// anyRuleKeywords apply whenever any rule is configured: bodies of DO blocks and
// functions are checked against all rules, and dynamic SQL in them is denied.
var anyRuleKeywords = []string{"DO", "CREATE"}

func buildPrefilter(deny map[string]bool, tables bool) prefilter {
	p := prefilter{words: map[string]struct{}{}}
	add := func(ws []string) {
		for _, w := range ws {
			p.words[w] = struct{}{}
			if len(w) > p.maxLen {
				p.maxLen = len(w)
			}
		}
	}
	for r := range deny {
		add(ruleKeywords[r])
	}
	if tables {
		add(denyTablesKeywords)
	}
	if len(deny) > 0 || tables {
		add(anyRuleKeywords)
	}
	p.unicodeIDs = deny[RuleSetRole]
	return p
}

func isWordByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '_' || c >= 0x80
}

// allows reports whether no word of the prefilter occurs in s.
func (p *prefilter) allows(s string) bool {
	var buf [maxKeywordLen]byte
	for i := 0; i < len(s); {
		c := s[i]
		if isWordByte(c) {
			j := i + 1
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			if n := j - i; n <= p.maxLen {
				for k := 0; k < n; k++ {
					b := s[i+k]
					if 'a' <= b && b <= 'z' {
						b -= 'a' - 'A'
					}
					buf[k] = b
				}
				if _, hit := p.words[string(buf[:n])]; hit {
					return false
				}
			}
			i = j
			continue
		}
		if c == '&' && p.unicodeIDs && i > 0 && (s[i-1]|0x20) == 'u' {
			return false
		}
		i++
	}
	return true
}

// firstWordKind classifies a statement by its first keyword, skipping whitespace,
// comments and opening parentheses. It does not allocate.
func firstWordKind(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(' || c == ';':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			depth := 0
			for i < len(s) {
				if s[i] == '/' && i+1 < len(s) && s[i+1] == '*' {
					depth++
					i += 2
				} else if s[i] == '*' && i+1 < len(s) && s[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		default:
			j := i
			for j < len(s) && j-i < maxKeywordLen && (('a' <= s[j] && s[j] <= 'z') || ('A' <= s[j] && s[j] <= 'Z')) {
				j++
			}
			var buf [maxKeywordLen]byte
			for k := i; k < j; k++ {
				b := s[k]
				if 'a' <= b && b <= 'z' {
					b -= 'a' - 'A'
				}
				buf[k-i] = b
			}
			return kindOfKeyword(string(buf[:j-i]))
		}
	}
	return KindOther
}

func kindOfKeyword(w string) string {
	switch w {
	case "SELECT", "WITH", "VALUES", "TABLE":
		return KindSelect
	case "INSERT":
		return KindInsert
	case "UPDATE":
		return KindUpdate
	case "DELETE":
		return KindDelete
	case "CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "TRUNCATE", "COMMENT", "SECURITY",
		"REASSIGN", "IMPORT", "REFRESH":
		return KindDDL
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
		"PREPARE", "EXECUTE", "DEALLOCATE", "SET", "RESET", "SHOW", "COPY", "EXPLAIN",
		"DO", "CALL", "VACUUM", "ANALYZE", "ANALYSE", "CLUSTER", "REINDEX", "LOCK",
		"LISTEN", "UNLISTEN", "NOTIFY", "DISCARD", "CHECKPOINT", "DECLARE", "FETCH",
		"MOVE", "CLOSE", "LOAD":
		return KindUtility
	}
	return KindOther
}
