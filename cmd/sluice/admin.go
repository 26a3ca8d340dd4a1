package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// listColumns are the table columns of `sluice admin get KIND` (and of the
// other commands that print API objects).
var listColumns = map[string][]column{
	"agents": {{"NAME", "name"}, {"ONLINE", "online"}, {"CREATED", "created_at"}},
	"connections": {{"NAME", "name"}, {"TYPE", "type"}, {"AGENT", "agent"},
		{"ONLINE", "online"}, {"TARGET", "target"}, {"POLICY", "policy"}},
	"users": {{"NAME", "name"}, {"GROUPS", "groups"}, {"PASSWORD", "has_password"},
		{"CREATED", "created_at"}},
	"sessions": {{"ID", "id"}, {"USER", "user"}, {"CONNECTION", "connection"},
		{"PROTOCOL", "protocol"}, {"CLIENT", "client_addr"}, {"START", "start"},
		{"END", "end"}, {"BYTES_IN", "bytes_in"}, {"BYTES_OUT", "bytes_out"},
		{"OUTCOME", "outcome"}, {"ERROR", "error"}},
	"statements": {{"SEQ", "seq"}, {"AT", "at"}, {"MS", "duration_ms"}, {"ROWS", "rows"},
		{"OUTCOME", "outcome"}, {"RULE", "rule"}, {"TEXT", "text"}, {"ERROR", "error"}},
	"groups": {{"NAME", "name"}, {"MEMBERS", "members"}, {"DESCRIPTION", "description"}},
	"rules": {{"NAME", "name"}, {"GROUPS", "groups"}, {"CONNECTIONS", "connections"},
		{"POLICY", "policy"}, {"REVIEW", "require_review"}, {"REVIEW_STATEMENTS", "review_statements"},
		{"MAX_SESSION", "max_session"}, {"HOURS", "hours"}},
	"webhooks": {{"NAME", "name"}, {"URL", "url"}, {"FORMAT", "format"}, {"EVENTS", "events"},
		{"SECRET", "has_secret"}, {"CREATED", "created_at"}},
	"dead-letters": {{"ID", "id"}, {"WEBHOOK", "webhook"}, {"EVENT", "event"}, {"ATTEMPTS", "attempts"},
		{"LAST_ERROR", "last_error"}, {"CREATED", "created_at"}},
	"reviews": {{"ID", "id"}, {"KIND", "kind"}, {"STATUS", "status"}, {"USER", "user"},
		{"CONNECTION", "connection"}, {"CREATED", "created_at"}, {"DECIDER", "decider"},
		{"GRANT_UNTIL", "grant_until"}, {"STATEMENT", "statement"}, {"REASON", "reason"}},
	"tokens": {{"ID", "id"}, {"NAME", "name"}, {"CREATED", "created_at"}, {"EXPIRES", "expires_at"},
		{"REVOKED", "revoked"}, {"EXPIRED", "expired"}},
}

// collectionName maps singular/plural object kinds to API collections.
func collectionName(kind string) (string, bool) {
	switch strings.ToLower(kind) {
	case "agent", "agents":
		return "agents", true
	case "connection", "connections", "conn", "conns":
		return "connections", true
	case "user", "users":
		return "users", true
	case "session", "sessions":
		return "sessions", true
	case "statement", "statements":
		return "statements", true
	case "recording", "recordings":
		return "recording", true
	case "group", "groups":
		return "groups", true
	case "rule", "rules":
		return "rules", true
	case "webhook", "webhooks":
		return "webhooks", true
	case "dead-letter", "dead-letters", "deadletter", "deadletters":
		return "dead-letters", true
	}
	return "", false
}

const adminUsage = "usage: sluice admin create|apply|get|delete|audit|review|kill|redeliver ..."

func (a *app) runAdmin(args []string) error {
	if len(args) == 0 {
		return usagef(adminUsage)
	}
	switch args[0] {
	case "create":
		return a.adminCreate(args[1:])
	case "apply":
		return a.adminApply(args[1:])
	case "get", "ls", "list":
		return a.adminGet(args[1:])
	case "delete", "rm":
		return a.adminDelete(args[1:])
	case "audit":
		return a.adminAudit(args[1:])
	case "review", "reviews":
		return a.adminReview(args[1:])
	case "kill":
		return a.adminKill(args[1:])
	case "redeliver":
		return a.adminRedeliver(args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, usageText)
		return nil
	}
	return usagef("unknown admin command %q (want create, apply, get, delete, audit, review, kill or redeliver)", args[0])
}

// authedClient loads the config and returns a client that has a token.
func (a *app) authedClient() (*apiClient, *config, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.requireToken(); err != nil {
		return nil, nil, err
	}
	return a.newAPIClient(cfg), cfg, nil
}

