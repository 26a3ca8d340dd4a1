package mysql

// The gateway maps exactly one form of KILL to the upstream: a command that
// is nothing but KILL [QUERY|CONNECTION] <id>, with an id the gateway handed
// out (frontend.go, killCommand). Any other KILL that reaches the agent, in a
// multi-statement COM_QUERY, after a comment, in COM_STMT_PREPARE or in
// PREPARE ... FROM '...', would name an upstream thread id (those of other
// Sluice users' sessions on the same connection included) and is refused with
// ERR 1227. The agent finds them with killScanner, a lexer that knows MySQL's
// quoting and comments: it flags a KILL keyword outside strings and ordinary
// comments (inside /*! ... */ and /*M! ... */, which the server executes,
// included), and the word KILL inside the string literals of a statement that
// also has PREPARE or EXECUTE in it. It errs on the side of refusing:
// `kill` used as a bare column or alias name is flagged too (quote it with
// backticks). It cannot see SQL built at run time (PREPARE FROM @var,
// MariaDB's PREPARE FROM CONCAT(...) and EXECUTE IMMEDIATE CONCAT(...), a hex
// literal) or stored in routines; guardrails deny dynamic SQL (dynamic-sql,
// unparseable), the upstream account's privileges bound the rest.

// killRefusal is the ERR message for a KILL the gateway does not map.
const killRefusal = "KILL through Sluice must be sent alone, as KILL [QUERY|CONNECTION] <id> with the id of one of your own connections; " +
	"this command has a KILL in another form (several statements, a comment before it, a prepared statement, or `kill` as an unquoted name)"

// killScanner is fed a statement's bytes in order, in any number of chunks.
// String escapes depend on the server's sql_mode (NO_BACKSLASH_ESCAPES,
// ANSI_QUOTES), which the agent does not know, so it lexes the text every
// way the server could and reports a KILL if any of them sees one.
type killScanner struct {
	lx [3]killLexer
}

func (k *killScanner) reset() {
	k.lx[0] = killLexer{sqEsc: true, dqEsc: true}  // default sql_mode
	k.lx[1] = killLexer{}                          // NO_BACKSLASH_ESCAPES
	k.lx[2] = killLexer{sqEsc: true, dqEsc: false} // ANSI_QUOTES: "..." is a name
}

// feed lexes the next chunk; it reports whether a KILL was found so far.
func (k *killScanner) feed(b []byte) bool {
	found := false
	for i := range k.lx {
		l := &k.lx[i]
		for _, c := range b {
			l.step(c)
		}
		found = found || l.found
	}
	return found
}

// end finishes the text and reports whether it has a KILL.
func (k *killScanner) end() bool {
	found := false
	for i := range k.lx {
		k.lx[i].endWord()
		found = found || k.lx[i].found
	}
	return found
}

// containsKill reports whether sql (a whole statement text) has a KILL the
// gateway did not map. Text without the letters "kill" in a row, in any case,
// is answered without lexing.
func containsKill(sql []byte) bool {
	if !hasKillLetters(sql) {
		return false
	}
	var k killScanner
	k.reset()
	k.feed(sql)
	return k.end()
}

// hasKillLetters reports whether b has the letters "kill" in a row, in any
// case, backslashes between them ignored (a string escape the server drops).
func hasKillLetters(b []byte) bool {
	var w uint32
	for _, c := range b {
		if c == '\\' {
			continue
		}
		if w = w<<8 | uint32(c|0x20); w == 'k'<<24|'i'<<16|'l'<<8|'l' {
			return true
		}
	}
	return false
}

type lexState uint8

const (
	lxCode   lexState = iota
	lxSingle          // '...'
	lxDouble          // "..."
	lxBack            // `...`
	lxLine            // -- or # comment, to the end of the line
	lxBlock           // /* ... */ comment
)

// pending two-byte tokens in code.
const (
	pendNone      = 0
	pendDash      = 1 // "-"
	pendDashDash  = 2 // "--": a comment if whitespace follows
	pendSlash     = 3 // "/"
	pendOpen      = 4 // "/*": "!" or "M!" makes it executable
	pendOpenM     = 5 // "/*M"
	pendExecStar  = 6 // "*" inside /*! ... */: "/" ends it
	pendBlockStar = 7 // "*" inside a comment: "/" ends it
)

