package resume

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-gw/sluice/transport"
)

// Opener opens streams to agents by name; transport.Hub implements it.
type Opener interface {
	Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error)
}

// Dispatcher is the gateway side: it opens session streams as resumable
// streams and, when one loses its tunnel, re-attaches it to the agent's next
// tunnel within the grace period. It implements protocols.Dispatcher.
type Dispatcher struct {
	next Opener
	sh   *shared

	mu      sync.Mutex
	byAgent map[string]map[*Stream]struct{}
}

// NewDispatcher wraps next.
func NewDispatcher(next Opener, o Options) *Dispatcher {
	return &Dispatcher{next: next, sh: newShared(o, "gateway"), byAgent: make(map[string]map[*Stream]struct{})}
}

// EndAgent ends every session of agent at once with reason, instead of
// waiting for a tunnel that will not come back (its key was revoked).
func (d *Dispatcher) EndAgent(agent, reason string) {
	d.mu.Lock()
	var all []*Stream
	for s := range d.byAgent[agent] {
		all = append(all, s)
	}
	d.mu.Unlock()
	for _, s := range all {
		s.fail(&Error{ErrSessionLost, reason})
	}
}

// Open opens a stream to agent. Session streams are resumable; other kinds
// (cancel requests) pass through.
func (d *Dispatcher) Open(ctx context.Context, agent string, h transport.Header) (transport.Stream, error) {
	if h.Kind != transport.KindSession || d.sh.o.Grace < 0 {
		return d.next.Open(ctx, agent, h)
	}
	rh := h
	rh.Kind = KindResumable
	u, err := d.next.Open(ctx, agent, rh)
	if err != nil {
		return nil, err
	}
	s := newStream(d.sh, h.SessionID, u)
	s.onLost = func(s *Stream, _ uint64, _ error) { go d.reconnect(s, agent, h) }
	s.onEnd = func(s *Stream) {
		d.mu.Lock()
		delete(d.byAgent[agent], s)
		if len(d.byAgent[agent]) == 0 {
			delete(d.byAgent, agent)
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	if d.byAgent[agent] == nil {
		d.byAgent[agent] = make(map[*Stream]struct{})
	}
	d.byAgent[agent][s] = struct{}{}
	d.mu.Unlock()
	return s, nil
}

// reconnect re-attaches s until it works, the agent says the session is
// gone, or the grace period ends.
func (d *Dispatcher) reconnect(s *Stream, agent string, h transport.Header) {
	o := d.sh.o
	deadline := o.Now().Add(o.Grace)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.Done():
			// Ended here while detached (client left, agent removed):
			// tell the agent, or it holds the upstream for its grace.
			go d.tellEnded(s, agent, h)
			return
		default:
		}
		left := deadline.Sub(o.Now())
		if left <= 0 {
			o.Metrics.Resumes.WithLabelValues("expired").Inc()
			s.fail(&Error{ErrGraceExpired, fmt.Sprintf("the tunnel to agent %s was down for more than %s", agent, o.Grace)})
			return
		}
		err := d.resumeOnce(s, agent, h, min(left, 5*time.Second))
		if err == nil {
			return
		}
		var e *Error
		if errors.As(err, &e) {
			switch e.Cause {
			case ErrSessionLost:
				o.Metrics.Resumes.WithLabelValues("lost").Inc()
			case ErrReplayGap:
				o.Metrics.Resumes.WithLabelValues("gap").Inc()
			}
			s.fail(e)
			return
		}
		if errors.Is(err, errClosed) {
			return
		}
		select { // agent offline or its old tunnel still half-open: try again
		case <-time.After(min(backoff, left)):
		case <-s.Done():
			go d.tellEnded(s, agent, h)
			return
		}
		backoff = min(backoff*2, time.Second)
	}
}

// tellEnded tells the agent that a session which ended on the gateway while
// detached is over: a close-only resume request (best effort, bounded).
func (d *Dispatcher) tellEnded(s *Stream, agent string, h transport.Header) {
	reason := "the gateway ended the session"
	if e, ok := s.Err().(*Error); ok && e.Reason != "" {
		reason = e.Reason
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := d.next.Open(ctx, agent, transport.Header{SessionID: h.SessionID, Kind: KindResume, Protocol: h.Protocol,
		Params: map[string]string{paramClose: reason}})
	if err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { u.Close() })
	defer stop()
	readHello(u) // the agent answers with a close frame once it has ended the session
	u.Close()
}

// resumeOnce makes one attempt; an *Error is final.
func (d *Dispatcher) resumeOnce(s *Stream, agent string, h transport.Header, budget time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	rh := transport.Header{
		SessionID:  h.SessionID,
		Kind:       KindResume,
		Connection: h.Connection,
		Protocol:   h.Protocol,
		User:       h.User,
		Params:     map[string]string{paramRecv: strconv.FormatUint(s.received(), 10)},
	}
	u, err := d.next.Open(ctx, agent, rh)
	if err != nil {
		return err
	}
	// The agent answers at once; bound the wait by the attempt's budget.
	stopWait := context.AfterFunc(ctx, func() { u.Close() })
	peerRecv, err := readHello(u)
	if !stopWait() {
		u.Close()
		return context.DeadlineExceeded
	}
	if err != nil {
		u.Close()
		var e *Error
		if errors.As(err, &e) && e.Cause == ErrClosedByPeer {
			return &Error{ErrSessionLost, fmt.Sprintf("agent %s could not resume the session: %s", agent, e.Reason)}
		}
		return err
	}
	if err := s.attach(u, peerRecv, false); err != nil {
		// The agent has attached u and replays on it: tell it the session
		// is over, or it would hold the upstream connection until its own
		// grace period ends.
		reason := "the gateway ended the session"
		if e, ok := err.(*Error); ok && e.Reason != "" {
			reason = e.Reason
		}
		refuse(u, reason)
		if errors.Is(err, ErrReplayGap) {
			return err // found by this attempt
		}
		return errClosed // the session had ended meanwhile: not the resume's outcome
	}
	return nil
}

// readHello reads the agent's first frame on a resume stream: 'R' with its
// received count, or 'X' with why it cannot resume.
func readHello(u io.Reader) (uint64, error) {
	var b [9]byte
	if _, err := io.ReadFull(u, b[:1]); err != nil {
		return 0, err
	}
	switch b[0] {
	case frameHello:
		if _, err := io.ReadFull(u, b[1:9]); err != nil {
			return 0, err
		}
		return binary.BigEndian.Uint64(b[1:9]), nil
	case frameClose:
		if _, err := io.ReadFull(u, b[1:3]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint16(b[1:3])
		if n > maxReason {
			return 0, &Error{ErrProtocol, "close reason too long"}
		}
		reason := make([]byte, n)
		if _, err := io.ReadFull(u, reason); err != nil {
			return 0, err
		}
		return 0, &Error{ErrClosedByPeer, string(reason)}
	}
	return 0, &Error{ErrProtocol, fmt.Sprintf("unexpected frame %#x on a resume stream", b[0])}
}
