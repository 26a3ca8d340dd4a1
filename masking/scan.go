package masking

// Byte classes, one table load per byte.
const (
	cDigit  = 1 << iota
	cUpper  // A-Z
	cLower  // a-z
	cHex    // 0-9 a-f A-F
	cLocal  // e-mail local part: alnum . _ % + -
	cDomain // e-mail domain label: alnum -
)

const cAlnum = cDigit | cUpper | cLower

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		var k uint8
		switch {
		case c >= '0' && c <= '9':
			k = cDigit | cHex | cLocal | cDomain
		case c >= 'A' && c <= 'Z':
			k = cUpper | cLocal | cDomain
			if c <= 'F' {
				k |= cHex
			}
		case c >= 'a' && c <= 'z':
			k = cLower | cLocal | cDomain
			if c <= 'f' {
				k |= cHex
			}
		}
		switch c {
		case '.', '_', '%', '+', '-':
			k |= cLocal
		}
		if c == '-' {
			k |= cDomain
		}
		t[c] = k
	}
	return t
}()

// Per-policy trigger classes: only bytes where an enabled detector may start.
const (
	tNum   = 1 << iota // digit, '+', '(': card, ssn, phone, ipv4; iban (at its first digit)
	tAt                // '@': email
	tColon             // ':': ipv6
)

const numericKinds = 1<<KindCreditCard | 1<<KindSSN | 1<<KindPhone | 1<<KindIPv4

func (p *Policy) buildTriggers() {
	if p.det&(numericKinds|1<<KindIBAN) != 0 {
		for c := '0'; c <= '9'; c++ {
			p.trig[c] |= tNum
		}
	}
	if p.det&(1<<KindPhone) != 0 {
		p.trig['+'] |= tNum
		p.trig['('] |= tNum
	}
	if p.det&(1<<KindEmail) != 0 {
		p.trig['@'] |= tAt
	}
	if p.det&(1<<KindIPv6) != 0 {
		p.trig[':'] |= tColon
	}
	// the byte range of all triggers, for the SWAR pre-test of skip
	lo, hi := 256, -1
	for c := 0; c < 256; c++ {
		if p.trig[c] != 0 {
			lo, hi = min(lo, c), max(hi, c)
		}
	}
	if hi < 0 || hi >= 0x80 { // none (never tested) or not ASCII: test every word
		lo, hi = 0, 0x7f
	}
	// a byte x < 0x80 has lo <= x <= hi iff (127+hi+1-x) and (x+127-(lo-1))
	// both have their high bit set
	p.swarSub = ones * uint64(127+hi+1)
	p.swarAdd = ones * uint64(127-(lo-1))
}

func isDigit(c byte) bool { return class[c]&cDigit != 0 }
func isAlnum(c byte) bool { return class[c]&cAlnum != 0 }

// startOK: may a match start at s? Not glued to a letter or digit before it,
// nor to "x." / "x_". Bytes before floor belong to a masked span (possibly
// rewritten already): a span's end is a boundary, and they are not looked at.
func startOK(v []byte, s, floor int) bool {
	if s <= floor {
		return true
	}
	p := v[s-1]
	if isAlnum(p) {
		return false
	}
	if (p == '.' || p == '_') && s-2 >= floor && isAlnum(v[s-2]) {
		return false
	}
	return true
}

// endOK: may a match end at e (exclusive)? The next byte is not a letter,
// digit or '@', nor '.', '-', '_' or ':' followed by a letter or digit.
func endOK(v []byte, e int) bool {
	if e >= len(v) {
		return true
	}
	c := v[e]
	if isAlnum(c) || c == '@' {
		return false
	}
	if (c == '.' || c == '-' || c == '_' || c == ':') && e+1 < len(v) && isAlnum(v[e+1]) {
		return false
	}
	return true
}

// ---------------------------------------------------------------------------
// Numeric runs: digit groups joined by single separators.

const maxGroups = 8

