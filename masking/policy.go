package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"regexp"
	"strings"
	"sync"
)

// Config is the `masking:` section of a connection's configuration.
type Config struct {
	// Columns are always masked whole, wherever they appear: "table.column",
	// "schema.table.column" or "*.column". Identifiers compare
	// case-insensitively, like unquoted PostgreSQL identifiers.
	Columns []string `yaml:"columns"`
	// Detectors run on every text value: email, credit_card, iban, ssn,
	// phone, ipv4, ipv6.
	Detectors []string `yaml:"detectors"`
	// Style is partial (the default when empty), redact or hash.
	Style string `yaml:"style"`
	// Patterns are user-defined detectors (Go regexp syntax). They are
	// slower than the built-in detectors and allocate; see the package doc.
	Patterns []Pattern `yaml:"patterns"`
	// HashKey keys the HMAC-SHA256 of the hash style; required for it.
	HashKey []byte `yaml:"-"`
}

// Pattern is a user-defined detector.
type Pattern struct {
	Name  string `yaml:"name"`
	Regex string `yaml:"regex"`
}

// Style is how a detected span or a forced value is replaced.
type Style uint8

const (
	// Partial keeps the length and rewrites in place: the last 4 digits of a
	// card, phone, SSN or IBAN stay, the rest of its letters and digits
	// become '*' (separators stay); an e-mail keeps its domain ("****@example.com");
	// IP addresses and user patterns have every letter and digit replaced;
	// a forced column value becomes all '*' except its last 4 characters
	// when it has 8 characters or more.
	Partial Style = iota
	// Redact replaces each span by a fixed token per kind ("[email]",
	// "[credit_card]", "[employee_id]") and a forced value by "[masked]".
	Redact
	// Hash replaces each span (or a forced value) by "h:" + the first 16 hex
	// characters of HMAC-SHA256(HashKey, value): equal inputs give equal
	// outputs, so joins and grouping keep working. Digit-only detections
	// (cards, phones, SSNs, IBANs) are hashed over their letters and digits
	// only, so "4111 1111 1111 1111" and "4111111111111111" hash alike;
	// e-mails are hashed lower-cased.
	Hash
)

var styleNames = [...]string{Partial: "partial", Redact: "redact", Hash: "hash"}

func (s Style) String() string {
	if int(s) < len(styleNames) {
		return styleNames[s]
	}
	return fmt.Sprintf("Style(%d)", uint8(s))
}

// Kind identifies what was masked: a built-in detector, a forced column, or
// user pattern i (KindPattern0 + i).
type Kind uint8

const (
	KindEmail Kind = iota
	KindCreditCard
	KindIBAN
	KindSSN
	KindPhone
	KindIPv4
	KindIPv6
	// KindColumn: the value was masked whole because of a column rule.
	KindColumn
	// KindPattern0 is the kind of Config.Patterns[0]; pattern i is
	// KindPattern0 + i.
	KindPattern0

	numBuiltin = int(KindColumn)
	// MaxPatterns is how many user patterns a Policy can hold.
	MaxPatterns = 64 - int(KindPattern0)
)

var kindNames = [...]string{
	KindEmail:      "email",
	KindCreditCard: "credit_card",
	KindIBAN:       "iban",
	KindSSN:        "ssn",
	KindPhone:      "phone",
	KindIPv4:       "ipv4",
	KindIPv6:       "ipv6",
	KindColumn:     "column",
}

// String names a built-in kind; user patterns print as "pattern#i" (use
// Policy.KindName for their configured name).
func (k Kind) String() string {
	if k < KindPattern0 {
		return kindNames[k]
	}
	return fmt.Sprintf("pattern#%d", int(k-KindPattern0))
}

// KindSet is a bitset of kinds.
type KindSet uint64

// Has reports whether k is in the set.
func (s KindSet) Has(k Kind) bool { return s&(1<<k) != 0 }

// Each calls f for every kind in the set, in increasing order.
func (s KindSet) Each(f func(Kind)) {
	for s != 0 {
		k := bits.TrailingZeros64(uint64(s))
		f(Kind(k))
		s &= s - 1
	}
}

// String lists the kinds, e.g. "email,phone"; "" for the empty set.
func (s KindSet) String() string {
	var b strings.Builder
	s.Each(func(k Kind) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k.String())
	})
	return b.String()
}

// Result says what MaskValue did.
type Result struct {
	// Changed: at least one span (or the forced value) was masked.
	Changed bool
	// InPlace: the returned slice is v, rewritten in place. False when
	// nothing changed or when the result was appended to dst.
	InPlace bool
	// Kinds that fired (for metrics).
	Kinds KindSet
}

// Policy is a compiled Config. It is immutable and safe for concurrent use.
type Policy struct {
	style    Style
	det      uint8 // bit per built-in detector Kind
	columns  []columnRule
	patterns []*regexp.Regexp
	names    []string // pattern names
	tokens   [][]byte // redact token per Kind (built-ins, column, patterns)
	trig     [256]uint8
	swarSub  uint64 // see skip
	swarAdd  uint64
	hashers  sync.Pool // *hasher
}

type columnRule struct {
	table  string // "" for "*"
	column string
}

var detectorKinds = map[string]Kind{
	"email":       KindEmail,
	"credit_card": KindCreditCard,
	"iban":        KindIBAN,
	"ssn":         KindSSN,
	"phone":       KindPhone,
	"ipv4":        KindIPv4,
	"ipv6":        KindIPv6,
}

