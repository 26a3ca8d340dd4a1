package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

func (a *app) runLogin(args []string) error {
	fs := a.newFlagSet("login", "sluice login --user NAME [--api URL]  (password from stdin or a prompt)")
	user := fs.String("user", "", "user name (default: the user of the saved login)")
	apiFlag := fs.String("api", "", "REST API base URL (default $SLUICE_API, else the saved login's, else "+defaultAPI+")")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 0); err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if *apiFlag != "" {
		cfg.api = normalizeAPI(*apiFlag)
	}
	if *user == "" && cfg.creds != nil {
		*user = cfg.creds.User
	}
	if *user == "" {
		return usagef("usage: %s", fs.synopsis)
	}
	password, err := a.readPassword(fmt.Sprintf("Password for %s at %s: ", *user, cfg.api))
	if err != nil {
		return err
	}
	if password == "" {
		return errors.New("empty password")
	}
	c := &apiClient{base: cfg.api, http: a.newAPIClient(cfg).http}
	out, err := c.login(context.Background(), *user, password)
	if err != nil {
		return fmt.Errorf("login failed: %w", err)
	}
	name := out.User
	if name == "" {
		name = *user
	}
	creds := &credentials{API: cfg.api, User: name, Token: out.Token, ExpiresAt: string(out.ExpiresAt)}
	if err := writeCredentials(cfg.credsPath, creds); err != nil {
		return err
	}
	msg := fmt.Sprintf("logged in to %s as %s", cfg.api, name)
	if creds.ExpiresAt != "" {
		msg += " until " + creds.ExpiresAt
	}
	fmt.Fprintln(a.stderr, msg)
	return nil
}

// readPassword prompts on stderr with echo off when stdin is a terminal;
// otherwise it reads the first line of stdin.
func (a *app) readPassword(prompt string) (string, error) {
	if f, ok := a.stdin.(*os.File); ok && isTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, prompt)
		pw, err := readPasswordNoEcho(f)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return pw, nil
	}
	pw, err := readLine(a.stdin)
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	return pw, nil
}

func (a *app) runToken(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list", "ls":
			return a.runTokenList(args[1:])
		case "revoke":
			return a.runTokenRevoke(args[1:])
		}
	}
	fs := a.newFlagSet("token", "sluice token [list [--user NAME] | revoke ID]")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 0); err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	// SLUICE_TOKEN wins; otherwise the saved login. (The admin.token fallback is
	// for admin commands on the gateway host, not printed here.)
	token := ""
	switch c := cfg.creds; {
	case cfg.tokenSource == "SLUICE_TOKEN":
		token = cfg.token
	case c == nil || c.Token == "":
		return errors.New("not logged in: run 'sluice login --user NAME'")
	case c.expired(time.Now()):
		return fmt.Errorf("the saved login for %s expired at %s: run 'sluice login --user %s'", c.User, c.ExpiresAt, c.User)
	default:
		token = c.Token
	}
	fmt.Fprintln(a.stdout, strings.TrimSpace(token))
	return nil
}

func (a *app) runLs(args []string) error {
	fs := a.newFlagSet("ls", "sluice ls [-o json]")
	output := fs.String("o", "table", "output format: table or json")
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
	raw, err := c.list(context.Background(), "connections", 0)
	if err != nil {
		return err
	}
	return writeList(a.stdout, *output, raw, []column{
		{"NAME", "name"}, {"TYPE", "type"}, {"AGENT", "agent"}, {"ONLINE", "online"},
	})
}
