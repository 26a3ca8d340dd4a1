package recording

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// KeyPrefix is where recordings live in the blob store:
// recordings/SESSION/SEQ, SEQ zero-padded to 16 digits so keys sort in
// chunk order.
const KeyPrefix = "recordings/"

const maxSessionIDLen = 128

// SessionPrefix returns the blob key prefix of a session's chunks.
func SessionPrefix(sessionID string) string { return KeyPrefix + sessionID + "/" }

// ChunkKey returns the blob key of a session's chunk seq.
func ChunkKey(sessionID string, seq int64) string {
	return fmt.Sprintf("%s%s/%016d", KeyPrefix, sessionID, seq)
}

// parseChunkKey returns the seq of a key under sessionID's prefix, or -1.
func parseChunkKey(sessionID, key string) int64 {
	s, ok := strings.CutPrefix(key, SessionPrefix(sessionID))
	if !ok || len(s) < 16 {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || ChunkKey(sessionID, n) != key {
		return -1
	}
	return n
}

// ValidateSessionID reports whether id can name a recording: 1 to 128 ASCII
// letters, digits, '.', '_' or '-', not starting with '.'. Gateway session
// ids (hex) always are.
func ValidateSessionID(id string) error {
	if id == "" || len(id) > maxSessionIDLen || id[0] == '.' {
		return fmt.Errorf("recording: invalid session id %q", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("recording: invalid session id %q", id)
		}
	}
	return nil
}

// Genesis is the "previous hash" of a session's first chunk:
// sha256("sluice-recording:" + sessionID). It ties the chain to the session,
// so chunks cannot be moved from one recording to another.
func Genesis(sessionID string) [32]byte {
	return sha256.Sum256([]byte("sluice-recording:" + sessionID))
}

// ChunkHash is a chunk's link in the chain:
// sha256(prev (32 bytes) || seq (8 bytes, big-endian) || payload).
func ChunkHash(prev [32]byte, seq int64, payload []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(seq))
	h.Write(s[:])
	h.Write(payload)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func hexHash(h [32]byte) string { return hex.EncodeToString(h[:]) }

// parseHash decodes a manifest's hex hash; ok is false if it is not one.
func parseHash(s string) (h [32]byte, ok bool) {
	if len(s) != 64 {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, false
	}
	return h, true
}