// Detectors lists the built-in detector names Compile accepts.
func Detectors() []string {
	return []string{"email", "credit_card", "iban", "ssn", "phone", "ipv4", "ipv6"}
}

// Compile validates c and builds a Policy. Errors name the offending entry:
// an unknown detector or style, an invalid column spec, a pattern without a
// name, with a duplicate name or with a regex that does not compile or
// matches the empty string, and a hash style without HashKey.
func Compile(c Config) (*Policy, error) {
	p := &Policy{}
	switch strings.ToLower(strings.TrimSpace(c.Style)) {
	case "", "partial":
		p.style = Partial
	case "redact":
		p.style = Redact
	case "hash":
		p.style = Hash
		if len(c.HashKey) == 0 {
			return nil, errors.New("masking: style hash needs a hash key")
		}
	default:
		return nil, fmt.Errorf("masking: unknown style %q (want partial, redact or hash)", c.Style)
	}
	for _, d := range c.Detectors {
		k, ok := detectorKinds[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return nil, fmt.Errorf("masking: unknown detector %q (want one of %s)", d, strings.Join(Detectors(), ", "))
		}
		p.det |= 1 << k
	}
	for _, spec := range c.Columns {
		r, err := parseColumn(spec)
		if err != nil {
			return nil, err
		}
		p.columns = append(p.columns, r)
	}
	if len(c.Patterns) > MaxPatterns {
		return nil, fmt.Errorf("masking: %d patterns, at most %d", len(c.Patterns), MaxPatterns)
	}
	seen := map[string]bool{}
	for i, pat := range c.Patterns {
		name := strings.TrimSpace(pat.Name)
		if name == "" {
			return nil, fmt.Errorf("masking: pattern %d has no name", i+1)
		}
		if _, builtin := detectorKinds[name]; builtin || seen[name] || name == "column" || name == "masked" {
			return nil, fmt.Errorf("masking: pattern name %q is already used", name)
		}
		seen[name] = true
		if pat.Regex == "" {
			return nil, fmt.Errorf("masking: pattern %q has no regex", name)
		}
		re, err := regexp.Compile(pat.Regex)
		if err != nil {
			return nil, fmt.Errorf("masking: pattern %q: %v", name, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("masking: pattern %q matches the empty string", name)
		}
		p.patterns = append(p.patterns, re)
		p.names = append(p.names, name)
	}
	p.tokens = make([][]byte, int(KindPattern0)+len(p.patterns))
	for k := 0; k < numBuiltin; k++ {
		p.tokens[k] = []byte("[" + kindNames[k] + "]")
	}
	p.tokens[KindColumn] = []byte("[masked]")
	for i, n := range p.names {
		p.tokens[int(KindPattern0)+i] = []byte("[" + n + "]")
	}
	p.buildTriggers()
	if p.style == Hash {
		key := append([]byte(nil), c.HashKey...)
		p.hashers.New = func() any {
			return &hasher{h: hmac.New(sha256.New, key)}
		}
	}
	return p, nil
}

func parseColumn(spec string) (columnRule, error) {
	s := strings.TrimSpace(spec)
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 {
		return columnRule{}, fmt.Errorf("masking: column %q: want table.column or *.column", spec)
	}
	table, col := s[:dot], s[dot+1:]
	if !isIdent(col) {
		return columnRule{}, fmt.Errorf("masking: column %q: %q is not a column name", spec, col)
	}
	if table == "*" {
		table = ""
	} else {
		parts := strings.Split(table, ".")
		if len(parts) > 2 {
			return columnRule{}, fmt.Errorf("masking: column %q: want at most schema.table.column", spec)
		}
		for _, part := range parts {
			if !isIdent(part) {
				return columnRule{}, fmt.Errorf("masking: column %q: %q is not a table name", spec, part)
			}
		}
	}
	return columnRule{table: strings.ToLower(table), column: strings.ToLower(col)}, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= 0x80:
		case (c >= '0' && c <= '9') || c == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Enabled reports whether the policy has any rule at all.
func (p *Policy) Enabled() bool {
	return p != nil && (len(p.columns) > 0 || p.Detecting())
}

// Detecting reports whether any content detector (built-in or pattern) is on.
func (p *Policy) Detecting() bool {
	return p != nil && (p.det != 0 || len(p.patterns) > 0)
}

// Style returns the compiled style.
func (p *Policy) Style() Style { return p.style }

// KindName names k, using the configured name for user patterns.
func (p *Policy) KindName(k Kind) string {
	if k >= KindPattern0 && int(k-KindPattern0) < len(p.names) {
		return p.names[k-KindPattern0]
	}
	return k.String()
}

// ColumnRule reports whether a column rule covers table.column. Names compare
// ASCII case-insensitively. A rule "customers.email" covers table "customers"
// and any schema-qualified "x.customers"; "public.customers.email" covers only
// "public.customers"; "*.email" covers every table. It does not allocate.
func (p *Policy) ColumnRule(table, column string) bool {
	if p == nil {
		return false
	}
	for _, r := range p.columns {
		if !strings.EqualFold(r.column, column) {
			continue
		}
		if r.table == "" || strings.EqualFold(r.table, table) {
			return true
		}
		// unqualified rule vs qualified table
		if strings.IndexByte(r.table, '.') < 0 && len(table) > len(r.table) &&
			table[len(table)-len(r.table)-1] == '.' && strings.EqualFold(r.table, table[len(table)-len(r.table):]) {
			return true
		}
	}
	return false
}

type hasher struct {
	h   hash.Hash
	sum [sha256.Size]byte
	buf [64]byte
}
