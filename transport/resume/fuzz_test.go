package resume

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// byteStream is a transport.Stream that reads from r and records writes.
type byteStream struct {
	r io.Reader
	w bytes.Buffer
}

func (b *byteStream) Read(p []byte) (int, error)  { return b.r.Read(p) }
func (b *byteStream) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b *byteStream) Close() error                { return nil }
func (b *byteStream) CloseWrite() error           { return nil }

// capture returns the frames a real Stream writes for a short session:
// data of several sizes, an ack-carrying frame, the end of data, a close.
func capture() [][]byte {
	sh := newShared(Options{Logger: quiet()}, "test")
	u := &byteStream{r: bytes.NewReader(nil)}
	s := newStream(sh, "seed", u)
	s.Write([]byte("Q\x00\x00\x00\x0dSELECT 1\x00"))
	s.Write(bytes.Repeat([]byte{0xAB}, 5000))
	s.CloseWrite()
	data := append([]byte(nil), u.w.Bytes()...)
	s.fail(errors.New("done"))
	return [][]byte{
		data,
		closeFrame("agent is shutting down"),
		{frameAck, 0, 0, 0, 0, 0, 0, 0, 0},
		{frameHello, 0, 0, 0, 0, 0, 0, 0, 7},
	}
}

// FuzzFrames feeds arbitrary bytes to a Stream's reader: it must deliver at
// most the bytes the data frames announce, and end with an error, never
// panic or hang.
func FuzzFrames(f *testing.F) {
	for _, c := range capture() {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sh := newShared(Options{Logger: quiet(), Window: 64 << 10}, "test")
		s := newStream(sh, "fuzz", &byteStream{r: bytes.NewReader(in)})
		s.onLost = func(s *Stream, _ uint64, err error) { s.fail(err) }
		defer s.Close()
		got := 0
		buf := make([]byte, 4096)
		for i := 0; ; i++ {
			n, err := s.Read(buf)
			got += n
			if err != nil {
				break
			}
			if i > len(in)+10 {
				t.Fatalf("reader did not end on %d bytes of input", len(in))
			}
		}
		if got > len(in) {
			t.Fatalf("delivered %d bytes from %d bytes of input", got, len(in))
		}
	})
}