func (a *app) adminCreate(args []string) error {
	if len(args) == 0 {
		return usagef("usage: sluice admin create agent|token|user|connection NAME ...")
	}
	switch args[0] {
	case "agent":
		return a.adminCreateAgent(args[1:])
	case "token":
		return a.adminCreateToken(args[1:])
	case "user":
		return a.adminCreateUser(args[1:])
	case "connection", "conn":
		return a.adminCreateConnection(args[1:])
	}
	return usagef("cannot create %q (want agent, token, user or connection)", args[0])
}

func (a *app) adminCreateAgent(args []string) error {
	fs := a.newFlagSet("admin create agent", "sluice admin create agent NAME [--transport grpc|quic]")
	transport := fs.String("transport", "", "DSN scheme: grpc (default) or quic (UDP on the tunnel port)")
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
	out, err := c.createAgent(context.Background(), pos[0], *transport)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, out.DSN)
	return nil
}

func (a *app) adminCreateToken(args []string) error {
	fs := a.newFlagSet("admin create token", "sluice admin create token USER [--ttl 8h] [--name LABEL]")
	ttl := fs.String("ttl", "", "token lifetime, e.g. 8h (default: the gateway's default)")
	name := fs.String("name", "", "a label for the token, shown by 'sluice token list'")
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
	out, err := c.createToken(context.Background(), pos[0], *ttl, *name)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, out.Token)
	return nil
}

func (a *app) adminCreateUser(args []string) error {
	fs := a.newFlagSet("admin create user", "sluice admin create user NAME [--groups a,b] [--password-stdin]")
	groups := fs.String("groups", "", "comma-separated groups")
	pwStdin := fs.Bool("password-stdin", false, "read the local password from the first line of stdin")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	var u userPut
	if *groups != "" {
		g := splitList(*groups)
		u.Groups = &g
	}
	if *pwStdin {
		pw, err := readLine(a.stdin)
		if err != nil {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		if pw == "" {
			return fmt.Errorf("empty password on stdin")
		}
		u.Password = &pw
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	if err := c.putUser(context.Background(), pos[0], u); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "user/%s applied\n", pos[0])
	return nil
}

func (a *app) adminCreateConnection(args []string) error {
	fs := a.newFlagSet("admin create connection", "sluice admin create connection NAME --agent AGENT --type postgres --target URL")
	agent := fs.String("agent", "", "agent that serves the connection")
	typ := fs.String("type", "postgres", "connection type")
	target := fs.String("target", "", "target address or URL, as seen from the agent")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	if *agent == "" || *target == "" {
		return usagef("usage: %s", fs.synopsis)
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	if err := c.putConnection(context.Background(), pos[0], connectionPut{Agent: *agent, Type: *typ, Target: *target}); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "connection/%s applied\n", pos[0])
	return nil
}

const adminGetSynopsis = "sluice admin get KIND [NAME] [-o json]\n" +
	"  KIND: agents, connections, users, groups, rules, webhooks, dead-letters [--webhook W] [--limit N],\n" +
	"        sessions [--user U] [--connection C] [--outcome O] [--since T] [--until T] [--limit N],\n" +
	"        session ID, statements SESSION [--limit N], recording SESSION [-o FILE]"

// getFlags are the flags of `sluice admin get`, and which kinds take them
// (-o and --limit go with every kind, as they always have).
var getFlagKinds = map[string][]string{
	"user": {"sessions"}, "connection": {"sessions"}, "outcome": {"sessions"},
	"since": {"sessions"}, "until": {"sessions"}, "webhook": {"dead-letters"},
}

func (a *app) adminGet(args []string) error {
	fs := a.newFlagSet("admin get", adminGetSynopsis)
	output := fs.String("o", "", "output: table (default) or json; for a recording, the file to write (default stdout)")
	limit := fs.Int("limit", 0, "how many to list, newest first: sessions (default 100, at most 10000), statements (default 1000), dead letters (default 100)")
	user := fs.String("user", "", "sessions of this user only")
	conn := fs.String("connection", "", "sessions of this connection only")
	outcome := fs.String("outcome", "", "sessions with this outcome only (running, ok, error, denied, auth_failed)")
	since := fs.String("since", "", "sessions started at or after T: RFC 3339, or a duration ago such as 24h")
	until := fs.String("until", "", "sessions started before T: RFC 3339, or a duration ago")
	hook := fs.String("webhook", "", "dead letters of this webhook only")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("usage: %s", fs.synopsis)
	}
	coll, ok := collectionName(pos[0])
	if !ok {
		return usagef("cannot get %q (want agents, connections, users, groups, rules, webhooks, dead-letters, sessions, session ID, statements SESSION or recording SESSION)", pos[0])
	}
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if kinds, ok := getFlagKinds[f.Name]; ok && !slices.Contains(kinds, coll) && bad == nil {
			bad = usagef("--%s applies to %s only", f.Name, strings.Join(kinds, ", "))
		}
	})
	if bad != nil {
		return bad
	}
	var one string
	if len(pos) == 2 {
		one = pos[1]
	}
	switch coll {
	case "statements", "recording":
		if one == "" {
			return usagef("usage: sluice admin get %s SESSION", coll)
		}
	case "agents", "connections", "users", "dead-letters":
		if one != "" {
			return usagef("cannot get one of %s: list them with 'sluice admin get %s'", coll, coll)
		}
	}
	if coll == "recording" {
		return a.getRecording(one, *output)
	}
	if err := checkOutputFormat(*output); err != nil {
		return err
	}
	q := url.Values{}
	if *limit < 0 || *limit > 10000 {
		return usagef("--limit must be from 1 to 10000")
	}
	switch coll {
	case "sessions":
		for k, v := range map[string]string{"user": *user, "connection": *conn, "outcome": *outcome} {
			if v != "" {
				q.Set(k, v)
			}
		}
		for k, v := range map[string]string{"since": *since, "until": *until} {
			if v == "" {
				continue
			}
			t, err := parseTimeArg(v, time.Now())
			if err != nil {
				return usagef("--%s: %v", k, err)
			}
			q.Set(k, t)
		}
		if *limit == 0 {
			*limit = 100 // as before filters existed
		}
	case "dead-letters":
		if *hook != "" {
			q.Set("webhook", *hook)
		}
	}
	takesLimit := coll == "sessions" && one == "" || coll == "statements" || coll == "dead-letters"
	if takesLimit && *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	ctx := context.Background()
	path := "/" + coll
	switch {
	case coll == "statements":
		path = "/sessions/" + pathName(one) + "/statements"
	case one != "":
		path += "/" + pathName(one)
	}
	raw, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	if one != "" && coll != "statements" {
		return writeOne(a.stdout, *output, raw, listColumns[coll])
	}
	return writeList(a.stdout, *output, raw, listColumns[coll])
}

