package masking

import (
	"encoding/binary"
	"unicode/utf8"
)

// MaskValue masks one text value.
//
// forced says the value's column is covered by a column rule (ColumnRule):
// the whole value is masked whatever its content. Otherwise the content
// detectors run and only the detected spans are replaced.
//
// When every replacement has the length of what it replaces (always for the
// partial style), v is rewritten IN PLACE and returned, with
// Result.InPlace set. Otherwise the masked form is appended to dst and that
// is returned (v may then have been partly rewritten already; use the
// result). When nothing was masked, v is returned untouched and Changed is
// false. MaskValue does not allocate, except for appends beyond dst's
// capacity and when user patterns are configured.
//
// An empty value is never changed. MaskValue is safe for concurrent use.
func (p *Policy) MaskValue(dst, v []byte, forced bool) ([]byte, Result) {
	if forced {
		return p.maskForced(dst, v)
	}
	if len(v) == 0 || (p.det == 0 && len(p.patterns) == 0) {
		return v, Result{}
	}
	i := p.skip(v, 0)
	if i == len(v) && len(p.patterns) == 0 {
		return v, Result{} // the common case: nothing can start here
	}
	m := masker{p: p, v: v, out: dst, lim: len(v)}
	m.scan(i)
	if !m.res.Changed {
		return v, Result{}
	}
	if m.app {
		return append(m.out, v[m.last:]...), m.res
	}
	m.res.InPlace = true
	return v, m.res
}

// Scan reports the kinds the content detectors find in v without changing it.
func (p *Policy) Scan(v []byte) KindSet {
	if len(v) == 0 || (p.det == 0 && len(p.patterns) == 0) {
		return 0
	}
	m := masker{p: p, v: v, lim: len(v), dry: true}
	m.scan(0)
	return m.res.Kinds
}

func (p *Policy) maskForced(dst, v []byte) ([]byte, Result) {
	if len(v) == 0 {
		return v, Result{}
	}
	res := Result{Changed: true, Kinds: 1 << KindColumn}
	var r []byte
	switch p.style {
	case Partial:
		keep := len(v)
		if len(v) >= 32 || atLeastRunes(v, 8) {
			// keep the last 4 characters (runes); 4 bytes when that
			// is not UTF-8
			n := 0
			for keep > 0 && n < 4 {
				keep--
				if utf8.RuneStart(v[keep]) {
					n++
				}
			}
			if n < 4 || len(v)-keep > 4*utf8.UTFMax {
				keep = len(v) - 4
			}
		}
		for j := 0; j < keep; j += len(stars) {
			copy(v[j:keep], stars[:])
		}
		res.InPlace = true
		return v, res
	case Redact:
		r = p.tokens[KindColumn]
	case Hash:
		var buf [hashLen]byte
		p.hashSpan(KindColumn, v, &buf)
		if len(v) == hashLen {
			copy(v, buf[:])
			res.InPlace = true
			return v, res
		}
		return append(dst, buf[:]...), res
	}
	if len(r) == len(v) {
		copy(v, r)
		res.InPlace = true
		return v, res
	}
	return append(dst, r...), res
}

var stars = [64]byte{'*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*',
	'*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*',
	'*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*',
	'*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*', '*'}

// atLeastRunes reports whether v holds at least n characters (UTF-8 sequence
// starts). utf8.RuneCount may allocate on long non-ASCII input.
func atLeastRunes(v []byte, n int) bool {
	for _, c := range v {
		if utf8.RuneStart(c) {
			if n--; n == 0 {
				return true
			}
		}
	}
	return false
}

// masker is the state of one MaskValue call; it lives on the stack.
type masker struct {
	p     *Policy
	v     []byte
	out   []byte // dst, then the masked copy once app is set
	app   bool   // appending to out; v[:last] is already there
	dry   bool   // Scan: detect only
	last  int
	floor int // end of the last masked span: nothing before it is looked at again
	lim   int // start of the next user-pattern match (len(v) if none)
	colon int // no IPv6 can start at a ':' before this
	res   Result
	pat   *patState
	spans func(k Kind, s, e int) // tests: observe every span
}

// patState holds the user-pattern matches of one value.
type patState struct {
	pm   [][][]int
	pi   []int
	pend int
	pk   Kind
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// skip returns the first index at or after i where a detector may start
// (len(v) if none). This is the hot loop: eight bytes at a time, a SWAR test
// tells whether any byte lies in [trigLo, trigHi], the range spanning every
// trigger byte ('(' .. 'Z' with all detectors on: lower-case letters, spaces,
// UTF-8 and most punctuation fall outside); only then the table decides.
func (p *Policy) skip(v []byte, i int) int {
	trig := &p.trig
	sub, add := p.swarSub, p.swarAdd
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		x7 := x & (ones * 0x7f)
		if (sub-x7)&^x&(x7+add)&highs == 0 {
			continue
		}
		w := v[i : i+8 : i+8]
		for j, c := range w {
			if trig[c] != 0 {
				return i + j
			}
		}
	}
	for ; i < len(v); i++ {
		if trig[v[i]] != 0 {
			return i
		}
	}
	return i
}

