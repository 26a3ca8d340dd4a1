package pgguard

import (
	"hash/maphash"
	"strings"
	"sync"
)

// lruCache maps statement text to Decision, bounded in bytes (keys + decisions +
// a fixed per-entry overhead). It is split into shards, each an independent LRU
// under its own mutex, so concurrent sessions rarely contend.
type lruCache struct {
	seed   maphash.Seed
	shards []cacheShard
}

const (
	cacheShards        = 16
	cacheEntryOverhead = 160 // entry struct, map slot, Decision headers: an estimate
)

type cacheEntry struct {
	key        string
	d          Decision
	size       int
	prev, next *cacheEntry
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]*cacheEntry
	head  cacheEntry // sentinel: head.next is most recent, head.prev least recent
	bytes int
	limit int
}

func newLRUCache(limit int) *lruCache {
	n := cacheShards
	for n > 1 && limit/n < 64<<10 { // keep shards useful for small budgets
		n /= 2
	}
	c := &lruCache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n)}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*cacheEntry)
		s.head.next, s.head.prev = &s.head, &s.head
		s.limit = limit / n
	}
	return c
}

func (c *lruCache) shard(key string) *cacheShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

func entrySize(key string, d Decision) int {
	return len(key) + len(d.Rule) + len(d.Reason) + len(d.Kind) + cacheEntryOverhead
}

func (c *lruCache) get(key string) (Decision, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	if !ok {
		s.mu.Unlock()
		return Decision{}, false
	}
	s.unlink(e)
	s.pushFront(e)
	d := e.d
	s.mu.Unlock()
	return d, true
}

func (c *lruCache) put(key string, d Decision) {
	size := entrySize(key, d)
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
		e := &cacheEntry{key: key, d: d, size: size}
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

func (s *cacheShard) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (c *lruCache) stats() (entries, bytes int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		entries += len(s.m)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return entries, bytes
}
