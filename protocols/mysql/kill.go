package mysql

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// killTarget is what a gateway connection id stands for.
type killTarget struct {
	agent, sessionID, user string
}

// connIDs hands out the connection ids clients see in the greeting (and
// quote in KILL), mapped to sessions like Postgres cancel keys: clients never
// learn the upstream's thread ids.
type connIDs struct {
	mu sync.Mutex
	m  map[uint32]*killTarget
}

func (k *connIDs) issue() uint32 {
	var b [4]byte
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[uint32]*killTarget{}
	}
	for {
		rand.Read(b[:])
		id := binary.LittleEndian.Uint32(b[:]) & 0x7fffffff
		if _, taken := k.m[id]; !taken && id != 0 {
			k.m[id] = nil // reserved until the session is dispatched
			return id
		}
	}
}

func (k *connIDs) set(id uint32, t *killTarget) {
	k.mu.Lock()
	k.m[id] = t
	k.mu.Unlock()
}

func (k *connIDs) lookup(id uint32) *killTarget {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[id]
}

func (k *connIDs) forget(id uint32) {
	k.mu.Lock()
	delete(k.m, id)
	k.mu.Unlock()
}
