package masking

import (
	"strings"
	"testing"
)

var allDetectors = []string{"email", "credit_card", "iban", "ssn", "phone", "ipv4", "ipv6"}

func mustCompile(t testing.TB, c Config) *Policy {
	t.Helper()
	p, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func allPolicy(t testing.TB, style string) *Policy {
	return mustCompile(t, Config{Detectors: allDetectors, Style: style, HashKey: []byte("k")})
}

// detected returns the kinds found in s and the partial-masked form.
func detected(t *testing.T, p *Policy, s string) (string, KindSet) {
	t.Helper()
	b := []byte(s)
	out, res := p.MaskValue(nil, b, false)
	return string(out), res.Kinds
}

func TestDetectors(t *testing.T) {
	p := allPolicy(t, "partial")
	cases := []struct {
		in, want string
		kind     Kind // KindColumn: nothing must fire
	}{
		// email
		{"ada@example.com", "***@example.com", KindEmail},
		{"contact ada@example.com today", "contact ***@example.com today", KindEmail},
		{"<John.Smith+tag@mail.example.co.uk>.", "<**************@mail.example.co.uk>.", KindEmail},
		{"mailto:x_y-z%1@sub-d.example.org", "mailto:*******@sub-d.example.org", KindEmail},
		{"user@localhost", "user@localhost", KindColumn},
		{"a@b.c", "a@b.c", KindColumn},
		{"@example.com", "@example.com", KindColumn},
		{"first.@example.com", "first.@example.com", KindColumn},
		{"x@example.123", "x@example.123", KindColumn},
		// credit cards
		{"4111111111111111", "************1111", KindCreditCard},
		{"4111 1111 1111 1111", "**** **** **** 1111", KindCreditCard},
		{"card: 5555-5555-5555-4444 exp 12/27", "card: ****-****-****-4444 exp 12/27", KindCreditCard},
		{"3782 822463 10005", "**** ****** *0005", KindCreditCard},
		{"371449635398431", "***********8431", KindCreditCard},
		{"6011111111111117", "************1117", KindCreditCard},
		{"4111111111111112", "4111111111111112", KindColumn},       // Luhn fails
		{"1234567812345670", "1234567812345670", KindColumn},       // Luhn ok, no issuer
		{"ORD4111111111111111", "ORD4111111111111111", KindColumn}, // glued
		{"4111111111111111@example.com", "****************@example.com", KindEmail},
		{"4111-1111-1111-1111-22", "4111-1111-1111-1111-22", KindColumn},
		{"12 4111 1111 1111 1111", "12 **** **** **** 1111", KindCreditCard},
		{"x(4111 1111 1111 1111)", "x(**** **** **** 1111)", KindCreditCard},
		{"call+4111111111111111", "call+************1111", KindCreditCard},
		// iban
		{"DE89370400440532013000", "******************3000", KindIBAN},
		{"IBAN: GB29 NWBK 6016 1331 9268 19.", "IBAN: **** **** **** **** **68 19.", KindIBAN},
		{"DE89370400440532013001", "DE89370400440532013001", KindColumn},
		{"DE8937040044053201300", "DE8937040044053201300", KindColumn},
		{"XDE89370400440532013000", "XDE89370400440532013000", KindColumn},
		{"NL91ABNA0417164300", "**************4300", KindIBAN},
		// ssn
		{"123-45-6789", "***-**-6789", KindSSN},
		{"SSN: 123456789", "SSN: *****6789", KindSSN},
		{"social security no 123 45 6789", "social security no *** ** 6789", KindSSN},
		{"123456789", "123456789", KindColumn},
		{"000-12-3456", "000-12-3456", KindColumn},
		{"666-12-3456", "666-12-3456", KindColumn},
		{"912-34-5678", "912-34-5678", KindColumn},
		{"123-00-4567", "123-00-4567", KindColumn},
		{"123-45-0000", "123-45-0000", KindColumn},
		// phone
		{"+14155552671", "+*******2671", KindPhone},
		{"+44 20 7946 0958", "+** ** **** 0958", KindPhone},
		{"+1 (415) 555-2671", "+* (***) ***-2671", KindPhone},
		{"(415) 555-2671", "(***) ***-2671", KindPhone},
		{"call 415-555-2671 now", "call ***-***-2671 now", KindPhone},
		{"415.555.2671", "***.***.2671", KindPhone},
		{"1-800-555-0199", "*-***-***-0199", KindPhone},
		{"020 7946 0958", "*** **** 0958", KindPhone},
		{"01 23 45 67 89", "** ** ** 67 89", KindPhone},
		{"030/12345678", "***/****5678", KindPhone},
		{"4155552671", "4155552671", KindColumn},
		{"2024-01-15", "2024-01-15", KindColumn},
		{"2024-01-15 10:30:00", "2024-01-15 10:30:00", KindColumn},
		{"+1234", "+1234", KindColumn},
		{"0-306-40615-2", "0-306-40615-2", KindColumn},
		{"978-3-16-148410-0", "978-3-16-148410-0", KindColumn},
		// ipv4
		{"10.0.0.1", "**.*.*.*", KindIPv4},
		{"host 192.168.1.20:5432 down", "host ***.***.*.**:5432 down", KindIPv4},
		{"10.0.0.0/8", "**.*.*.*/8", KindIPv4},
		{"1.2.3.4.5", "1.2.3.4.5", KindColumn},
		{"999.1.1.1", "999.1.1.1", KindColumn},
		{"v1.2.3.4", "v1.2.3.4", KindColumn},
		{"01.02.03.04", "01.02.03.04", KindColumn},
		// ipv6
		{"2001:db8::1", "****:***::*", KindIPv6},
		{"fe80::1%eth0", "****::*%eth0", KindIPv6},
		{"::1", "::*", KindIPv6},
		{"::ffff:192.0.2.1", "::****:***.*.*.*", KindIPv6},
		{"2001:0db8:85a3:0000:0000:8a2e:0370:7334", "****:****:****:****:****:****:****:****", KindIPv6},
		{"00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E", KindColumn},
		{"10:30:00", "10:30:00", KindColumn},
		{"std::vector", "std::vector", KindColumn},
		{"1::2::3", "1::2::3", KindColumn},
		// none
		{"550e8400-e29b-41d4-a716-446655440000", "550e8400-e29b-41d4-a716-446655440000", KindColumn},
		{"", "", KindColumn},
	}
	for _, c := range cases {
		got, kinds := detected(t, p, c.in)
		if got != c.want {
			t.Errorf("%q: got %q, want %q (kinds %v)", c.in, got, c.want, kinds)
		}
		if c.kind == KindColumn {
			if kinds != 0 {
				t.Errorf("%q: unexpected %v", c.in, kinds)
			}
		} else if kinds != 1<<c.kind {
			t.Errorf("%q: kinds %v, want %v", c.in, kinds, c.kind)
		}
	}
}

func TestDetectorsOnlyWhenEnabled(t *testing.T) {
	p := mustCompile(t, Config{Detectors: []string{"email"}})
	for _, s := range []string{"4111111111111111", "DE89370400440532013000", "123-45-6789", "+14155552671", "10.0.0.1", "::1"} {
		if got, k := detected(t, p, s); got != s || k != 0 {
			t.Errorf("%q with only email: %q %v", s, got, k)
		}
	}
	if _, k := detected(t, p, "a@example.com"); k != 1<<KindEmail {
		t.Errorf("email not detected: %v", k)
	}
}

func TestSeveralSpans(t *testing.T) {
	p := allPolicy(t, "partial")
	in := "ada@example.com paid with 4111 1111 1111 1111 from 10.1.2.3, call +44 20 7946 0958 or 123-45-6789"
	got, kinds := detected(t, p, in)
	want := "***@example.com paid with **** **** **** 1111 from **.*.*.*, call +** ** **** 0958 or ***-**-6789"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if kinds.String() != "email,credit_card,ssn,phone,ipv4" {
		t.Errorf("kinds %v", kinds)
	}
}

func TestValidators(t *testing.T) {
	if !luhn([]byte("4111 1111 1111 1111")) || luhn([]byte("4111 1111 1111 1112")) {
		t.Error("luhn")
	}
	if !ibanValid([]byte("GB82 WEST 1234 5698 7654 32")) || ibanValid([]byte("GB82 WEST 1234 5698 7654 33")) {
		t.Error("iban")
	}
	if ibanLength("DE") != 22 || ibanLength("ZZ") != 0 || ibanLength("de") != 0 {
		t.Error("ibanLength")
	}
}

func TestScanDoesNotModify(t *testing.T) {
	p := allPolicy(t, "partial")
	in := []byte("x 4111111111111111 ada@example.com")
	k := p.Scan(in)
	if string(in) != "x 4111111111111111 ada@example.com" || k != 1<<KindCreditCard|1<<KindEmail {
		t.Errorf("Scan: %q %v", in, k)
	}
}

func TestKindSet(t *testing.T) {
	s := KindSet(1<<KindEmail | 1<<KindIPv6 | 1<<(KindPattern0+2))
	var got []string
	s.Each(func(k Kind) { got = append(got, k.String()) })
	if strings.Join(got, " ") != "email ipv6 pattern#2" || s.String() != "email,ipv6,pattern#2" {
		t.Errorf("%v %q", got, s.String())
	}
	if !s.Has(KindIPv6) || s.Has(KindSSN) {
		t.Error("Has")
	}
}
