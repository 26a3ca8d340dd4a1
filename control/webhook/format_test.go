package webhook

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type slackBody struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"text"`
		Elements []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"elements"`
	} `json:"blocks"`
}

func renderSlack(t *testing.T, e Event) slackBody {
	t.Helper()
	b, err := Render(FormatSlack, e)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !utf8.Valid(b) {
		t.Fatalf("not valid JSON: %s", b)
	}
	var m slackBody
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Text == "" || len(m.Blocks) != 2 || m.Blocks[0].Type != "section" || m.Blocks[0].Text == nil ||
		m.Blocks[0].Text.Type != "mrkdwn" || m.Blocks[1].Type != "context" || len(m.Blocks[1].Elements) != 1 {
		t.Fatalf("not the Slack message shape: %s", b)
	}
	return m
}

func TestSlackSentences(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		typ     string
		data    map[string]any
		text    string
		section string
	}{
		{SessionStarted, map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyProtocol: "postgres"},
			"alice started a session on prod-db (postgres)", "alice started a session on prod-db (postgres)"},
		{SessionEnded, map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyProtocol: "postgres", KeyOutcome: "ok"},
			"alice ended a session on prod-db (postgres): ok", "alice ended a session on prod-db (postgres): ok"},
		{ReviewRequested, map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyReview: float64(12)},
			"Review 12 requested by alice for prod-db: waiting for approval", "Review 12 requested by alice for prod-db: waiting for approval"},
		{ReviewRequested, map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyReview: 12, KeyStatement: "DELETE FROM orders"},
			"Review 12 requested by alice for prod-db: waiting for approval",
			"Review 12 requested by alice for prod-db: waiting for approval\n```DELETE FROM orders```"},
		{ReviewDecided, map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyReview: "12", KeyDecision: "approved", KeyReviewer: "bob"},
			"Review 12 for alice on prod-db approved by bob", "Review 12 for alice on prod-db approved by bob"},
		{StatementDenied, map[string]any{KeyUser: "alice", KeyConnection: "prod-db", KeyRule: "no-drop", KeyStatement: "DROP TABLE\n  users"},
			"statement denied for alice on prod-db by rule no-drop: DROP TABLE users",
			"statement denied for alice on prod-db by rule no-drop\n```DROP TABLE\n  users```"},
		{SessionStarted, nil, "someone started a session on an unknown connection", "someone started a session on an unknown connection"},
		{"backup.finished", map[string]any{KeyReason: "nightly"}, "Sluice event backup.finished (nightly)", "Sluice event backup.finished (nightly)"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			m := renderSlack(t, Event{ID: "d1", Type: tc.typ, At: at, Data: tc.data})
			if m.Text != tc.text {
				t.Errorf("text %q, want %q", m.Text, tc.text)
			}
			if got := m.Blocks[0].Text.Text; got != tc.section {
				t.Errorf("section %q, want %q", got, tc.section)
			}
			if ctx := m.Blocks[1].Elements[0].Text; !strings.Contains(ctx, "d1") || !strings.Contains(ctx, "2026-01-02T03:04:05Z") {
				t.Errorf("context %q", ctx)
			}
		})
	}
}

func TestSlackEscapesAndBounds(t *testing.T) {
	long := strings.Repeat("SELECT '<x>' & 1 ```; ", 20000) // ~400 KB
	m := renderSlack(t, Event{ID: "d", Type: StatementDenied, Data: map[string]any{
		KeyUser: "<!channel>", KeyConnection: strings.Repeat("c", 5000), KeyRule: "r", KeyStatement: long + "\xff",
	}})
	b, _ := Render(FormatSlack, Event{ID: "d", Type: StatementDenied, Data: map[string]any{KeyStatement: long}})
	if len(b) > 16<<10 {
		t.Fatalf("slack body of %d bytes for a long statement", len(b))
	}
	section := m.Blocks[0].Text.Text
	for _, s := range []string{m.Text, section} {
		if strings.Contains(s, "<!channel>") || !strings.Contains(s, "&lt;!channel&gt;") {
			t.Fatalf("user not escaped: %q", s)
		}
		if strings.Contains(s, "<x>") || strings.Contains(s, "c"+strings.Repeat("c", 300)) || !strings.Contains(s, "…") {
			t.Fatalf("statement or connection not escaped or not cut: %.300q", s)
		}
	}
	// One code block: the statement's own ``` cannot close it early.
	if n := strings.Count(section, "```"); n != 2 {
		t.Fatalf("%d code fences in the section", n)
	}
	if utf8.RuneCountInString(section) > 3000 {
		t.Fatalf("section of %d runes exceeds Slack's 3000", utf8.RuneCountInString(section))
	}
}

func TestRenderJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	b, err := Render("", Event{ID: "i", Type: SessionStarted, At: at, Data: map[string]any{KeyUser: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"i","type":"session.started","at":"2026-01-02T02:04:05.000000006Z","data":{"user":"alice"}}`; string(b) != want {
		t.Fatalf("%s\nwant %s", b, want)
	}
	if _, err := Render(FormatJSON, Event{Data: map[string]any{"f": func() {}}}); err == nil {
		t.Fatal("an unencodable event rendered")
	}
	if _, err := Render("xml", Event{}); err == nil {
		t.Fatal("an unknown format rendered")
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"ééé", 2, "é…"}, {"a\xffb", 5, "a\uFFFDb"}, {"", 1, ""},
	} {
		if got := cut(tc.in, tc.max); got != tc.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{strings.Repeat("a", 20), 16, strings.Repeat("a", 13) + "…"},
		{strings.Repeat("é", 10), 16, strings.Repeat("é", 6) + "…"}, // 13 bytes available: 6 runes
	} {
		if got := cutBytes(tc.in, tc.max); got != tc.want || len(got) > tc.max || !utf8.ValidString(got) {
			t.Errorf("cutBytes(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
