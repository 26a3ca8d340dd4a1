package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The agent tracks the protocol conversation when a policy is on, so that
// every DataRow is matched with the columns it carries and every denial is
// reported at the right place in the response stream.
//
// The client side (toUpstream) sees requests and queues what each will be
// answered with; the server side (toClient) consumes that queue in order.
// Protocol §55.2.3: after an error the server skips to the next Sync.

type expKind uint8

const (
	expParse          expKind = iota // ParseComplete
	expBind                          // BindComplete
	expDescribeStmt                  // ParameterDescription, then RowDescription or NoData
	expDescribePortal                // RowDescription or NoData
	expExecute                       // DataRow*, then CommandComplete/EmptyQuery/PortalSuspended
	expClose                         // CloseComplete
	expSync                          // ReadyForQuery
	expQuery                         // simple query: anything, then ReadyForQuery
	expFunc                          // FunctionCallResponse, then ReadyForQuery
)

// maxPending bounds the queue of unanswered requests per session.
const maxPending = 1 << 16

type expect struct {
	kind    expKind
	name    string  // statement (Parse, Describe S, Close S) or portal
	stmt    string  // Bind: the statement
	formats []int16 // Bind: result format codes as sent
	deny    string  // Sync: a denial to report at this sync point
}

// conversation is the state shared by both directions of one session.
type conversation struct {
	mu      sync.Mutex
	pending []expect
	policy  *sessionPolicy
	names   *columnNames // resolves table/column names for column rules

	// client side only
	skipping   bool              // dropping extended messages until Sync after a denial
	skipReason string            // the denial to report at that Sync
	denied     map[string]string // prepared statements denied at Parse, for later Binds

	// server side only
	stmts    map[string][]column // from Describe of a statement
	portals  map[string]*rowPlan // from Bind, or Describe of a portal
	cur      *rowPlan            // the plan of the rows now arriving
	errSeen  bool                // an ErrorResponse since the last ReadyForQuery
	dropping bool                // discarding the rest of a result after a masking failure
	copyOut  bool                // inside COPY TO STDOUT
	tmp      []byte              // masking scratch

	metrics *Metrics
	kinds   [64]prometheus.Counter // masked values per detector, resolved on first use
}

// countMasked records the detectors that fired on one value.
func (c *conversation) countMasked(kinds uint64) {
	for kinds != 0 {
		k := bits.TrailingZeros64(kinds)
		kinds &^= 1 << k
		if c.kinds[k] == nil {
			c.kinds[k] = c.metrics.Masked.WithLabelValues(c.policy.mask.kindName(k))
		}
		c.kinds[k].Inc()
	}
}

// maskFailure records a result withheld by masking (fail closed).
func (c *conversation) maskFailure(reason string) {
	c.metrics.MaskFailures.WithLabelValues(reason).Inc()
}

func newConversation(p *sessionPolicy, names *columnNames, m *Metrics) *conversation {
	return &conversation{
		policy: p, names: names, metrics: m,
		denied:  map[string]string{},
		stmts:   map[string][]column{},
		portals: map[string]*rowPlan{},
	}
}

func (c *conversation) push(e expect) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= maxPending {
		return fmt.Errorf("more than %d requests in flight", maxPending)
	}
	c.pending = append(c.pending, e)
	return nil
}

// front returns the oldest unanswered request, if any.
func (c *conversation) front() (expect, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return expect{}, false
	}
	return c.pending[0], true
}

func (c *conversation) pop() expect {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return expect{}
	}
	e := c.pending[0]
	c.pending[0] = expect{}
	c.pending = c.pending[1:]
	if len(c.pending) == 0 {
		c.pending = c.pending[:0:0] // let the backing array go after a burst
	}
	return e
}

// popKind pops the oldest request, which must be one of kinds: a response
// the tracking cannot attribute ends the session rather than risk sending a
// row unmasked or a denial out of place (fail closed).
func (c *conversation) popKind(resp byte, kinds ...expKind) (expect, error) {
	e, ok := c.front()
	if ok {
		for _, k := range kinds {
			if e.kind == k {
				return c.pop(), nil
			}
		}
	}
	return expect{}, fmt.Errorf("protocol tracking lost: response %q does not answer the pending request", resp)
}

