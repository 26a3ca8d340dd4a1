package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// workload is one thing every path runs.
type workload struct {
	Name    string
	Kind    string // "tx" (pgbench) or "stream"
	Mode    string // pgbench -M
	Clients int
	Stream  string   // "copy" or "select"
	Proto   string   // "" (PostgreSQL) or "mysql"
	Paths   []string // nil: every path
}

// sample is one measured run of a workload on a path.
type sample struct {
	Tx       int64   // transactions (tx) or rows (stream)
	Seconds  float64 // pgbench: tx / its tps (connection time excluded); stream: query time
	Lat      []int32 // per-transaction latency, µs
	Bytes    int64   // stream payload bytes
	Masked   int64   // select: rows whose email differs from the stored one
	CPU      []float64
	RSSStart []int64 // KiB before the run
	RSSPeak  []int64 // KiB, VmHWM after the run (reset before it when possible)
	PeakOK   bool    // VmHWM was reset before the run
	Err      string
}

// measure runs fn with CPU and RSS snapshots of the path's processes
// around it.
func measure(p *path, fn func(*sample) error) sample {
	n := len(p.hops)
	s := sample{CPU: make([]float64, n), RSSStart: make([]int64, n), RSSPeak: make([]int64, n), PeakOK: true}
	before := make([]float64, n)
	for i, h := range p.hops {
		if !resetPeakRSS(h.pid()) {
			s.PeakOK = false
		}
		s.RSSStart[i], _ = statusKiB(h.pid(), "VmRSS")
		before[i], _ = cpuSeconds(h.pid())
	}
	if err := fn(&s); err != nil {
		s.Err = err.Error()
	}
	for i, h := range p.hops {
		after, err := cpuSeconds(h.pid())
		if err != nil {
			s.Err = fmt.Sprintf("%s: %v (did it exit?)", p.hopNames[i], err)
			continue
		}
		s.CPU[i] = after - before[i]
		s.RSSPeak[i], _ = statusKiB(h.pid(), "VmHWM")
	}
	return s
}

var (
	reTx  = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	reTPS = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection`)
)

// runPgbench runs pgbench -n -S; with logDir it writes per-transaction
// logs there and reads the latencies back.
func runPgbench(ctx context.Context, e *env, p *path, w workload, dur time.Duration, logDir string, s *sample) error {
	jobs := 1
	if w.Clients > 1 {
		jobs = 2
	}
	args := []string{"-n", "-S", "-M", w.Mode, "-c", strconv.Itoa(w.Clients), "-j", strconv.Itoa(jobs),
		"-T", strconv.Itoa(int(dur.Seconds()))}
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
		args = append(args, "-l", "--log-prefix="+filepath.Join(logDir, "tx"))
	}
	args = append(args, p.connInfo)
	cmd := exec.CommandContext(ctx, e.pgbench, args...)
	cmd.Dir = e.tmp
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgbench: %v: %s", err, lastLines(out.String(), 5))
	}
	mt, mp := reTx.FindStringSubmatch(out.String()), reTPS.FindStringSubmatch(out.String())
	if mt == nil || mp == nil {
		return fmt.Errorf("pgbench output not understood: %s", lastLines(out.String(), 8))
	}
	s.Tx, _ = strconv.ParseInt(mt[1], 10, 64)
	tps, _ := strconv.ParseFloat(mp[1], 64)
	if tps <= 0 || s.Tx == 0 {
		return fmt.Errorf("pgbench: no transactions: %s", lastLines(out.String(), 8))
	}
	s.Seconds = float64(s.Tx) / tps
	if strings.Contains(out.String(), "number of failed transactions: ") && !strings.Contains(out.String(), "number of failed transactions: 0 ") {
		return fmt.Errorf("pgbench reported failed transactions: %s", lastLines(out.String(), 8))
	}
	if logDir == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(logDir, "tx.*"))
	if len(files) == 0 {
		return fmt.Errorf("pgbench wrote no transaction log in %s", logDir)
	}
	s.Lat = make([]int32, 0, s.Tx)
	for _, f := range files {
		if err := readLatencies(f, &s.Lat); err != nil {
			return err
		}
	}
	return os.RemoveAll(logDir)
}

// readLatencies appends the latency column (third field, µs) of a pgbench
// per-transaction log: "client_id transaction_no time script_no time_epoch
// time_us [schedule_lag]".
func readLatencies(file string, lat *[]int32) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		// third field
		fld := 0
		start := 0
		for i := 0; i <= len(line); i++ {
			if i == len(line) || line[i] == ' ' {
				if fld == 2 {
					v, err := strconv.ParseInt(string(line[start:i]), 10, 32)
					if err != nil {
						return fmt.Errorf("%s: bad latency in %q", file, line)
					}
					*lat = append(*lat, int32(v))
					break
				}
				fld++
				start = i + 1
			}
		}
	}
	return sc.Err()
}

// countWriter counts bytes and discards them.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func copySQL(rows int) string {
	return fmt.Sprintf("COPY (SELECT i, md5(i::text), repeat('x', 20) FROM generate_series(1, %d) i) TO STDOUT", rows)
}

// runStream connects (not timed), then times one COPY out or SELECT *;
// CPU is measured around the query only.
func runStream(ctx context.Context, p *path, w workload, cfg config) sample {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pgconn.Connect(cctx, p.connInfo)
	cancel()
	if err != nil {
		return sample{Err: "connect: " + err.Error()}
	}
	defer conn.Close(context.Background())
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer qcancel()
	return measure(p, func(s *sample) error {
		start := time.Now()
		defer func() { s.Seconds = time.Since(start).Seconds() }()
		switch w.Stream {
		case "copy":
			var cw countWriter
			tag, err := conn.CopyTo(qctx, &cw, copySQL(cfg.copyRows))
			s.Bytes, s.Tx = cw.n, tag.RowsAffected()
			return err
		default:
			rr := conn.Exec(qctx, "SELECT * FROM bench_people")
			var want []byte
			for rr.NextResult() {
				res := rr.ResultReader()
				for res.NextRow() {
					vals := res.Values()
					s.Tx++
					for _, v := range vals {
						s.Bytes += int64(len(v))
					}
					if len(vals) == 4 {
						want = append(append(append(want[:0], "user"...), vals[0]...), "@example.com"...)
						if !bytes.Equal(vals[2], want) {
							s.Masked++
						}
					}
				}
				if _, err := res.Close(); err != nil {
					return err
				}
			}
			return rr.Close()
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
