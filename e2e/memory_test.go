package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// rssKiB reads a /proc/PID/status field (VmRSS, VmHWM) in KiB.
func rssKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// recordingSpool bounds the gateway's recordings held in memory in the
// memory test; it is a separate, configured bound (SLUICE_RECORDING_SPOOL).
const recordingSpool = 8 << 20

// TestMaskedStreamMemoryIsFlat streams 10 million rows with a masked
// column through real gateway and agent processes and checks that neither
// grows by more than 16 MiB while it runs (issue 4, PERFORMANCE T8).
func TestMaskedStreamMemoryIsFlat(t *testing.T) {
	rows := 10_000_000
	if testing.Short() {
		rows = 1_000_000
	}
	bin := sluiceBin(t)
	data := t.TempDir()
	apiAddr, tunAddr, pgAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := []string{"SLUICE_DATA_DIR=" + data, "SLUICE_API_ADDR=" + apiAddr, "SLUICE_TUNNEL_ADDR=" + tunAddr,
		"SLUICE_PG_ADDR=" + pgAddr, "SLUICE_MYSQL_ADDR=127.0.0.1:0", "SLUICE_API=http://" + apiAddr, "SLUICE_LOG_LEVEL=warn", "SLUICE_METRICS_ADDR=127.0.0.1:0", "SLUICE_HOME=" + filepath.Join(data, "home"),
		// Recordings wait in a spool of their own, bounded separately: 8 MiB here.
		"SLUICE_RECORDING_SPOOL=" + strconv.Itoa(recordingSpool)}
	gw := startProc(t, env, bin, "gateway")
	waitHTTP(t, "http://"+apiAddr+"/healthz", gw)
	dsn := strings.TrimSpace(cli(t, env, "", "admin", "create", "agent", "mem-agent"))
	ag := startProc(t, append(env, "SLUICE_KEY="+tunnelDSN(dsn)), bin, "agent")
	yaml := fmt.Sprintf("kind: connection\nname: pg-mem\nagent: mem-agent\ntype: postgres\ntarget: %s\nmasking:\n  columns: [\"*.email\"]\n  detectors: [email, credit_card]\n---\nkind: rule\nname: mem\ngroups: [mem]\nconnections: [pg-mem]\n---\nkind: user\nname: mem\ngroups: [mem]\n",
		E.pg.URL("app", "app-secret", "app"))
	f := filepath.Join(data, "mem.yaml")
	os.WriteFile(f, []byte(yaml), 0o600)
	cli(t, env, "", "admin", "apply", "-f", f)
	token := strings.TrimSpace(cli(t, env, "", "admin", "create", "token", "mem"))
	host, port := splitHostPort(pgAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var conn *pgconn.PgConn
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		conn, err = pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=mem dbname=pg-mem password=%s sslmode=require", host, port, token))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	sql := fmt.Sprintf("SELECT i, 'user' || i || '@example.com' AS email, 'note ' || i AS note FROM generate_series(1, %d) i", rows)
	rr := conn.Exec(ctx, sql)
	var base [2]int64
	n, masked := 0, 0
	start := time.Now()
	for rr.NextResult() {
		res := rr.ResultReader()
		for res.NextRow() {
			n++
			if n == 200_000 { // warmed up: buffers and pools are at their working size
				base = [2]int64{rssKiB(t, gw.cmd.Process.Pid, "VmRSS"), rssKiB(t, ag.cmd.Process.Pid, "VmRSS")}
			}
			if v := res.Values()[1]; !strings.Contains(string(v), "user") {
				masked++
			}
		}
		if _, err := res.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	peak := [2]int64{rssKiB(t, gw.cmd.Process.Pid, "VmHWM"), rssKiB(t, ag.cmd.Process.Pid, "VmHWM")}
	if n != rows || masked != rows {
		t.Fatalf("%d rows, %d masked; want %d of each", n, masked, rows)
	}
	for i, name := range []string{"gateway", "agent"} {
		growth := peak[i] - base[i]
		t.Logf("%s: RSS %d KiB after warm-up, peak %d KiB, growth %d KiB (%d rows in %v)", name, base[i], peak[i], growth, rows, took.Round(time.Millisecond))
		bound := int64(16 << 10)
		if name == "gateway" {
			bound += recordingSpool >> 10
		}
		if growth > bound {
			t.Errorf("%s grew by %d KiB while streaming %d masked rows; the bound is 16 MiB (plus the gateway's %d MiB recording spool)", name, growth, rows, recordingSpool>>20)
		}
	}
}