// skipToSync drops requests the server will skip after an error.
func (c *conversation) skipToSync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) > 0 && (c.pending[0].kind == expQuery || c.pending[0].kind == expFunc) {
		return // an error inside a simple Query: its ReadyForQuery still comes
	}
	for len(c.pending) > 0 && c.pending[0].kind != expSync {
		c.pending = c.pending[1:] // the server skips queries too until Sync
	}
}

// ---- client → upstream ----

// clientSide inspects requests: guardrails, and queueing for the server side.
type clientSide struct{ c *conversation }

var clientWants = [256]bool{'Q': true, 'P': true, 'B': true, 'D': true, 'E': true, 'C': true, 'S': true, 'F': true, 'H': true}

func (s clientSide) wants(typ byte) bool { return clientWants[typ] || s.c.skipping }

// tooLarge handles a request above the inspection limit. Without guardrails
// its text is not needed: it streams through and is only queued. With them
// it fails closed: a Query is answered with a denial raised in order, a
// Parse or Bind skips to the next Sync with the denial.
func (s clientSide) tooLarge(head []byte, size int, out []byte) ([]byte, bool, error) {
	c := s.c
	typ := head[0]
	if c.skipping {
		return nil, false, nil
	}
	if c.policy.guard == nil {
		switch typ {
		case 'Q':
			return nil, true, c.push(expect{kind: expQuery})
		case 'P', 'B':
			name, _, ok := cstring(head[5:])
			if !ok {
				return nil, false, fmt.Errorf("a %d-byte message with an unreadable name", size)
			}
			if typ == 'P' {
				return nil, true, c.push(expect{kind: expParse, name: name})
			}
			// A huge Bind: its result formats are at its end, out of reach.
			// Plan its rows as undescribed (text values get the detectors).
			return nil, true, c.push(expect{kind: expBind, name: name, stmt: "\x00unknown"})
		}
		return nil, true, nil
	}
	why := fmt.Sprintf("statement denied: a %d-byte message exceeds the guardrail inspection limit", size)
	if typ == 'Q' {
		return appendRaise(out, "too-large", why), false, c.push(expect{kind: expQuery})
	}
	c.skipping, c.skipReason = true, why
	return nil, false, nil
}

func (s clientSide) inspect(msg []byte, out []byte) ([]byte, error) {
	c := s.c
	typ, body := msg[0], msg[5:]
	if c.skipping && typ != 'S' {
		return nil, nil // the server would skip it too
	}
	switch typ {
	case 'Q':
		sql, _, _ := cstring(body)
		if c.policy.guard != nil && changesEncoding(sql) {
			return appendRaise(out, "client-encoding", encodingDenial), c.push(expect{kind: expQuery})
		}
		if g := c.policy.guard; g != nil {
			if d := c.check(g, sql); !d.allow {
				return appendRaise(out, d.rule, d.reason), c.push(expect{kind: expQuery})
			}
		}
		return msg, c.push(expect{kind: expQuery})
	case 'P':
		name, rest, ok := cstring(body)
		sql, _, ok2 := cstring(rest)
		if !ok || !ok2 {
			return nil, errors.New("malformed Parse")
		}
		if c.policy.guard != nil && changesEncoding(sql) {
			c.denied[name] = encodingDenial
			c.skipping, c.skipReason = true, encodingDenial
			return nil, nil
		}
		if g := c.policy.guard; g != nil {
			if d := c.check(g, sql); !d.allow {
				c.denied[name] = denyMessage(d.rule, d.reason)
				c.skipping, c.skipReason = true, c.denied[name]
				return nil, nil
			}
		}
		delete(c.denied, name)
		return msg, c.push(expect{kind: expParse, name: name})
	case 'B':
		portal, rest, ok := cstring(body)
		stmt, rest, ok2 := cstring(rest)
		if !ok || !ok2 {
			return nil, errors.New("malformed Bind")
		}
		if why, denied := c.denied[stmt]; denied {
			c.skipping, c.skipReason = true, why
			return nil, nil
		}
		formats, err := bindResultFormats(rest)
		if err != nil {
			return nil, err
		}
		return msg, c.push(expect{kind: expBind, name: portal, stmt: stmt, formats: formats})
	case 'D':
		if len(body) < 2 {
			return nil, errors.New("malformed Describe")
		}
		name, _, _ := cstring(body[1:])
		k := expDescribePortal
		if body[0] == 'S' {
			k = expDescribeStmt
		}
		return msg, c.push(expect{kind: k, name: name})
	case 'E':
		portal, _, _ := cstring(body)
		return msg, c.push(expect{kind: expExecute, name: portal})
	case 'C':
		if len(body) < 2 {
			return nil, errors.New("malformed Close")
		}
		name, _, _ := cstring(body[1:])
		if body[0] == 'S' {
			delete(c.denied, name)
		}
		return msg, c.push(expect{kind: expClose, name: name, stmt: string(body[:1])})
	case 'S':
		e := expect{kind: expSync}
		if c.skipping {
			e.deny = c.skipReason
			c.skipping, c.skipReason = false, ""
		}
		return msg, c.push(e)
	case 'F':
		// A FunctionCall runs any function by OID with no SQL to check and
		// returns a value no row description describes: refused under a policy.
		return appendRaise(out, "function-call", "statement denied: the FunctionCall protocol message is not allowed on a connection with a policy"), c.push(expect{kind: expQuery})
	}
	return msg, nil // Flush
}

