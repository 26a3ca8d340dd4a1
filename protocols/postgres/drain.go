package postgres

import (
	"errors"
	"net"
	"syscall"
)

// streamingRead is the read size from which the pump assumes a stream (a
// big result, COPY) rather than a transaction, and tops its buffer up with
// what is already queued before writing: fewer, larger writes on every hop.
// Small reads never pay for the extra non-blocking read.
const streamingRead = 8 << 10

// nonBlockingReader returns a function that reads only what the kernel has
// already queued on c (never waits), or nil when c is not a plain socket
// (TLS buffers records itself).
func nonBlockingReader(c net.Conn) func([]byte) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	if _, isTCP := c.(*net.TCPConn); !isTCP {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(p []byte) int {
		n := 0
		raw.Read(func(fd uintptr) bool {
			m, err := syscall.Read(int(fd), p)
			if err == nil && m > 0 {
				n = m
			} else if err != nil && !errors.Is(err, syscall.EAGAIN) {
				n = 0 // the next blocking Read reports it
			}
			return true // never wait for readiness
		})
		return n
	}
}
