package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// listColumns are the table columns of `sluice admin get KIND`.
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
	}
	return "", false
}

func (a *app) runAdmin(args []string) error {
	if len(args) == 0 {
		return usagef("usage: sluice admin create|apply|get|delete ...")
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
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, usageText)
		return nil
	}
	return usagef("unknown admin command %q (want create, apply, get or delete)", args[0])
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
	fs := a.newFlagSet("admin create agent", "sluice admin create agent NAME")
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
	out, err := c.createAgent(context.Background(), pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, out.DSN)
	return nil
}

func (a *app) adminCreateToken(args []string) error {
	fs := a.newFlagSet("admin create token", "sluice admin create token USER [--ttl 8h]")
	ttl := fs.String("ttl", "", "token lifetime, e.g. 8h (default: the gateway's default)")
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
	out, err := c.createToken(context.Background(), pos[0], *ttl)
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

func (a *app) adminGet(args []string) error {
	fs := a.newFlagSet("admin get", "sluice admin get agents|connections|users|sessions [-o json] [--limit N]")
	output := fs.String("o", "table", "output format: table or json")
	limit := fs.Int("limit", 100, "sessions only: how many of the latest sessions to list")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 1); err != nil {
		return err
	}
	coll, ok := collectionName(pos[0])
	if !ok {
		return usagef("cannot get %q (want agents, connections, users or sessions)", pos[0])
	}
	if err := checkOutputFormat(*output); err != nil {
		return err
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	n := 0
	if coll == "sessions" {
		n = *limit
	}
	raw, err := c.list(context.Background(), coll, n)
	if err != nil {
		return err
	}
	return writeList(a.stdout, *output, raw, listColumns[coll])
}

func (a *app) adminDelete(args []string) error {
	fs := a.newFlagSet("admin delete", "sluice admin delete agent|connection|user NAME")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 2); err != nil {
		return err
	}
	coll, ok := collectionName(pos[0])
	if !ok || coll == "sessions" {
		return usagef("cannot delete %q (want agent, connection or user)", pos[0])
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
