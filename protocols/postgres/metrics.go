package postgres

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/protocols"
)

var latencyBuckets = protocols.LatencyBuckets

// Metrics are the Postgres protocol's series in one process (gateway or
// agent): the series every protocol shares (protocols.SessionMetrics) plus
// statement timing and pgbouncer-style counters. Label values come from
// bounded sets: connection names (admin-configured), fixed stages. No SQL
// text or user input ever is a label.
type Metrics struct {
	*protocols.SessionMetrics
	statement    *prometheus.HistogramVec // connection
	overhead     *prometheus.HistogramVec // stage
	queries      *prometheus.CounterVec   // connection
	queryTime    *prometheus.CounterVec
	transactions *prometheus.CounterVec
	xactTime     *prometheus.CounterVec
	clientWait   prometheus.Counter
}

// NewMetrics registers the series of one side ("gateway" or "agent") on reg.
// A nil reg gives working but unregistered metrics.
func NewMetrics(reg prometheus.Registerer, side string) *Metrics {
	stmtHelp := "Statement latency (simple Query or extended-protocol Sync to ReadyForQuery) as the client sees it at the gateway."
	pfx := "sluice_"
	if side == "agent" {
		stmtHelp = "Statement latency (Query or Sync to ReadyForQuery) of the upstream server as the agent sees it."
		pfx = "sluice_upstream_"
	}
	cl := prometheus.Labels{"protocol": Name}
	perConn := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: pfx + name, Help: help, ConstLabels: cl}, []string{"connection"})
	}
	m := &Metrics{
		SessionMetrics: protocols.NewSessionMetrics(reg, Name, side),
		statement: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: pfx + "statement_duration_seconds", ConstLabels: cl,
			Help: stmtHelp, Buckets: latencyBuckets}, []string{"connection"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_proxy_overhead_seconds", ConstLabels: cl,
			Help: "Time a batch of messages spends inside this process, from the read returning to the write returning, by stage (relay, inspect).", Buckets: latencyBuckets}, []string{"stage"}),
		queries:      perConn("queries_total", "Statements completed (pgbouncer's total_query_count)."),
		queryTime:    perConn("query_seconds_total", "Time spent in statements (pgbouncer's total_query_time)."),
		transactions: perConn("transactions_total", "Transactions completed: the server went idle (pgbouncer's total_xact_count)."),
		xactTime:     perConn("transaction_seconds_total", "Time spent in transactions (pgbouncer's total_xact_time)."),
		clientWait: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_client_wait_seconds_total", ConstLabels: cl,
			Help: "Time clients waited for their session to become ready (pgbouncer's total_wait_time)."}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.statement, m.overhead, m.queries, m.queryTime, m.transactions, m.xactTime)
	if side != "agent" {
		reg.MustRegister(m.clientWait)
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
		toUpstream:   m.Bytes.WithLabelValues("to_upstream"),
		toClient:     m.Bytes.WithLabelValues("to_client"),
	}
}

// stmtClock times statements: requests (Query, Sync, FunctionCall) start a
// clock, each ReadyForQuery stops the oldest one. Pipelined requests queue
// up to a bound; beyond it timing pauses until the queue drains, so memory
// stays bounded and counts stay right.
type stmtClock struct {
	m       *sessionMetrics
	ring    [256]time.Time
	head    atomic.Uint32 // written by the request side
	tail    atomic.Uint32 // written by the response side
	overrun bool
	xact    time.Time // start of the current transaction (zero when idle)
}

// start is called by the request side.
func (c *stmtClock) start(now time.Time) {
	h, t := c.head.Load(), c.tail.Load()
	if h-t >= uint32(len(c.ring)) {
		c.overrun = true // not timed; ReadyForQuery for it finds the ring short
		return
	}
	c.ring[h%uint32(len(c.ring))] = now
	c.head.Store(h + 1)
}

// done is called by the response side at ReadyForQuery with its status.
func (c *stmtClock) done(now time.Time, status byte) {
	h, t := c.head.Load(), c.tail.Load()
	if h == t {
		return // an untimed (overrun) statement
	}
	started := c.ring[t%uint32(len(c.ring))]
	c.tail.Store(t + 1)
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
