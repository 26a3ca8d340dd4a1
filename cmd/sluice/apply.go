package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// applyDoc is one validated YAML document of `sluice admin apply`.
type applyDoc struct {
	index int    // 1-based position in the input
	kind  string // agent, user or connection
	name  string
	user  userPut
	conn  connectionPut
}

func (d applyDoc) ref() string { return d.kind + "/" + d.name }

// applyRank is the order in which kinds are applied, so references resolve:
// agents, then users, then connections.
var applyRank = map[string]int{"agent": 0, "user": 1, "connection": 2}

// applyFields lists the fields each kind accepts.
var applyFields = map[string][]string{
	"agent":      {"kind", "name"},
	"user":       {"kind", "name", "password", "groups"},
	"connection": {"kind", "name", "agent", "type", "target", "guardrails", "masking"},
}

// parseApplyDocs reads YAML documents separated by "---", validates them all,
// and returns them in apply order (agents, users, connections; file order
// within a kind).
func parseApplyDocs(r io.Reader) ([]applyDoc, error) {
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
		d, err := parseApplyDoc(i, &node)
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

func parseApplyDoc(i int, node *yaml.Node) (applyDoc, error) {
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
		return d, fmt.Errorf("document %d (line %d): missing kind (want agent, user or connection)", i, m.Line)
	}
	d.kind = strings.ToLower(strings.TrimSpace(kindNode.Value))
	allowed, ok := applyFields[d.kind]
	if !ok {
		return d, fmt.Errorf("document %d (line %d): unknown kind %q (want agent, user or connection)", i, kindNode.Line, kindNode.Value)
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
		if err := parsePolicy(where, fields, keyLine, &d.conn); err != nil {
			return d, err
		}
	}
	return d, nil
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
	docs, err := parseApplyDocs(r)
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
		}
		fmt.Fprintf(a.stderr, "%s applied\n", d.ref())
	}
	return nil
}
