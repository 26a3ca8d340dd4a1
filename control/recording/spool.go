package recording

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// spool accounts the memory of recorded bytes not yet written to the blob
// store, across all sessions. A chunk is charged for its buffer's capacity
// plus chunkOverhead from the moment it is allocated until its object is
// written (or given up). Waiters are served in FIFO order, so a large
// reservation is not starved by small ones.
type spool struct {
	sem   *semaphore.Weighted
	limit int64
	used  atomic.Int64
	m     *metrics
}

// chunkOverhead is charged per chunk on top of its buffer, for the chunk's
// bookkeeping, so that many tiny chunks cannot hide memory from the spool.
const chunkOverhead = 192

func newSpool(limit int64, m *metrics) *spool {
	m.spoolLimit.Set(float64(limit))
	return &spool{sem: semaphore.NewWeighted(limit), limit: limit, m: m}
}

func (s *spool) tryAcquire(n int64) bool {
	if !s.sem.TryAcquire(n) {
		return false
	}
	s.add(n)
	return true
}

// acquire waits until n bytes are free or ctx ends.
func (s *spool) acquire(ctx context.Context, n int64) error {
	if err := s.sem.Acquire(ctx, n); err != nil {
		return err
	}
	s.add(n)
	return nil
}

func (s *spool) release(n int64) {
	if n == 0 {
		return
	}
	s.add(-n)
	s.sem.Release(n)
}

func (s *spool) add(n int64) {
	s.used.Add(n)
	s.m.spool.Add(float64(n))
}
