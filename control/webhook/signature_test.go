package webhook

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSignKnownAnswer(t *testing.T) {
	// printf '1767225600.{"a":1}' | openssl dgst -sha256 -hmac 'whsec'
	const want = "sha256=1d69bcb084beb6eb528786cc5d022925538f95bf5a26c0646f7223c252991404"
	if got := Sign("whsec", 1767225600, []byte(`{"a":1}`)); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1767225600, 0)
	body := []byte(`{"id":"x"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign("k", now.Unix(), body)
	for _, tc := range []struct {
		name       string
		secret, ts string
		sig        string
		body       string
		now        time.Time
		tol        time.Duration
		want       error
	}{
		{"valid", "k", ts, sig, string(body), now, time.Minute, nil},
		{"valid at the edge", "k", ts, sig, string(body), now.Add(time.Minute), time.Minute, nil},
		{"default tolerance", "k", ts, sig, string(body), now.Add(4 * time.Minute), 0, nil},
		{"stale", "k", ts, sig, string(body), now.Add(time.Minute + time.Second), time.Minute, ErrStale},
		{"from the future", "k", ts, sig, string(body), now.Add(-6 * time.Minute), 0, ErrStale},
		{"wrong secret", "k2", ts, sig, string(body), now, 0, ErrBadSignature},
		{"body changed", "k", ts, sig, string(body) + " ", now, 0, ErrBadSignature},
		{"timestamp changed", "k", strconv.FormatInt(now.Unix()+1, 10), sig, string(body), now, 0, ErrBadSignature},
		{"timestamp with zeros", "k", "0" + ts, sig, string(body), now, 0, ErrBadSignature},
		{"no timestamp", "k", "", sig, string(body), now, 0, ErrStale},
		{"signed timestamp", "k", "+" + ts, sig, string(body), now, 0, ErrStale},
		{"huge timestamp", "k", "99999999999999999999", sig, string(body), now, 0, ErrStale},
		{"no signature", "k", ts, "", string(body), now, 0, ErrBadSignature},
		{"other algorithm", "k", ts, "sha1=" + sig[len(SignaturePrefix):], string(body), now, 0, ErrBadSignature},
		{"upper-case prefix", "k", ts, "SHA256=" + sig[len(SignaturePrefix):], string(body), now, 0, ErrBadSignature},
		{"upper-case hex", "k", ts, SignaturePrefix + strings.ToUpper(sig[len(SignaturePrefix):]), string(body), now, 0, ErrBadSignature},
		{"two signatures", "k", ts, sig + "," + sig, string(body), now, 0, ErrBadSignature},
		{"short", "k", ts, sig[:len(sig)-2], string(body), now, 0, ErrBadSignature},
		{"not hex", "k", ts, sig[:len(sig)-1] + "g", string(body), now, 0, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.ts, tc.sig, []byte(tc.body), tc.now, tc.tol)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1767225600, 0)
	body := []byte(`{"id":"x","type":"session.started"}`)
	f.Add("1767225600", Sign("k", now.Unix(), body), body)
	f.Add("1767225600", "sha256=", []byte{})
	f.Add("", "", []byte(nil))
	f.Add("-1", "sha256=zz", []byte("x"))
	f.Add("1767225600", Sign("k", now.Unix(), body)+",sha256=00", body)
	f.Fuzz(func(t *testing.T, ts, sig string, b []byte) {
		err := Verify("k", ts, sig, b, now, time.Hour)
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err == nil {
			// Accepted only what we would have signed: a well-formed
			// in-window timestamp and exactly our signature of it.
			n, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil || strconv.FormatInt(n, 10) != ts || sig != Sign("k", n, b) {
				t.Fatalf("accepted ts=%q sig=%q", ts, sig)
			}
		}
		// What we sign, we accept.
		if err := Verify("k", "1767225600", Sign("k", now.Unix(), b), b, now, time.Hour); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false}, {"7", 7 * time.Second, true}, {" 120 ", 2 * time.Minute, true}, {"0", 0, true},
		{"99999999999999999999999", maxRetryAfter, true}, {"86401", maxRetryAfter, true},
		{"-5", 0, false}, {"1.5", 0, false}, {"soon", 0, false},
		{"Fri, 02 Jan 2026 03:04:35 GMT", 30 * time.Second, true},
		{"Fri, 02 Jan 2026 03:00:00 GMT", 0, true}, // in the past
		{"Friday, 02-Jan-26 03:05:05 GMT", time.Minute, true},
		{"Sat, 02 Jan 2100 00:00:00 GMT", maxRetryAfter, true},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "Fri, 02 Jan 2026 03:04:35 GMT", "Friday, 02-Jan-26 03:05:05 GMT", "Fri Jan  2 03:04:35 2026", "", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || (!ok && d != 0) {
			t.Fatalf("parseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}