// check asks the guard and counts the decision.
func (c *conversation) check(g statementGuard, sql string) guardDecision {
	d := g.check(sql)
	rule, outcome, path := "none", "allow", "prefilter"
	if !d.allow {
		rule, outcome = d.rule, "deny"
	}
	if d.parsed {
		path = "parse"
	}
	c.metrics.GuardDecisions.WithLabelValues(rule, outcome, path).Inc()
	return d
}

const encodingDenial = "statement denied: changing client_encoding is not allowed on a connection with guardrails (statements are checked as UTF-8)"

// changesEncoding reports whether sql may change the session's
// client_encoding (SET/RESET client_encoding, SET NAMES, set_config):
// guardrails read statements as UTF-8, so the encoding must stay UTF-8.
// Deliberately coarse: any mention is enough.
func changesEncoding(sql string) bool {
	l := strings.ToLower(sql)
	if strings.Contains(l, "set_config") {
		return true
	}
	for i := strings.Index(l, "client_encoding"); i >= 0; {
		before := strings.TrimRight(l[:i], " \t\r\n\"")
		for _, w := range []string{"set", "reset", "session", "local"} {
			if strings.HasSuffix(before, w) {
				return true
			}
		}
		j := strings.Index(l[i+15:], "client_encoding")
		if j < 0 {
			break
		}
		i += 15 + j
	}
	for i := strings.Index(l, "names"); i >= 0; {
		before := strings.TrimRight(l[:i], " \t\r\n")
		after := strings.TrimLeft(l[i+5:], " \t\r\n")
		// SET NAMES 'x' (not UPDATE ... SET names = ...)
		if strings.HasSuffix(before, "set") && !strings.HasPrefix(after, "=") {
			return true
		}
		j := strings.Index(l[i+5:], "names")
		if j < 0 {
			break
		}
		i += 5 + j
	}
	return false
}

// bindResultFormats reads the result-column format codes at the end of a
// Bind body that starts after the statement name.
func bindResultFormats(b []byte) ([]int16, error) {
	rd := wireReader{b: b}
	n := int(rd.int16())
	rd.skip(2 * n) // parameter formats
	np := int(rd.int16())
	for range np {
		if l := rd.int32(); l > 0 {
			rd.skip(int(l))
		}
	}
	nf := int(rd.int16())
	if rd.err || nf < 0 || 2*nf > len(rd.b) {
		return nil, errors.New("malformed Bind")
	}
	if nf == 0 {
		return nil, nil
	}
	f := make([]int16, nf)
	for i := range f {
		f[i] = rd.int16()
	}
	return f, nil
}

