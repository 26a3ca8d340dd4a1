package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPsqlQuery(t *testing.T) {
	out, errOut, err := runTool(t, nil, E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-At", "-c",
		"SELECT current_user, current_database(), current_setting('application_name'), 6*7")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, errOut)
	}
	if got := strings.TrimSpace(out); got != "app|app|psql|42" {
		t.Fatalf("got %q, want app|app|psql|42 (upstream user, database, forwarded application_name)", got)
	}
}

func TestUpstreamAuthMethods(t *testing.T) {
	for conn, user := range map[string]string{"pg-demo": "app", "pg-md5": "app_md5"} {
		out, errOut, err := runTool(t, nil, E.psql, E.conninfo(conn, E.aliceToken), "-X", "-At", "-c", "SELECT current_user")
		if err != nil {
			t.Fatalf("%s: %v\n%s", conn, err, errOut)
		}
		if strings.TrimSpace(out) != user {
			t.Fatalf("%s: logged in as %q, want %q", conn, out, user)
		}
	}
	method, err := E.pg.Query(context.Background(), "SELECT substr(rolpassword,1,3) FROM pg_authid WHERE rolname='app_md5'")
	if err != nil || method != "md5" {
		t.Fatalf("app_md5 is not an md5 role (%q, %v): the test would not prove MD5 login", method, err)
	}
}

var failedRe = regexp.MustCompile(`number of failed transactions: (\d+)`)
var processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

