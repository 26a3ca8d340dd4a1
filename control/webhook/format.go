package webhook

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of the "slack" format, in runes. Slack caps a section's text at
// 3000 characters; a statement can be megabytes.
const (
	slackFieldRunes     = 200  // a user, connection, rule or reason
	slackStatementRunes = 1000 // the statement in the code block
	slackInlineRunes    = 120  // the statement in the one-line "text"
)

// Render returns the body the Dispatcher sends for ev in format ("" is
// FormatJSON). It is exported for receivers' tests and for previews.
func Render(format string, ev Event) ([]byte, error) {
	switch format {
	case "", FormatJSON:
		ev.At = ev.At.UTC()
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode event %s as json: %w", ev.ID, err)
		}
		return b, nil
	case FormatSlack:
		b, err := json.Marshal(slackMessage(ev))
		if err != nil {
			return nil, fmt.Errorf("encode event %s for slack: %w", ev.ID, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown webhook format %q", format)
}

// The subset of Slack's message payload we send: a plain "text" (what
// notifications and old clients show) and the same as Block Kit blocks.
// https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit/blocks
type slackMsg struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`           // "section" or "context"
	Text     *slackText  `json:"text,omitempty"` // section
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"` // "mrkdwn"
	Text string `json:"text"`
}

func slackMessage(ev Event) slackMsg {
	sentence, stmt := describe(ev)
	text := sentence
	if stmt != "" && ev.Type == StatementDenied {
		text += ": " + oneLine(cut(stmt, slackInlineRunes))
	}
	section := escape(sentence)
	if stmt != "" {
		// A ``` inside the statement would end the code block early.
		section += "\n```" + escape(strings.ReplaceAll(cut(stmt, slackStatementRunes), "```", "'''")) + "```"
	}
	ctx := fmt.Sprintf("`%s` · delivery %s · %s", escape(ev.Type), escape(cut(ev.ID, 64)), ev.At.UTC().Format(time.RFC3339))
	return slackMsg{
		Text: escape(text),
		Blocks: []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: section}},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: ctx}}},
		},
	}
}

// describe returns a human sentence for ev and its statement, if any. Every
// value is cut to a bound; the statement is cut by the caller.
func describe(ev Event) (sentence, statement string) {
	get := func(k string) string { return field(ev.Data, k, slackFieldRunes) }
	user, conn := or(get(KeyUser), "someone"), or(get(KeyConnection), "an unknown connection")
	on := conn
	if p := get(KeyProtocol); p != "" {
		on += " (" + p + ")"
	}
	statement = field(ev.Data, KeyStatement, slackStatementRunes+1)
	reason := get(KeyReason)
	switch ev.Type {
	case SessionStarted:
		sentence = fmt.Sprintf("%s started a session on %s", user, on)
	case SessionEnded:
		sentence = fmt.Sprintf("%s ended a session on %s", user, on)
		if o := get(KeyOutcome); o != "" {
			sentence += ": " + o
		}
	case ReviewRequested:
		sentence = fmt.Sprintf("Review %s requested by %s for %s: waiting for approval", or(get(KeyReview), "?"), user, conn)
	case ReviewDecided:
		sentence = fmt.Sprintf("Review %s for %s on %s %s", or(get(KeyReview), "?"), user, conn, or(get(KeyDecision), "decided"))
		if r := get(KeyReviewer); r != "" {
			sentence += " by " + r
		}
	case StatementDenied:
		sentence = fmt.Sprintf("statement denied for %s on %s", user, conn)
		if r := get(KeyRule); r != "" {
			sentence += " by rule " + r
		}
	default:
		sentence = "Sluice event " + cut(ev.Type, slackFieldRunes)
	}
	if reason != "" {
		sentence += " (" + reason + ")"
	}
	return sentence, statement
}

// field renders Data[k] as text, cut to max runes; "" when absent.
func field(data map[string]any, k string, max int) string {
	v, ok := data[k]
	if !ok || v == nil {
		return ""
	}
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case fmt.Stringer:
		s = v.String()
	case float64:
		// A review id 12 that went through JSON prints "12", not "1.2e+01".
		s = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		s = fmt.Sprint(v)
	}
	return cut(s, max)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cut returns s with at most max runes, marking a cut with "…". Invalid UTF-8
// is replaced, so the result is always valid.
func cut(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	i, n := 0, 0
	for i = range s {
		if n == max-1 {
			break
		}
		n++
	}
	return s[:i] + "…"
}

// oneLine folds runs of whitespace (newlines included) to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// escape applies Slack's three mandatory escapes, so user data cannot form
// links or mentions (<!channel>, <@U123>).
// https://api.slack.com/reference/surfaces/formatting#escaping
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escape(s string) string { return slackEscaper.Replace(s) }
