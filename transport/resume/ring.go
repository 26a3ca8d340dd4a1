package resume

import "sync"

// segSize is the replay buffer's allocation unit: a session that sends little
// holds one segment, a bulk transfer holds up to Window/segSize.
const segSize = 16 << 10

type segment = [segSize]byte

// ring holds the bytes in [start, end) of one direction's offsets: sent, not
// yet acknowledged. Segments come from and go back to a pool shared by the
// streams of one Dispatcher or Registry.
type ring struct {
	pool  *sync.Pool
	segs  []*segment
	head  int    // position of start within segs[0]
	start uint64 // offset of the first unacknowledged byte
	end   uint64 // offset after the last byte written
}

func (r *ring) len() int { return int(r.end - r.start) }

// append copies p in at end.
func (r *ring) append(p []byte) {
	for len(p) > 0 {
		pos := r.head + r.len()
		i, off := pos/segSize, pos%segSize
		if i == len(r.segs) {
			r.segs = append(r.segs, r.pool.Get().(*segment))
		}
		n := copy(r.segs[i][off:], p)
		p = p[n:]
		r.end += uint64(n)
	}
}

// ack forgets the bytes before offset to (start <= to <= end).
func (r *ring) ack(to uint64) {
	if to <= r.start {
		return
	}
	r.head += int(to - r.start)
	r.start = to
	for r.head >= segSize {
		r.pool.Put(r.segs[0])
		r.segs[0] = nil
		r.segs = r.segs[1:]
		r.head -= segSize
	}
	if r.start == r.end && len(r.segs) > 0 {
		// Empty: keep one segment and restart it, so a request/response
		// session does not churn the pool.
		for _, s := range r.segs[1:] {
			r.pool.Put(s)
		}
		clear(r.segs[1:])
		r.segs, r.head = r.segs[:1], 0
	}
}

// copyFrom returns a copy of the bytes in [from, end) (start <= from <= end).
func (r *ring) copyFrom(from uint64) []byte {
	out := make([]byte, int(r.end-from))
	pos := r.head + int(from-r.start)
	for n := 0; n < len(out); {
		i, off := pos/segSize, pos%segSize
		c := copy(out[n:], r.segs[i][off:])
		n += c
		pos += c
	}
	return out
}

// release returns every segment to the pool.
func (r *ring) release() {
	for _, s := range r.segs {
		r.pool.Put(s)
	}
	r.segs, r.head = nil, 0
	r.start = r.end
}