func pgbench(t *testing.T, args ...string) string {
	t.Helper()
	host, port := splitHostPort(E.gw.PGAddr)
	base := []string{"-h", host, "-p", port, "-U", "alice"}
	cmd := exec.Command(E.pgbench, append(base, append(args, "pg-demo")...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+E.aliceToken, "PGSSLMODE=require")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestPgbench(t *testing.T) {
	pgbench(t, "-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		for _, c := range []int{1, 8} {
			t.Run(fmt.Sprintf("S-%s-c%d", mode, c), func(t *testing.T) {
				out := pgbench(t, "-n", "-S", "-M", mode, "-c", strconv.Itoa(c), "-j", strconv.Itoa(min(c, 2)), "-T", "2")
				checkPgbench(t, out)
			})
		}
	}
	t.Run("tpcb", func(t *testing.T) {
		checkPgbench(t, pgbench(t, "-n", "-c", "4", "-j", "2", "-T", "3"))
	})
}

func checkPgbench(t *testing.T, out string) {
	t.Helper()
	p := processedRe.FindStringSubmatch(out)
	if p == nil || p[1] == "0" {
		t.Fatalf("no transactions processed:\n%s", out)
	}
	if f := failedRe.FindStringSubmatch(out); f != nil && f[1] != "0" {
		t.Fatalf("%s failed transactions:\n%s", f[1], out)
	}
	t.Logf("%s transactions", p[1])
}

const copySQL = "COPY (SELECT i, md5(i::text), 'row ' || i FROM generate_series(1, 2200000) i) TO STDOUT"

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestCopyOutAndIn(t *testing.T) {
	direct, errOut, err := runTool(t, nil, E.psql, E.directConninfo(), "-X", "-q", "-c", copySQL)
	if err != nil {
		t.Fatalf("direct copy: %v %s", err, errOut)
	}
	if len(direct) < 95<<20 {
		t.Fatalf("COPY produced only %d bytes", len(direct))
	}
	via, errOut, err := runTool(t, nil, E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-q", "-c", copySQL)
	if err != nil {
		t.Fatalf("copy out via gateway: %v %s", err, errOut)
	}
	if len(via) != len(direct) || sum([]byte(via)) != sum([]byte(direct)) {
		t.Fatalf("COPY out through the gateway differs: %d vs %d bytes", len(via), len(direct))
	}

	setup := "DROP TABLE IF EXISTS copy_in; CREATE TABLE copy_in (i int, h text, s text)"
	if _, errOut, err := runTool(t, nil, E.psql, E.directConninfo(), "-X", "-q", "-c", setup); err != nil {
		t.Fatal(err, errOut)
	}
	if _, errOut, err := runTool(t, strings.NewReader(direct), E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-q", "-c", "COPY copy_in FROM STDIN"); err != nil {
		t.Fatalf("copy in via gateway: %v %s", err, errOut)
	}
	back, errOut, err := runTool(t, nil, E.psql, E.directConninfo(), "-X", "-q", "-c", "COPY (SELECT * FROM copy_in ORDER BY i) TO STDOUT")
	if err != nil {
		t.Fatal(err, errOut)
	}
	if sum([]byte(back)) != sum([]byte(direct)) {
		t.Fatalf("COPY in through the gateway stored different data (%d vs %d bytes)", len(back), len(direct))
	}
	runTool(t, nil, E.psql, E.directConninfo(), "-X", "-q", "-c", "DROP TABLE copy_in")
}

func TestHundredMegabyteValue(t *testing.T) {
	const n = 100 << 20
	out, errOut, err := runTool(t, nil, E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-At", "-c", fmt.Sprintf("SELECT repeat('x', %d)", n))
	if err != nil {
		t.Fatalf("large DataRow: %v %s", err, errOut)
	}
	if len(out) != n+1 || strings.Trim(out, "x\n") != "" {
		t.Fatalf("large DataRow: got %d bytes", len(out))
	}

	// A 100 MB Query message the other way.
	f := filepath.Join(t.TempDir(), "big.sql")
	var q bytes.Buffer
	q.WriteString("SELECT length('")
	q.Write(bytes.Repeat([]byte("y"), n))
	q.WriteString("');\n")
	if err := os.WriteFile(f, q.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runTool(t, nil, E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-At", "-f", f)
	if err != nil {
		t.Fatalf("large Query: %v %s", err, errOut)
	}
	if strings.TrimSpace(out) != strconv.Itoa(n) {
		t.Fatalf("large Query: got %q", out)
	}
}

func TestPsqlCancel(t *testing.T) {
	cmd := exec.Command(E.psql, E.conninfo("pg-demo", E.aliceToken), "-X", "-c", "SELECT pg_sleep(30)")
	cmd.Env = append(os.Environ(), "PSQLRC=/dev/null")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the statement runs upstream, then press Ctrl-C.
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, _ := E.pg.Query(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'")
		if n == "1" {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("pg_sleep never started upstream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("psql did not return after Ctrl-C: cancel was not delivered")
	}
	took := time.Since(start)
	if !strings.Contains(errb.String(), "canceling statement due to user request") {
		t.Fatalf("statement was not cancelled upstream: %s", errb.String())
	}
	t.Logf("cancelled %v after Ctrl-C", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("cancel took %v; should be well under a second", took)
	}
}

func TestPgxExtendedBinary(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, E.conninfo("pg-demo", E.aliceToken))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	var s string
	var ts time.Time
	if err := conn.QueryRow(ctx, "SELECT $1::int8 * 2, $2::text || '!', now()", int64(21), "hi").Scan(&n, &s, &ts); err != nil {
		t.Fatal(err)
	}
	if n != 42 || s != "hi!" || ts.IsZero() {
		t.Fatalf("got %d %q %v", n, s, ts)
	}
	// A pipelined batch.
	b := &pgx.Batch{}
	for i := range 50 {
		b.Queue("SELECT $1::int", i)
	}
	br := conn.SendBatch(ctx, b)
	for i := range 50 {
		var v int
		if err := br.QueryRow().Scan(&v); err != nil || v != i {
			t.Fatalf("batch item %d: %v %d", i, err, v)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	// LISTEN/NOTIFY through the gateway.
	if _, err := conn.Exec(ctx, "LISTEN sluice_chan"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "NOTIFY sluice_chan, 'hello'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nt, err := conn.WaitForNotification(wctx)
	if err != nil || nt.Payload != "hello" {
		t.Fatalf("notification: %v %+v", err, nt)
	}
}

var _ = io.Discard
