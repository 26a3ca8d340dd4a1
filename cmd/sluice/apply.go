package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// applyDoc is one validated YAML document of `sluice admin apply`.
type applyDoc struct {
	index   int    // 1-based position in the input
	kind    string // agent, group, user, connection, rule or webhook
	name    string
	user    userPut
	conn    connectionPut
	group   groupPut
	rule    rulePut
	webhook webhookPut
}

func (d applyDoc) ref() string { return d.kind + "/" + d.name }

// applyRank is the order in which kinds are applied, so references resolve:
// agents, groups, users, connections, rules, then webhooks.
var applyRank = map[string]int{"agent": 0, "group": 1, "user": 2, "connection": 3, "rule": 4, "webhook": 5}

// applyKinds names the kinds in apply order, for messages.
const applyKinds = "agent, group, user, connection, rule or webhook"

// applyFields lists the fields each kind accepts.
var applyFields = map[string][]string{
	"agent":      {"kind", "name"},
	"group":      {"kind", "name", "description"},
	"user":       {"kind", "name", "password", "groups"},
	"connection": {"kind", "name", "agent", "type", "target", "guardrails", "masking"},
	"rule": {"kind", "name", "groups", "connections", "guardrails", "masking", "require_review",
		"review_statements", "max_session", "hours"},
	"webhook": {"kind", "name", "url", "secret", "secret_env", "format", "events"},
}

// parseApplyDocs reads YAML documents separated by "---", validates them all,
// and returns them in apply order (see applyRank; file order within a kind).
// getenv resolves a webhook's secret_env.
func parseApplyDocs(r io.Reader, getenv func(string) string) ([]applyDoc, error) {
	dec := yaml.NewDecoder(r)
	var docs []applyDoc
	seen := map[string]int{}
	for i := 1; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if isEmptyDoc(&node) {
			continue // an empty document, e.g. a trailing "---"
		}
		d, err := parseApplyDoc(i, &node, getenv)
		if err != nil {
			return nil, err
		}
		if j, ok := seen[d.ref()]; ok {
			return nil, fmt.Errorf("document %d: %s is already defined in document %d", i, d.ref(), j)
		}
		seen[d.ref()] = i
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		return nil, errors.New("no documents to apply")
	}
	sort.SliceStable(docs, func(x, y int) bool { return applyRank[docs[x].kind] < applyRank[docs[y].kind] })
	return docs, nil
}

func isEmptyDoc(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		n = n.Content[0]
	}
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == ""
}

