package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Results is the machine-readable results file.
type Results struct {
	Format     int               `json:"format"`
	Mode       string            `json:"mode"` // "full" or "quick"
	StartedAt  time.Time         `json:"started_at"`
	Seconds    float64           `json:"seconds"`
	Commit     string            `json:"commit"`
	Dirty      bool              `json:"dirty"`
	Host       map[string]any    `json:"host"`
	Versions   map[string]string `json:"versions"`
	Config     map[string]any    `json:"config"`
	Skipped    map[string]string `json:"skipped"` // path → reason
	Rows       []Row             `json:"rows"`
	Targets    []Target          `json:"targets"`
	MicroFile  string            `json:"micro_file,omitempty"`
	MicroError string            `json:"micro_error,omitempty"`
}

// Row is one path × workload. Zero ratios mean "not applicable".
type Row struct {
	Path     string   `json:"path"`
	Workload string   `json:"workload"`
	Kind     string   `json:"kind"` // tx or stream
	Hops     []string `json:"hops,omitempty"`
	Runs     int      `json:"runs"`
	Error    string   `json:"error,omitempty"`
	Note     string   `json:"note,omitempty"` // not run by design, and why

	Tx      int64   `json:"tx,omitempty"` // transactions, or rows for streams
	Seconds float64 `json:"seconds"`      // summed over runs

	TPS       float64   `json:"tps,omitempty"`
	TPSRatio  float64   `json:"tps_ratio,omitempty"`
	P50Us     float64   `json:"p50_us,omitempty"`
	P99Us     float64   `json:"p99_us,omitempty"`
	P999Us    float64   `json:"p999_us,omitempty"`
	AddedP50  float64   `json:"added_p50_us,omitempty"`
	P50Ratio  float64   `json:"p50_ratio,omitempty"`
	P99Ratio  float64   `json:"p99_ratio,omitempty"`
	P999Ratio float64   `json:"p999_ratio,omitempty"`
	CPUUsTx   []float64 `json:"cpu_us_per_tx,omitempty"` // per hop
	CPUUsTxS  float64   `json:"cpu_us_per_tx_sum,omitempty"`

	Bytes      int64     `json:"bytes,omitempty"`
	MeanSec    float64   `json:"mean_seconds,omitempty"`
	TimeRatio  float64   `json:"time_ratio,omitempty"`
	MBps       float64   `json:"mb_per_s,omitempty"`
	CPUNsB     []float64 `json:"cpu_ns_per_byte,omitempty"` // per hop
	CPUNsBSum  float64   `json:"cpu_ns_per_byte_sum,omitempty"`
	MaskedRows int64     `json:"masked_rows,omitempty"`

	PeakRSSMiB   []float64 `json:"peak_rss_mib,omitempty"`   // per hop, VmHWM during the runs
	RSSGrowthMiB []float64 `json:"rss_growth_mib,omitempty"` // per hop, VmHWM − VmRSS at start (streams)
}

// Target is one line of the targets section.
type Target struct {
	ID     string `json:"id"`
	Status string `json:"status"` // met, met (stretch), not met, not measured
	Detail string `json:"detail"`
}

