package recording

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Writer records one session. Write and Close are safe for concurrent use
// (the two directions of a session usually write from two goroutines).
//
// Contract for the caller (the gateway's data path):
//   - Record before forwarding: call Write with bytes before relaying them.
//     If Write returns an error, do not relay them: end the session and
//     report the error natively. The recording then holds everything the
//     session relayed, possibly followed by part of what it did not.
//   - An error from Write is sticky (errors.Is ErrRecordingFailed, and
//     ErrSpoolFull when the spool stayed full for MaxStall): every later
//     Write returns it.
//   - Call Close (or CloseWithError) exactly when the session ends, on every
//     path. It records the end marker and waits until every chunk is
//     written; its error says whether the recording is complete.
//   - Write copies p; the caller keeps ownership of p.
type Writer struct {
	r       *Recorder
	id      string
	failure atomic.Pointer[error]

	mu      sync.Mutex // the write side: cur, nextSeq, closed
	cur     *chunk
	nextSeq int64
	closed  bool

	hmu    sync.Mutex // the chain: chunks are linked in seq order
	hcond  sync.Cond
	linked int64    // seq of the next chunk to link
	last   [32]byte // hash of the chunk before it (Genesis at first)

	// pending counts sealed chunks not yet settled (written and committed,
	// or given up), plus one while the Writer is open; done is closed when
	// it reaches zero.
	pending atomic.Int64
	done    chan struct{}
}

func newWriter(r *Recorder, id string) *Writer {
	w := &Writer{r: r, id: id, last: Genesis(id), done: make(chan struct{})}
	w.hcond.L = &w.hmu
	w.pending.Store(1)
	return w
}

// SessionID returns the session this Writer records.
func (w *Writer) SessionID() string { return w.id }