// appendRaise appends a Query that makes the server itself raise the
// denial, so it arrives in order and the transaction state is what a real
// permission error leaves.
func appendRaise(out []byte, rule, reason string) []byte {
	msg := strings.ReplaceAll(denyMessage(rule, reason), "'", "''")
	msg = strings.ReplaceAll(msg, "$sluice$", "")
	sql := "DO $sluice$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = '" + msg + "'; END$sluice$"
	out = append(out, 'Q', 0, 0, 0, 0)
	out = append(out, sql...)
	out = append(out, 0)
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-1))
	return out
}

func denyMessage(rule, reason string) string {
	if reason != "" {
		return reason
	}
	return fmt.Sprintf("statement denied by guardrail %q", rule)
}

// ---- upstream → client ----

// serverSide inspects responses: masking, and reporting denials.
type serverSide struct{ c *conversation }

var serverWants = [256]bool{'S': true, 't': true, '1': true, '2': true, '3': true, 'T': true, 'n': true, 'D': true, 'C': true, 'I': true, 's': true, 'E': true, 'N': true, 'Z': true, 'H': true, 'd': true, 'c': true, 'A': true, 'V': true}

func (s serverSide) wants(typ byte) bool { return serverWants[typ] }

func (s serverSide) tooLarge(head []byte, size int, out []byte) ([]byte, bool, error) {
	c := s.c
	typ := head[0]
	if typ == 'D' || typ == 'd' {
		plan := c.cur
		if e, _ := c.front(); e.kind == expExecute {
			plan = c.portals[e.name]
		}
		if c.dropping {
			return nil, false, nil
		}
		if typ == 'D' && plan != nil && plan.active || typ == 'd' && c.copyOut && c.policy.mask != nil {
			// Fail closed: a value a rule covers cannot be checked.
			c.dropping = true
			c.maskFailure("too_large")
			return appendPgError(out, "ERROR", "42501", fmt.Sprintf("masking: a %d-byte row exceeds the inspection limit; the result is withheld", size)), false, nil
		}
		return nil, true, nil // no rule covers these rows
	}
	switch typ {
	case 'E':
		// An error that may echo data but is too large to mask: fail closed,
		// replacing it with ours (the server's bookkeeping still applies).
		c.maskFailure("too_large")
		c.errSeen = true
		c.dropping, c.copyOut, c.cur = false, false, nil
		if e, _ := c.front(); e.kind != expQuery {
			c.skipToSync()
		}
		return appendPgError(out, "ERROR", "42501", fmt.Sprintf("masking: a %d-byte error message exceeds the inspection limit and is withheld", size)), false, nil
	case 'N', 'A':
		c.maskFailure("too_large")
		return nil, false, nil // a notice or notification too large to mask is dropped
	}
	return nil, false, fmt.Errorf("a %d-byte %q message exceeds the inspection limit", size, typ)
}

