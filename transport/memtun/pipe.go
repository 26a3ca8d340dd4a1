package memtun

import (
	"io"
	"sync"
)

// pipe is one direction of a stream: a bounded byte buffer between one writer
// and one reader.
type pipe struct {
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte // ring storage, fixed capacity
	r, n int    // read offset and bytes buffered
	eof  bool   // writer closed its side
	rerr error  // set: reads fail with it (after draining if drain)
	werr error  // set: writes fail with it
}

func newPipe(size int) *pipe {
	p := &pipe{buf: make([]byte, size)}
	p.cond.L = &p.mu
	return p
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		for p.werr == nil && !p.eof && p.n == len(p.buf) {
			p.cond.Wait()
		}
		if p.werr != nil {
			return n, p.werr
		}
		if p.eof {
			return n, io.ErrClosedPipe
		}
		w := (p.r + p.n) % len(p.buf)
		end := len(p.buf)
		if w < p.r {
			end = p.r
		}
		if free := len(p.buf) - p.n; end-w > free {
			end = w + free
		}
		c := copy(p.buf[w:end], b)
		p.n += c
		n += c
		b = b[c:]
		p.cond.Broadcast()
	}
	return n, nil
}

func (p *pipe) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n == 0 && p.rerr == nil && !p.eof {
		p.cond.Wait()
	}
	if p.rerr != nil {
		return 0, p.rerr
	}
	if p.n == 0 {
		return 0, io.EOF
	}
	end := p.r + p.n
	if end > len(p.buf) {
		end = len(p.buf)
	}
	c := copy(b, p.buf[p.r:end])
	p.r = (p.r + c) % len(p.buf)
	p.n -= c
	p.cond.Broadcast()
	return c, nil
}

// closeWrite ends the data: the reader drains, then reads io.EOF.
func (p *pipe) closeWrite() {
	p.mu.Lock()
	p.eof = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// fail makes pending and later reads and writes fail. If the writer already
// closed its side, buffered data stays readable and reads still end in EOF.
func (p *pipe) fail(rerr, werr error) {
	p.mu.Lock()
	if p.werr == nil {
		p.werr = werr
	}
	if p.rerr == nil && !p.eof {
		p.rerr = rerr
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// failLocal is fail for the reading side's own Close: reads fail at once.
func (p *pipe) failLocal(rerr, werr error) {
	p.mu.Lock()
	if p.werr == nil {
		p.werr = werr
	}
	if p.rerr == nil {
		p.rerr = rerr
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}
