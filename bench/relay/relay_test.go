package relay

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// recWriter records each Write.
type recWriter struct{ writes [][]byte }

func (w *recWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func msg(typ byte, body []byte) []byte {
	m := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(m[1:], uint32(4+len(body)))
	return append(m, body...)
}

func TestPipeWholeMessagesAndStreaming(t *testing.T) {
	var in []byte
	var small [][]byte
	for i := range 500 {
		m := msg('D', bytes.Repeat([]byte{byte(i)}, i%97))
		small = append(small, m)
		in = append(in, m...)
	}
	big := msg('D', bytes.Repeat([]byte{'x'}, 3*BufSize))
	in = append(in, big...)
	in = append(in, msg('Z', []byte{'I'})...)
	for _, chunk := range []int{1, 3, 7, 100, 4096, BufSize} {
		w := &recWriter{}
		if err := Pipe(w, &chunkReader{bytes.NewReader(in), chunk}); err != nil {
			t.Fatal(err)
		}
		got := bytes.Join(w.writes, nil)
		if !bytes.Equal(got, in) {
			t.Fatalf("chunk %d: output differs (%d vs %d bytes)", chunk, len(got), len(in))
		}
		// Writes before the big message end on message boundaries.
		off := 0
		for _, wr := range w.writes {
			if off+len(wr) > len(in)-len(big)-6 {
				break
			}
			off += len(wr)
			b := 0
			for _, m := range small {
				b += len(m)
				if b >= off {
					break
				}
			}
			if b != off {
				t.Fatalf("chunk %d: a write ends mid-message at %d", chunk, off)
			}
		}
	}
}

func TestPipeRejectsBadLength(t *testing.T) {
	if err := Pipe(io.Discard, bytes.NewReader([]byte{'D', 0, 0, 0, 1})); err == nil {
		t.Fatal("want an error for a length below 4")
	}
}
