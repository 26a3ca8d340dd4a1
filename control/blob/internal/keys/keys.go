package keys

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; blob re-exports them under the same names.
var (
	ErrNotFound   = errors.New("blob: object not found")
	ErrInvalidKey = errors.New("blob: invalid key")
	ErrTooLarge   = errors.New("blob: object too large")
)

// MaxObjectSize bounds one object, so that a tampered or foreign object can
// never make a reader allocate without limit.
const MaxObjectSize = 64 << 20

// MaxKeyLen bounds a key in bytes.
const MaxKeyLen = 512

// Validate reports whether key is a valid object key: one or more segments
// joined by '/', each made of ASCII letters, digits, '.', '_' and '-', none
// empty and none starting with '.' (so "." and ".." cannot occur and names
// starting with '.' stay free for a backend's temporary files).
func Validate(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, err)
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix may be passed to List: empty, or the
// beginning of a valid key, possibly ending in '/'.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := Validate(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

func validSegment(seg string) error {
	if seg == "" {
		return errors.New("empty segment (leading, trailing or double '/')")
	}
	if seg[0] == '.' {
		return errors.New("segment starts with '.'")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("byte %q not allowed", c)
		}
	}
	return nil
}
