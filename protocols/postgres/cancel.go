package postgres

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// cancelKey is the (process id, secret) pair a client quotes in a
// CancelRequest. The gateway hands out its own keys so clients never learn
// the upstream's, and maps them back to a session.
type cancelKey struct {
	pid    uint32
	secret uint32
}

type cancelTarget struct {
	agent     string
	sessionID string
	hold      *holdSlot // the session's statement review wait; nil: no reviews
}

// cancelKeys maps issued keys to sessions.
type cancelKeys struct {
	mu sync.Mutex
	m  map[cancelKey]cancelTarget
}

func (k *cancelKeys) issue(t cancelTarget) cancelKey {
	var b [8]byte
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[cancelKey]cancelTarget)
	}
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand: " + err.Error()) // never fails on Linux
		}
		key := cancelKey{pid: binary.BigEndian.Uint32(b[:4]) & 0x7fffffff, secret: binary.BigEndian.Uint32(b[4:])}
		if _, taken := k.m[key]; !taken && key.pid != 0 {
			k.m[key] = t
			return key
		}
	}
}

func (k *cancelKeys) lookup(key cancelKey) (cancelTarget, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.m[key]
	return t, ok
}

func (k *cancelKeys) forget(key cancelKey) {
	k.mu.Lock()
	delete(k.m, key)
	k.mu.Unlock()
}