type killLexer struct {
	sqEsc, dqEsc bool // backslash escapes inside '...' / "..."
	st           lexState
	pend         uint8
	esc          bool // the previous byte in a string was an escaping backslash
	inExec       bool // inside /*! ... */ (code the server runs)
	version      int  // version digits still skippable after /*! or /*M!
	inWord       bool
	word         [8]byte // the current code word, lower case, first 8 bytes
	wn           int
	wordPrev     byte   // the significant byte before the current word
	prev         byte   // the last significant code byte
	dynamic      bool   // this statement has PREPARE or EXECUTE: check its strings
	swin         uint32 // the last four bytes of a string's content, lower case
	found        bool
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func (l *killLexer) step(c byte) {
	switch l.st {
	case lxCode:
		l.code(c)
	case lxSingle, lxDouble:
		quote, esc := byte('\''), l.sqEsc
		if l.st == lxDouble {
			quote, esc = '"', l.dqEsc
		}
		switch {
		case l.esc:
			l.esc = false
			l.strByte(c)
		case esc && c == '\\':
			l.esc = true
		case c == quote:
			l.st, l.prev = lxCode, quote
		default:
			l.strByte(c)
		}
	case lxBack:
		if c == '`' {
			l.st, l.prev = lxCode, '`'
		}
	case lxLine:
		if c == '\n' {
			l.st = lxCode
		}
	case lxBlock:
		switch {
		case l.pend == pendBlockStar && c == '/':
			l.st, l.pend = lxCode, pendNone
		case c == '*':
			l.pend = pendBlockStar
		default:
			l.pend = pendNone
		}
	}
}

func (l *killLexer) code(c byte) {
	if l.version > 0 {
		if c >= '0' && c <= '9' {
			l.version--
			return
		}
		l.version = 0
	}
	switch l.pend {
	case pendDash:
		l.pend = pendNone
		if c == '-' {
			l.pend = pendDashDash
			return
		}
		l.codeByte('-')
	case pendDashDash:
		switch {
		case c <= ' ': // "-- " (any whitespace or control byte) starts a comment
			l.pend, l.st = pendNone, lxLine
			if c == '\n' {
				l.st = lxCode
			}
			return
		case c == '-': // "---": the first is a minus, the last two may start a comment
			l.codeByte('-')
			return
		}
		l.pend = pendNone
		l.codeByte('-')
		l.codeByte('-')
	case pendSlash:
		l.pend = pendNone
		if c == '*' {
			l.pend = pendOpen
			return
		}
		l.codeByte('/')
	case pendOpen:
		l.pend = pendNone
		switch c {
		case '!':
			l.inExec, l.version = true, 6
			return
		case 'M':
			l.pend = pendOpenM
			return
		}
		l.st = lxBlock
		if c == '*' {
			l.pend = pendBlockStar
		}
		return
	case pendOpenM:
		l.pend = pendNone
		if c == '!' {
			l.inExec, l.version = true, 6
			return
		}
		l.st = lxBlock
		if c == '*' {
			l.pend = pendBlockStar
		}
		return
	case pendExecStar:
		l.pend = pendNone
		if c == '/' {
			l.inExec = false
			return
		}
		l.codeByte('*')
	}
	switch {
	case c == '-':
		l.endWord()
		l.pend = pendDash
	case c == '/':
		l.endWord()
		l.pend = pendSlash
	case c == '*' && l.inExec:
		l.endWord()
		l.pend = pendExecStar
	case c == '#':
		l.endWord()
		l.st = lxLine
	case c == '\'':
		l.endWord()
		l.st, l.swin = lxSingle, 0
	case c == '"':
		l.endWord()
		l.st, l.swin = lxDouble, 0
	case c == '`':
		l.endWord()
		l.st = lxBack
	default:
		l.codeByte(c)
	}
}

// codeByte takes a code byte that is not the start of a quote or comment.
func (l *killLexer) codeByte(c byte) {
	if isWordByte(c) {
		if !l.inWord {
			l.inWord, l.wn, l.wordPrev = true, 0, l.prev
		}
		if l.wn < len(l.word) {
			if c >= 'A' && c <= 'Z' {
				c |= 0x20
			}
			l.word[l.wn] = c
		}
		l.wn++
		return
	}
	l.endWord()
	if c == ';' {
		l.dynamic = false
	}
	if c > ' ' {
		l.prev = c
	}
}

func (l *killLexer) endWord() {
	if !l.inWord {
		return
	}
	l.inWord = false
	if l.wn <= len(l.word) {
		switch w := string(l.word[:l.wn]); w {
		case "kill":
			// @kill and t.kill are names, not the statement.
			if l.wordPrev != '.' && l.wordPrev != '@' {
				l.found = true
			}
		case "prepare", "execute":
			l.dynamic = true
		}
	}
	l.prev = 'a'
}

// strByte takes a byte of a string literal's content. In a dynamic
// statement the letters "kill" in a row, in any case, are refused: the
// content is SQL that will run, escapes and all, so no word boundary is
// trusted and backslashes are skipped.
func (l *killLexer) strByte(c byte) {
	if !l.dynamic || c == '\\' {
		return
	}
	l.swin = l.swin<<8 | uint32(c|0x20)
	if l.swin == 'k'<<24|'i'<<16|'l'<<8|'l' {
		l.found = true
	}
}
