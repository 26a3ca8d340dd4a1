package mysql

import (
	"github.com/prometheus/client_golang/prometheus"
)

var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 30, 20)

// Metrics are the MySQL protocol's series in one process. They share names
// (and help texts) with the Postgres series and differ by the constant label
// protocol="mysql", so dashboards work across protocols.
type Metrics struct {
	setup          prometheus.Histogram
	sessions       *prometheus.CounterVec // connection, outcome
	active         prometheus.Gauge
	refusals       *prometheus.CounterVec // reason
	bytes          *prometheus.CounterVec // direction
	denials        *prometheus.CounterVec // reason
	guardDecisions *prometheus.CounterVec // rule, outcome, path
	masked         *prometheus.CounterVec // detector
	maskFailures   *prometheus.CounterVec // reason
	upstreamDials  *prometheus.CounterVec // outcome
}

// NewMetrics registers the series of one side ("gateway" or "agent") on reg.
// A nil reg gives working but unregistered metrics.
func NewMetrics(reg prometheus.Registerer, side string) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	cl := prometheus.Labels{"protocol": Name}
	m := &Metrics{
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_session_setup_seconds", ConstLabels: cl,
			Help: "Time from accepting a client to its session being ready (authentication, authorisation, tunnel, upstream login).", Buckets: latencyBuckets}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sessions_total", ConstLabels: cl,
			Help: "Sessions ended, by connection and outcome (ok, error); sessions refused before they start are sluice_session_refusals_total."}, []string{"connection", "outcome"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_sessions_active", ConstLabels: cl,
			Help: "Sessions running now."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_session_refusals_total", ConstLabels: cl,
			Help: "Sessions refused before they started, by reason."}, []string{"reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_relayed_bytes_total", ConstLabels: cl,
			Help: "Bytes relayed, by direction (to_upstream, to_client)."}, []string{"direction"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_statement_denials_total", ConstLabels: cl,
			Help: "Statements denied by guardrails or results withheld by masking, as reported to clients, by reason (guardrail, masking)."}, []string{"reason"}),
		guardDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_guardrail_decisions_total", ConstLabels: cl,
			Help: "Guardrail decisions by rule (none when allowed), outcome (allow, deny) and path (prefilter, parse)."}, []string{"rule", "outcome", "path"}),
		masked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_masked_values_total", ConstLabels: cl,
			Help: "Values masked, by detector (column for column rules)."}, []string{"detector"}),
		maskFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_masking_failures_total", ConstLabels: cl,
			Help: "Results withheld because masking could not be applied (fail closed), by reason."}, []string{"reason"}),
		upstreamDials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_upstream_logins_total", ConstLabels: cl,
			Help: "Upstream logins by the agent, by outcome (ok, error)."}, []string{"outcome"}),
	}
	var cs []prometheus.Collector
	if side == "agent" {
		cs = []prometheus.Collector{m.active, m.bytes, m.guardDecisions, m.masked, m.maskFailures, m.upstreamDials}
	} else {
		cs = []prometheus.Collector{m.setup, m.sessions, m.active, m.refusals, m.bytes, m.denials}
	}
	for _, c := range cs {
		reg.MustRegister(c)
	}
	return m
}
