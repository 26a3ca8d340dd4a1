package resume

import (
	"strconv"
	"sync"
	"time"

	"github.com/sluice-gw/sluice/transport"
)

// Registry is the agent side: it wraps the session streams the gateway opens
// as resumable and re-attaches them when the gateway resumes them. A stream
// whose tunnel stays away longer than the grace period ends, and with it the
// session's upstream connection.
type Registry struct {
	sh *shared

	mu      sync.Mutex
	streams map[string]*Stream
}

// NewRegistry returns an empty registry.
func NewRegistry(o Options) *Registry {
	return &Registry{sh: newShared(o, "agent"), streams: make(map[string]*Stream)}
}

// Accept wraps u, a KindResumable stream, and returns the stream to serve
// and h as a plain session header.
func (r *Registry) Accept(u transport.Stream, h transport.Header) (*Stream, transport.Header) {
	s := newStream(r.sh, h.SessionID, u)
	s.onLost = func(s *Stream, gen uint64, _ error) { r.armGrace(s, gen) }
	s.onEnd = func(s *Stream) {
		r.mu.Lock()
		if r.streams[s.id] == s {
			delete(r.streams, s.id)
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	if old := r.streams[h.SessionID]; old != nil {
		defer old.Close() // a session ID is never reused; be safe anyway
	}
	r.streams[h.SessionID] = s
	r.mu.Unlock()
	h.Kind = transport.KindSession
	return s, h
}

// armGrace ends s unless it is re-attached in time. The agent waits a
// little longer than the gateway, whose timer decides.
func (r *Registry) armGrace(s *Stream, gen uint64) {
	grace := r.sh.o.Grace + r.sh.o.Grace/4 + time.Second
	time.AfterFunc(grace, func() {
		s.mu.Lock()
		expired := s.err == nil && s.under == nil && s.gen == gen
		s.mu.Unlock()
		if expired {
			r.sh.o.Metrics.Resumes.WithLabelValues("expired").Inc()
			r.sh.o.Logger.Info("session not resumed in time; closing its upstream connection", "session", s.id)
			s.fail(&Error{ErrGraceExpired, "the tunnel to the gateway was down for more than " + r.sh.o.Grace.String()})
		}
	})
}

// Resume handles a KindResume stream: it re-attaches the named session, or
// answers why it cannot and closes u. It replays what the gateway missed, so
// call it on its own goroutine, not the accept loop's.
func (r *Registry) Resume(u transport.Stream, h transport.Header) {
	if reason, ok := h.Params[paramClose]; ok {
		r.mu.Lock()
		s := r.streams[h.SessionID]
		r.mu.Unlock()
		if s != nil {
			s.fail(&Error{ErrClosedByPeer, reason})
		}
		refuse(u, "closed")
		return
	}
	peerRecv, err := strconv.ParseUint(h.Params[paramRecv], 10, 64)
	if err != nil {
		refuse(u, "malformed resume request")
		return
	}
	r.mu.Lock()
	s := r.streams[h.SessionID]
	r.mu.Unlock()
	if s == nil {
		r.sh.o.Metrics.Resumes.WithLabelValues("lost").Inc()
		refuse(u, "the agent has no such session (it restarted, or the session ended while the tunnel was down)")
		return
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if err := s.attach(u, peerRecv, true); err != nil {
		refuse(u, err.Error())
		// A stale attachment was dropped on the way: make sure the
		// detached stream's grace runs.
		s.mu.Lock()
		detached, g := s.err == nil && s.under == nil, s.gen
		s.mu.Unlock()
		if detached && g != gen {
			r.armGrace(s, g)
		}
	}
}

// CloseAll ends every session with reason, which the gateway passes on to
// the clients (agent shutdown). It returns once the gateway has been told
// (a few seconds at most), so that the tunnel may be closed afterwards
// without losing the reasons on the way.
func (r *Registry) CloseAll(reason string) {
	r.mu.Lock()
	all := make([]*Stream, 0, len(r.streams))
	for _, s := range r.streams {
		all = append(all, s)
	}
	r.mu.Unlock()
	var told []<-chan struct{}
	for _, s := range all {
		if c := s.closeWithReason(reason); c != nil {
			told = append(told, c)
		}
	}
	for _, c := range told {
		<-c
	}
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

func refuse(u transport.Stream, reason string) {
	go func() {
		t := time.AfterFunc(5*time.Second, func() { u.Close() })
		defer t.Stop()
		if _, err := u.Write(closeFrame(reason)); err == nil {
			u.CloseWrite()
			goodbye(u)
		}
		u.Close()
	}()
}
