package auth

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrRateLimited is wrapped by Login's error when an attempt is refused
// because its user or client address failed too often. The error is a
// *RateLimitError, whose RetryAfter says how long to wait.
var ErrRateLimited = errors.New("too many failed login attempts")

// RateLimitError is a login refused for its rate. errors.Is(err,
// ErrRateLimited) holds; the API answers 429 with Retry-After.
type RateLimitError struct {
	Scope string        // "user" or "address": which limit refused it
	Wait  time.Duration // until the next attempt is allowed
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v for this %s: try again in %v", ErrRateLimited, e.Scope, e.Wait.Round(time.Second))
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfter is how long the client should wait before trying again.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Wait }

// Limit is a login rate limit: at most Failures failed attempts in a burst,
// then one more every Window/Failures (a token bucket of Failures tokens
// refilled at Failures per Window; a failure spends a token, a success does
// not). Failures <= 0 disables the limit.
type Limit struct {
	Failures int
	Window   time.Duration
}

// Default login limits.
var (
	DefaultUserLimit = Limit{Failures: 5, Window: 5 * time.Minute}
	DefaultAddrLimit = Limit{Failures: 20, Window: 5 * time.Minute}
)

// DefaultMaxTrackedKeys bounds the memory of each limiter.
const DefaultMaxTrackedKeys = 10000

// limiter is a set of token buckets by key, at most max of them: when full,
// the least recently used bucket is forgotten (it is the likeliest to be
// refilled already). Safe for concurrent use.
type limiter struct {
	limit Limit
	max   int
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *bucket
	lru  list.List                // front: most recently used
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

// newLimiter returns nil (no limit) when l.Failures <= 0.
func newLimiter(l Limit, max int, now func() time.Time) *limiter {
	if l.Failures <= 0 || l.Window <= 0 {
		return nil
	}
	if max <= 0 {
		max = DefaultMaxTrackedKeys
	}
	return &limiter{limit: l, max: max, now: now, keys: map[string]*list.Element{}}
}

// refill brings b up to now and reports whether it is full (carries no
// information and may be forgotten).
func (l *limiter) refill(b *bucket, now time.Time) bool {
	capacity := float64(l.limit.Failures)
	if d := now.Sub(b.at); d > 0 {
		b.tokens += d.Seconds() / l.limit.Window.Seconds() * capacity
		b.at = now
	}
	if b.tokens >= capacity {
		b.tokens = capacity
		return true
	}
	return false
}

// take spends one token for key and returns 0, or returns how long until a
// token is available, spending nothing. The caller gives the token back with
// refund when the attempt succeeds. A nil limiter or an empty key allows all.
func (l *limiter) take(key string) time.Duration {
	if l == nil || key == "" {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.keys[key]; ok {
		b = e.Value.(*bucket)
		l.refill(b, now)
		l.lru.MoveToFront(e)
	} else {
		for len(l.keys) >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.keys, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, tokens: float64(l.limit.Failures), at: now}
		l.keys[key] = l.lru.PushFront(b)
	}
	if b.tokens < 1 {
		per := l.limit.Window.Seconds() / float64(l.limit.Failures)
		wait := time.Duration((1 - b.tokens) * per * float64(time.Second))
		if wait < time.Second {
			wait = time.Second // Retry-After has second precision; never say 0
		}
		return wait
	}
	b.tokens--
	return 0
}

// refund gives back the token take spent (the attempt succeeded).
func (l *limiter) refund(key string) {
	if l == nil || key == "" {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[key]
	if !ok {
		return
	}
	b := e.Value.(*bucket)
	b.tokens++
	if l.refill(b, now) {
		l.lru.Remove(e)
		delete(l.keys, key)
	}
}

// tracked is the number of keys held (for tests).
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// maxKeyLen bounds a limiter key; longer user names are hashed.
const maxKeyLen = 128

func userKey(user string) string {
	if len(user) > maxKeyLen {
		return "sha256:" + Hash(user)
	}
	return user
}

// addrKey normalises a client address ("host", "host:port", "[v6]:port")
// to the key it is limited under: the IP without port or zone, and for IPv6
// its /64, since one client commonly holds a whole /64. "" stays "" (no
// address limit).
func addrKey(addr string) string {
	if addr == "" {
		return ""
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return userKey("host:" + host)
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail for an IPv6 address
		return p.String()
	}
	return ip.String()
}
