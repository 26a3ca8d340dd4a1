package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-gw/sluice/internal/scratchmysql"
)

// The MySQL paths: a scratch MariaDB (internal/scratchmysql), straight and
// through the same gateway and agent as the Postgres paths. The load is
// generated here, in Go, with go-sql-driver/mysql: there is no pgbench for
// MySQL in Debian, and a Go client gives per-transaction latencies directly.
const (
	myUser       = "bench"
	myPassword   = "bench-secret"
	myDB         = "bench"
	connMyPolicy = "bench-my-policy"
	connMyPlain  = "bench-my-nopolicy"
	// myPointSQL is the point select, the counterpart of pgbench -S: one
	// row by primary key, sent as text (COM_QUERY; go-sql-driver interpolates
	// the id), as pgbench -M simple does.
	myPointSQL = "SELECT note FROM bench_people WHERE id = ?"
)

// myPaths are the MySQL paths, in the base order (rotated per round).
var myPaths = []string{"mysql-direct", "mysql-sluice", "mysql-sluice-nopolicy"}

func isMySQLPath(name string) bool {
	for _, p := range myPaths {
		if p == name {
			return true
		}
	}
	return false
}

// directFor is the path a row's ratios are taken against.
func directFor(path string) string {
	if isMySQLPath(path) {
		return "mysql-direct"
	}
	return "direct"
}

// startMySQL starts MariaDB with bench_people (the same rows as the
// Postgres table). A missing MariaDB is not fatal: the MySQL paths are then
// skipped with the reason, like pgbouncer.
func (e *env) startMySQL(ctx context.Context, cfg config) error {
	if !cfg.mysql {
		e.mySkipped = "not run (-mysql=false)"
		return nil
	}
	logf("starting MariaDB and %d rows of bench_people", cfg.selectRows)
	var err error
	e.my, err = scratchmysql.Start(ctx, scratchmysql.Options{Settings: map[string]string{
		"innodb-buffer-pool-size": "256M", "max-connections": "200"}})
	if errors.Is(err, scratchmysql.ErrNotInstalled) {
		e.mySkipped = err.Error()
		logf("MySQL paths skipped: %v", err)
		return nil
	}
	if err != nil {
		return err
	}
	e.cleanups = append(e.cleanups, func() { _ = e.my.Stop() })
	e.versions["mariadb"] = e.my.Version()
	schema := fmt.Sprintf(`CREATE DATABASE %[1]s;
CREATE USER '%[2]s'@'%%' IDENTIFIED BY '%[3]s';
GRANT ALL ON %[1]s.* TO '%[2]s'@'%%';
USE %[1]s;
CREATE TABLE bench_people (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(60), note VARCHAR(40));
INSERT INTO bench_people SELECT seq, CONCAT('name ', seq), CONCAT('user', seq, '@example.com'), CONCAT('note ', MD5(seq)) FROM seq_1_to_%[4]d;
ANALYZE TABLE bench_people`, myDB, myUser, myPassword, cfg.selectRows)
	if err := e.my.Exec(ctx, schema); err != nil {
		return err
	}
	e.paths["mysql-direct"] = &path{Name: "mysql-direct", my: myConfig(e.my.Addr(), myUser, myPassword, myDB, false)}
	return nil
}

// myConfig is a go-sql-driver configuration; sluice paths send the token
// as a cleartext password (plaintext on loopback, like the Postgres paths,
// or TLS with BENCH_SLUICE_SSLMODE=require).
func myConfig(addr, user, password, db string, sluice bool) *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", addr, db
	c.InterpolateParams = true
	c.Timeout = 10 * time.Second
	if sluice {
		c.AllowCleartextPasswords = true
		if sluiceSSLMode() != "disable" {
			c.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback benchmark: TLS cost, not trust
		}
	}
	return c
}

