package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
	"github.com/sluice-gw/sluice/protocols/postgres/pgguard"
)

// Statement review kinds (engine.Plan.ReviewStatements). Each may be
// narrowed to a table as "kind:table" or "kind:schema.table".
var reviewKinds = map[string]bool{
	pgguard.KindDDL: true, pgguard.KindInsert: true, pgguard.KindUpdate: true, pgguard.KindDelete: true,
	pgguard.KindMerge: true, pgguard.KindTruncate: true, pgguard.KindCopy: true,
	"write": true, // any of insert, update, delete, merge, truncate, copy (COPY FROM)
}

// The kinds a held statement is reported with when no configured rule can
// name it: its text does not parse, or it runs SQL that cannot be seen.
const (
	reviewUnparseable = "unparseable"
	reviewOpaque      = pgguard.KindOpaque
	reviewTooLarge    = "too-large"
)

// reviewRule is one parsed entry of Plan.ReviewStatements.
type reviewRule struct {
	raw           string // as configured: what the Reviewer is told
	kind          string
	schema, table string // "" table: any
}

// ValidateReviewStatements reports whether every entry of a connection's
// statement review rules is understood: a kind (ddl, insert, update, delete,
// merge, truncate, copy, write), optionally ":table" or ":schema.table".
// The gateway refuses sessions whose rules it cannot enforce.
func ValidateReviewStatements(rules []string) error {
	_, err := parseReviewRules(rules)
	return err
}

func parseReviewRules(rules []string) ([]reviewRule, error) {
	out := make([]reviewRule, 0, len(rules))
	for _, s := range rules {
		kind, tbl, hasTable := strings.Cut(strings.TrimSpace(s), ":")
		r := reviewRule{raw: strings.TrimSpace(s), kind: strings.ToLower(strings.TrimSpace(kind))}
		if !reviewKinds[r.kind] {
			return nil, fmt.Errorf("statement review rule %q: unknown kind %q (known: ddl, insert, update, delete, merge, truncate, copy, write)", s, kind)
		}
		if hasTable {
			tbl = strings.TrimSpace(strings.ReplaceAll(tbl, `"`, ""))
			if i := strings.LastIndexByte(tbl, '.'); i >= 0 {
				r.schema, r.table = strings.TrimSpace(tbl[:i]), strings.TrimSpace(tbl[i+1:])
				if r.schema == "" {
					return nil, fmt.Errorf("statement review rule %q: empty schema", s)
				}
			} else {
				r.table = tbl
			}
			if r.table == "" || r.table == pgguard.AllTables {
				return nil, fmt.Errorf("statement review rule %q: empty table name", s)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// matches reports whether the rule covers one target of a statement. Names
// compare case-insensitively; an unqualified name in the statement may be in
// any schema (search_path), so it matches a qualified rule (fail closed).
func (r reviewRule) matches(t pgguard.Target) bool {
	if r.kind == "write" {
		if !t.IsWrite() {
			return false
		}
	} else if t.Kind != r.kind {
		return false
	}
	if r.table == "" {
		return true
	}
	if t.Table == "" {
		return false
	}
	schemaOK := r.schema == "" || t.Schema == "" || strings.EqualFold(t.Schema, r.schema)
	return schemaOK && (t.Table == pgguard.AllTables || strings.EqualFold(t.Table, r.table))
}

// reviewSet is one session's statement review configuration.
type reviewSet struct {
	rules      []reviewRule
	classifier *pgguard.Classifier
}

// match returns the kind a statement is held for review under ("" when no
// rule covers it): the first matching rule as configured, "opaque" for SQL
// that cannot be seen, "unparseable" for text that does not parse (both
// held whatever the rules: fail closed). forgets reports that running it
// may create or drop named prepared statements (SQL PREPARE, DEALLOCATE,
// DISCARD ALL; assumed of an unparseable text).
func (rs *reviewSet) match(sql string) (kind string, forgets bool) {
	ts, err := rs.classifier.Classify(sql)
	if err != nil {
		return reviewUnparseable, true
	}
	for _, t := range ts {
		switch t.Kind {
		case pgguard.KindOpaque:
			kind = reviewOpaque
		case pgguard.KindPrepare:
			forgets = true
		}
	}
	if kind != "" {
		return kind, forgets
	}
	for _, r := range rs.rules {
		for _, t := range ts {
			if r.matches(t) {
				return r.raw, forgets
			}
		}
	}
	return "", forgets
}

// holdSlot lets a CancelRequest end the statement review a session is
// waiting for (the statement is then refused, like a cancelled query).
type holdSlot struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc
}

var errHoldCanceled = errors.New("canceling statement due to user request")

func (h *holdSlot) set(cancel context.CancelCauseFunc) {
	h.mu.Lock()
	h.cancel = cancel
	h.mu.Unlock()
}

// cancelHold ends the wait, if any, and reports whether there was one.
func (h *holdSlot) cancelHold() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel == nil {
		return false
	}
	h.cancel(errHoldCanceled)
	h.cancel = nil
	return true
}

// appendNotice appends a NoticeResponse (severity NOTICE) carrying msg.
func appendNotice(dst []byte, msg string) []byte {
	out, err := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: msg}).Encode(dst)
	if err != nil {
		return dst
	}
	return out
}

// appendReviewRaise appends a Query that makes the server raise e, so that
// the refusal of a held simple Query arrives in order and leaves the
// transaction as a real error does (the agent's technique for denials).
// The message travels hex-encoded: no quoting to get wrong, and no word the
// agent's guardrail checks could trip on.
func appendReviewRaise(out []byte, e *engine.Error) []byte {
	start := len(out)
	out = append(out, 'Q', 0, 0, 0, 0)
	out = append(out, "DO $sluice$BEGIN RAISE EXCEPTION USING ERRCODE = '"...)
	out = append(out, sqlState(e.Code)...)
	out = append(out, "', MESSAGE = convert_from(decode('"...)
	out = hex.AppendEncode(out, []byte(e.Message))
	out = append(out, "', 'hex'), 'UTF8'); END$sluice$"...)
	out = append(out, 0)
	putLength(out[start:])
	return out
}

func putLength(msg []byte) {
	l := uint32(len(msg) - 1)
	msg[1], msg[2], msg[3], msg[4] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
}

// reviewRefusal is the client's error for a held statement that may not
// run: the Reviewer's rejection or timeout, a cancel by the client, or a
// review that could not be asked for (fail closed).
func reviewRefusal(err error, canceled bool) *engine.Error {
	if canceled {
		return &engine.Error{Code: engine.CodeReviewTimeout, Message: errHoldCanceled.Error(), Err: err}
	}
	var e *engine.Error
	if errors.As(err, &e) && (e.Code == engine.CodeDenied || e.Code == engine.CodeReviewTimeout) {
		return e
	}
	return &engine.Error{Code: engine.CodeDenied, Message: "statement refused: its review could not be completed", Err: err}
}
