package review

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// hashDomain separates statement hashes from any other sha256 use.
const hashDomain = "sluice-statement-v1\x00"

// StatementHash returns the hex sha256 that binds a statement approval to
// one statement: its text and each parameter, length-prefixed so that no
// two different (text, params) encode alike. A nil parameter (SQL NULL) and
// an empty one differ.
//
// Encoding: "sluice-statement-v1\x00", len(text) as uint64 big-endian, text,
// len(params) as uint64, then per parameter a byte 0 (nil) or 1 followed by
// len(p) as uint64 and p.
func StatementHash(text string, params [][]byte) string {
	h := sha256.New()
	var n [8]byte
	put := func(v int) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	h.Write([]byte(hashDomain))
	put(len(text))
	h.Write([]byte(text))
	put(len(params))
	for _, p := range params {
		if p == nil {
			h.Write([]byte{0})
			continue
		}
		h.Write([]byte{1})
		put(len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
