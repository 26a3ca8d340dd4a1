package postgres

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// chunkReader delivers its bytes in odd-sized pieces, like a real socket.
type chunkReader struct {
	b   []byte
	rnd *rand.Rand
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := 1 + r.rnd.IntN(min(len(p), 3000))
	n = min(n, len(r.b))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// countingWriter records writes so tests can see batching.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

func stream(msgs ...[]byte) []byte { return bytes.Join(msgs, nil) }

func TestPumpRelaysExactly(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300_000) // larger than the buffer: streamed through
	in := stream(
		appendMessage(nil, 'Q', []byte("SELECT 1\x00")),
		appendMessage(nil, 'P', []byte("\x00SELECT $1\x00\x00\x00")),
		appendMessage(nil, 'D', big),
		appendMessage(nil, 'S', nil),
		appendMessage(nil, 'X', nil),
	)
	for seed := range uint64(20) {
		var n atomic.Int64
		out := &countingWriter{}
		p := &pump{src: &chunkReader{b: in, rnd: rand.New(rand.NewPCG(seed, 1))}, dst: out, buf: make([]byte, 8192), max: 1 << 20, n: &n}
		if err := p.run(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("seed %d: output differs (%d vs %d bytes)", seed, out.Len(), len(in))
		}
		if n.Load() != int64(len(in)) {
			t.Fatalf("counted %d bytes, want %d", n.Load(), len(in))
		}
	}
}

func TestPumpBatchesOneWritePerRead(t *testing.T) {
	var in []byte
	for range 100 {
		in = appendMessage(in, 'B', []byte("0123456789"))
	}
	var n atomic.Int64
	out := &countingWriter{}
	p := &pump{src: bytes.NewReader(in), dst: out, buf: make([]byte, 64<<10), max: 1 << 20, n: &n}
	if err := p.run(); err != nil {
		t.Fatal(err)
	}
	if out.writes != 1 {
		t.Fatalf("100 pipelined messages took %d writes, want 1", out.writes)
	}
}

func TestPumpRejectsOversizeAtBoundary(t *testing.T) {
	ok := appendMessage(nil, 'Q', []byte("SELECT 1\x00"))
	huge := []byte{'Q', 0x7f, 0xff, 0xff, 0xff}
	var n atomic.Int64
	out := &countingWriter{}
	p := &pump{src: bytes.NewReader(stream(ok, huge)), dst: out, buf: make([]byte, 4096), max: 1 << 20, n: &n}
	err := p.run()
	var tooBig *errMessageTooLarge
	if !errors.As(err, &tooBig) || tooBig.max != 1<<20 {
		t.Fatalf("got %v, want errMessageTooLarge", err)
	}
	if !bytes.Equal(out.Bytes(), ok) || p.midMessage {
		t.Fatalf("forwarded %q (mid=%v); want only the message before the oversize one", out.Bytes(), p.midMessage)
	}
}

func TestPumpTruncatedStream(t *testing.T) {
	in := appendMessage(nil, 'Q', []byte("SELECT 1\x00"))
	var n atomic.Int64
	p := &pump{src: bytes.NewReader(in[:7]), dst: io.Discard, buf: make([]byte, 4096), max: 1 << 20, n: &n}
	if err := p.run(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
}

// FuzzFraming checks that the pump forwards any well-framed prefix exactly
// and never panics or over-reads on arbitrary bytes.
func FuzzFraming(f *testing.F) {
	f.Add(stream(appendMessage(nil, 'Q', []byte("select 1;\x00")), appendMessage(nil, 'X', nil)), uint64(1))
	f.Add([]byte{'P', 0, 0, 0, 8, 0, 0, 0, 0, 'S', 0, 0, 0, 4}, uint64(2))
	f.Add([]byte{'D', 0xff, 0xff, 0xff, 0xff}, uint64(3))
	for _, c := range loadCaptures(f) {
		f.Add(c.c2s, uint64(4))
		f.Add(c.s2c, uint64(5))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		var n atomic.Int64
		out := &countingWriter{}
		p := &pump{src: &chunkReader{b: in, rnd: rand.New(rand.NewPCG(seed, 2))}, dst: out, buf: make([]byte, 4096), max: 1 << 16, n: &n}
		err := p.run()
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatal("output is not a prefix of the input")
		}
		if err == nil && !bytes.Equal(in, out.Bytes()) {
			t.Fatal("clean end but not everything forwarded")
		}
	})
}

// wantAll is an inspector that wants every message and changes nothing.
type wantAll struct{ seen int }

func (w *wantAll) wants(byte) bool { return true }
func (w *wantAll) inspect(msg, out []byte) ([]byte, error) {
	w.seen++
	return msg, nil
}
func (w *wantAll) tooLarge(head []byte, size int, out []byte) ([]byte, bool, error) {
	return nil, true, nil
}

// TestPumpInspectsMessagesLargerThanItsBuffer: an inspected message above
// the buffer size is held whole (the buffer grows, then shrinks back), and
// the stream stays exact.
func TestPumpInspectsMessagesLargerThanItsBuffer(t *testing.T) {
	in := stream(appendMessage(nil, 'D', bytes.Repeat([]byte("z"), 100_000)), appendMessage(nil, 'C', []byte("SELECT 1\x00")),
		appendMessage(nil, 'D', bytes.Repeat([]byte("w"), 300_000)))
	var n atomic.Int64
	out := &countingWriter{}
	w := &wantAll{}
	p := &pump{src: &chunkReader{b: in, rnd: rand.New(rand.NewPCG(3, 3))}, dst: out, buf: make([]byte, 8192), max: 1 << 20, n: &n,
		insp: w, maxInspect: 1 << 20, grow: func(n int) []byte { return make([]byte, n) }, release: func([]byte) {}}
	done := make(chan error, 1)
	go func() { done <- p.run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pump spun on a message larger than its buffer")
	}
	if !bytes.Equal(out.Bytes(), in) || w.seen != 3 {
		t.Fatalf("relayed %d of %d bytes, inspected %d messages", out.Len(), len(in), w.seen)
	}
}