const (
	sepNone  = iota // the run ends after this group
	sepSpace        // " "
	sepDash         // "-"
	sepDot          // "."
	sepSlash        // "/"
	sepClose        // ")", ") ", ")-"
	sepOpen         // "(", " ("
)

type run struct {
	start  int  // first byte, including lead
	lead   byte // 0, '+' or '('
	ng     int
	gs, ge [maxGroups]int   // group bounds
	sep    [maxGroups]uint8 // separator after group k (sepNone: run ends there)
}

func (r *run) dig(k int) int { return r.ge[k] - r.gs[k] }

// readSep reads a separator at j that is followed by a digit.
func readSep(v []byte, j int) (uint8, int) {
	n := len(v)
	if j+1 >= n {
		return sepNone, 0
	}
	c, d := v[j], v[j+1]
	if isDigit(d) {
		switch c {
		case ' ':
			return sepSpace, 1
		case '-':
			return sepDash, 1
		case '.':
			return sepDot, 1
		case '/':
			return sepSlash, 1
		case ')':
			return sepClose, 1
		case '(':
			return sepOpen, 1
		}
		return sepNone, 0
	}
	if j+2 < n && isDigit(v[j+2]) {
		switch {
		case c == ')' && (d == ' ' || d == '-'):
			return sepClose, 2
		case c == ' ' && d == '(':
			return sepOpen, 2
		}
	}
	return sepNone, 0
}

// scanRun reads the numeric run starting at i (a digit, '+' or '(').
func scanRun(v []byte, i int, r *run) bool {
	n := len(v)
	r.start, r.lead, r.ng = i, 0, 0
	j := i
	if c := v[j]; c == '+' || c == '(' {
		r.lead = c
		j++
		if j >= n || !isDigit(v[j]) {
			return false
		}
	}
	for {
		gs := j
		for j < n && isDigit(v[j]) {
			j++
		}
		k := r.ng
		r.gs[k], r.ge[k] = gs, j
		r.ng++
		s, w := readSep(v, j)
		r.sep[k] = s
		if s == sepNone || r.ng == maxGroups {
			return true
		}
		j += w
	}
}

// ends: may a match made of the first k groups end there? Either the run
// ends and endOK holds, or a space separates it from the next group.
func (r *run) ends(v []byte, k int) bool {
	switch r.sep[k-1] {
	case sepNone:
		return endOK(v, r.ge[k-1])
	case sepSpace, sepOpen:
		return true
	}
	return false
}

// matchRun tries the numeric detectors on r; it returns the number of
// groups matched (0: none) and the kind.
func (p *Policy) matchRun(v []byte, r *run, floor int) (int, Kind) {
	if r.lead == 0 && r.ng == 1 && r.dig(0) < 9 {
		return 0, 0 // a lone short number: the common case
	}
	if p.det&(1<<KindIPv4) != 0 {
		if k := matchIPv4(v, r); k > 0 {
			return k, KindIPv4
		}
	}
	if p.det&(1<<KindCreditCard) != 0 {
		if k := matchCard(v, r); k > 0 {
			return k, KindCreditCard
		}
	}
	if p.det&(1<<KindSSN) != 0 {
		if k := matchSSN(v, r, floor); k > 0 {
			return k, KindSSN
		}
	}
	// A phone number does not continue a run of digit groups ("9400 2868
	// 3112 0718 8471 70" holds no phone number "0718 8471 70").
	if p.det&(1<<KindPhone) != 0 && !(r.lead == 0 && r.start-2 >= floor && v[r.start-1] == ' ' && isDigit(v[r.start-2])) {
		if k := matchPhone(v, r); k > 0 {
			return k, KindPhone
		}
	}
	return 0, 0
}

// ---------------------------------------------------------------------------
// IPv4

func octet(v []byte) bool {
	switch len(v) {
	case 1:
		return true
	case 2:
		return v[0] != '0'
	case 3:
		return v[0] == '1' || (v[0] == '2' && (v[1] < '5' || (v[1] == '5' && v[2] <= '5')))
	}
	return false
}

