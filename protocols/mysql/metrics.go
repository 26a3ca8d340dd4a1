package mysql

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/protocols"
)

// Metrics are the MySQL protocol's series in one process (gateway or
// agent): the series every protocol shares (protocols.SessionMetrics) plus
// statement timing and pgbouncer-style counters under the same names, help
// texts and labels as Postgres's, told apart by protocol="mysql", so one
// dashboard panel covers both. Label values come from bounded sets
// (connection names, fixed stages); no SQL text or user input is a label.
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

// The help texts below must stay byte-for-byte those of
// protocols/postgres/metrics.go: Prometheus refuses a second registration of
// a name with another help text, so a drift would stop the gateway at start.
// TestMetricsRegisterBesidePostgres registers both on one registry.
const (
	helpStatementGateway = "Statement latency (simple Query or extended-protocol Sync to ReadyForQuery) as the client sees it at the gateway."
	helpStatementAgent   = "Statement latency (Query or Sync to ReadyForQuery) of the upstream server as the agent sees it."
	helpOverhead         = "Time a batch of messages spends inside this process, from the read returning to the write returning, by stage (relay, inspect)."
	helpQueries          = "Statements completed (pgbouncer's total_query_count)."
	helpQueryTime        = "Time spent in statements (pgbouncer's total_query_time)."
	helpTransactions     = "Transactions completed: the server went idle (pgbouncer's total_xact_count)."
	helpXactTime         = "Time spent in transactions (pgbouncer's total_xact_time)."
	helpClientWait       = "Time clients waited for their session to become ready (pgbouncer's total_wait_time)."
)

// NewMetrics registers the series of one side ("gateway" or "agent") on reg.
// A nil reg gives working but unregistered metrics.
//
// For MySQL a "statement" is one command that gets a response (COM_QUERY,
// however many statements it holds, COM_STMT_PREPARE, COM_STMT_EXECUTE,
// COM_PING, ...), timed from the command to the last packet of its
// response; a transaction ends when a response leaves the server outside a
// transaction (SERVER_STATUS_IN_TRANS clear).
func NewMetrics(reg prometheus.Registerer, side string) *Metrics {
	stmtHelp, pfx := helpStatementGateway, "sluice_"
	if side == "agent" {
		stmtHelp, pfx = helpStatementAgent, "sluice_upstream_"
	}
	cl := prometheus.Labels{"protocol": Name}
	perConn := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: pfx + name, Help: help, ConstLabels: cl}, []string{"connection"})
	}
	m := &Metrics{
		SessionMetrics: protocols.NewSessionMetrics(reg, Name, side),
		statement: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: pfx + "statement_duration_seconds", ConstLabels: cl,
			Help: stmtHelp, Buckets: protocols.LatencyBuckets}, []string{"connection"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_proxy_overhead_seconds", ConstLabels: cl,
			Help: helpOverhead, Buckets: protocols.LatencyBuckets}, []string{"stage"}),
		queries:      perConn("queries_total", helpQueries),
		queryTime:    perConn("query_seconds_total", helpQueryTime),
		transactions: perConn("transactions_total", helpTransactions),
		xactTime:     perConn("transaction_seconds_total", helpXactTime),
		clientWait: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_client_wait_seconds_total", ConstLabels: cl,
			Help: helpClientWait}),
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
	overhead     prometheus.Observer // of the session's stage
}

func (m *Metrics) session(connection, stage string) *sessionMetrics {
	return &sessionMetrics{
		statement:    m.statement.WithLabelValues(connection),
		queries:      m.queries.WithLabelValues(connection),
		queryTime:    m.queryTime.WithLabelValues(connection),
		transactions: m.transactions.WithLabelValues(connection),
		xactTime:     m.xactTime.WithLabelValues(connection),
		overhead:     m.overhead.WithLabelValues(stage),
	}
}

// stmtTimer turns ended responses into statement and transaction figures.
// Used by the goroutine that reads responses only.
type stmtTimer struct {
	m       *sessionMetrics
	xact    time.Time // start of the current transaction (zero when idle)
	inTrans bool      // the last status the server reported
}

// done records a command started at start whose response ended at now with
// the packet described by pi. An ERR carries no status: the transaction
// state stays what it was (MySQL keeps a transaction open after most
// errors, and an autocommit statement that fails ends its own).
func (t *stmtTimer) done(start, now time.Time, pi packetInfo) {
	d := now.Sub(start)
	t.m.statement.Observe(d.Seconds())
	t.m.queries.Inc()
	t.m.queryTime.Add(d.Seconds())
	if t.xact.IsZero() {
		t.xact = start
	}
	if pi.hasStatus {
		t.inTrans = pi.status&statusInTrans != 0
	}
	if !t.inTrans {
		t.m.transactions.Inc()
		t.m.xactTime.Add(now.Sub(t.xact).Seconds())
		t.xact = time.Time{}
	}
}

// cmdRing is the gateway's queue of commands forwarded and not yet
// answered, for timing: the request side pushes, the response side pops.
// It is bounded: a client that pipelines more than its size stops timing
// for the rest of the session (lost), as framing would be guesswork after.
type cmdRing struct {
	ring [256]pendingCmd
	head atomic.Uint32 // written by the request side
	tail atomic.Uint32 // written by the response side
	lost atomic.Bool
}

type pendingCmd struct {
	kind respKind
	at   time.Time
}

func (q *cmdRing) push(k respKind, at time.Time) {
	if q.lost.Load() {
		return
	}
	h, t := q.head.Load(), q.tail.Load()
	if h-t >= uint32(len(q.ring)) {
		q.lost.Store(true)
		return
	}
	q.ring[h%uint32(len(q.ring))] = pendingCmd{k, at}
	q.head.Store(h + 1)
}

func (q *cmdRing) front() (pendingCmd, bool) {
	h, t := q.head.Load(), q.tail.Load()
	if h == t || q.lost.Load() {
		return pendingCmd{}, false
	}
	return q.ring[t%uint32(len(q.ring))], true
}

func (q *cmdRing) pop() { q.tail.Add(1) }
