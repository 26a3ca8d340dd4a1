package recording

import (
	"sync"
	"time"
)

// chunk is one sealed (or filling) piece of a recording.
type chunk struct {
	w      *Writer
	seq    int64 // assigned when sealed
	buf    []byte
	charge int64 // spool bytes held until the object is written
	at     time.Time

	// Set by the worker that hashes it.
	prev, sum [32]byte
}

// queue is the FIFO of sealed chunks waiting for a worker. It has no count
// limit of its own: every chunk in it holds spool bytes (its buffer plus
// chunkOverhead), so the spool bounds it. FIFO order matters: a session's
// chunks are pushed in seq order, and workers hash them in that order.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*chunk
	head   int
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond.L = &q.mu
	return q
}

func (q *queue) push(c *chunk) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		// Recorder.Close closes every Writer before the queue, and a closed
		// Writer seals nothing: reaching here is a bug, not a load problem.
		panic("recording: chunk sealed after the recorder closed")
	}
	q.items = append(q.items, c)
	q.cond.Signal()
}

// pop blocks for the next chunk; ok is false once the queue is closed and
// empty.
func (q *queue) pop() (c *chunk, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	if q.head == len(q.items) {
		return nil, false
	}
	c = q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head >= 1024 && q.head*2 >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return c, true
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}
