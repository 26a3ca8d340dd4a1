package postgres

import (
	"encoding/binary"
	"fmt"
	"io"
)

// readMessage reads one typed message whose length word is at most max and
// fits buf; it is for the few small messages of the handshake, not the relay.
// The body is valid until buf is reused.
func readMessage(r io.Reader, buf []byte, max int) (byte, []byte, error) {
	if _, err := io.ReadFull(r, buf[:5]); err != nil {
		return 0, nil, err
	}
	l := int(binary.BigEndian.Uint32(buf[1:5]))
	if l < 4 || l > max || l-4 > len(buf) {
		return 0, nil, &errMessageTooLarge{size: l, max: min(max, len(buf)+4)}
	}
	typ := buf[0]
	body := buf[:l-4]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read message %q: %w", typ, err)
	}
	return typ, body, nil
}

// appendMessage appends a message of type typ with the given body.
func appendMessage(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	return append(dst, body...)
}
