package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// verifyReport is the answer of GET /sessions/{id}/verify.
type verifyReport struct {
	SessionID   string     `json:"session_id"`
	Result      string     `json:"result"`
	Intact      bool       `json:"intact"`
	Complete    bool       `json:"complete"`
	Chunks      int        `json:"chunks"`
	Bytes       int64      `json:"bytes"`
	ClientBytes int64      `json:"client_bytes"`
	ServerBytes int64      `json:"server_bytes"`
	First       *time.Time `json:"first"`
	Last        *time.Time `json:"last"`
	EndReason   string     `json:"end_reason"`
	Head        string     `json:"head"`
	Problems    []struct {
		Text string `json:"text"`
	} `json:"problems"`
}

func (a *app) adminAudit(args []string) error {
	if len(args) == 0 || args[0] != "verify" {
		return usagef("usage: sluice admin audit verify SESSION [-o json]")
	}
	fs := a.newFlagSet("admin audit verify", "sluice admin audit verify SESSION [-o json]")
	output := fs.String("o", "", "output: a report for people (default) or json")
	pos, err := fs.parse(args[1:])
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	if err := checkOutputFormat(*output); err != nil {
		return err
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	session := pos[0]
	raw, err := c.get(context.Background(), "/sessions/"+pathName(session)+"/verify", nil)
	if err != nil {
		return fmt.Errorf("recording of session %s: cannot verify: %w", session, err)
	}
	var rep verifyReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("recording of session %s: unexpected answer from the API: %w", session, err)
	}
	if *output == "json" {
		if err := writeJSON(a.stdout, raw); err != nil {
			return err
		}
	} else {
		printVerifyReport(a, session, rep)
	}
	switch {
	case rep.Result == "ok" && rep.Intact && rep.Complete:
		return nil
	case rep.Result == "corrupt" || !rep.Intact:
		return fmt.Errorf("recording of session %s is CORRUPT: %d problem(s)", session, len(rep.Problems))
	case rep.Result == "incomplete" || !rep.Complete:
		return fmt.Errorf("recording of session %s is INCOMPLETE: no end marker", session)
	}
	return fmt.Errorf("recording of session %s: unknown result %q", session, rep.Result)
}

// printVerifyReport prints the report as recording.AuditVerify does.
func printVerifyReport(a *app, session string, rep verifyReport) {
	w := a.stdout
	fmt.Fprintf(w, "recording %s: %d chunks, %d bytes; client→server %d bytes, server→client %d bytes\n",
		session, rep.Chunks, rep.Bytes, rep.ClientBytes, rep.ServerBytes)
	if rep.First != nil && rep.Last != nil {
		fmt.Fprintf(w, "span: %s to %s\n", rep.First.UTC().Format(time.RFC3339Nano), rep.Last.UTC().Format(time.RFC3339Nano))
	}
	if rep.Head != "" {
		fmt.Fprintf(w, "chain head: sha256 %s\n", rep.Head)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p.Text)
	}
	switch {
	case rep.Result == "corrupt" || !rep.Intact:
		fmt.Fprintf(w, "result: CORRUPT: %d problem(s)\n", len(rep.Problems))
	case rep.Result == "incomplete" || !rep.Complete:
		fmt.Fprintln(w, "result: INCOMPLETE: no end marker (the session is still open, or the recording's tail is missing)")
	case rep.EndReason != "":
		fmt.Fprintf(w, "result: OK: intact and complete; the recording ended because: %s\n", rep.EndReason)
	default:
		fmt.Fprintln(w, "result: OK: intact and complete; the session ended normally")
	}
}

const reviewUsage = "usage: sluice admin review list [--status S] [--user U] [--connection C] [--kind K] [--limit N] [-o json]\n" +
	"       sluice admin review approve ID [--duration 2h] [--note TEXT]\n" +
	"       sluice admin review reject ID [--note TEXT]"

func (a *app) adminReview(args []string) error {
	if len(args) == 0 {
		return usagef("%s", reviewUsage)
	}
	switch args[0] {
	case "list", "ls", "get":
		return a.reviewList(args[1:])
	case "approve":
		return a.reviewDecide(args[1:], true)
	case "reject", "deny":
		return a.reviewDecide(args[1:], false)
	}
	return usagef("unknown review command %q (want list, approve or reject)", args[0])
}

