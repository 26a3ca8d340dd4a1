package resume

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
)

// lockedSink is a transport.Stream that records writes.
type lockedSink struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (b *lockedSink) Read(p []byte) (int, error) { select {} }
func (b *lockedSink) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}
func (b *lockedSink) Close() error      { return nil }
func (b *lockedSink) CloseWrite() error { return nil }

// finSent reports whether frames ends with an 'F' frame at offset end.
func finOnWire(t *testing.T, frames []byte) (bool, uint64) {
	var sent uint64
	for len(frames) > 0 {
		switch frames[0] {
		case frameData:
			n := binary.BigEndian.Uint32(frames[1:5])
			sent += uint64(n)
			frames = frames[dataHdrLen+int(n):]
		case frameFin:
			end := binary.BigEndian.Uint64(frames[1:9])
			if end != sent || len(frames) != 9 {
				t.Fatalf("fin at %d after %d bytes, %d bytes follow", end, sent, len(frames)-9)
			}
			return true, sent
		case frameAck:
			frames = frames[9:]
		default:
			t.Fatalf("frame %q", frames[0])
		}
	}
	return false, sent
}

// TestCloseWriteBesideWrite: a CloseWrite racing a Write from another
// goroutine (the MySQL upstream's request side may answer the gateway while
// the relay ends the stream) still puts the end of data on the wire, after
// the data the Write got in.
func TestCloseWriteBesideWrite(t *testing.T) {
	sh := newShared(Options{Logger: quiet()}, "test")
	for i := 0; i < 20000; i++ {
		u := &lockedSink{}
		s := newStream(sh, "cw", u)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.Write([]byte("hello")) }()
		go func() { defer wg.Done(); s.CloseWrite() }()
		wg.Wait()
		u.mu.Lock()
		fin, sent := finOnWire(t, u.w.Bytes())
		u.mu.Unlock()
		s.fail(errClosed)
		if !fin {
			t.Fatalf("iteration %d: %d bytes of data on the wire and no end of data", i, sent)
		}
	}
}