// parseTimeArg accepts an RFC 3339 time, or a Go duration meaning that long
// before now, and returns RFC 3339.
func parseTimeArg(s string, now time.Time) (string, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration ago (24h)", s)
}

// getRecording writes a session's recording to file ("" or "-": stdout).
func (a *app) getRecording(session, file string) error {
	if file == "" || file == "-" {
		if f, ok := a.stdout.(*os.File); ok && isTerminal(int(f.Fd())) {
			return usagef("a recording is binary: write it to a file with -o FILE, or redirect stdout")
		}
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	var w io.Writer = a.stdout
	var f *os.File
	if file != "" && file != "-" {
		// Write beside FILE and rename at the end, so that a refused
		// download leaves an existing FILE alone.
		if f, err = os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".partial-*"); err != nil {
			return err
		}
		defer os.Remove(f.Name()) // a no-op after the rename
		defer f.Close()
		w = f
	}
	res, err := c.recording(context.Background(), session, w)
	if err != nil && res.Bytes == 0 {
		return err
	}
	if f != nil {
		if cerr := f.Close(); cerr != nil {
			return fmt.Errorf("%s: %w", file, cerr)
		}
		if rerr := os.Rename(f.Name(), file); rerr != nil {
			return rerr
		}
	}
	if err != nil {
		return err
	}
	where := "stdout"
	if f != nil {
		where = file
	}
	switch res.Status {
	case "complete":
		fmt.Fprintf(a.stderr, "recording of session %s: %d bytes written to %s, verified and complete\n", session, res.Bytes, where)
		return nil
	case "incomplete":
		fmt.Fprintf(a.stderr, "recording of session %s: %d bytes written to %s, verified; it has no end yet (the session is still open, or the recording's tail is missing)\n", session, res.Bytes, where)
		return nil
	case "error":
		return fmt.Errorf("recording of session %s stopped after %d verified bytes (written to %s): %s; run 'sluice admin audit verify %s'", session, res.Bytes, where, res.Error, session)
	}
	return fmt.Errorf("recording of session %s: %d bytes written to %s, but the API did not say whether the stream was complete", session, res.Bytes, where)
}

func (a *app) adminDelete(args []string) error {
	fs := a.newFlagSet("admin delete", "sluice admin delete agent|connection|user|group|rule|webhook NAME, or dead-letter ID")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 2); err != nil {
		return err
	}
	coll, ok := collectionName(pos[0])
	if !ok || coll == "sessions" || coll == "statements" || coll == "recording" {
		return usagef("cannot delete %q (want agent, connection, user, group, rule, webhook or dead-letter)", pos[0])
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	if err := c.remove(context.Background(), coll, pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%s/%s deleted\n", strings.TrimSuffix(coll, "s"), pos[1])
	return nil
}

func checkOutputFormat(f string) error {
	switch f {
	case "", "table", "wide", "json":
		return nil
	}
	return usagef("unknown output format %q (want table or json)", f)
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// readLine reads the first line of r without its line ending.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < 64<<10 {
		n, err := r.Read(buf)
		if n > 0 {
			if buf[0] == '\n' {
				break
			}
			b.WriteByte(buf[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSuffix(b.String(), "\r"), nil
}