func (m *masker) scan(i int) {
	p, v := m.p, m.v
	n := len(v)
	trig := &p.trig
	if len(p.patterns) > 0 {
		ps := &patState{pm: make([][][]int, len(p.patterns)), pi: make([]int, len(p.patterns))}
		for k, re := range p.patterns {
			ps.pm[k] = re.FindAllIndex(v, -1)
		}
		m.pat = ps
		m.nextPattern(0)
	}
	for i < n || m.lim < n {
		if m.pat == nil {
			i = p.skip(v, i)
			if i >= n {
				break
			}
		} else {
			i = p.skip(v[:m.lim], i)
			if i >= m.lim {
				if m.lim >= n {
					break
				}
				s, e, k := m.lim, m.pat.pend, m.pat.pk
				m.emit(k, s, e)
				i = max(i, e)
				continue
			}
		}
		t := trig[v[i]]
		switch {
		case t&tNum != 0:
			if i > m.floor && isAlnum(v[i-1]) {
				// inside a word: only an IBAN ("DE89...", found at its
				// first digit) can start here; else skip the word
				if !isDigit(v[i]) { // '+' or '(' glued to a word
					i++
					continue
				}
				if i-2 >= m.floor && p.det&(1<<KindIBAN) != 0 && class[v[i-1]]&cUpper != 0 && class[v[i-2]]&cUpper != 0 {
					if e, ok := matchIBAN(v, i-2, m.floor); ok {
						m.emit(KindIBAN, i-2, e)
						i = e
						continue
					}
				}
				i = skipWord(v, i+1)
				continue
			}
			if p.det&numericKinds == 0 {
				i = skipWord(v, i+1)
				continue
			}
			i = m.numeric(i)
		case t&tAt != 0:
			if s, e, ok := matchEmail(v, i, m.floor); ok {
				m.emit(KindEmail, s, e)
				i = e
			} else {
				i++
			}
		default: // ':'
			i = m.ipv6(i)
		}
	}
}

func skipWord(v []byte, i int) int {
	for i < len(v) && isAlnum(v[i]) {
		i++
	}
	return i
}

func (m *masker) numeric(i int) int {
	v := m.v
	if !startOK(v, i, m.floor) {
		return i + 1
	}
	if isDigit(v[i]) {
		// a lone short number ("42", "2024") is the common case
		j := i + 1
		for j < len(v) && isDigit(v[j]) {
			j++
		}
		if j-i < 9 {
			if s, _ := readSep(v, j); s == sepNone {
				return j
			}
		}
	}
	var r run
	if !scanRun(v, i, &r) {
		return i + 1
	}
	if k, kind := m.p.matchRun(v, &r, m.floor); k > 0 {
		if afterIBANHead(v, i, m.floor) {
			// the rest of an IBAN-shaped token that failed its check:
			// its digit groups are not a card or phone number either
			return r.ge[r.ng-1]
		}
		e := r.ge[k-1]
		m.emit(kind, i, e)
		return e
	}
	if r.lead != 0 {
		return i + 1 // "(4111 1111 1111 1111": try again without the lead
	}
	// Nothing here: retry after the first space (a match may start at a
	// later token of the run); otherwise skip the run.
	for k := 0; k < r.ng-1; k++ {
		if r.sep[k] == sepSpace || r.sep[k] == sepOpen {
			return r.ge[k] + 1
		}
	}
	return r.ge[r.ng-1]
}

func (m *masker) ipv6(i int) int {
	v := m.v
	n := len(v)
	if i < m.colon {
		return i + 1
	}
	if !((i > 0 && class[v[i-1]]&cHex != 0) || (i+1 < n && (class[v[i+1]]&cHex != 0 || v[i+1] == ':'))) {
		return i + 1
	}
	s, e, ok := matchIPv6(v, i, m.floor)
	if ok {
		m.emit(KindIPv6, s, e)
		return e
	}
	// every other colon of this hex/colon run would fail the same way
	j := i
	for j < n && (class[v[j]]&cHex != 0 || v[j] == ':') {
		j++
	}
	m.colon = j
	return i + 1
}