func openMyDB(c *mysql.Config, conns int) (*sql.DB, error) {
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// myExec runs one statement on a fresh connection.
func myExec(ctx context.Context, c *mysql.Config, q string) error {
	db, err := openMyDB(c, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = db.ExecContext(cctx, q)
	return err
}

// addMySQLPaths publishes the MySQL connections on the gateway (called by
// startSluice once the gateway and agent run).
func (e *env) addMySQLPaths(ctx context.Context, gwAddr string, hops []*proc) error {
	if e.my == nil {
		return nil
	}
	target := e.my.URL(myUser, myPassword, myDB)
	policy := map[string]any{
		"agent": agentName, "type": "mysql", "target": target,
		"guardrails": map[string]any{
			"deny":        []string{"drop", "truncate", "alter", "grant", "delete-without-where", "update-without-where"},
			"deny_tables": []string{"bench_secrets"},
		},
		"masking": map[string]any{"columns": []string{"bench_people.email"}, "detectors": []string{"email", "credit_card"}, "style": "partial"},
	}
	if err := e.api("PUT", "/api/v1/connections/"+connMyPolicy, policy, nil); err != nil {
		return err
	}
	if err := e.api("PUT", "/api/v1/connections/"+connMyPlain, map[string]any{"agent": agentName, "type": "mysql", "target": target}, nil); err != nil {
		return err
	}
	for _, c := range []struct{ path, conn string }{{"mysql-sluice", connMyPolicy}, {"mysql-sluice-nopolicy", connMyPlain}} {
		p := &path{Name: c.path, hops: hops, hopNames: []string{"gateway", "agent"}, my: myConfig(gwAddr, sluiceUser, e.token, c.conn, true)}
		var err error
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err = myExec(ctx, p.my, "SELECT 1"); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("path %s: %w", c.path, err)
		}
		e.paths[c.path] = p
	}
	var me *mysql.MySQLError
	if err := myExec(ctx, e.paths["mysql-sluice"].my, "DROP TABLE IF EXISTS bench_guard_probe"); !errors.As(err, &me) || me.Number != 1142 {
		return fmt.Errorf("guardrails not in force on %s: DROP TABLE gave %v", connMyPolicy, err)
	}
	return nil
}

// runMyPoint runs w.Clients connections doing point selects among rows ids
// for dur, one at a time each, and records every latency (µs). Connecting
// is not timed.
func runMyPoint(ctx context.Context, p *path, w workload, dur time.Duration, rows int, s *sample) error {
	db, err := openMyDB(p.my, w.Clients)
	if err != nil {
		return err
	}
	defer db.Close()
	conns := make([]*sql.Conn, w.Clients)
	for i := range conns {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		conns[i], err = db.Conn(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conns[i].Close()
	}
	lats := make([][]int32, w.Clients)
	errs := make([]error, w.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			lat := make([]int32, 0, 1<<16)
			var note sql.RawBytes
			for {
				t0 := time.Now()
				if !t0.Before(deadline) || ctx.Err() != nil {
					break
				}
				r, err := c.QueryContext(ctx, myPointSQL, 1+rnd.IntN(rows))
				if err == nil {
					if r.Next() {
						err = r.Scan(&note)
					} else if err = r.Err(); err == nil {
						err = errors.New("no row")
					}
					if cerr := r.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					errs[i] = err
					break
				}
				lat = append(lat, int32(time.Since(t0).Microseconds()))
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	s.Seconds = time.Since(start).Seconds()
	for i := range lats {
		if errs[i] != nil {
			return errs[i]
		}
		s.Lat = append(s.Lat, lats[i]...)
	}
	s.Tx = int64(len(s.Lat))
	if s.Tx == 0 {
		return errors.New("no transactions")
	}
	return nil
}

// runMyStream connects (not timed), then times SELECT * FROM bench_people
// read row by row (text protocol), counting the value bytes and the rows
// whose e-mail came back changed (masked).
func runMyStream(ctx context.Context, p *path) sample {
	db, err := openMyDB(p.my, 1)
	if err != nil {
		return sample{Err: err.Error()}
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := db.Conn(cctx)
	cancel()
	if err != nil {
		return sample{Err: "connect: " + err.Error()}
	}
	defer c.Close()
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer qcancel()
	return measure(p, func(s *sample) error {
		start := time.Now()
		defer func() { s.Seconds = time.Since(start).Seconds() }()
		rows, err := c.QueryContext(qctx, "SELECT id, name, email, note FROM bench_people")
		if err != nil {
			return err
		}
		defer rows.Close()
		var id, name, email, note sql.RawBytes
		want := make([]byte, 0, 64)
		for rows.Next() {
			if err := rows.Scan(&id, &name, &email, &note); err != nil {
				return err
			}
			s.Tx++
			s.Bytes += int64(len(id) + len(name) + len(email) + len(note))
			want = append(append(append(want[:0], "user"...), id...), "@example.com"...)
			if string(email) != string(want) {
				s.Masked++
			}
		}
		return rows.Err()
	})
}

// myWorkloads are the MySQL workloads: point selects at each client count
// and the bulk read, on the MySQL paths.
func myWorkloads(cfg config) []workload {
	var ws []workload
	for _, c := range cfg.clients {
		ws = append(ws, workload{Name: "mysql-point-c" + strconv.Itoa(c), Kind: "tx", Proto: "mysql", Clients: c, Paths: myPaths})
	}
	sel := workload{Name: "mysql-select-1M", Kind: "stream", Stream: "select", Proto: "mysql", Paths: myPaths}
	if cfg.selectRows != 1_000_000 {
		sel.Name = fmt.Sprintf("mysql-select-%d", cfg.selectRows)
	}
	return append(ws, sel)
}
