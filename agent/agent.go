package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sluice-gw/sluice/protocols"
	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/resume"
)

// DialFunc opens one tunnel to the gateway.
type DialFunc func(ctx context.Context) (transport.Tunnel, error)

// Config configures an agent.
type Config struct {
	Name      string              // for logs
	Dial      DialFunc            // e.g. a grpc tunnel dialer for the agent's DSN
	Protocols protocols.Upstreams // the protocols this agent serves
	Logger    *slog.Logger
	// MinBackoff and MaxBackoff bound the redial delay (jittered, doubling).
	MinBackoff, MaxBackoff time.Duration
	// OnTunnel, if set, is told each time a tunnel is up (tests).
	OnTunnel func(transport.Tunnel)
	// Metrics, if nil, are kept unregistered.
	Metrics *Metrics
	// Resume, if set, keeps sessions across tunnel losses (the gateway
	// opens resumable streams and re-attaches them after a reconnect).
	Resume *resume.Registry
}

// Agent runs tunnels and the sessions on them.
type Agent struct {
	cfg Config
	wg  sync.WaitGroup // sessions
	// mu orders starting a session (wg.Add) before Shutdown's wait, or
	// after draining is set: a WaitGroup must not be added to from zero
	// while it is waited on.
	mu       sync.Mutex
	draining bool
	// cancels are the one-shot cancel streams, still served while
	// draining; only Run waits for them.
	cancels sync.WaitGroup
}

// New validates cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Dial == nil || len(cfg.Protocols) == 0 {
		return nil, errors.New("agent: Dial and Protocols are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 5 * time.Second // well inside the resume grace period
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Agent{cfg: cfg}, nil
}

// Run keeps a tunnel up until ctx ends, then waits for its sessions.
func (a *Agent) Run(ctx context.Context) error {
	defer a.cancels.Wait()
	defer a.wg.Wait()
	m := a.cfg.Metrics
	backoff := a.cfg.MinBackoff
	connected := false
	for ctx.Err() == nil {
		t, err := a.cfg.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			m.dials.WithLabelValues("error").Inc()
			wait := jitter(backoff)
			a.cfg.Logger.Warn("tunnel dial failed", "agent", a.cfg.Name, "error", err, "retry_in", wait.Round(time.Millisecond))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			backoff = min(backoff*2, a.cfg.MaxBackoff)
			continue
		}
		backoff = a.cfg.MinBackoff
		m.dials.WithLabelValues("ok").Inc()
		if connected {
			m.reconnect.Inc()
		}
		connected = true
		m.up.Set(1)
		a.cfg.Logger.Info("tunnel up", "agent", a.cfg.Name)
		if a.cfg.OnTunnel != nil {
			a.cfg.OnTunnel(t)
		}
		err = a.serve(ctx, t)
		t.Close()
		m.up.Set(0)
		if ctx.Err() == nil {
			a.cfg.Logger.Warn("tunnel down", "agent", a.cfg.Name, "error", err)
			select { // never spin on a gateway that accepts and drops at once
			case <-time.After(jitter(a.cfg.MinBackoff)):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// serve accepts streams on t until it fails.
func (a *Agent) serve(ctx context.Context, t transport.Tunnel) error {
	for {
		s, h, err := t.AcceptStream(ctx)
		if err != nil {
			return err
		}
		if h.Kind == resume.KindResume {
			if a.cfg.Resume == nil {
				s.Close()
				continue
			}
			// Replays can be large: not on the accept loop.
			go a.cfg.Resume.Resume(s, h)
			continue
		}
		p, ok := a.cfg.Protocols[h.Protocol]
		if !ok {
			a.cfg.Logger.Warn("stream for unknown protocol", "protocol", h.Protocol, "session", h.SessionID)
			a.cfg.Metrics.refused.WithLabelValues("unknown_protocol").Inc()
			if h.Kind == resume.KindResumable && a.cfg.Resume != nil {
				// Say why: a plain close would look like a lost session
				// to the gateway, which would then try to resume it.
				rs, _ := a.cfg.Resume.Accept(s, h)
				rs.CloseWithReason("agent " + a.cfg.Name + " does not serve protocol " + h.Protocol)
				continue
			}
			s.Close()
			continue
		}
		var stream transport.Stream = s
		if h.Kind == resume.KindResumable {
			if a.cfg.Resume == nil {
				s.Close()
				continue
			}
			stream, h = a.cfg.Resume.Accept(s, h)
		}
		if h.Kind == transport.KindCancel {
			a.cancels.Add(1)
			go func() {
				defer a.cancels.Done()
				p.ServeStream(ctx, stream, h)
			}()
			continue
		}
		a.mu.Lock()
		if a.draining {
			a.mu.Unlock()
			a.cfg.Metrics.refused.WithLabelValues("draining").Inc()
			if rs, ok := stream.(*resume.Stream); ok {
				rs.CloseWithReason("agent " + a.cfg.Name + " is shutting down")
			} else {
				stream.Close()
			}
			continue
		}
		a.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer a.wg.Done()
			p.ServeStream(ctx, stream, h)
		}()
	}
}

// Shutdown drains the agent: new sessions are refused, running ones may
// finish for up to timeout; the rest are then ended, and their clients told
// the agent is shutting down. Cancel Run's context afterwards.
func (a *Agent) Shutdown(timeout time.Duration) {
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(timeout):
	}
	if a.cfg.Resume == nil {
		return // plain streams end with Run's context
	}
	// CloseAll returns once the gateway has been told: cancelling Run's
	// context next closes the tunnel, which would lose the reasons still
	// on their way (the clients would wait out the resume grace period
	// and be told the tunnel was down).
	a.cfg.Resume.CloseAll("agent " + a.cfg.Name + " is shutting down")
	// Let the sessions close their upstream connections before the
	// caller cancels Run's context.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// jitter spreads d over [d/2, d) so agents don't redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