// nextPattern finds the earliest user-pattern match starting at or after
// from.
func (m *masker) nextPattern(from int) {
	m.lim = len(m.v)
	ps := m.pat
	for k, list := range ps.pm {
		j := ps.pi[k]
		for j < len(list) && list[j][0] < from {
			j++
		}
		ps.pi[k] = j
		if j < len(list) && list[j][0] < m.lim {
			m.lim, ps.pend, ps.pk = list[j][0], list[j][1], KindPattern0+Kind(k)
		}
	}
}

// emit masks v[s:e] as kind k.
func (m *masker) emit(k Kind, s, e int) {
	m.res.Changed = true
	m.res.Kinds |= 1 << k
	m.floor = e
	if m.pat != nil {
		m.nextPattern(e)
	}
	if m.spans != nil {
		m.spans(k, s, e)
	}
	if m.dry {
		return
	}
	switch m.p.style {
	case Partial:
		partial(k, m.v, s, e)
	case Redact:
		m.replace(s, e, m.p.tokens[k])
	case Hash:
		var buf [hashLen]byte
		m.p.hashSpan(k, m.v[s:e], &buf)
		m.replace(s, e, buf[:])
	}
}

// replace puts r in place of v[s:e]: in place while lengths agree, else
// switching to (or continuing) the copy in out.
func (m *masker) replace(s, e int, r []byte) {
	if !m.app {
		if len(r) == e-s {
			copy(m.v[s:e], r)
			return
		}
		m.app = true
		m.out = append(m.out, m.v[:s]...)
	} else {
		m.out = append(m.out, m.v[m.last:s]...)
	}
	m.out = append(m.out, r...)
	m.last = e
}

// partial masks v[s:e] in place, keeping its length.
func partial(k Kind, v []byte, s, e int) {
	switch k {
	case KindEmail: // keep "@domain"
		for j := s; j < e && v[j] != '@'; j++ {
			v[j] = '*'
		}
	case KindCreditCard, KindPhone, KindSSN, KindIBAN:
		// keep the last 4 letters/digits, unless more digits follow the
		// span (they could form a new number with the kept ones)
		keep := 4
		if digitsFollow(v, e) {
			keep = 0
		}
		for j := e - 1; j >= s; j-- {
			if isAlnum(v[j]) {
				if keep > 0 {
					keep--
				} else {
					v[j] = '*'
				}
			}
		}
	default: // IPs, user patterns
		for j := s; j < e; j++ {
			if isAlnum(v[j]) {
				v[j] = '*'
			}
		}
	}
}

func digitsFollow(v []byte, e int) bool {
	n := len(v)
	if e+1 >= n {
		return false
	}
	switch v[e] {
	case ' ', '-', '.', '/', '(', ')':
		if isDigit(v[e+1]) {
			return true
		}
		return e+2 < n && (v[e+1] == '(' || v[e+1] == ' ') && isDigit(v[e+2])
	}
	return false
}

// ---------------------------------------------------------------------------
// hash style

const hashLen = 2 + 16 // "h:" + 16 hex

const hexDigits = "0123456789abcdef"

// hashSpan writes "h:" + 16 hex chars of HMAC-SHA256(key, normalised span).
func (p *Policy) hashSpan(k Kind, span []byte, out *[hashLen]byte) {
	hs := p.hashers.Get().(*hasher)
	hs.h.Reset()
	switch k {
	case KindCreditCard, KindPhone, KindSSN, KindIBAN:
		n := 0
		for _, c := range span {
			if isAlnum(c) && n < len(hs.buf) {
				if class[c]&cLower != 0 {
					c -= 'a' - 'A'
				}
				hs.buf[n] = c
				n++
			}
		}
		hs.h.Write(hs.buf[:n])
	case KindEmail:
		for len(span) > 0 {
			n := copy(hs.buf[:], span)
			for j := 0; j < n; j++ {
				if class[hs.buf[j]]&cUpper != 0 {
					hs.buf[j] += 'a' - 'A'
				}
			}
			hs.h.Write(hs.buf[:n])
			span = span[n:]
		}
	default:
		hs.h.Write(span)
	}
	sum := hs.h.Sum(hs.sum[:0])
	out[0], out[1] = 'h', ':'
	letter := false
	for j := 0; j < 8; j++ {
		hi, lo := hexDigits[sum[j]>>4], hexDigits[sum[j]&15]
		out[2+2*j], out[3+2*j] = hi, lo
		letter = letter || hi >= 'a' || lo >= 'a'
	}
	if !letter {
		// 16 decimal digits could pass for a card number: make one a hex
		// letter (deterministic, so equal inputs still hash alike)
		out[2] = 'a' + (out[2]-'0')%6
	}
	p.hashers.Put(hs)
}
