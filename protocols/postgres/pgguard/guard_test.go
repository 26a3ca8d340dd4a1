package pgguard

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func mustCompile(t testing.TB, r Rules, o Options) *Guard {
	t.Helper()
	g, err := Compile(r, o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func allBut(except string) []string {
	var out []string
	for _, r := range KnownRules() {
		if r != except {
			out = append(out, r)
		}
	}
	return out
}

type ruleCase struct{ sql, want string }

func runCases(t *testing.T, g *Guard, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		d := g.Check(c.sql)
		if got := decisionString(d); got != c.want {
			t.Errorf("%q: got %s (%s), want %s", c.sql, got, d.Reason, c.want)
		}
	}
}

// Bodies, rules and triggers, with "create" off so that the nested statements count.
func TestNestedWithoutCreateRule(t *testing.T) {
	g := mustCompile(t, Rules{Deny: allBut(RuleCreate), DenyTables: []string{"audit_log", "billing.ledger"}}, Options{})
	runCases(t, g, []ruleCase{
		{`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DELETE FROM t $$`, "deny:delete-without-where"},
		{`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM t WHERE id = 1'`, "allow"},
		{`CREATE FUNCTION f() RETURNS void AS $$ SELECT 1; TRUNCATE t $$ LANGUAGE SQL`, "deny:truncate"},
		{`CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE t; END $$`, "deny:drop"},
		{`CREATE FUNCTION f(a int) RETURNS int LANGUAGE plpgsql AS $$ DECLARE x int; BEGIN x := a + 1; RETURN x; END $$`, "allow"},
		{`CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; END $$`, "deny:dynamic-sql"},
		{`CREATE FUNCTION f() RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE 'SELECT 1'; END $$`, "allow"},
		{`CREATE FUNCTION f(q text) RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE q; END $$`, "deny:dynamic-sql"},
		{`CREATE FUNCTION f() RETURNS void LANGUAGE plpython3u AS 'plpy.execute("select 1")'`, "deny:dynamic-sql"},
		{`CREATE FUNCTION f() RETURNS int AS 'mylib', 'f' LANGUAGE c`, "deny:dynamic-sql"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END`, "deny:delete-without-where"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1`, "allow"},
		{`CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log VALUES (1); COMMIT; END $$`, "deny:deny_tables"},
		{`CREATE PROCEDURE p() LANGUAGE sql AS $$ UPDATE billing.ledger SET x = 1 WHERE id = 1 $$`, "deny:deny_tables"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = admin AS 'SELECT 1'`, "deny:set-role"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = public AS 'SELECT 1'`, "allow"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('role', 'x', false); RETURN 1; END $$`, "deny:set-role"},
		{`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN garbage here; END $$`, "deny:unparseable"},
		{`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ garbage DELETE $$`, "deny:unparseable"},
		{`CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM t2`, "deny:delete-without-where"},
		{`CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO x VALUES (1); UPDATE y SET a = 1)`, "deny:update-without-where"},
		{`CREATE RULE r AS ON UPDATE TO t DO INSTEAD NOTHING`, "allow"},
		{`CREATE RULE r AS ON INSERT TO audit_log DO INSTEAD NOTHING`, "deny:deny_tables"},
		{`CREATE RULE r AS ON INSERT TO t DO ALSO INSERT INTO audit_log VALUES (1)`, "deny:deny_tables"},
		{`CREATE TRIGGER trg BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION f()`, "deny:deny_tables"},
		{`CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`, "allow"},
		{`CREATE POLICY p ON audit_log USING (false)`, "deny:deny_tables"},
		{`CREATE TABLE t (a int)`, "allow"},
		{`CREATE TABLE p1 PARTITION OF audit_log FOR VALUES FROM (1) TO (2)`, "deny:deny_tables"},
		{`CREATE TABLE c () INHERITS (billing.ledger)`, "deny:deny_tables"},
		{`CREATE OR REPLACE VIEW audit_log AS SELECT 1`, "deny:deny_tables"},
		{`CREATE VIEW audit_log AS SELECT 1`, "allow"},
		{`CREATE TABLE x AS SELECT * FROM audit_log`, "allow"},
		{`SELECT * INTO audit_log FROM t`, "allow"},
		{`CREATE TABLE audit_log AS SELECT 1`, "allow"},
		{`CREATE INDEX ON audit_log (a)`, "deny:deny_tables"},
		{`CREATE SCHEMA s CREATE TABLE t (a int) GRANT SELECT ON t TO bob`, "deny:grant"},
		{`CREATE MATERIALIZED VIEW mv AS WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d`, "deny:delete-without-where"},
		{`CREATE TABLE t2 AS WITH d AS (UPDATE t SET a = 1 RETURNING 1) SELECT * FROM d`, "deny:update-without-where"},
		{`DO $$ BEGIN CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'DELETE FROM t'; END $$`, "deny:delete-without-where"},
		{`DO $$ BEGIN CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN EXECUTE q; END $f$; END $$`, "deny:dynamic-sql"},
		{`DO $$ BEGIN EXECUTE 'CREATE FUNCTION g() RETURNS void LANGUAGE sql AS ''TRUNCATE t'''; END $$`, "deny:truncate"},
		{`CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()`, "allow"},
		{`CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.x := 1; RETURN NEW; END $$`, "allow"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ DECLARE a int[]; BEGIN a[1] := (SELECT 1); RETURN a[1]; END $$`, "allow"},
	})
}

