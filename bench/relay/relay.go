// Package relay is the benchmark's floor: a minimal PostgreSQL relay that
// only frames messages. It answers SSLRequest and GSSENCRequest with 'N',
// forwards the startup message, then copies both directions, writing only
// whole messages (messages larger than the buffer are streamed) with one
// write per read. It decodes nothing beyond the 5-byte message headers, so
// two of them in series are the shape of gateway + agent without tunnel,
// TLS or policy.
package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// BufSize is the per-direction read buffer.
const BufSize = 64 << 10

const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	maxStartupLen     = 10000
)

// Serve accepts connections on ln and relays each to target until ln is
// closed. It returns the accept error.
func Serve(ln net.Listener, target string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			if err := handle(c, target); err != nil && !errors.Is(err, io.EOF) {
				_ = err // a benchmark relay stays quiet; the client sees the failure
			}
		}()
	}
}

func handle(client net.Conn, target string) error {
	defer client.Close()
	setNoDelay(client)
	_ = client.SetDeadline(time.Now().Add(30 * time.Second))
	startup, err := readStartup(client)
	if err != nil {
		return err
	}
	_ = client.SetDeadline(time.Time{})
	server, err := net.Dial("tcp", target)
	if err != nil {
		return err
	}
	defer server.Close()
	setNoDelay(server)
	if _, err := server.Write(startup); err != nil {
		return err
	}
	code := binary.BigEndian.Uint32(startup[4:8])
	if code == cancelRequestCode {
		_, _ = io.Copy(io.Discard, server) // the server closes after a cancel
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = Pipe(client, server)
		closeWrite(client)
	}()
	err = Pipe(server, client)
	closeWrite(server)
	wg.Wait()
	return err
}

// readStartup reads the untyped first message, answering SSLRequest and
// GSSENCRequest with 'N' (any number of times, as a client may ask for
// both), and returns the first other message (StartupMessage or
// CancelRequest) whole.
func readStartup(c net.Conn) ([]byte, error) {
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 8 || n > maxStartupLen {
			return nil, fmt.Errorf("relay: bad startup length %d", n)
		}
		code := binary.BigEndian.Uint32(hdr[4:8])
		if (code == sslRequestCode || code == gssEncRequestCode) && n == 8 {
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, err
			}
			continue
		}
		msg := make([]byte, n)
		copy(msg, hdr[:])
		if _, err := io.ReadFull(c, msg[8:]); err != nil {
			return nil, err
		}
		return msg, nil
	}
}

// Pipe copies typed PostgreSQL messages (1-byte type, 4-byte length) from
// src to dst until src ends. Each read is followed by at most one write
// holding every complete message read so far; an incomplete message that
// fits in the buffer is held back until it is complete, a larger one is
// streamed as it arrives.
func Pipe(dst io.Writer, src io.Reader) error {
	buf := make([]byte, BufSize)
	have := 0      // bytes in buf
	pos := 0       // scan position in buf
	rem := 0       // body bytes of the current message not yet scanned
	msgStart := -1 // start of the current incomplete message in buf; -1 when streaming it
	msgTotal := 0  // total size (header + body) of the current message
	for {
		n, rerr := src.Read(buf[have:])
		have += n
		for {
			if rem > 0 {
				take := min(rem, have-pos)
				pos += take
				rem -= take
				if rem > 0 {
					break
				}
				msgStart = -1
				continue
			}
			if have-pos < 5 {
				break
			}
			l := int(binary.BigEndian.Uint32(buf[pos+1 : pos+5]))
			if l < 4 {
				return fmt.Errorf("relay: bad message length %d (type %q)", l, buf[pos])
			}
			msgStart, msgTotal = pos, 1+l
			pos += 5
			rem = l - 4
		}
		// cut: everything before it is written now.
		cut := pos
		switch {
		case rem > 0 && msgStart >= 0 && msgTotal <= len(buf):
			cut = msgStart // hold back a message that will fit
		case rem > 0:
			msgStart = -1 // stream a message larger than the buffer
		}
		if cut > 0 {
			if _, err := dst.Write(buf[:cut]); err != nil {
				return err
			}
			copy(buf, buf[cut:have])
			have -= cut
			pos -= cut
			if msgStart >= 0 {
				msgStart -= cut
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

func setNoDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}