func parseApplyDoc(i int, node *yaml.Node, getenv func(string) string) (applyDoc, error) {
	d := applyDoc{index: i}
	m := node
	if m.Kind == yaml.DocumentNode {
		m = m.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		return d, fmt.Errorf("document %d (line %d): want a mapping with kind: and name:", i, m.Line)
	}
	fields := map[string]*yaml.Node{}
	keyLine := map[string]int{}
	var keys []string
	for k := 0; k+1 < len(m.Content); k += 2 {
		key := m.Content[k].Value
		if _, dup := fields[key]; dup {
			return d, fmt.Errorf("document %d (line %d): field %q appears twice", i, m.Content[k].Line, key)
		}
		fields[key] = m.Content[k+1]
		keyLine[key] = m.Content[k].Line
		keys = append(keys, key)
	}
	kindNode, ok := fields["kind"]
	if !ok || strings.TrimSpace(kindNode.Value) == "" {
		return d, fmt.Errorf("document %d (line %d): missing kind (want %s)", i, m.Line, applyKinds)
	}
	d.kind = strings.ToLower(strings.TrimSpace(kindNode.Value))
	allowed, ok := applyFields[d.kind]
	if !ok {
		return d, fmt.Errorf("document %d (line %d): unknown kind %q (want %s)", i, kindNode.Line, kindNode.Value, applyKinds)
	}
	if n, ok := fields["name"]; ok && n.Kind == yaml.ScalarNode {
		d.name = strings.TrimSpace(n.Value)
	}
	if d.name == "" {
		return d, fmt.Errorf("document %d (line %d): %s without a name", i, m.Line, d.kind)
	}
	where := fmt.Sprintf("document %d (%s/%s)", i, d.kind, d.name)
	for _, k := range keys {
		if contains(allowed, k) {
			continue
		}
		return d, fmt.Errorf("%s, line %d: unknown field %q for kind %s (allowed: %s)", where, keyLine[k], k, d.kind, strings.Join(allowed, ", "))
	}
	str := func(key string) (string, error) {
		n, ok := fields[key]
		if !ok {
			return "", nil
		}
		if n.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("%s, line %d: field %q must be a string", where, n.Line, key)
		}
		return n.Value, nil
	}
	switch d.kind {
	case "user":
		if _, ok := fields["password"]; ok {
			pw, err := str("password")
			if err != nil {
				return d, err
			}
			d.user.Password = &pw
		}
		if n, ok := fields["groups"]; ok {
			groups := []string{}
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				if err := n.Decode(&groups); err != nil {
					return d, fmt.Errorf("%s, line %d: groups must be a list of names", where, n.Line)
				}
			}
			d.user.Groups = &groups
		}
	case "connection":
		var err error
		if d.conn.Agent, err = str("agent"); err != nil {
			return d, err
		}
		if d.conn.Type, err = str("type"); err != nil {
			return d, err
		}
		if d.conn.Target, err = str("target"); err != nil {
			return d, err
		}
		var missing []string
		for _, f := range []struct{ k, v string }{{"agent", d.conn.Agent}, {"type", d.conn.Type}, {"target", d.conn.Target}} {
			if strings.TrimSpace(f.v) == "" {
				missing = append(missing, f.k)
			}
		}
		if len(missing) > 0 {
			return d, fmt.Errorf("%s: missing %s", where, strings.Join(missing, ", "))
		}
		if err := parsePolicy(where, fields, keyLine, &d.conn.Guardrails, &d.conn.Masking); err != nil {
			return d, err
		}
	case "group":
		var err error
		if d.group.Description, err = str("description"); err != nil {
			return d, err
		}
	case "rule":
		if err := parseRuleDoc(where, fields, keyLine, &d.rule); err != nil {
			return d, err
		}
	case "webhook":
		if err := parseWebhookDoc(where, fields, getenv, &d.webhook); err != nil {
			return d, err
		}
	}
	return d, nil
}

// parseRuleDoc reads a rule document's fields (those of PUT /rules/{name}).
func parseRuleDoc(where string, fields map[string]*yaml.Node, keyLine map[string]int, r *rulePut) error {
	var err error
	for _, f := range []struct {
		key string
		dst *[]string
	}{{"groups", &r.Groups}, {"connections", &r.Connections}, {"review_statements", &r.ReviewStatements}} {
		if *f.dst, err = yamlStrings(where, f.key, fields[f.key]); err != nil {
			return err
		}
	}
	var missing []string
	if len(r.Groups) == 0 {
		missing = append(missing, "groups")
	}
	if len(r.Connections) == 0 {
		missing = append(missing, `connections (names, or "*" for every connection)`)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: missing %s", where, strings.Join(missing, ", "))
	}
	if n := deref(fields["require_review"]); !isNull(n) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return fmt.Errorf("%s, line %d: require_review must be true or false", where, n.Line)
		}
		if err := n.Decode(&r.RequireReview); err != nil {
			return fmt.Errorf("%s, line %d: require_review must be true or false", where, n.Line)
		}
	}
	if r.MaxSession, err = yamlString(where, "max_session", fields["max_session"]); err != nil {
		return err
	}
	if r.MaxSession != "" {
		if d, err := time.ParseDuration(r.MaxSession); err != nil || d <= 0 {
			return fmt.Errorf("%s, line %d: max_session must be a positive duration such as 2h or 90m, not %q", where, keyLine["max_session"], r.MaxSession)
		}
	}
	if r.Hours, err = yamlString(where, "hours", fields["hours"]); err != nil {
		return err
	}
	return parsePolicy(where, fields, keyLine, &r.Guardrails, &r.Masking)
}

