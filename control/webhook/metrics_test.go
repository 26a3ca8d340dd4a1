package webhook

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Every series is registered on the injected registerer, named sluice_webhook_*,
// and promlint-clean.
func TestMetricsRegisteredAndLintClean(t *testing.T) {
	rc := newReceiver(t, "k", func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return false
		}
		return true
	})
	h := start(t, Config{Client: clientFor(t, rc)}, Endpoint{Name: "a", URL: rc.url(), Secret: "k"})
	h.d.Notify(ev(SessionStarted, 0))
	waitFor(t, "the delivery", func() bool { return rc.delivered() == 1 })
	h.close(t)

	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if !strings.HasPrefix(mf.GetName(), "sluice_webhook_") {
			t.Errorf("%s: not prefixed sluice_webhook_", mf.GetName())
		}
	}
	for _, want := range []string{"sluice_webhook_deliveries_total", "sluice_webhook_queue_length", "sluice_webhook_delivery_duration_seconds", "sluice_webhook_reloads_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not registered (have %v)", want, names)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if h.result("a", resultOK) != 1 || h.result("a", resultRetry) != 1 {
		t.Fatalf("ok %d retry %d", h.result("a", resultOK), h.result("a", resultRetry))
	}
}

// A nil Registerer leaves the series unregistered, so many Dispatchers can
// live in one process (and one test binary).
func TestMetricsNilRegisterer(t *testing.T) {
	for range 2 {
		m := newMetrics(nil)
		m.forEndpoint("a").ok.Inc()
	}
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		// Vectors without children gather nothing; registering twice must panic.
		t.Fatalf("%d families before any event", len(mfs))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering the same series twice did not panic: the registerer was not used")
		}
	}()
	newMetrics(reg)
}
