package postgres

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span 50 µs to 30 s: a loopback round trip to a long query.
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 30, 20)

// Metrics are the Postgres protocol's series in one process (gateway or
// agent). Label values come from bounded sets: protocol, connection names
// (admin-configured), outcomes and reasons (fixed lists), stages, rules and
// detector names (configured). No SQL text or user input ever is a label.
type Metrics struct {
	setup          prometheus.Histogram
	sessions       *prometheus.CounterVec // connection, outcome
	active         prometheus.Gauge
	refusals       *prometheus.CounterVec // reason
	statement      *prometheus.HistogramVec
	overhead       *prometheus.HistogramVec // stage
	bytes          *prometheus.CounterVec   // direction
	queries        *prometheus.CounterVec   // connection
	queryTime      *prometheus.CounterVec
	transactions   *prometheus.CounterVec
	xactTime       *prometheus.CounterVec
	clientWait     prometheus.Counter
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
	stmtHelp := "Statement latency (simple Query or extended-protocol Sync to ReadyForQuery) as the client sees it at the gateway."
	if side == "agent" {
		stmtHelp = "Statement latency (Query or Sync to ReadyForQuery) of the upstream server as the agent sees it."
	}
	pfx := "sluice_"
	if side == "agent" {
		pfx = "sluice_upstream_"
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
		statement: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: pfx + "statement_duration_seconds", ConstLabels: cl,
			Help: stmtHelp, Buckets: latencyBuckets}, []string{"connection"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_proxy_overhead_seconds", ConstLabels: cl,
			Help: "Time a batch of messages spends inside this process, from the read returning to the write returning, by stage (relay, inspect).", Buckets: latencyBuckets}, []string{"stage"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_relayed_bytes_total", ConstLabels: cl,
			Help: "Bytes relayed, by direction (to_upstream, to_client)."}, []string{"direction"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: pfx + "queries_total", ConstLabels: cl,
			Help: "Statements completed (pgbouncer's total_query_count)."}, []string{"connection"}),
		queryTime: prometheus.NewCounterVec(prometheus.CounterOpts{Name: pfx + "query_seconds_total", ConstLabels: cl,
			Help: "Time spent in statements (pgbouncer's total_query_time)."}, []string{"connection"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: pfx + "transactions_total", ConstLabels: cl,
			Help: "Transactions completed: the server went idle (pgbouncer's total_xact_count)."}, []string{"connection"}),
		xactTime: prometheus.NewCounterVec(prometheus.CounterOpts{Name: pfx + "transaction_seconds_total", ConstLabels: cl,
			Help: "Time spent in transactions (pgbouncer's total_xact_time)."}, []string{"connection"}),
		clientWait: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_client_wait_seconds_total", ConstLabels: cl,
			Help: "Time clients waited for their session to become ready (pgbouncer's total_wait_time)."}),
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
		cs = []prometheus.Collector{m.active, m.statement, m.overhead, m.bytes, m.queries, m.queryTime, m.transactions, m.xactTime,
			m.guardDecisions, m.masked, m.maskFailures, m.upstreamDials}
	} else {
		cs = []prometheus.Collector{m.setup, m.sessions, m.active, m.refusals, m.statement, m.overhead, m.bytes, m.queries,
			m.queryTime, m.transactions, m.xactTime, m.clientWait, m.denials}
	}
	for _, c := range cs {
		reg.MustRegister(c)
	}
	return m
}

// sessionMetrics are one session's pre-resolved series: the hot path only
// calls them, never looks a label up.
type sessionMetrics struct {
	statement    prometheus.Observer
	queries      prometheus.Counter
	queryTime    prometheus.Counter
	transactions prometheus.Counter
	xactTime     prometheus.Counter
	relay        prometheus.Observer
	inspect      prometheus.Observer
	toUpstream   prometheus.Counter
	toClient     prometheus.Counter
}

func (m *Metrics) session(connection string) *sessionMetrics {
	return &sessionMetrics{
		statement:    m.statement.WithLabelValues(connection),
		queries:      m.queries.WithLabelValues(connection),
		queryTime:    m.queryTime.WithLabelValues(connection),
		transactions: m.transactions.WithLabelValues(connection),
		xactTime:     m.xactTime.WithLabelValues(connection),
		relay:        m.overhead.WithLabelValues("relay"),
		inspect:      m.overhead.WithLabelValues("inspect"),
		toUpstream:   m.bytes.WithLabelValues("to_upstream"),
		toClient:     m.bytes.WithLabelValues("to_client"),
	}
}

// stmtClock times statements: requests (Query, Sync, FunctionCall) start a
// clock, each ReadyForQuery stops the oldest one. Pipelined requests queue
// up to a bound; beyond it timing pauses until the queue drains, so memory
// stays bounded and counts stay right.
type stmtClock struct {
	m       *sessionMetrics
	ring    [256]time.Time
	head    uint32 // written by the request side
	tail    uint32 // written by the response side
	overrun bool
	xact    time.Time // start of the current transaction (zero when idle)
}

// start is called by the request side.
func (c *stmtClock) start(now time.Time) {
	h, t := c.head, loadU32(&c.tail)
	if h-t >= uint32(len(c.ring)) {
		c.overrun = true // not timed; ReadyForQuery for it finds the ring short
		return
	}
	c.ring[h%uint32(len(c.ring))] = now
	storeU32(&c.head, h+1)
}

// done is called by the response side at ReadyForQuery with its status.
func (c *stmtClock) done(now time.Time, status byte) {
	h, t := loadU32(&c.head), c.tail
	if h == t {
		return // an untimed (overrun) statement
	}
	started := c.ring[t%uint32(len(c.ring))]
	storeU32(&c.tail, t+1)
	d := now.Sub(started)
	c.m.statement.Observe(d.Seconds())
	c.m.queries.Inc()
	c.m.queryTime.Add(d.Seconds())
	if c.xact.IsZero() {
		c.xact = started
	}
	if status == 'I' {
		c.m.transactions.Inc()
		c.m.xactTime.Add(now.Sub(c.xact).Seconds())
		c.xact = time.Time{}
	}
}
