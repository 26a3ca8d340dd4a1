package recording

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The frame format. A recording is a sequence of frames, chunk after chunk;
// each chunk holds whole frames. Integers are big-endian.
//
//	offset  size  field
//	0       1     kind: 'C' client→server, 'S' server→client, 'E' end
//	1       8     time: Unix nanoseconds (int64) when the gateway saw the bytes
//	9       4     length N of data (uint32), at most MaxFrameData
//	13      N     data
//
// A Write larger than the room left in a chunk is split into several frames
// with the same kind and time, so a frame is not a protocol message: readers
// concatenate frames of one direction. The last chunk of a finished
// recording holds exactly one frame, of kind 'E', whose data is the reason
// the recording ended (empty when the session ended normally).
const (
	FrameHeaderLen = 13
	// MaxFrameData bounds a frame's data, and so a chunk (MaxChunkSize).
	MaxFrameData = 16 << 20
	// maxReason bounds an end frame's reason text.
	maxReason = 256
)

// Direction says which way bytes flowed.
type Direction byte

// Directions, whose values are also their frames' kinds.
const (
	ClientToServer Direction = 'C'
	ServerToClient Direction = 'S'
)

// Kind is a frame's first byte.
type Kind byte

// Frame kinds.
const (
	KindClient      = Kind(ClientToServer)
	KindServer      = Kind(ServerToClient)
	KindEnd    Kind = 'E'
)

func (k Kind) valid() bool { return k == KindClient || k == KindServer || k == KindEnd }

func (k Kind) String() string {
	switch k {
	case KindClient:
		return "client"
	case KindServer:
		return "server"
	case KindEnd:
		return "end"
	}
	return fmt.Sprintf("kind(%#02x)", byte(k))
}

// Frame is one decoded frame.
type Frame struct {
	Kind Kind
	At   time.Time
	// Data is the bytes seen (for KindEnd, the reason). A Decoder reuses
	// it: it is valid until the next call to Next.
	Data []byte
}

// ErrBadFrame is wrapped by every decoding error other than truncation.
var ErrBadFrame = errors.New("recording: bad frame")

// AppendFrame appends f's encoding to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	return appendFrame(dst, f.Kind, f.At.UnixNano(), f.Data)
}

func appendFrame(dst []byte, k Kind, unixNano int64, data []byte) []byte {
	dst = append(dst, byte(k))
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// ParseFrame decodes the frame at the start of b and returns it with its
// encoded length. Data aliases b. A b too short for the frame it starts is
// io.ErrUnexpectedEOF; an empty b is io.EOF.
func ParseFrame(b []byte) (Frame, int, error) {
	if len(b) == 0 {
		return Frame{}, 0, io.EOF
	}
	if len(b) < FrameHeaderLen {
		return Frame{}, 0, io.ErrUnexpectedEOF
	}
	f, n, err := parseHeader(b[:FrameHeaderLen])
	if err != nil {
		return Frame{}, 0, err
	}
	if len(b)-FrameHeaderLen < n {
		return Frame{}, 0, io.ErrUnexpectedEOF
	}
	f.Data = b[FrameHeaderLen : FrameHeaderLen+n : FrameHeaderLen+n]
	return f, FrameHeaderLen + n, nil
}

func parseHeader(h []byte) (Frame, int, error) {
	k := Kind(h[0])
	if !k.valid() {
		return Frame{}, 0, fmt.Errorf("%w: unknown kind %#02x", ErrBadFrame, h[0])
	}
	n := binary.BigEndian.Uint32(h[9:13])
	if n > MaxFrameData {
		return Frame{}, 0, fmt.Errorf("%w: %d data bytes, more than %d", ErrBadFrame, n, MaxFrameData)
	}
	return Frame{Kind: k, At: time.Unix(0, int64(binary.BigEndian.Uint64(h[1:9])))}, int(n), nil
}

// Decoder reads frames from a stream, such as Read's output. Its memory is
// bounded by the largest frame (MaxFrameData), whatever the input claims.
type Decoder struct {
	r   *bufio.Reader
	hdr [FrameHeaderLen]byte
	buf []byte
}

// NewDecoder returns a Decoder reading r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next frame. At the end of a stream that ends between
// frames it returns io.EOF; a stream cut inside a frame is
// io.ErrUnexpectedEOF. The returned Data is valid until the next call.
func (d *Decoder) Next() (Frame, error) {
	if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
		return Frame{}, err // io.EOF between frames, io.ErrUnexpectedEOF inside one
	}
	f, n, err := parseHeader(d.hdr[:])
	if err != nil {
		return Frame{}, err
	}
	// Grow only as data actually arrives: a length prefix is a claim, not
	// an allocation budget.
	d.buf = d.buf[:0]
	for len(d.buf) < n {
		want := min(n-len(d.buf), 64<<10)
		start := len(d.buf)
		d.buf = append(d.buf, make([]byte, want)...)
		if _, err := io.ReadFull(d.r, d.buf[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
	}
	f.Data = d.buf[:n:n]
	return f, nil
}