func (a *app) reviewList(args []string) error {
	fs := a.newFlagSet("admin review list", "sluice admin review list [--status pending|approved|rejected|expired] [--user U] [--connection C] [--kind session|statement] [--limit N] [-o json]")
	output := fs.String("o", "", "output format: table or json")
	status := fs.String("status", "", "only reviews with this status: pending, approved, rejected or expired")
	user := fs.String("user", "", "only reviews requested by this user")
	conn := fs.String("connection", "", "only reviews for this connection")
	kind := fs.String("kind", "", "only reviews of this kind: session or statement")
	limit := fs.Int("limit", 0, "how many, newest first (default 100, at most 10000)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 0); err != nil {
		return err
	}
	if err := checkOutputFormat(*output); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"status": *status, "user": *user, "connection": *conn, "kind": *kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	raw, err := c.get(context.Background(), "/reviews", q)
	if err != nil {
		return err
	}
	return writeList(a.stdout, *output, raw, listColumns["reviews"])
}

func (a *app) reviewDecide(args []string, approve bool) error {
	verb, synopsis := "reject", "sluice admin review reject ID [--note TEXT]"
	if approve {
		verb, synopsis = "approve", "sluice admin review approve ID [--duration 2h] [--note TEXT]"
	}
	fs := a.newFlagSet("admin review "+verb, synopsis)
	note := fs.String("note", "", "a note recorded with the decision")
	var duration *string
	if approve {
		duration = fs.String("duration", "", "how long an approved session grant lasts, e.g. 2h (default: the gateway's)")
	}
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return usagef("review ID must be a positive integer, not %q", pos[0])
	}
	body := map[string]string{}
	if *note != "" {
		body["note"] = *note
	}
	if duration != nil && *duration != "" {
		if _, err := time.ParseDuration(*duration); err != nil {
			return usagef("--duration: %q is not a Go duration such as 2h or 90m", *duration)
		}
		body["duration"] = *duration
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	var out struct {
		ID         int64      `json:"id"`
		Status     string     `json:"status"`
		User       string     `json:"user"`
		Connection string     `json:"connection"`
		GrantUntil *time.Time `json:"grant_until"`
	}
	if _, err := c.do(context.Background(), http.MethodPost, fmt.Sprintf("/reviews/%d/%s", id, verb), body, &out); err != nil {
		return fmt.Errorf("review %d: %w", id, err)
	}
	msg := fmt.Sprintf("review/%d %s (%s on %s)", out.ID, out.Status, out.User, out.Connection)
	if out.GrantUntil != nil {
		msg += " until " + out.GrantUntil.UTC().Format(time.RFC3339)
	}
	fmt.Fprintln(a.stderr, msg)
	return nil
}

func (a *app) adminKill(args []string) error {
	fs := a.newFlagSet("admin kill", "sluice admin kill SESSION")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	if _, err := c.do(context.Background(), http.MethodPost, "/sessions/"+pathName(pos[0])+"/kill", struct{}{}, nil); err != nil {
		return fmt.Errorf("session %s: %w", pos[0], err)
	}
	fmt.Fprintf(a.stderr, "session/%s ended\n", pos[0])
	return nil
}

func (a *app) adminRedeliver(args []string) error {
	fs := a.newFlagSet("admin redeliver", "sluice admin redeliver DEAD_LETTER_ID")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	if id, err := strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
		return usagef("dead letter ID must be a positive integer, not %q", pos[0])
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	if _, err := c.do(context.Background(), http.MethodPost, "/dead-letters/"+pos[0]+"/redeliver", struct{}{}, nil); err != nil {
		return fmt.Errorf("dead letter %s: %w", pos[0], err)
	}
	fmt.Fprintf(a.stderr, "dead-letter/%s delivered and deleted\n", pos[0])
	return nil
}

// runTokenList lists the caller's tokens (or, with --user, another user's:
// admins only).
func (a *app) runTokenList(args []string) error {
	fs := a.newFlagSet("token list", "sluice token list [--user NAME] [-o json]")
	output := fs.String("o", "", "output format: table or json")
	user := fs.String("user", "", "whose tokens (default: yours; another user's needs admin)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 0); err != nil {
		return err
	}
	if err := checkOutputFormat(*output); err != nil {
		return err
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	ctx := context.Background()
	name := *user
	if name == "" {
		me, err := c.me(ctx)
		if err != nil {
			return err
		}
		name = me.Name
	}
	raw, err := c.get(ctx, "/users/"+pathName(name)+"/tokens", nil)
	if err != nil {
		return err
	}
	return writeList(a.stdout, *output, raw, listColumns["tokens"])
}

func (a *app) runTokenRevoke(args []string) error {
	fs := a.newFlagSet("token revoke", "sluice token revoke ID")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	if strings.HasPrefix(pos[0], "slc_") {
		return usagef("token revoke takes the token's ID (see 'sluice token list'), not the token itself")
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	if _, err := c.do(context.Background(), http.MethodDelete, "/tokens/"+pathName(pos[0]), nil, nil); err != nil {
		return fmt.Errorf("token %s: %w", pos[0], err)
	}
	fmt.Fprintf(a.stderr, "token/%s revoked\n", pos[0])
	return nil
}