func matchIPv4(v []byte, r *run) int {
	if r.lead != 0 || r.ng < 4 {
		return 0
	}
	for g := 0; g < 4; g++ {
		if g < 3 && r.sep[g] != sepDot {
			return 0
		}
		if !octet(v[r.gs[g]:r.ge[g]]) {
			return 0
		}
	}
	switch r.sep[3] {
	case sepNone:
		e := r.ge[3]
		// a ":port" may follow
		if e+1 < len(v) && v[e] == ':' && isDigit(v[e+1]) {
			return 4
		}
		if endOK(v, e) {
			return 4
		}
	case sepSpace, sepSlash, sepOpen: // "/24" prefix length may follow
		return 4
	}
	return 0
}

// parseIPv4 parses a strict dotted quad at i (for IPv6 tails); it returns
// the end.
func parseIPv4(v []byte, i int) (int, bool) {
	n := len(v)
	j := i
	for g := 0; g < 4; g++ {
		if g > 0 {
			if j >= n || v[j] != '.' {
				return 0, false
			}
			j++
		}
		s := j
		for j < n && j-s < 4 && isDigit(v[j]) {
			j++
		}
		if !octet(v[s:j]) {
			return 0, false
		}
	}
	if j+1 < n && v[j] == '.' && isDigit(v[j+1]) {
		return 0, false
	}
	return j, true
}

// ---------------------------------------------------------------------------
// Credit cards

// iinOK: is pre (the first 6 digits) a plausible issuer prefix for a card of
// n digits?
func iinOK(pre, n int) bool {
	p1, p2, p3, p4 := pre/100000, pre/10000, pre/1000, pre/100
	switch {
	case p1 == 4: // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16
	case p2 == 34 || p2 == 37: // Amex
		return n == 15
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners
		return n >= 14
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65, p2 == 62: // Discover, UnionPay
		return n >= 16
	case p2 == 50, p2 >= 56 && p2 <= 69: // Maestro and friends
		return n >= 13
	}
	return false
}

// cardOK checks issuer prefix and Luhn over the first k groups (n digits).
func cardOK(v []byte, r *run, k, n int) bool {
	pre, got := 0, 0
	for g := 0; g < k && got < 6; g++ {
		for j := r.gs[g]; j < r.ge[g] && got < 6; j++ {
			pre = pre*10 + int(v[j]-'0')
			got++
		}
	}
	if !iinOK(pre, n) {
		return false
	}
	return luhnGroups(v, r, k)
}

