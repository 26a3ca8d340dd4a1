package pgguard

import (
	"hash/maphash"
	"strings"
	"sync"
)

// lruCache maps statement text to a result (a Decision, a classification),
// bounded in bytes (keys + values as sized by size + a fixed per-entry
// overhead). It is split into shards, each an independent LRU under its own
// mutex, so concurrent sessions rarely contend.
type lruCache[V any] struct {
	seed   maphash.Seed
	shards []cacheShard[V]
	size   func(V) int // bytes a value holds beyond its header
}

const (
	cacheShards        = 16
	cacheEntryOverhead = 160 // entry struct, map slot, Decision headers: an estimate
)

type cacheEntry[V any] struct {
	key        string
	d          V
	size       int
	prev, next *cacheEntry[V]
}

type cacheShard[V any] struct {
	mu    sync.Mutex
	m     map[string]*cacheEntry[V]
	head  cacheEntry[V] // sentinel: head.next is most recent, head.prev least recent
	bytes int
	limit int
}

func newLRUCache[V any](limit int, size func(V) int) *lruCache[V] {
	n := cacheShards
	for n > 1 && limit/n < 64<<10 { // keep shards useful for small budgets
		n /= 2
	}
	c := &lruCache[V]{seed: maphash.MakeSeed(), shards: make([]cacheShard[V], n), size: size}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*cacheEntry[V])
		s.head.next, s.head.prev = &s.head, &s.head
		s.limit = limit / n
	}
	return c
}

func (c *lruCache[V]) shard(key string) *cacheShard[V] {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// decisionSize is the size function of the Guard's decision cache.
func decisionSize(d Decision) int { return len(d.Rule) + len(d.Reason) + len(d.Kind) }

func (c *lruCache[V]) get(key string) (V, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	if !ok {
		s.mu.Unlock()
		var zero V
		return zero, false
	}
	s.unlink(e)
	s.pushFront(e)
	d := e.d
	s.mu.Unlock()
	return d, true
}

func (c *lruCache[V]) put(key string, d V) {
	size := len(key) + c.size(d) + cacheEntryOverhead
	s := c.shard(key)
	if size > s.limit {
		return // would evict the whole shard for one entry
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		s.bytes += size - e.size
		e.d, e.size = d, size
		s.unlink(e)
		s.pushFront(e)
	} else {
		key = strings.Clone(key) // the caller's string may alias a reused buffer
		e := &cacheEntry[V]{key: key, d: d, size: size}
		s.m[key] = e
		s.pushFront(e)
		s.bytes += size
	}
	for s.bytes > s.limit {
		old := s.head.prev
		if old == &s.head {
			break
		}
		s.unlink(old)
		delete(s.m, old.key)
		s.bytes -= old.size
	}
}

func (s *cacheShard[V]) unlink(e *cacheEntry[V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *cacheShard[V]) pushFront(e *cacheEntry[V]) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (c *lruCache[V]) stats() (entries, bytes int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		entries += len(s.m)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return entries, bytes
}
