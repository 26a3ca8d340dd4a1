package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// TokenPrefix starts every access token, so leaked tokens are recognisable
// (secret scanners) and never mistaken for a password.
const TokenPrefix = "slc_"

// secretBytes is the entropy of tokens and agent keys.
const secretBytes = 32

// Hash returns the stored form of a token or agent key: sha256, hex.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// hashEqual compares two hex hashes in constant time.
func hashEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	return b, nil
}

// NewToken returns a fresh access token: "slc_" + base64url(32 random bytes).
func NewToken() (string, error) {
	b, err := random(secretBytes)
	if err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// LooksLikeToken reports whether s has the shape of an access token.
func LooksLikeToken(s string) bool {
	return strings.HasPrefix(s, TokenPrefix) && len(s) == len(TokenPrefix)+base64.RawURLEncoding.EncodedLen(secretBytes)
}

// NewAgentKey returns a fresh agent key (32 random bytes, base64url without
// padding) and its stored hash.
func NewAgentKey() (key, hash string, err error) {
	b, err := random(secretBytes)
	if err != nil {
		return "", "", err
	}
	key = base64.RawURLEncoding.EncodeToString(b)
	return key, Hash(key), nil
}

func newID() (string, error) {
	b, err := random(12)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// PasswordCost is the bcrypt cost of new password hashes: 2^10 rounds,
// bcrypt's default and OWASP's floor. Passwords are bcrypt rather than
// argon2id: bcrypt's memory use is fixed and tiny (a login flood cannot
// exhaust the gateway's memory), and failed logins are rate limited anyway.
// bcrypt reads at most 72 bytes; HashPassword refuses longer passwords.
const PasswordCost = 10

// HashPassword returns the bcrypt hash of password (cost PasswordCost). A
// password longer than 72 bytes is an error.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether password matches the bcrypt hash; an empty
// hash (no password set) never matches.
func CheckPassword(hash, password string) bool {
	if hash == "" {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
