package audit

import "github.com/prometheus/client_golang/prometheus"

// metrics are one spool's series, labelled sink="sessions" or "statements".
// Children are resolved once here, so nothing on the data path looks a
// label up.
type metrics struct {
	refused prometheus.Counter // spool_full outcome="refused"
	waited  prometheus.Counter // spool_full outcome="waited"

	lostFull   prometheus.Counter // lost reason="queue_full"
	lostClosed prometheus.Counter // lost reason="closed"
	lostWrite  prometheus.Counter // lost reason="write_failed"

	written prometheus.Counter
}

// newMetrics builds the series of sink; depth reads the queue length at
// scrape time. A nil reg leaves them unregistered.
func newMetrics(reg prometheus.Registerer, sink string, depth func() float64) *metrics {
	cl := prometheus.Labels{"sink": sink}
	full := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_audit_spool_full_total",
		Help:        "Times the audit spool was full, by sink and outcome: refused (a new session was refused because the spool was above its high-water mark), waited (a record waited for room: backpressure). Records lost count in sluice_audit_records_lost_total.",
		ConstLabels: cl}, []string{"outcome"})
	lost := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_audit_records_lost_total",
		Help:        "Audit records lost, by sink and reason: queue_full (no room within the maximum stall), closed (offered after Close), write_failed (the store rejected their batch on every attempt). Each loss is also logged.",
		ConstLabels: cl}, []string{"reason"})
	written := prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_audit_records_written_total",
		Help: "Audit records committed to the store, by sink.", ConstLabels: cl})
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_audit_queue_depth",
		Help: "Audit records queued and not yet committed, by sink.", ConstLabels: cl}, depth)
	m := &metrics{
		refused:    full.WithLabelValues("refused"),
		waited:     full.WithLabelValues("waited"),
		lostFull:   lost.WithLabelValues("queue_full"),
		lostClosed: lost.WithLabelValues("closed"),
		lostWrite:  lost.WithLabelValues("write_failed"),
		written:    written,
	}
	if reg != nil {
		reg.MustRegister(full, lost, written, gauge)
	}
	return m
}