func newResults(cfg config) *Results {
	r := &Results{Format: 1, Mode: "full", StartedAt: time.Now(), Skipped: map[string]string{}}
	if cfg.quick {
		r.Mode = "quick"
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		r.Commit = strings.TrimSpace(string(out))
	} else {
		r.Commit = "nogit"
	}
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		r.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	host, _ := os.Hostname()
	r.Host = map[string]any{"cpus": runtime.NumCPU(), "kernel": strings.TrimSpace(string(kernel)), "hostname": host,
		"go": runtime.Version(), "clk_tck": clkTck, "loadavg_start": loadavg()}
	r.Config = map[string]any{"rounds": cfg.rounds, "duration_s": cfg.duration.Seconds(), "warmup_s": cfg.warmup.Seconds(),
		"scale": cfg.scale, "copy_rows": cfg.copyRows, "select_rows": cfg.selectRows, "modes": cfg.modes, "clients": cfg.clients,
		"sluice_client_sslmode": sluiceSSLMode(), "other_client_sslmode": "disable", "mysql": cfg.mysql,
		"mysql_point_select": myPointSQL + " (text protocol, go-sql-driver/mysql)"}
	return r
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func (r *Results) stem() string {
	s := r.StartedAt.Format("2006-01-02") + "-" + r.Commit
	if r.Mode == "quick" {
		s += "-quick"
	}
	return s
}

func (r *Results) write(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// build aggregates the samples into rows, ratios and targets.
func (r *Results) build(cfg config, e *env, samples map[key][]sample) {
	r.Host["loadavg_end"] = loadavg()
	for _, w := range workloads(cfg, e.copyRefused == "") {
		for _, name := range pathOrder {
			p := e.paths[name]
			if p == nil {
				continue
			}
			if w.Stream == "copy" && name == "sluice" && e.copyRefused != "" {
				r.Rows = append(r.Rows, Row{Path: name, Workload: w.Name, Kind: w.Kind, Hops: p.hopNames,
					Note: "not run: COPY TO is refused on a connection with a column masking rule (fail-closed, 42501: " + e.copyRefused + "); sluice-detectors is the masking-configured COPY row"})
				continue
			}
			if !contains(w.Paths, name) {
				continue
			}
			row := Row{Path: name, Workload: w.Name, Kind: w.Kind, Hops: p.hopNames}
			if p.Skipped != "" {
				row.Note = "skipped: " + p.Skipped
				r.Rows = append(r.Rows, row)
				continue
			}
			aggregate(&row, samples[key{name, w.Name}])
			r.Rows = append(r.Rows, row)
		}
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		d := r.row(directFor(row.Path), row.Workload)
		if d == nil || d.Runs == 0 || row.Runs == 0 {
			continue
		}
		if row.Kind == "tx" {
			row.TPSRatio = ratio(row.TPS, d.TPS)
			row.AddedP50 = row.P50Us - d.P50Us
			row.P50Ratio = ratio(row.P50Us, d.P50Us)
			row.P99Ratio = ratio(row.P99Us, d.P99Us)
			row.P999Ratio = ratio(row.P999Us, d.P999Us)
		} else {
			row.TimeRatio = ratio(row.MeanSec, d.MeanSec)
		}
	}
	r.Targets = r.targets(cfg)
}

func aggregate(row *Row, ss []sample) {
	var lat []int32
	var cpu []float64
	var errs []string
	for _, s := range ss {
		if s.Err != "" {
			errs = append(errs, s.Err)
			continue
		}
		row.Runs++
		row.Tx += s.Tx
		row.Seconds += s.Seconds
		row.Bytes += s.Bytes
		row.MaskedRows += s.Masked
		lat = append(lat, s.Lat...)
		if cpu == nil {
			cpu = make([]float64, len(s.CPU))
			row.PeakRSSMiB = make([]float64, len(s.CPU))
			if row.Kind == "stream" && s.PeakOK {
				row.RSSGrowthMiB = make([]float64, len(s.CPU))
			}
		}
		for i := range s.CPU {
			cpu[i] += s.CPU[i]
			row.PeakRSSMiB[i] = math.Max(row.PeakRSSMiB[i], float64(s.RSSPeak[i])/1024)
			if row.RSSGrowthMiB != nil {
				row.RSSGrowthMiB[i] = math.Max(row.RSSGrowthMiB[i], float64(s.RSSPeak[i]-s.RSSStart[i])/1024)
			}
		}
	}
	if len(errs) > 0 {
		row.Error = fmt.Sprintf("%d of %d runs failed: %s", len(errs), len(ss), errs[0])
	}
	if len(ss) == 0 {
		row.Error = "not run"
	}
	if row.Runs == 0 {
		return
	}
	sum := 0.0
	if row.Kind == "tx" {
		row.TPS = float64(row.Tx) / row.Seconds
		slices.Sort(lat)
		row.P50Us, row.P99Us, row.P999Us = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999)
		for _, c := range cpu {
			v := c / float64(row.Tx) * 1e6
			row.CPUUsTx = append(row.CPUUsTx, v)
			sum += v
		}
		row.CPUUsTxS = sum
	} else {
		row.MeanSec = row.Seconds / float64(row.Runs)
		row.MBps = float64(row.Bytes) / row.Seconds / 1e6
		for _, c := range cpu {
			v := c / float64(max(row.Bytes, 1)) * 1e9
			row.CPUNsB = append(row.CPUNsB, v)
			sum += v
		}
		row.CPUNsBSum = sum
	}
}

// pct is the nearest-rank percentile of sorted v.
func pct(v []int32, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return float64(v[max(0, min(i, len(v)-1))])
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (r *Results) row(path, workload string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Path == path && r.Rows[i].Workload == workload {
			return &r.Rows[i]
		}
	}
	return nil
}

// ok returns the row if it was measured.
func (r *Results) ok(path, workload string) *Row {
	row := r.row(path, workload)
	if row == nil || row.Runs == 0 {
		return nil
	}
	return row
}

func (r *Results) targets(cfg config) []Target {
	var ts []Target
	add := func(id string, checks []check, extra string) {
		t := Target{ID: id, Status: "met"}
		var parts []string
		for _, c := range checks {
			parts = append(parts, c.text)
			switch {
			case !c.measured:
				t.Status = "not measured"
			case !c.ok && t.Status != "not measured":
				t.Status = "not met"
			}
		}
		if len(checks) == 0 {
			t.Status = "not measured"
		}
		t.Detail = strings.Join(parts, "; ")
		if extra != "" {
			t.Detail += "; " + extra
		}
		ts = append(ts, t)
	}

	// T1: proxy CPU per transaction, -S simple c=1 and c=8, ≤ 1.0 × relay-x2 (stretch ≤ 0.8).
	var c1 []check
	stretch := true
	for _, c := range []int{1, 8} {
		w := fmt.Sprintf("S-simple-c%d", c)
		s, f := r.ok("sluice", w), r.ok("relay-x2", w)
		if s == nil || f == nil {
			c1 = append(c1, check{text: w + ": not measured"})
			continue
		}
		q := s.CPUUsTxS / f.CPUUsTxS
		stretch = stretch && q <= 0.8
		c1 = append(c1, check{measured: true, ok: q <= 1.0,
			text: fmt.Sprintf("c=%d: sluice %.1f µs/tx (gateway %.1f + agent %.1f) vs relay-x2 %.1f = %.2f× (≤ 1.0)", c, s.CPUUsTxS, s.CPUUsTx[0], s.CPUUsTx[1], f.CPUUsTxS, q)})
	}
	add("T1", c1, "")
	if ts[len(ts)-1].Status == "met" && stretch {
		ts[len(ts)-1].Status = "met (stretch ≤ 0.8× too)"
	}

	// T2: TPS ÷ direct at c=8 ≥ relay-x2's, in every mode; modes within 10 %.
	var c2 []check
	var ratios []float64
	for _, m := range cfg.modes {
		w := "S-" + m + "-c8"
		s, f := r.ok("sluice", w), r.ok("relay-x2", w)
		if s == nil || f == nil || s.TPSRatio == 0 || f.TPSRatio == 0 {
			c2 = append(c2, check{text: m + ": not measured"})
			continue
		}
		ratios = append(ratios, s.TPSRatio)
		c2 = append(c2, check{measured: true, ok: s.TPSRatio >= f.TPSRatio,
			text: fmt.Sprintf("%s: sluice %.2f vs relay-x2 %.2f (≥)", m, s.TPSRatio, f.TPSRatio)})
	}
	spread := ""
	if len(ratios) >= 2 {
		lo, hi := slices.Min(ratios), slices.Max(ratios)
		sp := (hi - lo) / hi
		c2 = append(c2, check{measured: true, ok: sp <= 0.10, text: fmt.Sprintf("modes spread %.0f %% (≤ 10 %%)", sp*100)})
	} else {
		spread = "modes spread: only one mode run"
	}
	add("T2", c2, spread)

	// T3: added p50 at c=1 ≤ relay-x2's + 25 µs.
	var c3 []check
	for _, m := range cfg.modes {
		w := "S-" + m + "-c1"
		s, f := r.ok("sluice", w), r.ok("relay-x2", w)
		if s == nil || f == nil || s.P50Ratio == 0 {
			c3 = append(c3, check{text: m + ": not measured"})
			continue
		}
		c3 = append(c3, check{measured: true, ok: s.AddedP50 <= f.AddedP50+25,
			text: fmt.Sprintf("%s: sluice %+.0f µs vs relay-x2 %+.0f µs + 25", m, s.AddedP50, f.AddedP50)})
	}
	add("T3", c3, "")

	// T4: p99 ÷ direct ≤ relay-x2's, c=1 and c=8; no p99.9 spike direct does not show.
	var c4 []check
	for _, m := range cfg.modes {
		for _, c := range []int{1, 8} {
			w := fmt.Sprintf("S-%s-c%d", m, c)
			s, f, d := r.ok("sluice", w), r.ok("relay-x2", w), r.ok("direct", w)
			if s == nil || f == nil || d == nil || s.P99Ratio == 0 {
				c4 = append(c4, check{text: w + ": not measured"})
				continue
			}
			c4 = append(c4, check{measured: true, ok: s.P99Ratio <= f.P99Ratio,
				text: fmt.Sprintf("%s p99÷direct: sluice %.2f vs relay-x2 %.2f", w, s.P99Ratio, f.P99Ratio)})
			st, dt := s.P999Us/s.P99Us, d.P999Us/d.P99Us
			c4 = append(c4, check{measured: true, ok: st <= 1.5*dt,
				text: fmt.Sprintf("%s p99.9÷p99: sluice %.2f vs direct %.2f (≤ 1.5×)", w, st, dt)})
		}
	}
	add("T4", c4, "")

	// T6: SELECT * time ÷ direct: ≤ 1.3 masked, ≤ 1.15 no rule matching.
	sel := pgStream(cfg, "select")
	var c6 []check
	for _, x := range []struct {
		path  string
		limit float64
		what  string
	}{{"sluice", 1.3, "one masked column"}, {"sluice-nopolicy", 1.15, "no rule"}} {
		s := r.ok(x.path, sel)
		if s == nil || s.TimeRatio == 0 {
			c6 = append(c6, check{text: x.path + ": not measured"})
			continue
		}
		c6 = append(c6, check{measured: true, ok: s.TimeRatio <= x.limit,
			text: fmt.Sprintf("%s (%s): %.2f× (≤ %.2f), %d of %d rows masked", x.path, x.what, s.TimeRatio, x.limit, s.MaskedRows, s.Tx)})
	}
	add("T6", c6, "")

	// T7: COPY out proxy CPU per byte: ≤ 10 ns/B masking configured, ≤ 7 without.
	cp := pgStream(cfg, "copy")
	var c7 []check
	masked := "sluice"
	if r.ok("sluice", cp) == nil {
		masked = "sluice-detectors"
	}
	for _, x := range []struct {
		path  string
		limit float64
	}{{masked, 10}, {"sluice-nopolicy", 7}} {
		s := r.ok(x.path, cp)
		if s == nil {
			c7 = append(c7, check{text: x.path + ": not measured"})
			continue
		}
		c7 = append(c7, check{measured: true, ok: s.CPUNsBSum <= x.limit,
			text: fmt.Sprintf("%s: %.2f ns/B (gateway %.2f + agent %.2f; ≤ %.0f)", x.path, s.CPUNsBSum, s.CPUNsB[0], s.CPUNsB[1], x.limit)})
	}
	add("T7", c7, "")

	// T8: RSS growth ≤ 16 MiB per process while streaming.
	var c8 []check
	for _, w := range []string{cp, sel} {
		for _, p := range []string{"sluice", "sluice-detectors", "sluice-nopolicy"} {
			s := r.ok(p, w)
			if row := r.row(p, w); row == nil || row.Note != "" {
				continue
			}
			if s == nil || s.RSSGrowthMiB == nil {
				c8 = append(c8, check{text: p + " " + w + ": not measured"})
				continue
			}
			g := slices.Max(s.RSSGrowthMiB)
			c8 = append(c8, check{measured: true, ok: g <= 16,
				text: fmt.Sprintf("%s %s: gateway +%.1f MiB, agent +%.1f MiB", p, w, s.RSSGrowthMiB[0], s.RSSGrowthMiB[1])})
		}
	}
	add("T8", c8, "streams here are 140 MB and 1 M rows, smaller than the spec's 1 GiB / 10⁷ rows (e2e TestMaskedStreamMemoryIsFlat runs 10⁷)")
	return ts
}

type check struct {
	measured, ok bool
	text         string
}

func f1(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func f2(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func f0(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

// hops renders per-hop values and their sum: "a / b = s", or "a" for one hop.
func hops(v []float64, sum float64, f func(float64) string) string {
	switch len(v) {
	case 0:
		return "–"
	case 1:
		return f(v[0])
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = f(x)
	}
	return strings.Join(parts, " / ") + " = " + f(sum)
}

// each renders per-hop values: "a / b".
func each(v []float64, format string) string {
	if len(v) == 0 {
		return "–"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " / ")
}

func (r *Results) printMarkdown(w io.Writer) {
	fmt.Fprintf(w, "\n## Sluice benchmark (%s, commit %s%s, %s, %d CPUs, load %s)\n\n", r.Mode, r.Commit,
		map[bool]string{true: "+dirty", false: ""}[r.Dirty], r.StartedAt.Format("2006-01-02 15:04"), r.Host["cpus"], r.Host["loadavg_start"])
	if busy(r.Host["loadavg_start"], r.Host["cpus"]) {
		fmt.Fprintf(w, "**The machine was busy when the run started (load average above the CPU count): every figure is noisier than usual; compare ratios within this run only.**\n\n")
	}
	fmt.Fprintf(w, "Rounds %v × %v s per path and workload; ratios are to `direct` in this run. CPU columns: first hop / second hop = sum (sluice: gateway / agent; relay-x2: relay1 / relay2; pgbouncer: one process).\n\n",
		r.Config["rounds"], r.Config["duration_s"])
	fmt.Fprintln(w, "| path | workload | TPS | TPS ÷ direct | p50 µs | added p50 µs | p99 µs | p99 ÷ direct | p99.9 µs | p99.9 ÷ direct | proxy CPU µs/tx | peak RSS MiB |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, x := range r.Rows {
		if x.Kind != "tx" {
			continue
		}
		if x.Runs == 0 {
			fmt.Fprintf(w, "| %s | %s | %s |||||||||\n", x.Path, x.Workload, trunc(x.Error+x.Note, 200))
			continue
		}
		added := "–"
		if x.Path != directFor(x.Path) && x.P50Ratio != 0 {
			added = fmt.Sprintf("%+.0f", x.AddedP50)
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Path, x.Workload, x.TPS, f2(x.TPSRatio),
			f0(x.P50Us), added, f0(x.P99Us), f2(x.P99Ratio), f0(x.P999Us), f2(x.P999Ratio),
			hops(x.CPUUsTx, x.CPUUsTxS, f1), each(x.PeakRSSMiB, "%.0f"))
		if x.Error != "" {
			fmt.Fprintf(w, "| | ↳ %s |||||||||||\n", trunc(x.Error, 160))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| path | workload | rows | MB | mean time s | time ÷ direct | MB/s | proxy CPU ns/B | RSS growth MiB | peak RSS MiB | masked rows |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, x := range r.Rows {
		if x.Kind != "stream" {
			continue
		}
		if x.Runs == 0 {
			fmt.Fprintf(w, "| %s | %s | %s ||||||||\n", x.Path, x.Workload, trunc(x.Error+x.Note, 260))
			continue
		}
		masked := "–"
		if strings.Contains(x.Workload, "select") {
			masked = fmt.Sprint(x.MaskedRows)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.2f | %s | %.0f | %s | %s | %s | %s |\n", x.Path, x.Workload, x.Tx/int64(x.Runs),
			float64(x.Bytes)/float64(x.Runs)/1e6, x.MeanSec, f2(x.TimeRatio), x.MBps,
			hops(x.CPUNsB, x.CPUNsBSum, f2), each(x.RSSGrowthMiB, "%+.1f"), each(x.PeakRSSMiB, "%.0f"), masked)
		if x.Error != "" {
			fmt.Fprintf(w, "| | ↳ %s ||||||||||\n", trunc(x.Error, 160))
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintln(w)
		for _, p := range pathOrder {
			if why, ok := r.Skipped[p]; ok {
				fmt.Fprintf(w, "- path %s skipped: %s\n", p, why)
			}
		}
	}
	fmt.Fprintln(w, "\n### Targets (shared/design/PERFORMANCE.md; sluice = gateway + agent, TLS tunnel, policy on)")
	fmt.Fprintln(w)
	for _, t := range r.Targets {
		fmt.Fprintf(w, "- **%s %s**: %s\n", t.ID, t.Status, t.Detail)
	}
	fmt.Fprintln(w, "- T5, T9–T12 are not measured here (e2e tests and the micro benchmarks cover them).")
	r.printMySQL(w)
}

// printMySQL summarises the MySQL paths against mysql-direct. PERFORMANCE.md
// sets no MySQL targets: these lines report, they judge nothing.
func (r *Results) printMySQL(w io.Writer) {
	var lines []string
	for _, x := range r.Rows {
		if !isMySQLPath(x.Path) || x.Path == "mysql-direct" || x.Runs == 0 {
			continue
		}
		switch x.Kind {
		case "tx":
			lines = append(lines, fmt.Sprintf("%s on %s: TPS ÷ direct %s; p50 %s µs (%+.0f, ×%s), p99 ×%s, p99.9 ×%s; proxy CPU %s µs/tx",
				x.Workload, x.Path, f2(x.TPSRatio), f0(x.P50Us), x.AddedP50, f2(x.P50Ratio), f2(x.P99Ratio), f2(x.P999Ratio), hops(x.CPUUsTx, x.CPUUsTxS, f1)))
		case "stream":
			lines = append(lines, fmt.Sprintf("%s on %s: time ÷ direct %s, %.0f MB/s, proxy CPU %s ns/B, %d of %d rows masked",
				x.Workload, x.Path, f2(x.TimeRatio), x.MBps, hops(x.CPUNsB, x.CPUNsBSum, f2), x.MaskedRows, x.Tx/int64(max(x.Runs, 1))))
		}
	}
	if len(lines) == 0 {
		if why, ok := r.Skipped["mysql-direct"]; ok {
			fmt.Fprintf(w, "\n### MySQL\n\nNot run: %s\n", why)
		}
		return
	}
	fmt.Fprintf(w, "\n### MySQL (%s; ratios to mysql-direct in this run; sluice = gateway + agent, TLS tunnel)\n\n", r.Versions["mariadb"])
	for _, l := range lines {
		fmt.Fprintf(w, "- %s\n", l)
	}
}

// busy reports whether the 1-minute load average exceeds the CPU count.
func busy(load, cpus any) bool {
	l, _ := load.(string)
	n, _ := cpus.(int)
	f := strings.Fields(l)
	if len(f) == 0 || n == 0 {
		return false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return err == nil && v > float64(n)
}

func trunc(s string, n int) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", "/")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// loadPrevious returns the newest results file in dir started before r
// (same mode preferred) and its name.
func loadPrevious(dir string, r *Results) (*Results, string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var best, bestAny *Results
	var bestF, bestAnyF string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var p Results
		if json.Unmarshal(b, &p) != nil || p.Format == 0 || !p.StartedAt.Before(r.StartedAt) {
			continue
		}
		if bestAny == nil || p.StartedAt.After(bestAny.StartedAt) {
			bestAny, bestAnyF = &p, f
		}
		if p.Mode == r.Mode && (best == nil || p.StartedAt.After(best.StartedAt)) {
			best, bestF = &p, f
		}
	}
	if best != nil {
		return best, bestF
	}
	return bestAny, bestAnyF
}

func change(before, now float64) string {
	if before == 0 || now == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f → %.2f (%+.0f %%)", before, now, (now/before-1)*100)
}

func printComparison(w io.Writer, prev *Results, file string, r *Results) {
	fmt.Fprintf(w, "\n### Change since %s (%s, commit %s, %s)\n\n", filepath.Base(file), prev.Mode, prev.Commit, prev.StartedAt.Format("2006-01-02 15:04"))
	fmt.Fprintln(w, "| path | workload | TPS ÷ direct | p99 ÷ direct | time ÷ direct | proxy CPU (µs/tx or ns/B) |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	n := 0
	for _, x := range r.Rows {
		if x.Runs == 0 {
			continue
		}
		p := prev.row(x.Path, x.Workload)
		if p == nil || p.Runs == 0 {
			continue
		}
		n++
		cpuB, cpuN := p.CPUUsTxS, x.CPUUsTxS
		if x.Kind == "stream" {
			cpuB, cpuN = p.CPUNsBSum, x.CPUNsBSum
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.Path, x.Workload, change(p.TPSRatio, x.TPSRatio),
			change(p.P99Ratio, x.P99Ratio), change(p.TimeRatio, x.TimeRatio), change(cpuB, cpuN))
	}
	if n == 0 {
		fmt.Fprintln(w, "| (no rows in common) ||||||")
	}
	var moved []string
	for _, t := range r.Targets {
		for _, pt := range prev.Targets {
			if pt.ID == t.ID && pt.Status != t.Status {
				moved = append(moved, fmt.Sprintf("%s: %s → %s", t.ID, pt.Status, t.Status))
			}
		}
	}
	if len(moved) > 0 {
		fmt.Fprintf(w, "\nTargets changed: %s\n", strings.Join(moved, "; "))
	}
}
