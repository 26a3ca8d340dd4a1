package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery (see the package documentation).
const (
	HeaderEvent     = "X-Sluice-Event"
	HeaderDelivery  = "X-Sluice-Delivery"
	HeaderTimestamp = "X-Sluice-Timestamp"
	HeaderSignature = "X-Sluice-Signature"
)

// SignaturePrefix names the algorithm in X-Sluice-Signature.
const SignaturePrefix = "sha256="

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Verify errors. Both mean: reject the request (401 or 403); neither is worth
// retrying for the sender.
var (
	ErrBadSignature = errors.New("webhook signature is missing, malformed or wrong")
	ErrStale        = errors.New("webhook timestamp is missing, malformed or outside the tolerance")
)

// Sign returns the X-Sluice-Signature value for body sent at unix time ts:
// "sha256=" + hex(HMAC-SHA256(secret, ts + "." + body)).
func Sign(secret string, ts int64, body []byte) string {
	return SignaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver should: timestamp and signature are
// the X-Sluice-Timestamp and X-Sluice-Signature header values, body the raw
// request body. It returns ErrStale when the timestamp is not within
// tolerance of now (DefaultTolerance when tolerance <= 0) and ErrBadSignature
// when the signature does not match; the comparison is constant-time. The
// receiver still has to de-duplicate on X-Sluice-Delivery.
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, ok := parseUnix(timestamp)
	if !ok {
		return ErrStale
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	// Compare the text: exactly what Sign writes (lower-case hex) is accepted.
	got, ok := strings.CutPrefix(signature, SignaturePrefix)
	want := hex.EncodeToString(mac(secret, timestamp, body))
	if !ok || !hmac.Equal([]byte(got), []byte(want)) {
		return ErrBadSignature
	}
	return nil
}

// parseUnix accepts decimal digits only (no sign, no spaces), at most 12 of
// them: seconds up to the year 33658, and no overflow to think about.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
