package engine

import "sync"

// BufferPool hands out byte slices in power-of-two size classes so a session's
// buffers are reused rather than allocated per message. Slices larger than the
// biggest class are allocated and dropped.
type BufferPool struct {
	classes [poolClasses]sync.Pool
}

const (
	poolMinShift = 12 // 4 KiB
	poolClasses  = 13 // up to 16 MiB
)

// Get returns a slice of length n; its capacity may be larger.
func (p *BufferPool) Get(n int) []byte {
	c := classOf(n)
	if c >= poolClasses {
		return make([]byte, n)
	}
	if v := p.classes[c].Get(); v != nil {
		b := *(v.(*[]byte))
		return b[:n]
	}
	return make([]byte, n, 1<<(c+poolMinShift))
}

// Put returns b to the pool. b must not be used afterwards.
func (p *BufferPool) Put(b []byte) {
	c := classOf(cap(b))
	if c >= poolClasses || cap(b) != 1<<(c+poolMinShift) {
		return
	}
	b = b[:cap(b)]
	p.classes[c].Put(&b)
}

func classOf(n int) int {
	c := 0
	for size := 1 << poolMinShift; size < n; size <<= 1 {
		c++
	}
	return c
}