func (s serverSide) inspect(msg []byte, out []byte) ([]byte, error) {
	c := s.c
	typ := msg[0]
	switch typ {
	case '1':
		e, err := c.popKind(typ, expParse)
		if err != nil {
			return nil, err
		}
		delete(c.stmts, e.name) // a new statement under this name: its old description is stale
		return msg, nil
	case '2':
		e, err := c.popKind(typ, expBind)
		if err != nil {
			return nil, err
		}
		c.portals[e.name] = c.planFor(c.stmts[e.stmt], e.formats)
		return msg, nil
	case '3':
		e, err := c.popKind(typ, expClose)
		if err != nil {
			return nil, err
		}
		if e.stmt == "S" {
			delete(c.stmts, e.name)
		} else {
			delete(c.portals, e.name)
		}
		return msg, nil
	case 'n':
		if _, err := c.popKind(typ, expDescribeStmt, expDescribePortal); err != nil {
			return nil, err
		}
		return msg, nil
	case 't':
		if e, _ := c.front(); e.kind != expDescribeStmt {
			return nil, fmt.Errorf("protocol tracking lost: ParameterDescription without Describe")
		}
		return msg, nil
	case 'S':
		// ParameterStatus: the server's encoding must stay what guardrails read.
		if c.policy.guard != nil {
			name, rest, _ := cstring(msg[5:])
			val, _, _ := cstring(rest)
			if name == "client_encoding" && !strings.EqualFold(val, "UTF8") {
				return nil, fmt.Errorf("client_encoding changed to %s on a guarded connection", val)
			}
		}
		return msg, nil
	case 'T':
		cols, err := parseRowDescription(msg[5:])
		if err != nil {
			return nil, err
		}
		e, _ := c.front()
		switch e.kind {
		case expDescribeStmt:
			c.pop()
			c.stmts[e.name] = cols
		case expDescribePortal:
			c.pop()
			c.portals[e.name] = c.planFor(cols, nil)
		case expQuery: // simple query: rows follow at once
			c.cur = c.planFor(cols, nil)
		default:
			return nil, fmt.Errorf("protocol tracking lost: RowDescription without Describe or Query")
		}
		return msg, nil
	case 'D':
		if c.dropping {
			return nil, nil
		}
		e, _ := c.front()
		plan := c.cur
		switch e.kind {
		case expExecute:
			var known bool
			if plan, known = c.portals[e.name]; !known {
				// A portal we never saw bound (a SQL cursor): no columns known.
				plan = c.planFor(nil, nil)
				c.portals[e.name] = plan
			}
		case expQuery:
			if plan == nil && c.policy.mask != nil {
				plan = c.planFor(nil, nil) // rows without a RowDescription: fail closed
				c.cur = plan
			}
		default:
			return nil, fmt.Errorf("protocol tracking lost: DataRow without Execute or Query")
		}
		return c.maskRow(msg, plan, out)
	case 'C', 'I', 's':
		switch e, _ := c.front(); e.kind {
		case expExecute:
			c.pop()
		case expQuery:
		default:
			return nil, fmt.Errorf("protocol tracking lost: %q without Execute or Query", typ)
		}
		c.cur = nil
		if typ == 'C' && (bytes.HasPrefix(msg[5:], []byte("DECLARE CURSOR")) || bytes.HasPrefix(msg[5:], []byte("CLOSE CURSOR"))) {
			clear(c.portals) // SQL cursors are portals too: never trust a plan across them
		}
		if c.dropping {
			c.dropping = false
			return nil, nil
		}
		return msg, nil
	case 'E':
		c.errSeen = true
		c.dropping, c.copyOut, c.cur = false, false, nil
		if e, _ := c.front(); e.kind != expQuery {
			c.skipToSync()
		}
		return c.maskNotice(msg, out)
	case 'N':
		return c.maskNotice(msg, out)
	case 'A':
		return c.maskNotify(msg, out)
	case 'V':
		return msg, nil
	case 'Z':
		e, err := c.popKind(typ, expSync, expQuery, expFunc)
		if err != nil {
			return nil, err
		}
		if len(msg) >= 6 && msg[5] == 'I' {
			clear(c.portals) // portals end with their transaction
		}
		errSeen := c.errSeen
		c.errSeen, c.dropping, c.copyOut, c.cur = false, false, false, nil
		if e.deny != "" && !errSeen {
			// The denied Parse/Bind never reached the server: answer it here,
			// just before the Sync's ReadyForQuery.
			out = appendPgError(out, "ERROR", "42501", e.deny)
			return append(out, msg...), nil
		}
		return msg, nil
	case 'H':
		return c.startCopyOut(msg, out)
	case 'd':
		if c.copyOut {
			return c.maskCopyData(msg, out)
		}
		return msg, nil
	case 'c':
		if c.dropping {
			return nil, nil
		}
		c.copyOut = false
		return msg, nil
	}
	return msg, nil
}

// ---- wire helpers ----

// wireReader reads big-endian fields, remembering an overrun instead of
// panicking on hostile input.
type wireReader struct {
	b   []byte
	err bool
}

func (r *wireReader) need(n int) bool {
	if r.err || n < 0 || len(r.b) < n {
		r.err = true
		return false
	}
	return true
}

func (r *wireReader) int16() int16 {
	if !r.need(2) {
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

func (r *wireReader) int32() int32 {
	if !r.need(4) {
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *wireReader) skip(n int) {
	if r.need(n) {
		r.b = r.b[n:]
	}
}

func (r *wireReader) cstring() []byte {
	i := bytes.IndexByte(r.b, 0)
	if r.err || i < 0 {
		r.err = true
		return nil
	}
	s := r.b[:i]
	r.b = r.b[i+1:]
	return s
}
