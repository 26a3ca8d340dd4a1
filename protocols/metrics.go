package protocols

import "github.com/prometheus/client_golang/prometheus"

// LatencyBuckets span 50 µs to 30 s: a loopback round trip to a long query.
var LatencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 30, 20)

// SessionMetrics are the series every protocol shares. Their names and help
// texts are defined here once: each protocol registers its own copy with the
// constant label protocol=NAME, and Prometheus accepts that only when name,
// help and labels agree exactly. Label values come from bounded sets
// (configured connections, rules and detectors; fixed outcomes and reasons).
type SessionMetrics struct {
	Setup          prometheus.Histogram
	Sessions       *prometheus.CounterVec // connection, outcome
	Active         prometheus.Gauge
	Refusals       *prometheus.CounterVec // reason
	Bytes          *prometheus.CounterVec // direction
	Denials        *prometheus.CounterVec // reason
	GuardDecisions *prometheus.CounterVec // rule, outcome, path
	Masked         *prometheus.CounterVec // detector
	MaskFailures   *prometheus.CounterVec // reason
	UpstreamLogins *prometheus.CounterVec // outcome
}

// NewSessionMetrics builds protocol's shared series and registers those of
// one side ("gateway" or "agent") on reg; a nil reg leaves them unregistered.
func NewSessionMetrics(reg prometheus.Registerer, protocol, side string) *SessionMetrics {
	cl := prometheus.Labels{"protocol": protocol}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: cl}, labels)
	}
	m := &SessionMetrics{
		Setup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_session_setup_seconds", ConstLabels: cl, Buckets: LatencyBuckets,
			Help: "Time from accepting a client to its session being ready (authentication, authorisation, tunnel, upstream login)."}),
		Sessions: counter("sluice_sessions_total",
			"Sessions ended, by connection and outcome (ok, error); sessions refused before they start are sluice_session_refusals_total.", "connection", "outcome"),
		Active:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_sessions_active", ConstLabels: cl, Help: "Sessions running now."}),
		Refusals: counter("sluice_session_refusals_total", "Sessions refused before they started, by reason.", "reason"),
		Bytes:    counter("sluice_relayed_bytes_total", "Bytes relayed, by direction (to_upstream, to_client).", "direction"),
		Denials: counter("sluice_statement_denials_total",
			"Statements denied by guardrails or results withheld by masking, as reported to clients, by reason (guardrail, masking).", "reason"),
		GuardDecisions: counter("sluice_guardrail_decisions_total",
			"Guardrail decisions by rule (none when allowed), outcome (allow, deny) and path (prefilter, parse).", "rule", "outcome", "path"),
		Masked: counter("sluice_masked_values_total", "Values masked, by detector (column for column rules).", "detector"),
		MaskFailures: counter("sluice_masking_failures_total",
			"Results withheld because masking could not be applied (fail closed), by reason.", "reason"),
		UpstreamLogins: counter("sluice_upstream_logins_total", "Upstream logins by the agent, by outcome (ok, error).", "outcome"),
	}
	if reg == nil {
		return m
	}
	if side == "agent" {
		reg.MustRegister(m.Active, m.Bytes, m.GuardDecisions, m.Masked, m.MaskFailures, m.UpstreamLogins)
	} else {
		reg.MustRegister(m.Setup, m.Sessions, m.Active, m.Refusals, m.Bytes, m.Denials)
	}
	return m
}
