package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-gw/sluice/internal/server"
)

// scrape fetches and parses a /metrics page, and lints it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d", url, resp.StatusCode)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "sluice_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the counter/gauge value or histogram count of the series of
// name whose labels include want; the series must exist.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, found := lookup(fams, name, want)
	if !found {
		t.Fatalf("no %s series with %v", name, want)
	}
	return v
}

// lookup is value without failing: found is false when no series matches.
func lookup(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	total, found := 0.0, false
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total, found
}

func TestMetricsAfterPsqlSession(t *testing.T) {
	policyConn(t) // tables
	reg := server.NewAgentRegistry()
	dsn := E.createAgent("metrics-agent")
	a, err := server.NewAgent(server.AgentConfig{DSN: dsn, Logger: testLogger(), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	agentMetrics := httptest.NewServer(server.MetricsHandler(reg))
	defer agentMetrics.Close()
	if err := E.waitOnline("metrics-agent"); err != nil {
		t.Fatal(err)
	}
	E.must("PUT", "/api/v1/connections/pg-metrics", map[string]any{"agent": "metrics-agent", "target": E.pg.URL("app", "app-secret", "app"),
		"guardrails": map[string]any{"deny": []string{"drop"}}, "masking": map[string]any{"columns": []string{"customers.email"}}})

	_, errOut, _ := runTool(t, nil, E.psql, E.conninfo("pg-metrics", E.aliceToken), "-X", "-q",
		"-c", "SELECT email FROM customers", "-c", "DROP TABLE customers", "-c", "SELECT 1")
	if !strings.Contains(errOut, `guardrail "drop"`) {
		t.Fatalf("denial not seen: %s", errOut)
	}

	conn := map[string]string{"connection": "pg-metrics"}
	var gw map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		gw = scrape(t, "http://"+E.gw.APIAddr+"/metrics")
		if v, ok := lookup(gw, "sluice_sessions_total", conn); ok && v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session never counted")
		}
	}
	ag := scrape(t, agentMetrics.URL+"/metrics")
	checks := []struct {
		fams   map[string]*dto.MetricFamily
		name   string
		labels map[string]string
		want   float64
	}{
		{gw, "sluice_sessions_total", map[string]string{"connection": "pg-metrics", "outcome": "ok", "protocol": "postgres"}, 1},
		{gw, "sluice_statement_duration_seconds", conn, 3},
		{gw, "sluice_queries_total", conn, 3},
		{gw, "sluice_transactions_total", conn, 3},
		{gw, "sluice_statement_denials_total", map[string]string{"reason": "guardrail"}, 1},
		{ag, "sluice_upstream_statement_duration_seconds", conn, 3},
		{ag, "sluice_upstream_queries_total", conn, 3},
		{ag, "sluice_guardrail_decisions_total", map[string]string{"rule": "drop", "outcome": "deny", "path": "parse"}, 1},
		{ag, "sluice_masked_values_total", map[string]string{"detector": "column"}, 2},
		{ag, "sluice_tunnel_up", nil, 1},
	}
	for _, c := range checks {
		if got := value(t, c.fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"sluice_session_setup_seconds", "sluice_proxy_overhead_seconds", "sluice_relayed_bytes_total",
		"sluice_client_wait_seconds_total", "sluice_tunnel_rtt_seconds", "sluice_agent_online", "sluice_sessions_active", "sluice_session_refusals_total"} {
		if gw[name] == nil && name != "sluice_tunnel_rtt_seconds" && name != "sluice_session_refusals_total" {
			t.Errorf("gateway series %s missing", name)
		}
	}
	if v := value(t, gw, "sluice_agent_online", map[string]string{"agent": "metrics-agent"}); v != 1 {
		t.Errorf("sluice_agent_online{agent=metrics-agent} = %v", v)
	}
	if value(t, ag, "sluice_relayed_bytes_total", map[string]string{"direction": "to_client"}) == 0 {
		t.Error("agent counted no bytes to the client")
	}
}
