package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/blob/fs"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Kind: KindClient, At: t0, Data: []byte("Q\x00\x00\x00\x0dSELECT 1\x00")},
		{Kind: KindServer, At: t0.Add(time.Nanosecond), Data: []byte{}},
		{Kind: KindServer, At: time.Unix(0, -5), Data: bytes.Repeat([]byte{0xff}, 70000)},
		{Kind: KindEnd, At: t0, Data: []byte("session killed")},
	}
	var stream []byte
	for _, f := range frames {
		stream = AppendFrame(stream, f)
	}
	d := NewDecoder(iotest{bytes.NewReader(stream)})
	rest := stream
	for i, want := range frames {
		got, err := d.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		p, n, err := ParseFrame(rest)
		if err != nil {
			t.Fatalf("ParseFrame %d: %v", i, err)
		}
		rest = rest[n:]
		for _, f := range []Frame{got, p} {
			if f.Kind != want.Kind || !f.At.Equal(want.At) || !bytes.Equal(f.Data, want.Data) {
				t.Fatalf("frame %d: got %v %v %d bytes, want %v %v %d bytes", i, f.Kind, f.At, len(f.Data), want.Kind, want.At, len(want.Data))
			}
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// iotest delivers at most 7 bytes per Read, as a slow peer would.
type iotest struct{ r io.Reader }

func (s iotest) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }

func TestDecoderErrors(t *testing.T) {
	good := AppendFrame(nil, Frame{Kind: KindClient, At: t0, Data: []byte("hello")})
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, io.EOF},
		{"cut header", good[:5], io.ErrUnexpectedEOF},
		{"cut data", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"unknown kind", append([]byte{'X'}, good[1:]...), ErrBadFrame},
		{"length past the cap", []byte{'C', 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, ErrBadFrame},
	} {
		_, err := NewDecoder(bytes.NewReader(tc.input)).Next()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Next: %v, want %v", tc.name, err, tc.want)
		}
		if _, _, err := ParseFrame(tc.input); !errors.Is(err, tc.want) {
			t.Errorf("%s: ParseFrame: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// A frame that claims the maximum length but delivers a few bytes must not
// make the decoder allocate what it claims.
func TestDecoderDoesNotTrustLength(t *testing.T) {
	hdr := []byte{'S', 0, 0, 0, 0, 0, 0, 0, 0}
	hdr = append(hdr, 0x01, 0x00, 0x00, 0x00) // 16 MiB claimed
	d := NewDecoder(bytes.NewReader(append(hdr, "only this"...)))
	if _, err := d.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Next: %v", err)
	}
	if c := cap(d.buf); c > 128<<10 {
		t.Fatalf("decoder allocated %d bytes for 9 delivered", c)
	}
}

// realRecording records a short session with the Recorder and returns what
// Read gives back: the fuzz target's seed.
func realRecording(tb testing.TB, dir string) []byte {
	st, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	m := &MemoryManifest{}
	rec, err := New(Options{Blob: st, Manifest: m, ChunkSize: MinChunkSize, FlushInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	defer rec.Close(context.Background())
	w, err := rec.Start("seed")
	if err != nil {
		tb.Fatal(err)
	}
	for i, s := range []string{"\x00\x00\x00\x08\x04\xd2\x16\x2f", "N", "\x00\x00\x00\x29\x00\x03\x00\x00user\x00alice\x00database\x00app\x00\x00",
		"R\x00\x00\x00\x08\x00\x00\x00\x00", "Q\x00\x00\x00\x0dSELECT 1\x00", string(bytes.Repeat([]byte("D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011"), 400))} {
		dir := ClientToServer
		if i%2 == 1 {
			dir = ServerToClient
		}
		if err := w.Write(dir, t0.Add(time.Duration(i)*time.Millisecond), []byte(s)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.CloseWithError(errors.New("client went away")); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Read(context.Background(), st, m, "seed", &buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzDecoder: the streaming Decoder and ParseFrame agree on any input,
// never panic or over-allocate, and what they decode re-encodes to exactly
// the bytes they consumed. Seeded with a real recording.
func FuzzDecoder(f *testing.F) {
	seed := realRecording(f, f.TempDir())
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(seed[:FrameHeaderLen+3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		rest := data
		var reenc []byte
		for {
			df, derr := d.Next()
			pf, n, perr := ParseFrame(rest)
			if (derr == nil) != (perr == nil) {
				t.Fatalf("Decoder: %v, ParseFrame: %v", derr, perr)
			}
			if derr != nil {
				if !errors.Is(derr, io.EOF) && !errors.Is(derr, io.ErrUnexpectedEOF) && !errors.Is(derr, ErrBadFrame) {
					t.Fatalf("unexpected error class: %v", derr)
				}
				if errors.Is(derr, io.EOF) != errors.Is(perr, io.EOF) || errors.Is(derr, ErrBadFrame) != errors.Is(perr, ErrBadFrame) {
					t.Fatalf("errors disagree: Decoder %v, ParseFrame %v", derr, perr)
				}
				break
			}
			if df.Kind != pf.Kind || !df.At.Equal(pf.At) || !bytes.Equal(df.Data, pf.Data) {
				t.Fatal("Decoder and ParseFrame decoded different frames")
			}
			if len(df.Data) > MaxFrameData {
				t.Fatalf("frame of %d bytes", len(df.Data))
			}
			reenc = AppendFrame(reenc, df)
			rest = rest[n:]
		}
		if consumed := data[:len(data)-len(rest)]; !bytes.Equal(reenc, consumed) {
			t.Fatal("re-encoding the frames does not give the bytes consumed")
		}
	})
}
