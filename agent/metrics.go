package agent

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the agent runtime's tunnel series.
type Metrics struct {
	dials     *prometheus.CounterVec // outcome
	reconnect prometheus.Counter
	up        prometheus.Gauge
	refused   *prometheus.CounterVec // reason
}

// NewMetrics registers the agent runtime's series on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_tunnel_dials_total",
			Help: "Tunnel dials to the gateway, by outcome (ok, error)."}, []string{"outcome"}),
		reconnect: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_tunnel_reconnects_total",
			Help: "Tunnels re-established after one was lost."}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_tunnel_up",
			Help: "1 while the agent has a live tunnel to the gateway (the agent is online), else 0."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_streams_refused_total",
			Help: "Session streams the agent refused, by reason (unknown_protocol)."}, []string{"reason"}),
	}
	reg.MustRegister(m.dials, m.reconnect, m.up, m.refused)
	return m
}
