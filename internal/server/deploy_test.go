package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/sluice-gw/sluice/agent"
	"github.com/sluice-gw/sluice/control/audit"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/sqlite"
	"github.com/sluice-gw/sluice/protocols/postgres"
	"github.com/sluice-gw/sluice/transport"
)

// The files under deploy/ name metrics by string. These tests build the
// gateway's and the agent's registries the way the processes do and fail
// when a dashboard panel or an alert rule names a series neither exports,
// or asks one job for a series only the other job has.

const (
	deployDir    = "../../deploy"
	gatewayJob   = "sluice-gateway"
	agentJob     = "sluice-agent"
	dsVariable   = "${DS_PROMETHEUS}"
	connVarQuery = "label_values(sluice_sessions_total, connection)"
)

// recordingRegisterer registers on a registry and remembers the collectors,
// so that every labelled series can be instantiated once before Gather.
type recordingRegisterer struct {
	*prometheus.Registry
	cs []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// withLabels calls get with 0, 1, 2... placeholder label values until the
// count matches the vector's labels.
func withLabels(get func(...string) error) bool {
	for n := 0; n <= 8; n++ {
		lvs := make([]string, n)
		for i := range lvs {
			lvs[i] = "x"
		}
		if get(lvs...) == nil {
			return true
		}
	}
	return false
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// seriesNames gathers reg after creating one child of every vector that
// was registered through rec, and returns every name a PromQL selector can
// use: the family name, plus _bucket/_sum/_count for histograms and
// _sum/_count for summaries.
func seriesNames(t *testing.T, rec *recordingRegisterer) map[string]bool {
	t.Helper()
	described := map[string]bool{}
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqNameRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			described[m[1]] = true
		}
		ok := true
		switch v := c.(type) {
		case *prometheus.CounterVec:
			ok = withLabels(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
		case *prometheus.GaugeVec:
			ok = withLabels(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
		case *prometheus.HistogramVec:
			ok = withLabels(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
		case *prometheus.SummaryVec:
			ok = withLabels(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
		}
		if !ok {
			t.Fatalf("cannot instantiate a series of %T", c)
		}
	}
	mfs, err := rec.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	// Everything described must have been gathered, or the set is incomplete.
	for n := range described {
		if !names[n] {
			t.Fatalf("%s is described but was not gathered", n)
		}
	}
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !names[want] {
			t.Fatalf("%s missing: the Go/process collectors are not on the registry", want)
		}
	}
	return names
}

// exportedSeries returns the series names of a gateway and of an agent.
func exportedSeries(t *testing.T) (gateway, agentSide map[string]bool) {
	t.Helper()
	// Gateway, as in StartGateway.
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// One agent, so that the per-agent series is collected.
	if err := st.PutAgent(context.Background(), store.Agent{Name: "dc1", KeyHash: "test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sink := audit.New(st, audit.Options{})
	t.Cleanup(func() { sink.Close() })
	gw := &recordingRegisterer{Registry: newRegistry()}
	gw.MustRegister(newGatewayCollector(st, transport.NewHub(), sink))
	newTunnelMetrics(gw)
	postgres.NewMetrics(gw, "gateway")

	// Agent, as in `sluice agent` and NewAgent.
	ag := &recordingRegisterer{Registry: NewAgentRegistry()}
	postgres.NewMetrics(ag, "agent")
	agent.NewMetrics(ag)

	return seriesNames(t, gw), seriesNames(t, ag)
}

// exprChecker validates the metric names in PromQL expressions.
type exprChecker struct {
	jobs map[string]map[string]bool // job name -> series it exports
}

var (
	identRE = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	jobEqRE = regexp.MustCompile(`\bjob\s*(=~|=)\s*"([^"]*)"`)
)

func ourMetric(s string) bool {
	return strings.HasPrefix(s, "sluice_") || strings.HasPrefix(s, "go_") || strings.HasPrefix(s, "process_")
}

// check returns one error per problem in expr: a metric that no process
// exports, a job matcher naming an unknown job or a job that does not
// export the metric, and a metric both jobs export selected without a job
// matcher (which would silently add the gateway's and the agents' values).
func (c exprChecker) check(expr string) []error {
	var errs []error
	for _, loc := range identRE.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		if !ourMetric(name) {
			continue
		}
		var in []string
		for job, names := range c.jobs {
			if names[name] {
				in = append(in, job)
			}
		}
		sort.Strings(in)
		if len(in) == 0 {
			errs = append(errs, fmt.Errorf("%s: no such metric", name))
			continue
		}
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		var jobs []string
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				errs = append(errs, fmt.Errorf("%s: unterminated label matchers", name))
				continue
			}
			for _, m := range jobEqRE.FindAllStringSubmatch(rest[:end], -1) {
				if m[1] == "=~" {
					jobs = append(jobs, strings.Split(m[2], "|")...)
				} else {
					jobs = append(jobs, m[2])
				}
			}
		}
		if len(jobs) == 0 && len(in) > 1 {
			errs = append(errs, fmt.Errorf("%s: exported by %v, select one with a job matcher", name, in))
		}
		for _, job := range jobs {
			names, ok := c.jobs[job]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: unknown job %q", name, job))
			case !names[name]:
				errs = append(errs, fmt.Errorf("%s: job %q does not export it (exported by %v)", name, job, in))
			}
		}
	}
	return errs
}

func newExprChecker(t *testing.T) exprChecker {
	gw, ag := exportedSeries(t)
	return exprChecker{jobs: map[string]map[string]bool{gatewayJob: gw, agentJob: ag}}
}

func TestDeployExprChecker(t *testing.T) {
	c := newExprChecker(t)
	for _, expr := range []string{
		`rate(sluice_does_not_exist[5m])`,
		`sluice_tunnel_up{job="sluice-gateway"} == 0`,                  // an agent series asked of the gateway
		`sluice_masking_failures_total{job="sluice-gateway"}`,          // ditto
		`rate(sluice_sessions_total_bucket{job="sluice-gateway"}[5m])`, // a counter has no buckets
		`sum(sluice_sessions_active)`,                                  // both jobs: must pick one
		`go_goroutines{job=~"sluice-gateway|nope"}`,
	} {
		if errs := c.check(expr); len(errs) == 0 {
			t.Errorf("check(%q) accepted it", expr)
		} else {
			t.Logf("check(%q): %v", expr, errs)
		}
	}
	for _, expr := range []string{
		`histogram_quantile(0.99, sum by (le) (rate(sluice_statement_duration_seconds_bucket{job="sluice-gateway", connection=~"$connection"}[$__rate_interval])))`,
		`sluice_agent_online{job="sluice-gateway"} == 0`,
		`sum by (job) (sluice_sessions_active{job=~"sluice-gateway|sluice-agent"})`,
		`rate(sluice_upstream_queries_total{job="sluice-agent"}[5m])`,
		connVarQuery,
	} {
		if errs := c.check(expr); len(errs) != 0 {
			t.Errorf("check(%q): %v", expr, errs)
		}
	}
}

func readDeploy(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func num(v any) (float64, bool) { f, ok := v.(float64); return f, ok }

func TestDeployGrafanaDashboard(t *testing.T) {
	c := newExprChecker(t)
	var d map[string]any
	if err := json.Unmarshal(readDeploy(t, "grafana/sluice.json"), &d); err != nil {
		t.Fatalf("sluice.json: %v", err)
	}
	if s, _ := d["title"].(string); s == "" {
		t.Error("no title")
	}
	if s, _ := d["uid"].(string); s == "" {
		t.Error("no uid")
	}
	if v, _ := num(d["schemaVersion"]); v != 39 {
		t.Errorf("schemaVersion %v, want 39", d["schemaVersion"])
	}

	// Templating: the datasource variable and the connection variable.
	tmpl, _ := d["templating"].(map[string]any)
	vars, _ := tmpl["list"].([]any)
	byName := map[string]map[string]any{}
	for _, v := range vars {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		byName[name] = m
	}
	if ds := byName["DS_PROMETHEUS"]; ds == nil || ds["type"] != "datasource" || ds["query"] != "prometheus" {
		t.Errorf("templating: want a datasource variable DS_PROMETHEUS of type prometheus, have %v", ds)
	}
	conn := byName["connection"]
	if conn == nil || conn["type"] != "query" {
		t.Fatalf("templating: want a query variable connection, have %v", conn)
	}
	q, _ := conn["query"].(map[string]any)
	for _, s := range []any{conn["definition"], q["query"]} {
		if s != connVarQuery {
			t.Errorf("connection variable query %v, want %s", s, connVarQuery)
		}
		for _, err := range c.check(fmt.Sprint(s)) {
			t.Errorf("connection variable: %v", err)
		}
	}

	// Panels.
	panels, _ := d["panels"].([]any)
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	var flat []map[string]any
	for _, p := range panels {
		m, _ := p.(map[string]any)
		flat = append(flat, m)
		if sub, ok := m["panels"].([]any); ok { // collapsed rows hold theirs
			for _, s := range sub {
				sm, _ := s.(map[string]any)
				flat = append(flat, sm)
			}
		}
	}
	ids := map[float64]bool{}
	used := map[string]bool{}
	exprs := 0
	for _, p := range flat {
		title, _ := p["title"].(string)
		id, ok := num(p["id"])
		if !ok || ids[id] {
			t.Errorf("panel %q: missing or duplicate id %v", title, p["id"])
		}
		ids[id] = true
		typ, _ := p["type"].(string)
		if typ != "row" && typ != "timeseries" && typ != "stat" {
			t.Errorf("panel %q: type %q", title, typ)
		}
		gp, _ := p["gridPos"].(map[string]any)
		h, okh := num(gp["h"])
		w, okw := num(gp["w"])
		x, okx := num(gp["x"])
		_, oky := num(gp["y"])
		if !okh || !okw || !okx || !oky || h < 1 || w < 1 || x+w > 24 {
			t.Errorf("panel %q: bad gridPos %v", title, gp)
		}
		if typ == "row" {
			continue
		}
		if ds, _ := p["datasource"].(map[string]any); ds["uid"] != dsVariable {
			t.Errorf("panel %q: datasource %v, want uid %s", title, p["datasource"], dsVariable)
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q: no targets", title)
		}
		refs := map[string]bool{}
		for _, tg := range targets {
			m, _ := tg.(map[string]any)
			ref, _ := m["refId"].(string)
			expr, _ := m["expr"].(string)
			if ref == "" || refs[ref] || expr == "" {
				t.Errorf("panel %q: target needs a unique refId and an expr: %v", title, m)
			}
			refs[ref] = true
			if ds, _ := m["datasource"].(map[string]any); ds["uid"] != dsVariable {
				t.Errorf("panel %q target %s: datasource %v, want uid %s", title, ref, m["datasource"], dsVariable)
			}
			exprs++
			for _, err := range c.check(expr) {
				t.Errorf("panel %q target %s: %v\n\t%s", title, ref, err, expr)
			}
			for _, n := range identRE.FindAllString(expr, -1) {
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] = true
			}
		}
	}
	t.Logf("%d panels, %d expressions checked", len(flat), exprs)

	// Not a failure: a metric without a panel is a reminder, not a bug.
	var missing []string
	for _, names := range c.jobs {
		for n := range names {
			if strings.HasPrefix(n, "sluice_") && !used[n] && !used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] {
				missing = append(missing, n)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Logf("sluice_ series on no panel: %v", missing)
	}
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestDeployAlertRules(t *testing.T) {
	c := newExprChecker(t)
	var rf alertRules
	if err := yaml.Unmarshal(readDeploy(t, "prometheus/sluice-alerts.yml"), &rf); err != nil {
		t.Fatalf("sluice-alerts.yml: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", name)
			}
			if seen[name] {
				t.Errorf("alert %s twice", name)
			}
			seen[name] = true
			if r.Expr == "" {
				t.Errorf("%s: no expr", name)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", name, r.For, err)
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("%s: severity %q", name, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs summary and description annotations", name)
			}
			for _, err := range c.check(r.Expr) {
				t.Errorf("%s: %v\n\t%s", name, err, r.Expr)
			}
		}
	}
	for _, want := range []string{"SluiceAgentOffline", "SluiceTunnelDown", "SluiceP99OverheadHigh",
		"SluiceMaskingFailures", "SluiceAuditDrops", "SluiceSessionRefusalsSpike"} {
		if !seen[want] {
			t.Errorf("alert %s missing", want)
		}
	}
}

func TestDeployPrometheusConfig(t *testing.T) {
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readDeploy(t, "prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	jobs := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = sc.MetricsPath
	}
	for _, j := range []string{gatewayJob, agentJob} {
		if p, ok := jobs[j]; !ok || (p != "" && p != "/metrics") {
			t.Errorf("scrape job %s: missing or path %q", j, p)
		}
	}
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join(deployDir, "prometheus", f)); err != nil {
			t.Errorf("rule_files: %v", err)
		}
	}
	if len(cfg.RuleFiles) == 0 {
		t.Error("no rule_files")
	}
}
