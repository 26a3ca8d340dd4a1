package server

import (
	"context"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-gw/sluice/control/audit"
	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/transport"
)

var rttBuckets = prometheus.ExponentialBucketsRange(50e-6, 30, 20)

// newRegistry returns a process registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves reg on /metrics and everything else with next.
// With SLUICE_PPROF=1 it also serves Go's profiler on /debug/pprof/ (off by
// default: profiles reveal internals; enable it for benchmarking only).
func metricsHandler(reg *prometheus.Registry, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if os.Getenv("SLUICE_PPROF") == "1" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", next)
	return mux
}

// gatewayCollector reports per-agent tunnel state and audit drops at
// scrape time. Agents are admin-configured, so the agent label is bounded.
type gatewayCollector struct {
	st     store.Store
	hub    *transport.Hub
	sink   *audit.Sink
	online *prometheus.Desc
	drops  *prometheus.Desc
	fails  *prometheus.Desc
}

func newGatewayCollector(st store.Store, hub *transport.Hub, sink *audit.Sink) *gatewayCollector {
	return &gatewayCollector{st: st, hub: hub, sink: sink,
		online: prometheus.NewDesc("sluice_agent_online", "1 when the agent has a live tunnel to this gateway, else 0.", []string{"agent"}, nil),
		drops:  prometheus.NewDesc("sluice_audit_records_dropped_total", "Audit records dropped because the spool was full or closed.", nil, nil),
		fails:  prometheus.NewDesc("sluice_audit_write_failures_total", "Audit records lost because the batch holding them failed to be written.", nil, nil),
	}
}

func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.online
	ch <- c.drops
	ch <- c.fails
}

func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if agents, err := c.st.ListAgents(ctx); err == nil {
		for _, a := range agents {
			v := 0.0
			if c.hub.Online(a.Name) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.online, prometheus.GaugeValue, v, a.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(c.sink.Dropped()))
	ch <- prometheus.MustNewConstMetric(c.fails, prometheus.CounterValue, float64(c.sink.Failed()))
}

// tunnelMetrics are the gateway's tunnel series.
type tunnelMetrics struct {
	rtt *prometheus.HistogramVec
}

func newTunnelMetrics(reg prometheus.Registerer) *tunnelMetrics {
	m := &tunnelMetrics{rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_tunnel_rtt_seconds",
		Help: "Round-trip time of the control-stream ping to each agent.", Buckets: rttBuckets}, []string{"agent"})}
	reg.MustRegister(m.rtt)
	return m
}

func (m *tunnelMetrics) observe(agent string, d time.Duration) {
	m.rtt.WithLabelValues(agent).Observe(d.Seconds())
}