var luhnDouble = [10]int{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

func luhnGroups(v []byte, r *run, k int) bool {
	sum, dbl := 0, false
	for g := k - 1; g >= 0; g-- {
		for j := r.ge[g] - 1; j >= r.gs[g]; j-- {
			d := int(v[j] - '0')
			if dbl {
				d = luhnDouble[d]
			}
			sum += d
			dbl = !dbl
		}
	}
	return sum%10 == 0
}

// luhn reports whether the digits of s (other bytes ignored) pass Luhn.
func luhn(s []byte) bool {
	sum, dbl, n := 0, false, 0
	for j := len(s) - 1; j >= 0; j-- {
		if !isDigit(s[j]) {
			continue
		}
		d := int(s[j] - '0')
		if dbl {
			d = luhnDouble[d]
		}
		sum += d
		dbl = !dbl
		n++
	}
	return n > 0 && sum%10 == 0
}

func matchCard(v []byte, r *run) int {
	if r.lead != 0 {
		return 0
	}
	d0 := r.dig(0)
	if d0 >= 13 && d0 <= 19 { // compact
		if r.ends(v, 1) && cardOK(v, r, 1, d0) {
			return 1
		}
		return 0
	}
	if d0 != 4 || r.ng < 2 {
		return 0
	}
	sep := r.sep[0]
	if sep != sepSpace && sep != sepDash {
		return 0
	}
	total, best := 4, 0
	for k := 1; k < r.ng; k++ {
		g := r.dig(k)
		if g < 3 || g > 6 {
			break
		}
		total += g
		if total > 19 {
			break
		}
		if total >= 13 && r.ends(v, k+1) && cardOK(v, r, k+1, total) {
			best = k + 1
		}
		if r.sep[k] != sep {
			break
		}
	}
	return best
}

// ---------------------------------------------------------------------------
// SSN

func num(v []byte) int {
	n := 0
	for _, c := range v {
		n = n*10 + int(c-'0')
	}
	return n
}

// ssnOK excludes the SSA never-issued ranges.
func ssnOK(area, group, serial int) bool {
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

// labelled: "ssn" or "social security" (any case) within 24 bytes before s,
// not before floor.
func labelled(v []byte, s, floor int) bool {
	lo := s - 24
	if lo < floor {
		lo = floor
	}
	if lo < 0 {
		lo = 0
	}
	for j := lo; j+3 <= s; j++ {
		if hasFold(v[j:s], "ssn") || hasFold(v[j:s], "social security") {
			return true
		}
	}
	return false
}

// hasFold: does b start with the lower-case ASCII word w, case-insensitively?
func hasFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for i := 0; i < len(w); i++ {
		if b[i]|0x20 != w[i] {
			return false
		}
	}
	return true
}

func matchSSN(v []byte, r *run, floor int) int {
	if r.lead != 0 {
		return 0
	}
	if r.ng >= 3 && r.dig(0) == 3 && r.dig(1) == 2 && r.dig(2) == 4 {
		s0, s1 := r.sep[0], r.sep[1]
		dashed := s0 == sepDash && s1 == sepDash
		spaced := s0 == sepSpace && s1 == sepSpace
		if (dashed || spaced) && r.ends(v, 3) &&
			ssnOK(num(v[r.gs[0]:r.ge[0]]), num(v[r.gs[1]:r.ge[1]]), num(v[r.gs[2]:r.ge[2]])) &&
			(dashed || labelled(v, r.start, floor)) {
			return 3
		}
		return 0
	}
	if r.dig(0) == 9 && r.ends(v, 1) {
		g := r.gs[0]
		if ssnOK(num(v[g:g+3]), num(v[g+3:g+5]), num(v[g+5:g+9])) && labelled(v, r.start, floor) {
			return 1
		}
	}
	return 0
}

// ---------------------------------------------------------------------------
// Phone numbers

func matchPhone(v []byte, r *run) int {
	switch r.lead {
	case '+': // E.164
		if v[r.gs[0]] == '0' {
			return 0
		}
		total, best := 0, 0
		for k := 0; k < r.ng; k++ {
			if k > 0 && r.sep[k-1] == sepSlash {
				break
			}
			total += r.dig(k)
			if total > 15 {
				break
			}
			if total >= 9 && (k > 0 || total >= 10) && r.ends(v, k+1) {
				best = k + 1
			}
		}
		return best
	case '(':
		if r.sep[0] != sepClose || r.ng < 2 {
			return 0
		}
		if r.ng >= 3 && r.dig(0) == 3 && v[r.gs[0]] >= '2' && r.dig(1) == 3 && r.dig(2) == 4 &&
			plainSep(r.sep[1]) && r.ends(v, 3) { // (NXX) NXX-XXXX
			return 3
		}
		if v[r.gs[0]] == '0' && r.dig(0) >= 2 && r.dig(0) <= 5 { // (020) 7946 0958
			return trunk(v, r, 1, r.dig(0), sepNone)
		}
		return 0
	}
	// NXX-NXX-XXXX
	if r.ng >= 3 && r.dig(0) == 3 && v[r.gs[0]] >= '2' && r.dig(1) == 3 && r.dig(2) == 4 &&
		plainSep(r.sep[0]) && r.sep[1] == r.sep[0] && r.ends(v, 3) {
		return 3
	}
	// 1-NXX-NXX-XXXX
	if r.ng >= 4 && r.dig(0) == 1 && v[r.gs[0]] == '1' && r.dig(1) == 3 && v[r.gs[1]] >= '2' &&
		r.dig(2) == 3 && r.dig(3) == 4 && plainSep(r.sep[0]) && r.sep[1] == r.sep[0] && r.sep[2] == r.sep[0] && r.ends(v, 4) {
		return 4
	}
	// trunk-prefix national: 020 7946 0958, 01 23 45 67 89, 030/12345678
	if r.ng >= 2 && v[r.gs[0]] == '0' && r.dig(0) >= 2 && r.dig(0) <= 5 {
		switch r.sep[0] {
		case sepSpace, sepDash, sepDot, sepSlash:
			return trunk(v, r, 1, r.dig(0), r.sep[0])
		}
	}
	return 0
}

func plainSep(s uint8) bool { return s == sepSpace || s == sepDash || s == sepDot }

// trunk matches groups from.. of a trunk-prefix national number: each of 2+
// digits, one consistent plain separator (sep, or the first one seen when
// sep is sepNone), 10-11 digits in all (total counts those already seen).
func trunk(v []byte, r *run, from, total int, sep uint8) int {
	best := 0
	for k := from; k < r.ng; k++ {
		if k > from {
			s := r.sep[k-1]
			if sep == sepNone {
				sep = s
			}
			if s != sep || !(plainSep(s) || s == sepSlash) {
				break
			}
		}
		if r.dig(k) < 2 {
			break
		}
		total += r.dig(k)
		if total > 11 {
			break
		}
		if total >= 10 && r.ends(v, k+1) {
			best = k + 1
		}
	}
	return best
}

// ---------------------------------------------------------------------------
// IBAN

var ibanLen = func() (t [26 * 26]uint8) {
	for cc, n := range map[string]uint8{
		"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
		"BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
		"DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
		"GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
		"IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
		"LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
		"MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
		"QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
		"TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
	} {
		t[int(cc[0]-'A')*26+int(cc[1]-'A')] = n
	}
	return t
}()

// ibanLength returns the IBAN length of a country code known to the
// detector, or 0.
func ibanLength(cc string) int {
	if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
		return 0
	}
	return int(ibanLen[int(cc[0]-'A')*26+int(cc[1]-'A')])
}

