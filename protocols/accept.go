package protocols

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Acceptor runs a frontend's accept loops: one goroutine per client, a
// graceful drain, and a wait for the sessions to end. The zero value is
// ready to use.
type Acceptor struct {
	mu       sync.Mutex
	lns      []net.Listener
	draining bool
	wg       sync.WaitGroup
}

// Serve accepts clients on ln and runs serve for each until ctx ends, Drain
// is called, or ln fails; then it waits for every session it started.
// Ending ctx is meant to end the sessions too (serve gets ctx); Drain lets
// them run to their end.
func (a *Acceptor) Serve(ctx context.Context, ln net.Listener, serve func(context.Context, net.Conn)) error {
	a.mu.Lock()
	if a.draining {
		a.mu.Unlock()
		ln.Close()
		return nil
	}
	a.lns = append(a.lns, ln)
	a.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer a.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			a.mu.Lock()
			draining := a.draining
			a.mu.Unlock()
			if ctx.Err() != nil || draining {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			serve(ctx, c)
		}()
	}
}

// Drain stops accepting on every listener; running sessions go on.
func (a *Acceptor) Drain() {
	a.mu.Lock()
	a.draining = true
	lns := a.lns
	a.lns = nil
	a.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}
