package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests run the real control plane the gateway wires: the review
// service over the store, the statement sink, recordings in the data dir.

type reviewJSON struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	User      string `json:"user"`
	Status    string `json:"status"`
	Statement string `json:"statement"`
}

// pendingReview waits for user's pending review of kind and returns its id.
func pendingReview(t *testing.T, user, kind string) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var list []reviewJSON
		json.Unmarshal(E.must("GET", "/api/v1/reviews?status=pending&user="+user, nil), &list)
		for _, r := range list {
			if r.Kind == kind {
				return r.ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pending %s review for %s", kind, user)
	return 0
}

// TestSessionReviews: a rule requiring review holds psql with a NOTICE;
// approved → the session runs; rejected → 42501; undecided → 57014.
func TestSessionReviews(t *testing.T) {
	E.must("PUT", "/api/v1/rules/oncall", map[string]any{"groups": []string{"oncall"}, "connections": []string{"pg-demo"}, "require_review": true})
	defer E.api("DELETE", "/api/v1/rules/oncall", nil)
	tok, _ := newUser(t, "frank", "oncall")
	conn := userConninfo("frank", "pg-demo", tok)

	t.Run("Approved", func(t *testing.T) {
		out, wait := psqlBackground(t, "-X", "-At", "-c", "select 'approved'", conn)
		id := pendingReview(t, "frank", "session")
		E.must("POST", fmt.Sprintf("/api/v1/reviews/%d/approve", id), map[string]any{"duration": "1m", "note": "go"})
		b := readAll(out)
		stderr, err := wait()
		if err != nil || b != "approved\n" || !strings.Contains(stderr, fmt.Sprintf("review %d", id)) {
			t.Fatalf("psql: %v %q %s", err, b, stderr)
		}
		// The grant covers the next session without a new review.
		if out, stderr, err := runTool(t, nil, E.psql, conn, "-X", "-At", "-c", "select 'granted'"); err != nil || strings.TrimSpace(out) != "granted" {
			t.Fatalf("within the grant: %v %q %s", err, out, stderr)
		}
	})
	// A new user has no grant.
	tok2, _ := newUser(t, "gina", "oncall")
	conn2 := userConninfo("gina", "pg-demo", tok2)
	t.Run("Rejected", func(t *testing.T) {
		out, wait := psqlBackground(t, "-X", "-At", "-c", "select 1", conn2)
		id := pendingReview(t, "gina", "session")
		E.must("POST", fmt.Sprintf("/api/v1/reviews/%d/reject", id), map[string]any{"note": "not now"})
		readAll(out)
		stderr, err := wait()
		if err == nil || !strings.Contains(stderr, "rejected") {
			t.Fatalf("psql: %v %s", err, stderr)
		}
	})
	t.Run("TimedOut", func(t *testing.T) {
		_, stderr, err := runTool(t, nil, E.psql, conn2, "-X", "-At", "-c", "select 1")
		if err == nil || !strings.Contains(stderr, "not decided") {
			t.Fatalf("psql: %v %s", err, stderr)
		}
	})
}

// TestStatementReviewAndAudit: deletes need a review. An approved statement
// runs; a changed one is held again and refused when rejected, and the
// session goes on. Every statement is in the audit with rows and outcome,
// and the session's recording verifies — until a chunk is altered.
func TestStatementReviewAndAudit(t *testing.T) {
	if err := E.pg.ExecIn(context.Background(), "app", "DROP TABLE IF EXISTS review_t; CREATE TABLE review_t (id int); INSERT INTO review_t SELECT generate_series(1,10); GRANT ALL ON review_t TO app"); err != nil {
		t.Fatal(err)
	}
	E.must("PUT", "/api/v1/rules/writers", map[string]any{"groups": []string{"writers"}, "connections": []string{"pg-demo"}, "review_statements": []string{"delete"}})
	defer E.api("DELETE", "/api/v1/rules/writers", nil)
	tok, _ := newUser(t, "hank", "writers")
	conn := userConninfo("hank", "pg-demo", tok)

	// One psql session: a select, an approved delete, a rejected delete, a
	// final select. psql reads its script from stdin, so the deletes are held
	// in turn while the test decides.
	script := "select count(*) from review_t;\n" +
		"delete from review_t where id <= 3;\n" +
		"delete from review_t where id > 3;\n" +
		"select count(*) from review_t;\n"
	out, wait := psqlBackgroundStdin(t, script, "-X", "-At", conn)
	first := pendingReviewStatement(t, "hank", "id <= 3")
	E.must("POST", fmt.Sprintf("/api/v1/reviews/%d/approve", first), map[string]any{})
	second := pendingReviewStatement(t, "hank", "id > 3")
	if second == first {
		t.Fatal("the changed statement rode on the first approval")
	}
	E.must("POST", fmt.Sprintf("/api/v1/reviews/%d/reject", second), map[string]any{"note": "too broad"})
	b := readAll(out)
	stderr, err := wait()
	if err != nil || b != "10\nDELETE 3\n7\n" || !strings.Contains(stderr, "rejected") {
		t.Fatalf("psql: %v stdout %q stderr %s", err, b, stderr)
	}

	// The audit: find hank's session and its statements.
	var sessions []struct {
		ID, Outcome string
	}
	var id string
	deadline := time.Now().Add(15 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		json.Unmarshal(E.must("GET", "/api/v1/sessions?user=hank&limit=5", nil), &sessions)
		for _, s := range sessions {
			if s.Outcome != "running" {
				id = s.ID
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if id == "" {
		t.Fatal("no finished session for hank")
	}
	var stmts []struct {
		Text, Outcome string
		Rows          int64
	}
	for deadline := time.Now().Add(15 * time.Second); len(stmts) < 4 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		json.Unmarshal(E.must("GET", "/api/v1/sessions/"+id+"/statements", nil), &stmts)
	}
	if len(stmts) < 4 {
		t.Fatalf("statements %+v", stmts)
	}
	byText := map[string]string{}
	rows := map[string]int64{}
	for _, s := range stmts {
		byText[strings.TrimSpace(s.Text)] = s.Outcome
		rows[strings.TrimSpace(s.Text)] = s.Rows
	}
	if byText["delete from review_t where id <= 3;"] != "ok" && byText["delete from review_t where id <= 3"] != "ok" {
		t.Fatalf("approved delete: %+v", stmts)
	}
	if rows["delete from review_t where id <= 3;"] != 3 && rows["delete from review_t where id <= 3"] != 3 {
		t.Fatalf("rows of the approved delete: %+v", stmts)
	}
	if byText["delete from review_t where id > 3;"] != "rejected" && byText["delete from review_t where id > 3"] != "rejected" {
		t.Fatalf("rejected delete: %+v", stmts)
	}

	// The recording verifies; altering one chunk is detected.
	var rep struct {
		Intact   bool `json:"intact"`
		Problems []any
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body := E.api("GET", "/api/v1/sessions/"+id+"/verify", nil)
		json.Unmarshal(body, &rep)
		if code == 200 && rep.Intact {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify: %d %s", code, body)
		}
	}
	var chunk string
	filepath.Walk(filepath.Join(E.dataDir, "recordings"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.Contains(p, id) && chunk == "" {
			chunk = p
		}
		return nil
	})
	if chunk == "" {
		t.Fatal("no recording chunk on disk")
	}
	data, err := os.ReadFile(chunk)
	if err != nil || len(data) == 0 {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(chunk, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := E.api("GET", "/api/v1/sessions/"+id+"/verify", nil)
	json.Unmarshal(body, &rep)
	if rep.Intact || len(rep.Problems) == 0 {
		t.Fatalf("tampered recording verified: %d %s", code, body)
	}
}

func pendingReviewStatement(t *testing.T, user, contains string) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var list []reviewJSON
		json.Unmarshal(E.must("GET", "/api/v1/reviews?status=pending&kind=statement&user="+user, nil), &list)
		for _, r := range list {
			if strings.Contains(r.Statement, contains) {
				return r.ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pending statement review for %s containing %q", user, contains)
	return 0
}

func readAll(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// psqlBackgroundStdin is psqlBackground with a script on stdin.
func psqlBackgroundStdin(t *testing.T, stdin string, args ...string) (io.Reader, func() (string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, E.psql, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20", "PSQLRC=/dev/null")
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return out, func() (string, error) {
		err := cmd.Wait()
		cancel()
		return stderr.String(), err
	}
}