func TestDenyTablesOnly(t *testing.T) {
	g := mustCompile(t, Rules{DenyTables: []string{"audit_log", "billing.ledger"}}, Options{})
	runCases(t, g, []ruleCase{
		{`DROP TABLE audit_log`, "deny:deny_tables"},
		{`DROP TABLE IF EXISTS customers, billing.ledger CASCADE`, "deny:deny_tables"},
		{`DROP TABLE customers`, "allow"},
		{`DROP TABLE ledger`, "allow"},
		{`DROP VIEW public.audit_log`, "deny:deny_tables"},
		{`DROP TRIGGER trg ON audit_log`, "deny:deny_tables"},
		{`DROP TRIGGER trg ON customers`, "allow"},
		{`DROP POLICY p ON billing.ledger`, "deny:deny_tables"},
		{`DROP SCHEMA billing CASCADE`, "deny:deny_tables"},
		{`DROP SCHEMA anything CASCADE`, "deny:deny_tables"},
		{`DROP SCHEMA anything`, "allow"},
		{`ALTER TABLE audit_log ADD COLUMN c int`, "deny:deny_tables"},
		{`ALTER TABLE customers ADD COLUMN c int`, "allow"},
		{`ALTER TABLE audit_log RENAME TO x`, "deny:deny_tables"},
		{`ALTER TABLE audit_log RENAME COLUMN a TO b`, "deny:deny_tables"},
		{`ALTER TABLE audit_log SET SCHEMA s`, "deny:deny_tables"},
		{`ALTER TABLE audit_log OWNER TO bob`, "deny:deny_tables"},
		{`ALTER TABLE parent DETACH PARTITION audit_log`, "deny:deny_tables"},
		{`ALTER TABLE parent ATTACH PARTITION billing.ledger FOR VALUES FROM (1) TO (2)`, "deny:deny_tables"},
		{`ALTER SCHEMA billing RENAME TO b`, "deny:deny_tables"},
		{`ALTER SCHEMA public RENAME TO p`, "allow"},
		{`TRUNCATE a, audit_log`, "deny:deny_tables"},
		{`TRUNCATE a`, "allow"},
		{`COPY audit_log FROM STDIN`, "deny:deny_tables"},
		{`COPY audit_log TO STDOUT`, "allow"},
		{`DELETE FROM t`, "allow"},
		{`SET ROLE admin`, "allow"},
		{`GRANT ALL ON audit_log TO bob`, "allow"},
		{`DO $$ BEGIN EXECUTE q; END $$`, "deny:dynamic-sql"},
		{`DO $$ BEGIN EXECUTE 'INSERT INTO audit_log VALUES (1)'; END $$`, "deny:deny_tables"},
	})
}

