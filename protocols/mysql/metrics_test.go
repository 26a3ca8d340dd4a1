package mysql

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-gw/sluice/protocols/postgres"
)

func gather(t *testing.T, reg prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric
		}
	}
	return nil
}

// counterValue sums a counter family's series with protocol="mysql".
func counterValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	v := 0.0
	for _, m := range gather(t, reg, name) {
		if hasLabel(m, "protocol", Name) {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

func histogramCount(t *testing.T, reg prometheus.Gatherer, name string) uint64 {
	t.Helper()
	var n uint64
	for _, m := range gather(t, reg, name) {
		if hasLabel(m, "protocol", Name) {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.Label {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestMetricsRegisterBesidePostgres registers both protocols' series on
// one registry per side, as the gateway and the agent do: Prometheus
// refuses the second registration of a name whose help or labels differ.
// It also lints the names.
func TestMetricsRegisterBesidePostgres(t *testing.T) {
	for _, side := range []string{"gateway", "agent"} {
		reg := prometheus.NewPedanticRegistry()
		pg := postgres.NewMetrics(reg, side)
		my := NewMetrics(reg, side)
		_ = pg
		sm := my.session("my-demo", "relay")
		sm.statement.Observe(0.001)
		sm.queries.Inc()
		sm.queryTime.Add(0.001)
		sm.transactions.Inc()
		sm.xactTime.Add(0.001)
		sm.overhead.Observe(1e-5)
		my.clientWait.Add(0.01)
		pfx := "sluice_"
		if side == "agent" {
			pfx = "sluice_upstream_"
		}
		if n := histogramCount(t, reg, pfx+"statement_duration_seconds"); n != 1 {
			t.Fatalf("%s: statement histogram count %d", side, n)
		}
		for _, name := range []string{pfx + "queries_total", pfx + "transactions_total"} {
			if v := counterValue(t, reg, name); v != 1 {
				t.Fatalf("%s: %s = %v", side, name, v)
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: promlint: %s: %s", side, p.Metric, p.Text)
		}
	}
}

func TestStmtTimerTransactions(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, "gateway")
	tm := stmtTimer{m: m.session("c", "relay")}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// autocommit statement: one transaction
	tm.done(at(0), at(2), packetInfo{end: true, hasStatus: true, status: statusAutocommit})
	// BEGIN; UPDATE; an ERR inside (state kept); COMMIT: one transaction of 40 ms
	tm.done(at(10), at(11), packetInfo{end: true, hasStatus: true, status: statusAutocommit | statusInTrans})
	tm.done(at(20), at(25), packetInfo{end: true, hasStatus: true, status: statusAutocommit | statusInTrans})
	tm.done(at(30), at(31), packetInfo{end: true})
	tm.done(at(40), at(50), packetInfo{end: true, hasStatus: true, status: statusAutocommit})
	// an autocommit statement that fails: its own transaction
	tm.done(at(60), at(61), packetInfo{end: true})
	if q := counterValue(t, reg, "sluice_queries_total"); q != 6 {
		t.Fatalf("queries %v", q)
	}
	if x := counterValue(t, reg, "sluice_transactions_total"); x != 3 {
		t.Fatalf("transactions %v, want 3", x)
	}
	if s := counterValue(t, reg, "sluice_transaction_seconds_total"); s < 0.0429 || s > 0.0431 {
		t.Fatalf("transaction seconds %v, want 0.002+0.040+0.001", s)
	}
}

func TestCmdRingBounded(t *testing.T) {
	var q cmdRing
	now := time.Now()
	for i := range 256 {
		q.push(respText, now.Add(time.Duration(i)))
	}
	if pc, ok := q.front(); !ok || !pc.at.Equal(now) {
		t.Fatal("front")
	}
	q.pop()
	q.push(respPrepare, now)
	if q.lost.Load() {
		t.Fatal("lost with room left")
	}
	q.push(respPrepare, now)
	if !q.lost.Load() {
		t.Fatal("an overrun must stop timing")
	}
	if _, ok := q.front(); ok {
		t.Fatal("front after an overrun")
	}
}
