// Command sluicebench is Sluice's benchmark harness (make bench, make
// bench-quick); see bench/README.md and shared/design/PERFORMANCE.md.
//
// It starts a scratch PostgreSQL and a scratch MariaDB, a real gateway and
// agent, two minimal relays in series and pgbouncer on loopback, runs
// pgbench, a Go MySQL load generator and streaming workloads through every
// path in interleaved rounds, and prints ratios to a direct connection
// measured in the same run, with the targets T1–T4 and T6–T8. Results go
// to bench/results/<date>-<commit>[-quick].json.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	quick      bool
	rounds     int
	duration   time.Duration
	warmup     time.Duration
	scale      int
	copyRows   int
	selectRows int
	resultsDir string
	micro      bool
	sluiceBin  string
	modes      []string
	clients    []int
	mysql      bool
}

// pathOrder is the base order; it rotates each round. The MySQL paths
// (mysql.go) run only the MySQL workloads.
var pathOrder = append([]string{"direct", "sluice", "sluice-detectors", "sluice-nopolicy", "relay-x2", "pgbouncer"}, myPaths...)

// txPaths run the pgbench workloads; sluice-detectors only runs COPY (see
// workloads).
var txPaths = []string{"direct", "sluice", "sluice-nopolicy", "relay-x2", "pgbouncer"}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	flag.BoolVar(&cfg.quick, "quick", false, "one round: -S simple at c=1 and c=8 for 10 s, plus the streams on direct, sluice and sluice-nopolicy (and COPY on every path), and the MySQL paths")
	flag.IntVar(&cfg.rounds, "rounds", 0, "rounds (default 3, quick 1)")
	flag.DurationVar(&cfg.duration, "duration", 0, "pgbench -T per run (default 5s so that 3 rounds make 15 s per path and workload; quick 10s)")
	flag.DurationVar(&cfg.warmup, "warmup", 0, "pgbench warm-up per path and workload, first round only (default 1s)")
	flag.IntVar(&cfg.scale, "scale", 10, "pgbench -i -s")
	flag.IntVar(&cfg.copyRows, "copy-rows", 2_250_000, "rows in the COPY out stream (~62 B each: 2.25 M ≈ 140 MB)")
	flag.IntVar(&cfg.selectRows, "select-rows", 1_000_000, "rows in bench_people for SELECT *")
	flag.StringVar(&cfg.resultsDir, "results", "bench/results", "where results files go")
	micro := flag.String("micro", "auto", "run the go micro benchmarks after the macro run: auto (full runs only), yes, no")
	flag.StringVar(&cfg.sluiceBin, "sluice-bin", "", "use this sluice binary instead of building ./cmd/sluice")
	flag.BoolVar(&cfg.mysql, "mysql", true, "also run the MySQL paths (a scratch MariaDB, direct and through sluice)")
	flag.Parse()
	if cfg.quick {
		cfg.rounds = orInt(cfg.rounds, 1)
		cfg.duration = orDur(cfg.duration, 10*time.Second)
		cfg.warmup = orDur(cfg.warmup, time.Second)
		cfg.modes, cfg.clients = []string{"simple"}, []int{1, 8}
	} else {
		cfg.rounds = orInt(cfg.rounds, 3)
		cfg.duration = orDur(cfg.duration, 5*time.Second)
		cfg.warmup = orDur(cfg.warmup, time.Second)
		cfg.modes, cfg.clients = []string{"simple", "extended", "prepared"}, []int{1, 8}
	}
	cfg.micro = *micro == "yes" || (*micro == "auto" && !cfg.quick)
	if cfg.duration < time.Second || cfg.warmup < time.Second {
		fmt.Fprintln(os.Stderr, "sluicebench: -duration and -warmup are whole seconds, at least 1s")
		return 2
	}
	if _, err := os.Stat("go.mod"); err != nil {
		fmt.Fprintln(os.Stderr, "sluicebench: run me from the repository root (no go.mod here)")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := newResults(cfg)
	started := time.Now()

	e, err := setup(ctx, cfg)
	defer func() {
		if e != nil {
			logf("stopping everything and removing %s", e.tmp)
			e.cleanup()
		}
	}()
	if err != nil {
		logf("setup failed: %v", err)
		return 1
	}
	res.Versions = e.versions
	for _, name := range pathOrder {
		if p := e.paths[name]; p != nil && p.Skipped != "" {
			res.Skipped[name] = p.Skipped
		}
	}
	logf("setup took %v", time.Since(started).Round(time.Second))

	samples := runRounds(ctx, e, cfg, workloads(cfg, e.copyRefused == ""))
	if ctx.Err() != nil {
		logf("interrupted")
		return 130
	}
	res.build(cfg, e, samples)
	res.Seconds = time.Since(started).Seconds()

	// Stop the servers before the micro benchmarks so they do not share the CPU.
	logf("stopping everything and removing %s", e.tmp)
	e.cleanup()
	e = nil

	status := 0
	if err := os.MkdirAll(cfg.resultsDir, 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	stem := filepath.Join(cfg.resultsDir, res.stem())
	prev, prevFile := loadPrevious(cfg.resultsDir, res)
	if cfg.micro {
		res.MicroFile = filepath.Base(stem) + ".micro.txt"
		if err := runMicro(ctx, stem+".micro.txt"); err != nil {
			logf("micro benchmarks: %v (output in %s.micro.txt)", err, stem)
			res.MicroError = err.Error()
			status = 1
		}
	}
	if err := res.write(stem + ".json"); err != nil {
		logf("write results: %v", err)
		status = 1
	}
	res.printMarkdown(os.Stdout)
	if prev != nil {
		printComparison(os.Stdout, prev, prevFile, res)
	} else {
		fmt.Fprintf(os.Stdout, "\nNo previous results file in %s to compare with.\n", cfg.resultsDir)
	}
	fmt.Fprintf(os.Stdout, "\nResults: %s.json", stem)
	if cfg.micro {
		fmt.Fprintf(os.Stdout, ", micro benchmarks: %s.micro.txt", stem)
	}
	fmt.Fprintf(os.Stdout, " (%.0f s)\n", res.Seconds)
	for _, r := range res.Rows {
		if r.Error != "" {
			status = 1
		}
	}
	return status
}

func orInt(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

func orDur(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}

// workloads lists what runs, in order, with the paths each runs on.
// copyOnSluice is false when the sluice path refuses COPY TO (a column
// masking rule fails closed); sluice-detectors then stands in for "masking
// configured" on the COPY stream.
func workloads(cfg config, copyOnSluice bool) []workload {
	var ws []workload
	for _, m := range cfg.modes {
		for _, c := range cfg.clients {
			ws = append(ws, workload{Name: fmt.Sprintf("S-%s-c%d", m, c), Kind: "tx", Mode: m, Clients: c, Paths: txPaths})
		}
	}
	copyPaths := []string{"direct", "sluice-detectors", "sluice-nopolicy", "relay-x2", "pgbouncer"}
	if copyOnSluice {
		copyPaths = append(copyPaths, "sluice")
	}
	ws = append(ws, workload{Name: "copy-out-140MB", Kind: "stream", Stream: "copy", Paths: copyPaths})
	sel := workload{Name: "select-1M", Kind: "stream", Stream: "select", Paths: txPaths}
	if cfg.selectRows != 1_000_000 {
		sel.Name = fmt.Sprintf("select-%d", cfg.selectRows)
	}
	if cfg.copyRows != 2_250_000 {
		ws[len(ws)-1].Name = fmt.Sprintf("copy-out-%drows", cfg.copyRows)
	}
	if cfg.quick {
		sel.Paths = []string{"direct", "sluice", "sluice-nopolicy"}
	}
	ws = append(ws, sel)
	if cfg.mysql {
		ws = append(ws, myWorkloads(cfg)...)
	}
	return ws
}

// pgStream is the name of the Postgres stream workload of kind "copy" or
// "select".
func pgStream(cfg config, kind string) string {
	for _, w := range workloads(cfg, true) {
		if w.Proto == "" && w.Stream == kind {
			return w.Name
		}
	}
	return ""
}

type key struct{ path, workload string }

// runRounds runs every workload on every path before the next workload;
// the path order rotates each round (and with the workload).
func runRounds(ctx context.Context, e *env, cfg config, ws []workload) map[key][]sample {
	out := map[key][]sample{}
	for r := 0; r < cfg.rounds; r++ {
		for wi, w := range ws {
			var order []string
			for _, name := range pathOrder {
				if contains(w.Paths, name) {
					order = append(order, name)
				}
			}
			order = rotate(order, r+wi)
			if w.Stream == "select" && r == 0 {
				// Warm the caches once, unmeasured, so that the first path is not penalised.
				if w.Proto == "mysql" {
					if d := e.paths["mysql-direct"]; d != nil && d.Skipped == "" {
						_ = runMyStream(ctx, d)
					}
				} else {
					_ = runStream(ctx, e.paths["direct"], w, cfg)
				}
			}
			for _, name := range order {
				if ctx.Err() != nil {
					return out
				}
				p := e.paths[name]
				if p == nil || p.Skipped != "" {
					continue
				}
				var s sample
				switch {
				case w.Proto == "mysql" && w.Kind == "tx":
					if r == 0 {
						var ws sample
						if err := runMyPoint(ctx, p, w, cfg.warmup, cfg.selectRows, &ws); err != nil {
							logf("warm-up %s on %s: %v", w.Name, name, err)
						}
					}
					s = measure(p, func(s *sample) error { return runMyPoint(ctx, p, w, cfg.duration, cfg.selectRows, s) })
				case w.Proto == "mysql":
					s = runMyStream(ctx, p)
				case w.Kind == "tx":
					if r == 0 {
						var ws sample
						if err := runPgbench(ctx, e, p, w, cfg.warmup, "", &ws); err != nil {
							logf("warm-up %s on %s: %v", w.Name, name, err)
						}
					}
					logDir := filepath.Join(e.tmp, "pgbench-log")
					s = measure(p, func(s *sample) error { return runPgbench(ctx, e, p, w, cfg.duration, logDir, s) })
				default:
					s = runStream(ctx, p, w, cfg)
				}
				if ctx.Err() != nil {
					return out
				}
				k := key{name, w.Name}
				out[k] = append(out[k], s)
				logf("round %d/%d %-15s %-16s %s", r+1, cfg.rounds, w.Name, name, s.summary(w))
			}
		}
	}
	return out
}

func (s sample) summary(w workload) string {
	if s.Err != "" {
		return "ERROR: " + s.Err
	}
	cpu := 0.0
	for _, c := range s.CPU {
		cpu += c
	}
	if w.Kind == "tx" {
		return fmt.Sprintf("%.0f tps, proxy CPU %.1f µs/tx", float64(s.Tx)/s.Seconds, cpu/float64(s.Tx)*1e6)
	}
	return fmt.Sprintf("%.2f s, %.0f MB, proxy CPU %.2f ns/B", s.Seconds, float64(s.Bytes)/1e6, cpu/float64(max(s.Bytes, 1))*1e9)
}

func rotate(s []string, n int) []string {
	n %= len(s)
	return append(append([]string(nil), s[n:]...), s[:n]...)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func runMicro(ctx context.Context, out string) error {
	logf("micro benchmarks -> %s", out)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "./protocols/...", "./masking/...", "./transport/...", "./engine/..."}
	fmt.Fprintf(f, "# go %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout, cmd.Stderr = f, f
	return cmd.Run()
}