func TestSingleRule(t *testing.T) {
	g := mustCompile(t, Rules{Deny: []string{"drop"}}, Options{})
	d := g.Check("DELETE FROM t")
	if !d.Allow || d.Parsed || d.Kind != KindDelete {
		t.Errorf("DELETE with only drop: %+v", d)
	}
	d = g.Check("DO $$ BEGIN EXECUTE 'DR' || 'OP TABLE t'; END $$")
	if d.Allow || d.Rule != RuleDynamicSQL || !d.Parsed {
		t.Errorf("dynamic DO with only drop: %+v", d)
	}
	d = g.Check("DROP TABLE customers")
	want := `statement denied by guardrail "drop": DROP TABLE customers`
	if d.Allow || d.Rule != "drop" || d.Reason != want || d.Kind != KindDDL {
		t.Errorf("DROP: %+v, want reason %q", d, want)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, r := range []Rules{
		{Deny: []string{"dorp"}},
		{Deny: []string{"drop", ""}},
		{DenyTables: []string{""}},
		{DenyTables: []string{"a.b.c"}},
		{DenyTables: []string{`"unterminated`}},
		{DenyTables: []string{`a b`}},
		{DenyTables: []string{`a.`}},
	} {
		if _, err := Compile(r, Options{}); err == nil {
			t.Errorf("Compile(%+v): no error", r)
		}
	}
	_, err := Compile(Rules{Deny: []string{"drop", "dorp"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), `"dorp"`) {
		t.Errorf("unknown rule error does not name it: %v", err)
	}
	g := mustCompile(t, Rules{Deny: []string{" DROP "}}, Options{})
	if !g.Enabled() || g.Check("drop table x").Rule != "drop" {
		t.Error("rule names should be case-insensitive")
	}
}

func TestTableNames(t *testing.T) {
	for _, c := range []struct {
		cfg, sql string
		deny     bool
	}{
		{`AUDIT_LOG`, `INSERT INTO audit_log VALUES (1)`, true},
		{`AUDIT_LOG`, `INSERT INTO "AUDIT_LOG" VALUES (1)`, false},
		{`"Audit_Log"`, `INSERT INTO "Audit_Log" VALUES (1)`, true},
		{`"Audit_Log"`, `INSERT INTO audit_log VALUES (1)`, false},
		{`"Audit_Log"`, `INSERT INTO Audit_Log VALUES (1)`, false},
		{`public."Weird.Name"`, `INSERT INTO public."Weird.Name" VALUES (1)`, true},
		{`public."Weird.Name"`, `INSERT INTO other."Weird.Name" VALUES (1)`, false},
		{` billing . ledger `, `INSERT INTO billing.ledger VALUES (1)`, true},
		{`"a""b"`, `INSERT INTO "a""b" VALUES (1)`, true},
	} {
		g := mustCompile(t, Rules{DenyTables: []string{c.cfg}}, Options{})
		if d := g.Check(c.sql); d.Allow == c.deny {
			t.Errorf("config %q, %q: got %+v, want deny=%v", c.cfg, c.sql, d, c.deny)
		}
	}
}

func TestKind(t *testing.T) {
	g := mustCompile(t, Rules{Deny: []string{"drop"}}, Options{})
	for sql, want := range map[string]string{
		"SELECT 1":                                KindSelect,
		"  (select 1) union select 2":             KindSelect,
		"/* x */ -- y\n insert into t values (1)": KindInsert,
		"with x as (select 1) select * from x":    KindSelect,
		"update t set a = 1":                      KindUpdate,
		"delete from t":                           KindDelete,
		"create index on t (a)":                   KindDDL,
		"begin":                                   KindUtility,
		"merge into t using s on true when matched then do nothing": KindOther,
		"":                       KindOther,
		"drop table t":           KindDDL,
		"select 'drop'":          KindSelect,
		"do $$begin null; end$$": KindUtility,
		"select 1; drop table t": KindDDL, // the denied statement
		"select 'drop'; insert into t values (1)": KindSelect,
	} {
		if got := g.Check(sql).Kind; got != want {
			t.Errorf("%q: kind %q, want %q", sql, got, want)
		}
	}
}

func TestCacheBytesBound(t *testing.T) {
	const limit = 64 << 10
	g := mustCompile(t, Rules{Deny: []string{"drop"}}, Options{CacheBytes: limit})
	for i := 0; i < 5000; i++ {
		g.Check(fmt.Sprintf("DROP TABLE t%d -- %s", i, strings.Repeat("x", i%200)))
	}
	entries, bytes := g.CacheStats()
	if bytes > limit || entries == 0 {
		t.Fatalf("cache: %d entries, %d bytes, limit %d", entries, bytes, limit)
	}
	// A recent entry is a hit and returns the same decision.
	sql := "DROP TABLE t4999 -- " + strings.Repeat("x", 4999%200)
	if d, ok := g.cache.get(sql); !ok || d.Rule != "drop" {
		t.Fatalf("recent entry missing: %v %+v", ok, d)
	}
	if _, ok := g.cache.get("DROP TABLE t0 -- "); ok {
		t.Fatal("oldest entry not evicted")
	}
	// Oversized statements are not cached.
	g.Check("DROP TABLE big -- " + strings.Repeat("y", limit))
	if _, b := g.CacheStats(); b > limit {
		t.Fatalf("oversized entry broke the bound: %d", b)
	}
	// Disabled cache.
	g2 := mustCompile(t, Rules{Deny: []string{"drop"}}, Options{CacheBytes: -1})
	g2.Check("DROP TABLE t")
	if e, _ := g2.CacheStats(); e != 0 {
		t.Fatal("disabled cache holds entries")
	}
}

func TestConcurrentCheck(t *testing.T) {
	g := mustCompile(t, corpusRules, Options{CacheBytes: 32 << 10})
	cases := loadCorpus(t)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				for j := range cases {
					c := cases[(j+w*37)%len(cases)]
					if got := decisionString(g.Check(c.sql)); got != c.expect {
						t.Errorf("concurrent %q: %s want %s", c.sql, got, c.expect)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if _, b := g.CacheStats(); b > 32<<10 {
		t.Fatalf("cache over budget: %d", b)
	}
}

func TestPrefilterWords(t *testing.T) {
	g := mustCompile(t, corpusRules, Options{})
	for sql, allow := range map[string]bool{
		"select updated_at, created_at from t": true,
		"select drop1":                         false,
		"select x$drop":                        false,
		"select $$drop$$":                      false,
		"select édrop":                         true,
		"select \"set_config\"":                false,
		"select U&\"x\"":                       false,
		"select 'a' & 'b'":                     true,
		"SELECT abalance FROM pgbench_accounts WHERE aid = $1": true,
	} {
		if got := g.prefilterAllows(sql); got != allow {
			t.Errorf("prefilterAllows(%q) = %v, want %v", sql, got, allow)
		}
	}
}
