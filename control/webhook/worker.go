package webhook

import (
	"context"
	"sync/atomic"
	"time"
)

// worker delivers one endpoint's queue, one event at a time, in order.
type worker struct {
	d     *Dispatcher
	ep    atomic.Pointer[Endpoint] // swapped by reloads; read at each attempt
	m     *endpointMetrics
	queue chan Event

	// stopCtx ends when the worker must stop: no attempt starts after it,
	// a backoff wait ends at once. Its cause (ErrClosed, errRemoved) is why.
	stopCtx context.Context
	stop    context.CancelCauseFunc
}

// startWorker is called with d.mu held, before d.closed is set.
func (d *Dispatcher) startWorker(ep Endpoint) *worker {
	w := &worker{d: d, m: d.m.forEndpoint(ep.Name), queue: make(chan Event, d.cfg.QueueSize)}
	w.ep.Store(&ep)
	w.stopCtx, w.stop = context.WithCancelCause(context.Background())
	d.wg.Add(1)
	go w.run()
	return w
}

func (w *worker) run() {
	defer w.d.wg.Done()
	for {
		select {
		case ev := <-w.queue:
			w.m.queue.Dec()
			if w.stopCtx.Err() != nil {
				w.buryStopped(ev, nil, 0, "")
				continue
			}
			w.deliver(ev)
		case <-w.stopCtx.Done():
			// Nothing is sent to the queue any more (the worker left
			// d.workers, or d.closed is set, under d.mu): drain what is left.
			for {
				select {
				case ev := <-w.queue:
					w.m.queue.Dec()
					w.buryStopped(ev, nil, 0, "")
				default:
					return
				}
			}
		}
	}
}

// buryStopped dead-letters ev because the worker stopped before ev was
// delivered; lastErr is the last attempt's error, if there was one.
func (w *worker) buryStopped(ev Event, body []byte, attempts int, lastErr string) {
	cause := context.Cause(w.stopCtx)
	reason := reasonClosed
	if cause == errRemoved {
		reason = reasonRemoved
	}
	msg := cause.Error()
	if lastErr != "" {
		msg = lastErr + "; then " + msg
	}
	w.d.bury(*w.ep.Load(), ev, body, attempts, msg, reason)
}

// deliver sends ev until it is delivered, fails for good, or the worker
// stops; the last two end in the dead-letter list.
func (w *worker) deliver(ev Event) {
	d := w.d
	ep := *w.ep.Load()
	body, err := Render(ep.Format, ev)
	if err != nil {
		d.bury(ep, ev, nil, 0, err.Error(), reasonUnrenderable)
		return
	}
	for n := 1; ; n++ {
		ep = *w.ep.Load()
		o := d.attempt(d.abortCtx, ep, ev.Type, ev.ID, body, w.m)
		switch {
		case o.err == nil:
			w.m.ok.Inc()
			return
		case !o.retry:
			w.m.failed.Inc()
			d.bury(ep, ev, body, n, o.err.Error(), reasonRejected)
			return
		case n >= d.cfg.MaxAttempts:
			w.m.failed.Inc()
			d.bury(ep, ev, body, n, o.err.Error(), reasonExhausted)
			return
		}
		w.m.retry.Inc()
		if err := d.cfg.Sleep(w.stopCtx, d.backoff(n, o.retryAfter)); err != nil || w.stopCtx.Err() != nil {
			w.buryStopped(ev, body, n, o.err.Error())
			return
		}
	}
}

// backoff is the wait after failed attempt n (from 1); see Config.
func (d *Dispatcher) backoff(n int, retryAfter time.Duration) time.Duration {
	b := d.cfg.InitialBackoff
	for i := 1; i < n && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	wait := b/2 + time.Duration(d.cfg.Rand()*float64(b/2))
	return min(max(wait, retryAfter), d.cfg.MaxBackoff)
}
