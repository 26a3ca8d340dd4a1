// Package masking hides personal data (PII) in result values before they leave
// the private network. The agent compiles a Policy once per connection from the
// `masking:` section of its configuration and then calls Policy.MaskValue for
// every text value of every result row, straight from the read buffer.
//
// Two kinds of rule exist:
//
//   - column rules ("customers.email", "*.ssn"): every value of a matching
//     column is masked whole, whatever it contains (MaskValue with forced=true);
//   - content detectors, run on every text value: email, credit_card, iban,
//     ssn, phone, ipv4, ipv6, plus user-defined regular-expression patterns.
//
// The built-in detectors run in a single pass over the bytes. The hot loop
// tests eight bytes at a time (a SWAR range test, then a 256-entry
// per-policy trigger table) and skips everything where no detector can
// start: letters, spaces, UTF-8 and most punctuation. Detectors are only
// tried at cheap triggers: a digit, '+' or '(' at a word start for the
// numeric detectors (one scan of the digit groups and separators serves
// card, SSN, phone and IPv4); the first digit of a word that starts with two
// upper-case letters for IBAN; '@' for e-mail (looking back for the local
// part); ':' next to a hex digit for IPv6. Candidates are validated with the
// real checksums (Luhn, ISO 13616 mod-97) or range rules (SSA SSN ranges,
// IPv4 octets). Nothing on that path allocates, in any style (the hash
// style keeps its HMAC states in a sync.Pool).
//
// User-defined patterns are Go regular expressions compiled once; they are
// applied with regexp.FindAllIndex, which allocates (about three
// allocations per value) and costs several times the built-in path. Use them
// sparingly. Where a pattern match and a built-in detection overlap, the one
// that starts first wins.
//
// Styles: "partial" rewrites the value in place, keeping its length; "redact"
// and "hash" replace each detected span with a token of another length, so the
// result is appended to the caller's dst (see MaskValue and Style).
//
// Performance (T11, BenchmarkMaskValue, all built-in detectors, one core of
// the CI-class machine): about 450 MB/s on realistic row values (5 % PII),
// 500+ MB/s without PII, 3 GB/s on long free text, 0 allocations per value.
// Hash is bounded by HMAC-SHA256 per detected span.
//
// Detection rules worth knowing (see the detector functions for the rest):
//
//   - ssn: the dashed form NNN-NN-NNNN is always detected; the compact form
//     NNNNNNNNN and the spaced form NNN NN NNNN only when "ssn" or "social
//     security" (any case) appears within 24 bytes before the number. The SSA
//     never-issued ranges are excluded: area 000, 666 and 900-999, group 00,
//     serial 0000.
//   - phone: E.164 forms starting with '+' (9-15 digits, compact needs 10+),
//     North-American NXX-NXX-XXXX / (NXX) NXX-XXXX / 1-NXX-NXX-XXXX, and
//     trunk-prefix national forms starting with 0 ("020 7946 0958",
//     "01 23 45 67 89", "030/12345678"; 10-11 digits) with one consistent
//     separator. A bare run of digits without '+' is never a phone number,
//     nor is the tail of a longer run of space-separated digit groups.
//   - credit_card: 13-19 digits, compact or in groups (first group of 4) joined
//     by one kind of separator (space or dash), plausible issuer prefix for the
//     length, valid Luhn check digit.
//   - iban: upper-case country code with a known length, two check digits,
//     upper-case alphanumeric BBAN, compact or grouped by four with single
//     spaces, valid mod-97.
//   - ipv4: four dotted decimal octets 0-255 without leading zeros, not part of
//     a longer dotted run (1.2.3.4.5 is not an address); a :port or /prefix may
//     follow.
//   - ipv6: RFC 4291 text forms including "::" compression and an embedded
//     dotted IPv4 tail.
//
// A match must stand on its own: the byte before it must not be a letter or a
// digit (nor '.'/'_' glued to one), and the byte after it must not be a letter,
// a digit or '@' (nor '.', '-', '_' or ':' followed by one). So "ORD4111...",
// "4111...@example.com" and "v1.2.3.4" are not detected.
//
// The package is a pure library: it imports nothing of ours (only the standard
// library), which internal/archtest enforces.
package masking
