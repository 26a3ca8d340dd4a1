package webhook

import "github.com/prometheus/client_golang/prometheus"

// Results of sluice_webhook_deliveries_total. ok, retry and failed count HTTP
// attempts; dead_letter counts events put in the dead-letter list, for any
// reason (broken down in sluice_webhook_dead_letters_total).
const (
	resultOK         = "ok"          // attempt answered 2xx
	resultRetry      = "retry"       // attempt failed, another will follow
	resultFailed     = "failed"      // attempt failed, no other will follow
	resultDeadLetter = "dead_letter" // event recorded as a dead letter
)

// Reasons of sluice_webhook_dead_letters_total and
// sluice_webhook_events_lost_total.
const (
	reasonQueueFull    = "queue_full"   // the endpoint's queue was full at Notify
	reasonRejected     = "rejected"     // a permanent failure: 4xx (not 408/429), 3xx
	reasonExhausted    = "exhausted"    // MaxAttempts attempts all failed
	reasonClosed       = "closed"       // queued or retrying when the Dispatcher closed
	reasonRemoved      = "removed"      // queued or retrying when its endpoint was removed
	reasonUnrenderable = "unrenderable" // the event could not be encoded
	reasonSpillFull    = "spill_full"   // lost: queue and dead-letter spill both full
	reasonStore        = "store"        // lost: DeadLetters.AddDeadLetter failed
)

// durationBuckets span 5 ms to 30 s: a loopback receiver to the attempt timeout.
var durationBuckets = prometheus.ExponentialBucketsRange(0.005, 30, 14)

type metrics struct {
	deliveries  *prometheus.CounterVec   // endpoint, result
	deadLetters *prometheus.CounterVec   // endpoint, reason
	lost        *prometheus.CounterVec   // endpoint, reason
	queue       *prometheus.GaugeVec     // endpoint
	duration    *prometheus.HistogramVec // endpoint
	reloads     *prometheus.CounterVec   // outcome
}

// newMetrics builds the series and registers them on reg; nil leaves them
// unregistered. Label values are endpoint names (configured, bounded) and the
// fixed results, reasons and outcomes above.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_webhook_deliveries_total",
			Help: "Webhook delivery outcomes by endpoint and result: ok, retry and failed count HTTP attempts (failed: no retry follows); dead_letter counts events put in the dead-letter list."},
			[]string{"endpoint", "result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_webhook_dead_letters_total",
			Help: "Webhook events put in the dead-letter list, by endpoint and reason (queue_full, rejected, exhausted, closed, removed, unrenderable)."},
			[]string{"endpoint", "reason"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_webhook_events_lost_total",
			Help: "Webhook events neither delivered nor dead-lettered, by endpoint and reason (spill_full: queue and dead-letter spill both full; store: the dead-letter store failed; closed: notified after shutdown)."},
			[]string{"endpoint", "reason"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_webhook_queue_length",
			Help: "Webhook events waiting in an endpoint's queue (not counting the one being delivered)."},
			[]string{"endpoint"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_webhook_delivery_duration_seconds",
			Help: "Time of one webhook HTTP attempt, from sending the request to reading the answer, any outcome.", Buckets: durationBuckets},
			[]string{"endpoint"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_webhook_reloads_total",
			Help: "Reloads of the webhook endpoint list, by outcome (ok, invalid: some endpoints skipped, error: list kept)."},
			[]string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.deadLetters, m.lost, m.queue, m.duration, m.reloads)
	}
	return m
}

// endpointMetrics are one endpoint's series, resolved once so that the
// delivery loop does no label lookups.
type endpointMetrics struct {
	ok, retry, failed, deadLetter prometheus.Counter
	queue                         prometheus.Gauge
	duration                      prometheus.Observer
}

func (m *metrics) forEndpoint(name string) *endpointMetrics {
	return &endpointMetrics{
		ok:         m.deliveries.WithLabelValues(name, resultOK),
		retry:      m.deliveries.WithLabelValues(name, resultRetry),
		failed:     m.deliveries.WithLabelValues(name, resultFailed),
		deadLetter: m.deliveries.WithLabelValues(name, resultDeadLetter),
		queue:      m.queue.WithLabelValues(name),
		duration:   m.duration.WithLabelValues(name),
	}
}