func mod97(rem int, c byte) int {
	if c <= '9' {
		return (rem*10 + int(c-'0')) % 97
	}
	return (rem*100 + int(c-'A') + 10) % 97
}

// matchIBAN: an IBAN starting at i (an upper-case letter at a start
// boundary); returns its end.
func matchIBAN(v []byte, i, floor int) (int, bool) {
	n := len(v)
	if i+15 > n || class[v[i+1]]&cUpper == 0 || !isDigit(v[i+2]) || !isDigit(v[i+3]) {
		return 0, false
	}
	L := int(ibanLen[int(v[i]-'A')*26+int(v[i+1]-'A')])
	if L == 0 || !startOK(v, i, floor) {
		return 0, false
	}
	j := i + 4
	grouped := v[j] == ' '
	rem := 0
	for count := 4; count < L; count++ {
		if grouped && count%4 == 0 {
			if j >= n || v[j] != ' ' {
				return 0, false
			}
			j++
		}
		if j >= n {
			return 0, false
		}
		c := v[j]
		if class[c]&(cDigit|cUpper) == 0 {
			return 0, false
		}
		rem = mod97(rem, c)
		j++
	}
	for k := i; k < i+4; k++ {
		rem = mod97(rem, v[k])
	}
	if rem != 1 || !endOK(v, j) {
		return 0, false
	}
	return j, true
}

// ibanValid reports whether s (spaces ignored) is a valid IBAN.
func ibanValid(s []byte) bool {
	var b [40]byte
	n := 0
	for _, c := range s {
		if c == ' ' {
			continue
		}
		if n == len(b) {
			return false
		}
		b[n] = c
		n++
	}
	if n < 4 {
		return false
	}
	e, ok := matchIBAN(b[:n], 0, 0)
	return ok && e == n
}