// Err returns the recording's failure, or nil while it is sound.
func (w *Writer) Err() error {
	if p := w.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records the first failure, counts it under reason and logs it.
func (w *Writer) fail(reason prometheus.Counter, err error) error {
	if w.failure.CompareAndSwap(nil, &err) {
		reason.Inc()
		w.r.log.Error("session recording failed: the session must end", "session", w.id, "error", err)
		return err
	}
	return w.Err()
}

// minPiece: a Write that cannot put at least this much (or all of itself,
// if smaller) into the current chunk starts a new chunk instead of leaving
// a sliver.
const minPiece = 512

// minBuf is the smallest chunk buffer; buffers grow by doubling up to
// ChunkSize, so an idle session does not hold a whole chunk.
const minBuf = 4 << 10

// Write records p as seen at time at (zero: now) flowing in direction dir.
// It copies p into the session's current chunk; it waits only when the
// spool is full, for at most Options.MaxStall.
func (w *Writer) Write(dir Direction, at time.Time, p []byte) error {
	if dir != ClientToServer && dir != ServerToClient {
		return fmt.Errorf("recording: invalid direction %#02x", byte(dir))
	}
	if err := w.Err(); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if at.IsZero() {
		at = w.r.now()
	}
	ns := at.UnixNano()
	cs := w.r.opts.ChunkSize
	for len(p) > 0 {
		if err := w.Err(); err != nil {
			return err // a chunk of this session could not be stored
		}
		n, err := w.room(len(p))
		if err != nil {
			return err
		}
		w.cur.buf = appendFrame(w.cur.buf, Kind(dir), ns, p[:n])
		p = p[n:]
		if cs-len(w.cur.buf) <= FrameHeaderLen {
			w.seal()
		}
	}
	return nil
}

// room makes the current chunk able to take a frame of n data bytes, n at
// most want, and returns n. Called with w.mu held.
func (w *Writer) room(want int) (int, error) {
	cs := w.r.opts.ChunkSize
	if c := w.cur; c != nil {
		free := cs - len(c.buf) - FrameHeaderLen
		if free < min(want, minPiece) {
			w.seal()
		} else {
			n := min(want, free)
			need := len(c.buf) + FrameHeaderLen + n
			if need <= cap(c.buf) {
				return n, nil
			}
			newCap := min(cs, max(need, 2*cap(c.buf)))
			if delta := int64(newCap - cap(c.buf)); w.r.spool.tryAcquire(delta) {
				buf := make([]byte, len(c.buf), newCap)
				copy(buf, c.buf)
				c.buf = buf
				c.charge += delta
				return n, nil
			}
			// The spool is tight: seal what we have, so the workers can
			// free it while we wait, and go on in a fresh chunk.
			w.seal()
		}
	}
	n := min(want, cs-FrameHeaderLen)
	capacity := min(cs, max(FrameHeaderLen+n, minBuf))
	charge := int64(capacity + chunkOverhead)
	if !w.r.spool.tryAcquire(charge) {
		w.r.m.spoolWaited.Inc()
		ctx, cancel := context.WithTimeout(w.r.ctx, w.r.opts.MaxStall)
		err := w.r.spool.acquire(ctx, charge)
		cancel()
		if err != nil {
			if w.r.ctx.Err() != nil { // Recorder.Close gave up waiting
				return 0, w.fail(w.r.m.failedSpool, fmt.Errorf("%w: %w: session %s: recorder shut down while waiting for spool room",
					ErrRecordingFailed, ErrClosed, w.id))
			}
			w.r.m.spoolFailed.Inc()
			return 0, w.fail(w.r.m.failedSpool, fmt.Errorf("%w: %w: session %s: no room for %d bytes in %s",
				ErrRecordingFailed, ErrSpoolFull, w.id, charge, w.r.opts.MaxStall))
		}
	}
	w.cur = &chunk{w: w, buf: make([]byte, 0, capacity), charge: charge}
	return n, nil
}

// seal hands the current chunk to the workers. Called with w.mu held.
func (w *Writer) seal() {
	c := w.cur
	if c == nil {
		return
	}
	w.cur = nil
	if len(c.buf) == 0 {
		w.r.spool.release(c.charge)
		return
	}
	c.seq = w.nextSeq
	w.nextSeq++
	c.at = w.r.now()
	w.pending.Add(1)
	w.r.q.push(c)
}

// flush seals a partly filled chunk, unless a Write holds the session.
func (w *Writer) flush() {
	if !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	if !w.closed {
		w.seal()
	}
}

// Close ends the recording normally: see CloseWithError.
func (w *Writer) Close() error { return w.CloseWithError(nil) }

// CloseWithError ends the recording: it seals the last chunk and appends
// the end chunk, whose reason is cause's text (empty for nil) or, if the
// recording had failed, that failure. It then waits until every chunk is
// written and committed (bounded by the Recorder's retries and timeouts).
// It returns nil only if the recording is complete: every chunk, the end
// included, is in the blob store and the manifest. Later calls wait the
// same way and return the same result.
func (w *Writer) CloseWithError(cause error) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return w.Err()
	}
	w.closed = true
	w.seal()
	reason := ""
	if err := w.Err(); err != nil {
		reason = err.Error()
	} else if cause != nil {
		reason = cause.Error()
	}
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	// The end chunk spends the reservation Start made for it.
	w.cur = &chunk{w: w, buf: appendFrame(nil, KindEnd, w.r.now().UnixNano(), []byte(reason)), charge: endReserve}
	w.seal()
	w.mu.Unlock()
	w.r.forget(w)
	w.chunkDone() // the open token
	<-w.done
	return w.Err()
}

// chunkDone settles one pending chunk (or the open token).
func (w *Writer) chunkDone() {
	if w.pending.Add(-1) == 0 {
		close(w.done)
	}
}

// link sets c's place in the chain. Workers take chunks from a FIFO, so a
// session's chunk seq is taken before seq+1; a worker holding seq+1 waits
// here only until the one holding seq has linked it, which never waits on
// anything else.
func (w *Writer) link(c *chunk) {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	for w.linked != c.seq {
		w.hcond.Wait()
	}
	c.prev = w.last
	c.sum = ChunkHash(c.prev, c.seq, c.buf)
	w.last = c.sum
	w.linked++
	w.hcond.Broadcast()
}
