package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// column is one column of an aligned table: a header and the JSON field shown.
type column struct {
	header string
	field  string
}

// writeTable prints a JSON array of objects as an aligned table.
func writeTable(w io.Writer, raw []byte, cols []column) error {
	rows, err := decodeRows(raw)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, c := range cols {
			v := r[c.field]
			if f, ok := derivedFields[c.field]; ok {
				v = f(r)
			}
			cells[i] = formatCell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// derivedFields are table columns computed from a row rather than read from
// one of its fields.
var derivedFields = map[string]func(row map[string]any) any{
	"policy": policySummary,
}

// policySummary shows a connection's policy as rule counts, e.g.
// "guardrails:7 masking:8" (deny + deny_tables; columns + detectors +
// patterns); nil when there is none.
func policySummary(row map[string]any) any {
	count := func(block string, keys ...string) int {
		m, _ := row[block].(map[string]any)
		n := 0
		for _, k := range keys {
			l, _ := m[k].([]any)
			n += len(l)
		}
		return n
	}
	var parts []string
	if n := count("guardrails", "deny", "deny_tables"); n > 0 {
		parts = append(parts, fmt.Sprintf("guardrails:%d", n))
	}
	if n := count("masking", "columns", "detectors", "patterns"); n > 0 {
		parts = append(parts, fmt.Sprintf("masking:%d", n))
	}
	if len(parts) == 0 {
		return nil
	}
	return strings.Join(parts, " ")
}

func decodeRows(raw []byte) ([]map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var rows []map[string]any
	if err := dec.Decode(&rows); err != nil {
		return nil, fmt.Errorf("unexpected answer from the API (want a JSON array of objects): %w", err)
	}
	return rows, nil
}

func formatCell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case json.Number:
		return x.String()
	case string:
		if x == "" {
			return "-"
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.Format(time.RFC3339)
		}
		return cleanCell(x)
	case []any:
		if len(x) == 0 {
			return "-"
		}
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatCell(e)
		}
		return strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		return cleanCell(string(b))
	}
}

func cleanCell(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// writeJSON pretty-prints raw JSON from the API.
func writeJSON(w io.Writer, raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("[]")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("unexpected answer from the API: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// writeList prints a collection as a table or, with -o json, as JSON.
func writeList(w io.Writer, format string, raw []byte, cols []column) error {
	switch format {
	case "json":
		return writeJSON(w, raw)
	case "", "table", "wide":
		return writeTable(w, raw, cols)
	default:
		return usagef("unknown output format %q (want table or json)", format)
	}
}

// writeOne prints one JSON object as a one-row table or, with -o json, as
// JSON.
func writeOne(w io.Writer, format string, raw []byte, cols []column) error {
	if format == "json" {
		return writeJSON(w, raw)
	}
	return writeList(w, format, append(append([]byte("["), bytes.TrimSpace(raw)...), ']'), cols)
}