// afterIBANHead: is position i preceded by space-separated groups of four
// upper-case letters/digits that start with an IBAN head ("DE89 3704 ")?
func afterIBANHead(v []byte, i, floor int) bool {
	j := i
	for step := 0; step < 8; step++ {
		if j-5 < floor || v[j-1] != ' ' {
			return false
		}
		t := v[j-5 : j-1]
		for _, c := range t {
			if class[c]&(cUpper|cDigit) == 0 {
				return false
			}
		}
		if j-6 >= floor && isAlnum(v[j-6]) {
			return false
		}
		if class[t[0]]&cUpper != 0 && class[t[1]]&cUpper != 0 && isDigit(t[2]) && isDigit(t[3]) &&
			ibanLen[int(t[0]-'A')*26+int(t[1]-'A')] != 0 {
			return true
		}
		j -= 5
	}
	return false
}

// ---------------------------------------------------------------------------
// E-mail

// matchEmail: an address around the '@' at at; the local part does not
// reach before floor.
func matchEmail(v []byte, at, floor int) (int, int, bool) {
	n := len(v)
	s := at
	for s > floor && class[v[s-1]]&cLocal != 0 {
		s--
		if at-s > 64 {
			return 0, 0, false
		}
	}
	for s < at && v[s] == '.' {
		s++
	}
	if s == at || v[at-1] == '.' {
		return 0, 0, false
	}
	j := at + 1
	labels, tld := 0, 0
	for {
		ls := j
		for j < n && class[v[j]]&cDomain != 0 {
			j++
		}
		if j == ls || v[ls] == '-' || v[j-1] == '-' || j-ls > 63 {
			return 0, 0, false
		}
		labels++
		tld = ls
		if j+1 < n && v[j] == '.' && isAlnum(v[j+1]) {
			j++
			continue
		}
		break
	}
	if labels < 2 || j-tld < 2 || j-at-1 > 253 {
		return 0, 0, false
	}
	for k := tld; k < j; k++ {
		if class[v[k]]&(cUpper|cLower) == 0 {
			return 0, 0, false
		}
	}
	if j < n && v[j] == '@' {
		return 0, 0, false
	}
	return s, j, true
}

// ---------------------------------------------------------------------------
// IPv6

// matchIPv6: an address containing the ':' at colon, starting at or after
// floor.
func matchIPv6(v []byte, colon, floor int) (s, e int, ok bool) {
	n := len(v)
	s = colon
	for s > floor && colon-s < 40 && (class[v[s-1]]&cHex != 0 || v[s-1] == ':') {
		s--
	}
	if s > floor {
		if p := v[s-1]; isAlnum(p) || p == ':' || p == '.' || p == '_' {
			return 0, 0, false
		}
	}
	j, groups, dbl := s, 0, false
	if v[j] == ':' {
		if j+1 >= n || v[j+1] != ':' {
			return 0, 0, false
		}
		dbl = true
		j += 2
	}
	for j < n {
		gs := j
		for j < n && j-gs < 5 && class[v[j]]&cHex != 0 {
			j++
		}
		gl := j - gs
		if gl == 0 {
			break
		}
		if gl > 4 {
			return 0, 0, false
		}
		if j+1 < n && v[j] == '.' && isDigit(v[j+1]) {
			e4, ok4 := parseIPv4(v, gs)
			if !ok4 || groups > 6 {
				return 0, 0, false
			}
			groups += 2
			j = e4
			break
		}
		groups++
		if j+1 < n && v[j] == ':' && v[j+1] == ':' {
			if dbl {
				return 0, 0, false
			}
			dbl = true
			j += 2
			continue
		}
		if j+1 < n && v[j] == ':' && class[v[j+1]]&cHex != 0 {
			j++
			continue
		}
		break
	}
	if groups == 0 || (dbl && groups > 7) || (!dbl && groups != 8) || j <= colon {
		return 0, 0, false
	}
	if j < n {
		c := v[j]
		if isAlnum(c) || c == ':' || c == '@' {
			return 0, 0, false
		}
		if (c == '.' || c == '-' || c == '_') && j+1 < n && isAlnum(v[j+1]) {
			return 0, 0, false
		}
	}
	return s, j, true
}
