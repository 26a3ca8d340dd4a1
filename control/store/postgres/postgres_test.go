package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/storetest"
	"github.com/sluice-gw/sluice/internal/scratchpg"
)

const (
	role     = "sluice"
	password = "sluice-secret-pw"
)

// TestPostgres runs everything against one real, throwaway PostgreSQL
// server (scratchpg fails, never skips, when PostgreSQL is not installed),
// with a fresh database per sub-test.
func TestPostgres(t *testing.T) {
	srv := scratchpg.MustStart(t, scratchpg.Options{Settings: map[string]string{"max_connections": "200"}})
	ctx := context.Background()
	if err := srv.CreateUser(ctx, role, password, "scram-sha-256"); err != nil {
		t.Fatal(err)
	}
	dbs := 0
	newDB := func(t *testing.T) string {
		t.Helper()
		dbs++
		name := "sluice_" + strconv.Itoa(dbs)
		// An ICU en-US default collation, as production databases often
		// have: lists must still come back in byte order.
		if err := srv.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s TEMPLATE template0
			LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`, name, role)); err != nil {
			t.Fatal(err)
		}
		return srv.URL(role, password, name)
	}
	open := func(t *testing.T, dsn string) *Store {
		t.Helper()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, newDB(t)) })
	})
	t.Run("Shared", func(t *testing.T) {
		storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
			dsn := newDB(t)
			return open(t, dsn), open(t, dsn)
		})
	})
	t.Run("ConcurrentOpenMigratesOnce", func(t *testing.T) {
		dsn := newDB(t)
		const n = 6
		stores := make([]*Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				stores[i], errs[i] = Open(ctx, dsn)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				continue
			}
			defer stores[i].Close()
		}
		if t.Failed() {
			return
		}
		var rows, version int
		if err := stores[0].pool.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &version); err != nil {
			t.Fatal(err)
		}
		if rows != len(migrations) || version != migrations[len(migrations)-1].version {
			t.Fatalf("schema_migrations: %d rows, version %d", rows, version)
		}
		// Every store works.
		for i, s := range stores {
			if err := s.PutUser(ctx, store.User{Name: fmt.Sprintf("u%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("Migrations", func(t *testing.T) {
		dsn := newDB(t)
		s := open(t, dsn)
		defer s.Close()
		last := migrations[len(migrations)-1].version
		if err := migrate(ctx, s.pool, []migration{{2, "SELECT 1"}, {1, "SELECT 1"}}, time.Now()); err == nil {
			t.Fatal("out-of-order migrations accepted")
		}
		// A failing migration rolls back every step of its run.
		bad := append(append([]migration{}, migrations...),
			migration{last + 1, `CREATE TABLE later (x integer)`}, migration{last + 2, `CREATE TABLE broken (`})
		if err := migrate(ctx, s.pool, bad, time.Now()); err == nil {
			t.Fatal("broken migration accepted")
		}
		var later *string
		if err := s.pool.QueryRow(ctx, `SELECT to_regclass('later')::text`).Scan(&later); err != nil || later != nil {
			t.Fatalf("table of a rolled-back run exists: %v, %v", later, err)
		}
		extra := bad[:len(bad)-1]
		if err := migrate(ctx, s.pool, extra, time.Now()); err != nil {
			t.Fatalf("new migration: %v", err)
		}
		if err := migrate(ctx, s.pool, extra, time.Now()); err != nil {
			t.Fatalf("re-run is not idempotent: %v", err)
		}
		if _, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("opened a database with a newer schema: %v", err)
		}
	})
	t.Run("SchemaFromSearchPath", func(t *testing.T) {
		dsn := newDB(t)
		admin, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if _, err := admin.Exec(ctx, `CREATE SCHEMA gw1; CREATE SCHEMA gw2`); err != nil {
			t.Fatal(err)
		}
		a, b := open(t, dsn+"?search_path=gw1"), open(t, dsn+"?search_path=gw2")
		defer a.Close()
		defer b.Close()
		if err := a.PutUser(ctx, store.User{Name: "alice"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("schemas not separate: %v", err)
		}
		var n int
		if err := admin.QueryRow(ctx, `SELECT COUNT(*) FROM gw1.users`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("gw1.users: %d, %v", n, err)
		}
	})
	t.Run("OpenErrors", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		const wrong = "not-the-password-42"
		_, err := Open(short, srv.URL(role, wrong, "postgres"))
		if err == nil || strings.Contains(err.Error(), wrong) {
			t.Fatalf("wrong password: %v", err)
		}
		_, err = Open(short, "postgres://"+role+":"+wrong+"@127.0.0.1:bad/x")
		if err == nil || strings.Contains(err.Error(), wrong) {
			t.Fatalf("bad dsn: %v", err)
		}
		port, err := scratchpg.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(short, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/x?connect_timeout=5", role, wrong, port)); err == nil {
			t.Fatal("opened a store on a closed port")
		}
	})
}
