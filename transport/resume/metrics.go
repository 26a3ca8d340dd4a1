package resume

import "github.com/prometheus/client_golang/prometheus"

// Metrics are one side's resume series.
type Metrics struct {
	// Detached is the number of sessions waiting for their tunnel.
	Detached prometheus.Gauge
	// Resumes counts resume attempts' outcomes: ok, expired, lost, gap.
	Resumes *prometheus.CounterVec
	// Replayed counts bytes sent again after a resume.
	Replayed prometheus.Counter
	// Forgotten counts unacknowledged bytes dropped from a full replay
	// buffer; a resume that needs them fails.
	Forgotten prometheus.Counter
}

// NewMetrics registers side's ("gateway" or "agent") series on reg; a nil
// reg keeps them unregistered.
func NewMetrics(reg prometheus.Registerer, side string) *Metrics {
	m := &Metrics{
		Detached: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_" + side + "_sessions_detached",
			Help: "Sessions whose tunnel is down, waiting to resume.",
		}),
		Resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_" + side + "_session_resumes_total",
			Help: "Session resumptions after a tunnel loss, by result (ok, expired, lost, gap).",
		}, []string{"result"}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_" + side + "_session_replayed_bytes_total",
			Help: "Session bytes sent again after a resume.",
		}),
		Forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_" + side + "_session_replay_overflow_bytes_total",
			Help: "Unacknowledged session bytes dropped from a full replay buffer (a resume needing them fails).",
		}),
	}
	for _, r := range []string{"ok", "expired", "lost", "gap"} {
		m.Resumes.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Detached, m.Resumes, m.Replayed, m.Forgotten)
	}
	return m
}