// parseWebhookDoc reads a webhook document: url, secret or secret_env (the
// name of an environment variable of this CLI holding the secret), format,
// events.
func parseWebhookDoc(where string, fields map[string]*yaml.Node, getenv func(string) string, w *webhookPut) error {
	u, err := yamlString(where, "url", fields["url"])
	if err != nil {
		return err
	}
	if strings.TrimSpace(u) == "" {
		return fmt.Errorf("%s: missing url", where)
	}
	w.URL = &u
	_, hasSecret := fields["secret"]
	_, hasEnv := fields["secret_env"]
	switch {
	case hasSecret && hasEnv:
		return fmt.Errorf("%s: give secret or secret_env, not both", where)
	case hasSecret:
		sec, err := yamlString(where, "secret", fields["secret"])
		if err != nil {
			return err
		}
		w.Secret = &sec
	case hasEnv:
		name, err := yamlString(where, "secret_env", fields["secret_env"])
		if err != nil {
			return err
		}
		sec := ""
		if getenv != nil && name != "" {
			sec = getenv(name)
		}
		if sec == "" {
			return fmt.Errorf("%s: secret_env: environment variable %q is not set (or empty)", where, name)
		}
		w.Secret = &sec
	}
	if w.Format, err = yamlString(where, "format", fields["format"]); err != nil {
		return err
	}
	if w.Events, err = yamlStrings(where, "events", fields["events"]); err != nil {
		return err
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *app) adminApply(args []string) error {
	fs := a.newFlagSet("admin apply", "sluice admin apply -f FILE (- for stdin)")
	file := fs.String("f", "", "YAML file to apply (- reads stdin)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.wantArgs(pos, 0); err != nil {
		return err
	}
	if *file == "" {
		return usagef("usage: %s", fs.synopsis)
	}
	var r io.Reader = a.stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	docs, err := parseApplyDocs(r, a.getenv)
	if err != nil {
		if *file != "-" {
			return fmt.Errorf("%s: %w", *file, err)
		}
		return err
	}
	c, _, err := a.authedClient()
	if err != nil {
		return err
	}
	return a.applyDocs(context.Background(), c, docs)
}

// applyDocs upserts the documents in order, stopping at the first failure.
func (a *app) applyDocs(ctx context.Context, c *apiClient, docs []applyDoc) error {
	for _, d := range docs {
		switch d.kind {
		case "agent":
			out, err := c.putAgent(ctx, d.name)
			if err != nil {
				return fmt.Errorf("%s (document %d): %w", d.ref(), d.index, err)
			}
			if out.DSN != "" {
				fmt.Fprintf(a.stdout, "agent/%s dsn: %s\n", d.name, out.DSN)
				fmt.Fprintf(a.stderr, "%s created\n", d.ref())
				continue
			}
		case "user":
			if err := c.putUser(ctx, d.name, d.user); err != nil {
				return fmt.Errorf("%s (document %d): %w", d.ref(), d.index, err)
			}
		case "connection":
			if err := c.putConnection(ctx, d.name, d.conn); err != nil {
				return fmt.Errorf("%s (document %d): %w", d.ref(), d.index, err)
			}
		case "group":
			if err := c.putGroup(ctx, d.name, d.group); err != nil {
				return fmt.Errorf("%s (document %d): %w", d.ref(), d.index, err)
			}
		case "rule":
			if err := c.putRule(ctx, d.name, d.rule); err != nil {
				return fmt.Errorf("%s (document %d): %w", d.ref(), d.index, err)
			}
		case "webhook":
			if err := c.putWebhook(ctx, d.name, d.webhook); err != nil {
				return fmt.Errorf("%s (document %d): %w", d.ref(), d.index, err)
			}
		}
		fmt.Fprintf(a.stderr, "%s applied\n", d.ref())
	}
	return nil
}
