package pgguard

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// targetsString renders targets in a canonical order: their order carries
// no meaning (review rules match on membership), and the parse tree walk
// (protoreflect Range) does not promise one.
func targetsString(ts []Target) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func TestClassify(t *testing.T) {
	cases := []struct{ sql, want string }{
		// Reads have no target, whatever words hide in literals.
		{"SELECT 1", ""},
		{"select * from payments where note = 'delete me, drop it'", ""},
		{"COPY t TO STDOUT", ""},
		{"EXPLAIN DELETE FROM t", ""},
		{"PREPARE s AS DELETE FROM t", "prepare"},
		{"DEALLOCATE ALL; DISCARD PLANS", "prepare"},
		{"discard all", "prepare"},
		{"SELECT 'discard', 'prepare', 'deallocate'", ""},
		{"/* update */ SELECT updated_at FROM t -- insert", ""},
		{"", ""},
		// Writes, with their tables as the parser folds them.
		{"INSERT INTO Payments VALUES (1)", "insert:payments"},
		{`UPDATE billing."Ledger" SET a = 1 WHERE id = 2`, "update:billing.Ledger"},
		{"delete from public.payments", "delete:public.payments"},
		{"WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d", "delete:a"},
		{"SELECT * FROM (VALUES (1)) v WHERE EXISTS (SELECT 1) ; WITH x AS (UPDATE b SET c = 1 RETURNING 1) SELECT 1", "update:b"},
		{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (1)", "merge:t delete:t insert:t"},
		{"TRUNCATE a, b.c", "truncate:a truncate:b.c"},
		{"COPY t FROM STDIN", "copy:t"},
		{"COPY (DELETE FROM t RETURNING *) TO STDOUT", "delete:t"},
		{"EXPLAIN ANALYZE DELETE FROM t", "delete:t"},
		{"EXPLAIN (ANALYZE false) DELETE FROM t", ""},
		{"BEGIN; UPDATE a SET x = 1; UPDATE a SET x = 2; COMMIT", "update:a"},
		{"INSERT INTO a SELECT * FROM b; DELETE FROM c", "insert:a delete:c"},
		// DDL, with the tables it names.
		{"CREATE TABLE x (a int)", "ddl ddl:x"},
		{"ALTER TABLE payments ADD COLUMN b int", "ddl ddl:payments"},
		{"ALTER TABLE p ATTACH PARTITION billing.ledger FOR VALUES IN (1)", "ddl ddl:p ddl:billing.ledger"},
		{"DROP TABLE a, s.b", "ddl ddl:a ddl:s.b"},
		{"DROP TRIGGER tr ON payments", "ddl ddl:payments"},
		{"DROP SCHEMA billing CASCADE", "ddl ddl:billing.*"},
		{"DROP SCHEMA billing", "ddl"},
		{"ALTER SCHEMA billing RENAME TO b2", "ddl ddl:billing.*"},
		{"DROP OWNED BY bob", "ddl ddl:*"},
		{"CREATE INDEX ON t (a)", "ddl ddl:t"},
		{"SELECT * INTO newt FROM t", "ddl:newt ddl"},
		{"CREATE TABLE n AS SELECT * FROM payments", "ddl ddl:n"},
		{"CREATE VIEW v AS SELECT * FROM payments", "ddl ddl:v"},
		{"GRANT SELECT ON payments TO bob", "ddl ddl:payments"},
		{"CREATE ROLE r", "ddl"},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END", "ddl"},
		{"EXPLAIN ANALYZE CREATE TABLE z AS SELECT 1", "ddl ddl:z"},
		// Hidden SQL: DO bodies are read, the rest is opaque.
		{"DO $$BEGIN DELETE FROM t WHERE id = 1; END$$", "delete:t"},
		{"DO $$BEGIN EXECUTE 'TRUNCATE x'; END$$", "truncate:x"},
		{"DO $$DECLARE n int; BEGIN n := (SELECT count(*) FROM t); END$$", ""},
		{"DO $$BEGIN EXECUTE q; END$$", "opaque"},
		{"DO LANGUAGE plperl $$ 1 $$", "opaque"},
		{"CALL p()", "opaque"},
		{"EXECUTE s(1)", "opaque"},
		// The gateway's own server-raised rejection is no write.
		{`DO $sluice$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = convert_from(decode('6869', 'hex'), 'UTF8'); END$sluice$`, ""},
	}
	cl := NewClassifier(Options{})
	for _, c := range cases {
		for _, classify := range []func(string) ([]Target, error){Classify, cl.Classify, cl.Classify} { // the second cl call hits the cache
			got, err := classify(c.sql)
			if err != nil {
				t.Errorf("%q: %v", c.sql, err)
				continue
			}
			want := strings.Fields(c.want)
			slices.Sort(want)
			if s := targetsString(got); s != strings.Join(want, " ") {
				t.Errorf("%q: got %q, want %q", c.sql, s, c.want)
			}
		}
	}
}

// A body without any word that can write is not parsed (the prefilter's
// argument): "DO $$BEGIN garbage here; END$$" has no target; the server
// rejects it.
func TestClassifyUnparseable(t *testing.T) {
	cl := NewClassifier(Options{})
	for _, sql := range []string{"garbage DELETE", "UPDATE", "DO $$BEGIN DELETE; END$$", "DO $$BEGIN UPDATE garbage here; END$$"} {
		for range 2 {
			if _, err := cl.Classify(sql); !errors.Is(err, ErrUnparseable) {
				t.Errorf("%q: got %v, want ErrUnparseable", sql, err)
			}
		}
	}
}

func TestClassifyTargetsBounded(t *testing.T) {
	var b strings.Builder
	for i := range maxTargets + 10 {
		fmt.Fprintf(&b, "DELETE FROM t%d;", i)
	}
	got, err := Classify(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxTargets+1 || got[len(got)-1].Kind != KindOpaque {
		t.Fatalf("got %d targets ending in %v, want %d ending in opaque", len(got), got[len(got)-1], maxTargets+1)
	}
}

func TestClassifyPrefilterAllocs(t *testing.T) {
	sql := "SELECT abalance FROM pgbench_accounts WHERE aid = 48213"
	if n := testing.AllocsPerRun(100, func() { Classify(sql) }); n != 0 {
		t.Fatalf("a read took %v allocations, want 0", n)
	}
}

func TestTargetIsWrite(t *testing.T) {
	for k, want := range map[string]bool{KindInsert: true, KindUpdate: true, KindDelete: true, KindMerge: true,
		KindTruncate: true, KindCopy: true, KindDDL: false, KindOpaque: false, KindSelect: false, KindPrepare: false} {
		if (Target{Kind: k}).IsWrite() != want {
			t.Errorf("%s: IsWrite %v", k, !want)
		}
	}
}
