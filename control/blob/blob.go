package blob

import (
	"context"

	"github.com/sluice-gw/sluice/control/blob/internal/keys"
)

// Store keeps whole objects under keys.
//
// Contract, common to every implementation:
//   - Keys are relative, slash-separated names: one or more segments of
//     ASCII letters, digits, '.', '_' and '-', no segment empty or starting
//     with '.' (ValidateKey). Any other key is refused with an error
//     wrapping ErrInvalidKey before anything is touched, so no key can
//     reach outside the store.
//   - Put stores data under key atomically, replacing any object there: a
//     concurrent or later reader sees the old object or the whole new one,
//     never a part. When Put returns nil the object is durable (the
//     filesystem store has fsynced it; S3 has acknowledged it). Put does not
//     retain data after it returns.
//   - Get returns a copy of the object the caller owns. A missing key is an
//     error wrapping ErrNotFound.
//   - Delete removes key; deleting a missing key is not an error.
//   - List returns, sorted, every key beginning with prefix (a plain string
//     prefix, as in S3: "a/b" matches "a/b/c" and "a/bc"); "" lists all. An
//     empty result is an empty slice and no error.
//   - Objects are at most MaxObjectSize bytes: a larger Put fails, and so
//     does a Get of a larger object, with an error wrapping ErrTooLarge, so
//     a reader's memory stays bounded whatever the store holds.
//   - All methods are safe for concurrent use and honour ctx.
//
// Implementations that hold resources (the filesystem store keeps its root
// directory open) also implement io.Closer.
type Store interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]string, error)
}

// Errors that Store implementations wrap.
var (
	ErrNotFound   = keys.ErrNotFound
	ErrInvalidKey = keys.ErrInvalidKey
	ErrTooLarge   = keys.ErrTooLarge
)

// MaxObjectSize is the largest object a Store accepts or returns (64 MiB).
const MaxObjectSize = keys.MaxObjectSize

// ValidateKey returns nil if key is a valid object key, or an error wrapping
// ErrInvalidKey saying why not.
func ValidateKey(key string) error { return keys.Validate(key) }

// ValidatePrefix returns nil if prefix may be passed to List: "" or the
// beginning of a valid key, possibly ending in '/'.
func ValidatePrefix(prefix string) error { return keys.ValidatePrefix(prefix) }
