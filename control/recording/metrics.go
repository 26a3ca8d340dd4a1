package recording

import "github.com/prometheus/client_golang/prometheus"

// metrics are the recorder's series. Children with labels are resolved once
// here, so nothing on the write path looks a label up.
type metrics struct {
	bytes      prometheus.Counter
	chunks     prometheus.Counter
	spool      prometheus.Gauge
	spoolLimit prometheus.Gauge
	active     prometheus.Gauge
	batchRows  prometheus.Histogram

	spoolRefused prometheus.Counter // outcome="refused"
	spoolWaited  prometheus.Counter // outcome="waited"
	spoolFailed  prometheus.Counter // outcome="failed"

	blobErrors     prometheus.Counter // target="blob"
	manifestErrors prometheus.Counter // target="manifest"

	failedSpool    prometheus.Counter // reason="spool_full"
	failedBlob     prometheus.Counter // reason="blob"
	failedManifest prometheus.Counter // reason="manifest"
}

// newMetrics builds the series and registers them on reg; a nil reg leaves
// them unregistered.
func newMetrics(reg prometheus.Registerer) *metrics {
	spoolFull := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_recording_spool_full_total",
		Help: "Times the recording spool was full, by outcome: refused (a new session was refused), waited (a write waited for room), failed (a running session's recording failed after waiting the maximum stall)."},
		[]string{"outcome"})
	writeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_recording_write_errors_total",
		Help: "Failed attempts to write recording chunks, by target (blob, manifest); attempts are retried before a recording fails."},
		[]string{"target"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_recording_failures_total",
		Help: "Recordings that failed (their sessions must end), by reason (spool_full, blob, manifest)."},
		[]string{"reason"})
	m := &metrics{
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_recording_bytes_written_total",
			Help: "Bytes of recording chunks written to the blob store (frames, headers included)."}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_recording_chunks_written_total",
			Help: "Recording chunks written to the blob store."}),
		spool: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_recording_spool_bytes",
			Help: "Bytes held in the recording spool: recorded but not yet written to the blob store, across all sessions."}),
		spoolLimit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_recording_spool_limit_bytes",
			Help: "Capacity of the recording spool."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_recording_sessions_active",
			Help: "Recordings open now."}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_recording_manifest_batch_rows",
			Help:    "Rows per manifest write (group commit): large under load, 1 when idle.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		spoolRefused:   spoolFull.WithLabelValues("refused"),
		spoolWaited:    spoolFull.WithLabelValues("waited"),
		spoolFailed:    spoolFull.WithLabelValues("failed"),
		blobErrors:     writeErrors.WithLabelValues("blob"),
		manifestErrors: writeErrors.WithLabelValues("manifest"),
		failedSpool:    failures.WithLabelValues("spool_full"),
		failedBlob:     failures.WithLabelValues("blob"),
		failedManifest: failures.WithLabelValues("manifest"),
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.chunks, m.spool, m.spoolLimit, m.active, m.batchRows, spoolFull, writeErrors, failures)
	}
	return m
}
