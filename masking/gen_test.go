package masking

// Deterministic generators of realistic values, PII and look-alikes, used by
// the labelled fixture, the benchmarks and the fuzz seeds.

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) n(k int) int              { return g.r.IntN(k) }
func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) between(lo, hi int) int   { return lo + g.r.IntN(hi-lo+1) }
func (g *gen) chance(p float64) bool    { return g.r.Float64() < p }
func (g *gen) digits(k int) string      { return g.digitsFrom(k, "0123456789") }
func (g *gen) letters(k int) string     { return g.digitsFrom(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") }
func (g *gen) hex(k int) string         { return g.digitsFrom(k, "0123456789abcdef") }
func (g *gen) alnumUpper(k int) string {
	return g.digitsFrom(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
}
func (g *gen) digitsFrom(k int, alphabet string) string {
	b := make([]byte, k)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger", "Hedy", "Tim", "Sophie", "Jürgen", "Zoë", "María", "François", "Chen", "Priya", "Olu"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen", "Dijkstra", "Lamarr", "Berners-Lee", "Wilson", "Müller", "O'Brien", "García", "Dubois", "Wei", "Patel", "Adeyemi"}
	streets    = []string{"Baker Street", "Main St", "Rue de Rivoli", "Hauptstraße", "Elm Avenue", "Calle Mayor", "Oak Lane", "Station Road", "Via Roma", "Market Street"}
	cities     = []string{"London", "Paris", "Berlin", "San Francisco", "Madrid", "Rome", "Amsterdam", "Zürich", "New York", "Lagos", "Bangalore", "Tokyo"}
	domains    = []string{"example.com", "example.org", "mail.example.co.uk", "corp.example.net", "example.io", "sub-domain.example.de", "uni.example.edu"}
	words      = strings.Fields("the customer asked about an order that was delayed because the warehouse ran out of stock please refund shipping and apply a discount next time we will call back tomorrow morning status pending approved shipped cancelled returned invoice attached see notes below thanks regards team support ticket priority low high medium update account password reset requested by user via web form")
	products   = []string{"Wireless Mouse", "USB-C Cable 2m", "Laptop Stand", "Noise Cancelling Headphones", "27\" Monitor", "Mechanical Keyboard", "Coffee Beans 1kg", "Running Shoes size 42", "Desk Lamp LED", "Phone Case (black)"}
)

func (g *gen) name() string {
	return g.pick(firstNames...) + " " + g.pick(lastNames...)
}

func (g *gen) sentence(minW, maxW int) string {
	k := g.between(minW, maxW)
	ws := make([]string, k)
	for i := range ws {
		ws[i] = words[g.n(len(words))]
	}
	s := strings.Join(ws, " ")
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// ---- PII ------------------------------------------------------------------

func luhnDigit(body string) byte {
	sum, dbl := 0, true
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if dbl {
			d = luhnDouble[d]
		}
		sum += d
		dbl = !dbl
	}
	return byte('0' + (10-sum%10)%10)
}

// cardNumber returns a card number (digits only); valid selects the Luhn
// check digit or a wrong one.
func (g *gen) cardNumber(valid bool) string {
	type iss struct {
		prefix string
		n      int
	}
	issuers := []iss{{"4", 16}, {"4", 16}, {"4", 13}, {"4", 19}, {"51", 16}, {"55", 16}, {"2221", 16}, {"2720", 16},
		{"34", 15}, {"37", 15}, {"6011", 16}, {"65", 16}, {"3530", 16}, {"36", 14}, {"62", 16}, {"6759", 16}}
	is := issuers[g.n(len(issuers))]
	body := is.prefix + g.digits(is.n-1-len(is.prefix))
	c := luhnDigit(body)
	if !valid {
		c = byte('0' + (int(c-'0')+1+g.n(9))%10)
	}
	return body + string(c)
}

func groupDigits(s string, sizes []int, sep string) string {
	var b strings.Builder
	for i, k := range sizes {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s[:k])
		s = s[k:]
	}
	if s != "" {
		b.WriteString(sep + s)
	}
	return b.String()
}

func (g *gen) formatCard(num string) string {
	sep := g.pick(" ", "-")
	switch {
	case g.chance(0.35), len(num) == 13:
		return num
	case len(num) == 15:
		return groupDigits(num, []int{4, 6, 5}, sep)
	case len(num) == 14:
		return groupDigits(num, []int{4, 6, 4}, sep)
	default:
		return groupDigits(num, []int{4, 4, 4, 4}, sep)
	}
}

func (g *gen) card() string { return g.formatCard(g.cardNumber(true)) }

var ibanCountries = []string{"DE", "GB", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "PL", "SE", "NO", "PT", "IE", "LU", "DK", "FI", "CZ", "RO", "HU", "SA", "TR", "BR"}

func ibanCheck(cc, bban string) string {
	rem := 0
	for _, c := range []byte(bban + cc + "00") {
		rem = mod97(rem, c)
	}
	return fmt.Sprintf("%02d", 98-rem)
}

func (g *gen) ibanNumber(valid bool) string {
	cc := ibanCountries[g.n(len(ibanCountries))]
	n := ibanLength(cc) - 4
	var bban string
	switch cc {
	case "GB", "NL", "IE":
		bban = g.letters(4) + g.digits(n-4)
	case "IT":
		bban = g.letters(1) + g.digits(n-1)
	case "LU", "CH":
		bban = g.digits(3) + g.alnumUpper(n-3)
	default:
		bban = g.digits(n)
	}
	check := ibanCheck(cc, bban)
	if !valid {
		check = fmt.Sprintf("%02d", (int(check[0]-'0')*10+int(check[1]-'0')+1+g.n(90))%98+2)
		if check == ibanCheck(cc, bban) {
			check = fmt.Sprintf("%02d", (int(check[0]-'0')*10+int(check[1]-'0')+1)%98+2)
		}
	}
	return cc + check + bban
}

func (g *gen) formatIBAN(s string) string {
	if g.chance(0.5) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

func (g *gen) iban() string { return g.formatIBAN(g.ibanNumber(true)) }

func (g *gen) ssnParts() (int, int, int) {
	a := g.between(1, 899)
	if a == 666 {
		a = 667
	}
	return a, g.between(1, 99), g.between(1, 9999)
}

func (g *gen) ssn() string {
	a, b, c := g.ssnParts()
	switch g.n(6) {
	case 0:
		return fmt.Sprintf("SSN: %03d%02d%04d", a, b, c)
	case 1:
		return fmt.Sprintf("ssn %03d %02d %04d", a, b, c)
	case 2:
		return fmt.Sprintf("Social Security Number: %03d-%02d-%04d", a, b, c)
	}
	return fmt.Sprintf("%03d-%02d-%04d", a, b, c)
}

func (g *gen) nxx() string { return fmt.Sprint(g.between(2, 9)) + g.digits(2) }

func (g *gen) phone() string {
	switch g.n(16) {
	case 0:
		return "+1" + g.nxx() + g.nxx() + g.digits(4)
	case 1:
		return "+44 20 " + g.digits(4) + " " + g.digits(4)
	case 2:
		return "+49 30 " + g.digits(8)
	case 3:
		return "+33 6 " + g.digits(2) + " " + g.digits(2) + " " + g.digits(2) + " " + g.digits(2)
	case 4:
		return "+1 (" + g.nxx() + ") " + g.nxx() + "-" + g.digits(4)
	case 5:
		return "+1-" + g.nxx() + "-" + g.nxx() + "-" + g.digits(4)
	case 6:
		return "+61 4" + g.digits(2) + " " + g.digits(3) + " " + g.digits(3)
	case 7:
		return "+81 3-" + g.digits(4) + "-" + g.digits(4)
	case 8:
		return "(" + g.nxx() + ") " + g.nxx() + "-" + g.digits(4)
	case 9:
		sep := g.pick("-", ".", " ")
		return g.nxx() + sep + g.nxx() + sep + g.digits(4)
	case 10:
		return "1-800-" + g.nxx() + "-" + g.digits(4)
	case 11:
		return "020 " + g.digits(4) + " " + g.digits(4)
	case 12:
		return "07" + g.digits(3) + " " + g.digits(6)
	case 13:
		return "0" + fmt.Sprint(g.between(1, 9)) + " " + g.digits(2) + " " + g.digits(2) + " " + g.digits(2) + " " + g.digits(2)
	case 14:
		return "030" + g.pick(" ", "/", "-") + g.digits(8)
	}
	return "+" + fmt.Sprint(g.between(2, 9)) + g.digits(g.between(9, 11))
}

func (g *gen) email() string {
	f, l := strings.ToLower(g.pick(firstNames[:14]...)), strings.ToLower(g.pick(lastNames[:13]...))
	var local string
	switch g.n(6) {
	case 0:
		local = f + "." + l
	case 1:
		local = f[:1] + l + g.digits(g.between(1, 3))
	case 2:
		local = f + "+" + g.pick("news", "shop", "x")
	case 3:
		local = strings.ToUpper(f[:1]) + f[1:] + "_" + l
	case 4:
		local = f + "-" + l + "." + g.digits(2)
	default:
		local = f
	}
	return local + "@" + g.pick(domains...)
}

func (g *gen) octet() string { return fmt.Sprint(g.n(256)) }

func (g *gen) ipv4() string {
	ip := g.pick("10", "192", "172", "8", "203", fmt.Sprint(g.between(1, 223))) + "." + g.octet() + "." + g.octet() + "." + g.octet()
	switch g.n(5) {
	case 0:
		return ip + ":" + fmt.Sprint(g.between(1, 65535))
	case 1:
		return ip + "/" + fmt.Sprint(g.between(8, 32))
	}
	return ip
}

func (g *gen) ipv6() string {
	grp := func() string {
		s := strings.TrimLeft(g.hex(g.between(1, 4)), "0")
		if s == "" {
			return "0"
		}
		return s
	}
	switch g.n(7) {
	case 0:
		var p []string
		for range 8 {
			p = append(p, g.hex(4))
		}
		return strings.Join(p, ":")
	case 1:
		return "2001:db8::" + grp()
	case 2:
		return "fe80::" + grp() + ":" + grp() + ":" + grp() + ":" + grp()
	case 3:
		return "::1"
	case 4:
		return "::ffff:" + fmt.Sprintf("%d.%d.%d.%d", g.between(1, 223), g.n(256), g.n(256), g.n(256))
	case 5:
		return "[2001:db8:" + grp() + "::" + grp() + "]:443"
	}
	return strings.ToUpper("2001:" + grp() + ":" + grp() + ":" + grp() + "::" + grp())
}

// embed puts a PII value in varied context.
func (g *gen) embed(v string) string {
	switch g.n(5) {
	case 0:
		return g.pick("Contact: ", "see ", "value=", "(", "note - ") + v + g.pick("", ")", ".", " thanks", ", ok")
	case 1:
		return g.sentence(2, 6) + " " + v + " " + g.sentence(1, 4)
	}
	return v
}

func (g *gen) positive(kind string) string {
	switch kind {
	case "email":
		return g.embed(g.email())
	case "credit_card":
		return g.embed(g.card())
	case "iban":
		return g.embed(g.iban())
	case "ssn":
		return g.embed(g.ssn())
	case "phone":
		return g.embed(g.phone())
	case "ipv4":
		return g.embed(g.ipv4())
	case "ipv6":
		return g.embed(g.ipv6())
	}
	panic(kind)
}

// ---- look-alikes that must not fire ----------------------------------------

func (g *gen) lookalike() (string, string) {
	switch g.n(30) {
	case 0:
		return "order", fmt.Sprintf("ORD-%d-%06d", g.between(2019, 2026), g.n(1000000))
	case 1:
		return "invoice", g.pick(fmt.Sprintf("INV-%d%02d%02d-%04d", g.between(2019, 2026), g.between(1, 12), g.between(1, 28), g.n(10000)), "INV/"+g.digits(4)+"/"+g.digits(5), "Invoice #"+g.digits(8))
	case 2:
		return "uuid", g.hex(8) + "-" + g.hex(4) + "-4" + g.hex(3) + "-" + g.pick("8", "9", "a", "b") + g.hex(3) + "-" + g.hex(12)
	case 3:
		return "timestamp", fmt.Sprintf("%d-%02d-%02dT%02d:%02d:%02d%s", g.between(2000, 2026), g.between(1, 12), g.between(1, 28), g.n(24), g.n(60), g.n(60), g.pick("Z", "+02:00", ".123Z", ""))
	case 4:
		return "timestamp", fmt.Sprintf("%d-%02d-%02d %02d:%02d:%02d%s", g.between(2000, 2026), g.between(1, 12), g.between(1, 28), g.n(24), g.n(60), g.n(60), g.pick("", ".123456+00", "+00"))
	case 5:
		d, m, y := g.between(1, 28), g.between(1, 12), g.between(1990, 2030)
		return "date", g.pick(fmt.Sprintf("%02d/%02d/%d", d, m, y), fmt.Sprintf("%02d.%02d.%d", d, m, y), fmt.Sprintf("%d%02d%02d", y, m, d), fmt.Sprintf("%d/%d/%d", m, d, y), fmt.Sprintf("%02d-%02d-%d", d, m, y))
	case 6:
		return "version", g.pick(fmt.Sprintf("%d.%d.%d.%d.%d", g.n(10), g.n(20), g.n(10), g.n(100), g.n(10)), fmt.Sprintf("v%d.%d.%d.%d", g.n(10), g.n(20), g.n(10), g.n(100)), fmt.Sprintf("%d.%d.%d", g.n(20), g.n(30), g.n(100)), fmt.Sprintf("%d.%d.%d-rc.%d", g.n(5), g.n(30), g.n(10), g.n(5)))
	case 7:
		return "version", g.pick(fmt.Sprintf("%d.%d.%d.%d", g.between(256, 999), g.n(256), g.n(256), g.n(256)), fmt.Sprintf("%d.%d.%d.%d", g.n(256), g.between(256, 999), g.n(256), g.n(256)), fmt.Sprintf("%d.%d.%d.%d", g.n(256), g.n(256), g.n(256), g.between(256, 9999)), fmt.Sprintf("build %d.%d.%d.%d.%d", g.n(9), g.n(9), g.n(9), g.n(9), g.n(999)))
	case 8:
		return "card-luhn-fail", g.formatCard(g.cardNumber(false))
	case 9:
		return "iban-mod97-fail", g.formatIBAN(g.ibanNumber(false))
	case 10:
		return "shortcode", g.pick("911", "112", "*#06#", "Text STOP to "+g.digits(5), "ext. "+g.digits(4), "dial "+g.digits(3), g.digits(5), "PIN "+g.digits(4), g.digits(3)+" "+g.digits(3), g.digits(2)+"-"+g.digits(2)+"-"+g.digits(2))
	case 11:
		return "tracking", g.pick("1Z"+g.alnumUpper(6)+g.digits(10), "9400 "+g.digits(4)+" "+g.digits(4)+" "+g.digits(4)+" "+g.digits(4)+" "+g.digits(2), g.digits(4)+" "+g.digits(4)+" "+g.digits(4), "JD"+g.digits(18), g.digits(22), "LX"+g.digits(9)+"CN")
	case 12:
		return "sku", g.pick("SKU-"+g.digits(5)+"-"+g.pick("XL", "M", "S"), g.letters(2)+"-"+g.digits(4)+"-"+g.digits(2), "P/N "+g.digits(3)+"-"+g.digits(5)+"-"+g.digits(3), "EAN "+g.digits(12), "item "+g.letters(3)+g.digits(6))
	case 13:
		return "isbn", g.pick("978-"+g.digits(1)+"-"+g.digits(2)+"-"+g.digits(6)+"-"+g.digits(1), "0-"+g.digits(3)+"-"+g.digits(5)+"-"+g.digits(1), "ISBN 978"+g.digits(10), "979-"+g.digits(2)+"-"+g.digits(3)+"-"+g.digits(4)+"-"+g.digits(1))
	case 14:
		a, b, c := g.ssnParts()
		return "ssn-invalid", g.pick(fmt.Sprintf("000-%02d-%04d", b, c), fmt.Sprintf("666-%02d-%04d", b, c), fmt.Sprintf("9%02d-%02d-%04d", g.n(100), b, c), fmt.Sprintf("%03d-00-%04d", a, c), fmt.Sprintf("%03d-%02d-0000", a, b), fmt.Sprintf("%03d%02d%04d", a, b, c), fmt.Sprintf("%03d %02d %04d", a, b, c))
	case 15:
		return "money", g.pick(fmt.Sprintf("$%d,%03d.%02d", g.between(1, 999), g.n(1000), g.n(100)), fmt.Sprintf("EUR %d.%03d.%03d,%02d", g.between(1, 99), g.n(1000), g.n(1000), g.n(100)), fmt.Sprintf("%d.%02d", g.n(100000), g.n(100)), fmt.Sprintf("-%d", g.n(1000000)))
	case 16:
		return "mac", strings.ToUpper(g.hex(2) + ":" + g.hex(2) + ":" + g.hex(2) + ":" + g.hex(2) + ":" + g.hex(2) + ":" + g.hex(2))
	case 17:
		return "hash", g.pick(g.hex(32), g.hex(40), g.hex(7), "sha256:"+g.hex(64))
	case 18:
		return "coordinates", fmt.Sprintf("%d.%04d, %d.%04d", g.between(-89, 89), g.n(10000), g.between(-179, 179), g.n(10000))
	case 19:
		return "integer", g.pick(g.digits(1)+g.digits(g.between(0, 8)), fmt.Sprint(g.between(1, 9))+g.digits(9), fmt.Sprint(g.between(1, 9))+g.digits(10), fmt.Sprint(g.between(1, 9))+g.digits(11), fmt.Sprint(g.between(1, 9))+g.digits(g.between(20, 30)))
	case 20:
		return "time", g.pick(fmt.Sprintf("%02d:%02d", g.n(24), g.n(60)), fmt.Sprintf("%02d:%02d:%02d", g.n(24), g.n(60), g.n(60)), fmt.Sprintf("%d:%02d:%02d.%03d", g.n(100), g.n(60), g.n(60), g.n(1000)))
	case 21:
		return "email-like", g.pick("user@localhost", "@"+strings.ToLower(g.pick(lastNames[:10]...)), "name at example dot com", "foo@bar", "a@b.c", "x@"+g.digits(3)+"."+g.digits(3), "git@"+g.digits(2))
	case 22:
		return "code", g.pick("std::vector<int>", "Foo::Bar::baz()", "a:b:c", "dead:beef", "ns::"+g.hex(4), "http://example.com:8080/path", "key:value", "ab:cd:ef:01")
	case 23:
		return "zip", g.pick(g.digits(5)+"-"+g.digits(4), g.letters(2)+g.digits(1)+" "+g.digits(1)+g.letters(2), g.digits(5), g.digits(2)+"-"+g.digits(3))
	case 24:
		return "card-short", g.pick(g.digits(4)+" "+g.digits(4)+" "+g.digits(4), "Card ending "+g.digits(4), "**** **** **** "+g.digits(4), g.digits(12))
	case 25:
		return "iban-like", g.pick(g.letters(2)+g.digits(2)+" "+g.letters(4), "DE"+g.digits(10), g.letters(2)+g.digits(2)+g.alnumUpper(4)+strings.ToLower(g.alnumUpper(10)), "ZZ"+g.digits(20))
	case 26:
		return "range", fmt.Sprintf("%d-%d", g.n(1000), g.n(1000)) + g.pick("", " items", " pages")
	case 27:
		return "phone-like", g.pick(g.digits(3)+"-"+g.digits(4), "1"+g.digits(2)+"-"+g.digits(3)+"-"+g.digits(4), g.digits(2)+" "+g.digits(3)+" "+g.digits(3), g.digits(4)+"-"+g.digits(3)+"-"+g.digits(3), "+"+g.digits(3), g.digits(1)+"-"+g.digits(3)+"-"+g.digits(3)+"-"+g.digits(4)[:3])
	case 28:
		return "path", g.pick("/var/lib/postgresql/"+g.digits(2)+"/main", "C:\\Users\\"+g.pick(firstNames...)+"\\file_"+g.digits(6)+".txt", "https://example.com/orders/"+g.digits(7)+"?page="+g.digits(2))
	}
	return "percent", fmt.Sprintf("%d.%d%%", g.n(100), g.n(10))
}

// plain returns an ordinary row value without PII.
func (g *gen) plain() string {
	switch g.n(12) {
	case 0, 1:
		return g.name()
	case 2:
		return fmt.Sprintf("%d %s, %s %s", g.between(1, 300), g.pick(streets...), g.digits(5), g.pick(cities...))
	case 3, 4, 5:
		return g.sentence(4, 30)
	case 6:
		return g.pick(products...)
	case 7:
		return g.pick("pending", "shipped", "delivered", "cancelled", "active", "t", "f", "EUR", "USD", "en_US", "de-DE")
	case 8:
		return fmt.Sprint(g.n(100000))
	case 9:
		return fmt.Sprintf("%d.%02d", g.n(10000), g.n(100))
	case 10:
		return fmt.Sprintf(`{"id": %d, "status": "%s", "tags": ["%s", "%s"]}`, g.n(1000000), g.pick("ok", "error"), g.pick(words...), g.pick(words...))
	}
	return g.pick(cities...)
}

var piiKinds = []string{"email", "credit_card", "iban", "ssn", "phone", "ipv4", "ipv6"}

// realisticRow returns a value of a typical result set, PII with probability
// pii.
func (g *gen) realistic(pii float64) string {
	if g.chance(pii) {
		return g.positive(piiKinds[g.n(len(piiKinds))])
	}
	if g.chance(0.15) {
		_, v := g.lookalike()
		return v
	}
	return g.plain()
}
