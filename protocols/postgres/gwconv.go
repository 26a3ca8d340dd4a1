package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sluice-gw/sluice/engine"
)

// The gateway follows the conversation of a session when statement audit
// (Config.Statements) or statement review (Plan.ReviewStatements) is on.
//
// The request side reads Query, Parse, Bind, Execute, Sync, Close and
// FunctionCall and queues one op per message, in order. The response side
// reads ParseComplete, BindComplete, CloseComplete, CommandComplete,
// EmptyQueryResponse, PortalSuspended, ErrorResponse and ReadyForQuery, each
// of which answers the op at the front of the queue (protocol §55.2.3: after
// an error the server skips everything up to the next Sync). Nothing else is
// decoded. An answered Query, FunctionCall or Execute becomes one
// engine.StatementRecord.
//
// Prepared statements and portals are known as the server knows them: a
// Parse, Bind or Close takes effect on the gateway when the server confirms
// it, so a Parse that failed or was skipped never redefines a name here.
// Until then the request side resolves names through the ops still queued:
// an op of the current Sync group is certain (if it fails, the server skips
// the rest of the group); one of an earlier group may still fail, and under
// statement review a Bind that depends on it waits for its answer.
//
// A statement whose kind is under review is held before it is forwarded: a
// simple Query at its Query, an extended-protocol statement at its Execute,
// when the Bind parameters are known. Only the session's requests wait;
// responses to earlier ones keep flowing. A refusal reaches the client in
// pipeline order: a Query is replaced by one that makes the server raise the
// error; an Execute is dropped with everything up to the next Sync, and the
// error is reported just before that Sync's ReadyForQuery.

const (
	maxAuditText   = 64 << 10 // statement text kept in a record
	maxAuditParam  = 1 << 10  // one parameter in a record
	maxAuditParams = 8 << 10  // all parameters of a record
	maxHexParam    = 8        // binary parameters up to this size are shown in hex
	// maxGwPending bounds the requests awaiting their answer; beyond it the
	// session's next request waits (after the batch before it is forwarded)
	// until answers make room: memory stays bounded, nothing is dropped.
	maxGwPending = 1 << 10
	// maxGwNames bounds the named prepared statements and portals tracked
	// per session (clients cache a few hundred).
	maxGwNames = 1 << 16
	// gwMaxInspect: with statement audit only, a request longer than this is
	// not held whole: its record keeps the part at hand.
	gwMaxInspect = 1 << 20
	// keepRawText: statement texts up to this size are kept exactly, so that
	// a client parsing the same text again (pgbench -M extended) costs no
	// allocation.
	keepRawText = 4 << 10
)

// Statement record outcomes.
const (
	outcomeOK       = "ok"
	outcomeError    = "error"
	outcomeDenied   = "denied"   // by the agent's guardrails or masking
	outcomeRejected = "rejected" // by its review (rejected, timed out, cancelled, or not reviewable)
)

// stmtInfo is one prepared statement's definition. Immutable once queued.
type stmtInfo struct {
	raw     string // the exact text; kept when short or when it needs review
	text    string // the audit text: bounded and masked
	review  string // the kind it is held for review under; "" none
	forgets bool   // running it may change the prepared statements (SQL PREPARE, DEALLOCATE, DISCARD)
}

// portalInfo is one portal's binding.
type portalInfo struct {
	stmt      *stmtInfo // nil: its statement was not known here
	text      string    // audit text of the statement
	params    string    // audit form of the parameters
	rawParams [][]byte  // exact parameters; only when it needs review
	review    string
	approved  bool // its review approved it (the next Execute of a suspended portal goes on)
}

type opKind uint8

const (
	opQuery  opKind = iota // simple Query: answered through ReadyForQuery
	opFunc                 // FunctionCall: likewise
	opParse                // ParseComplete
	opBind                 // BindComplete
	opClose                // CloseComplete
	opExec                 // CommandComplete, EmptyQueryResponse, PortalSuspended or an error
	opSync                 // ReadyForQuery
	opForget               // marker, no answer: SQL may have changed the named prepared statements
)

// op is one queued request.
type op struct {
	kind    opKind
	portal  bool // Close: of a portal
	dropped bool // Execute never forwarded (refused, or skipped after a refusal)
	id      uint64
	name    string     // Parse, Close: the statement or portal; Bind: the portal
	stmt    *stmtInfo  // Parse: the definition
	bound   portalInfo // Bind: the binding
	// the statement record (Query, FunctionCall, Execute; Sync: the text of
	// the group's last Parse, for a Parse that fails with no Execute)
	at, start, end int64 // since gwConv.base (monotonic); end 0: not yet
	rows           int64 // -1 unknown
	text, params   string
	outcome, err   string
	rule           string
	deny           *engine.Error // Sync: the refusal to report at its ReadyForQuery
}

// heldStmt is a statement waiting for its review.
type heldStmt struct {
	op      op
	kind    string
	text    string
	params  [][]byte
	forgets bool
	portal  []byte // Execute: the portal, marked approved on approval
	exec    bool
}

// gwConv is the state of one session's conversation on the gateway.
type gwConv struct {
	ctx      context.Context // the relay's: ends holds when the session ends
	sess     *engine.Session
	m        *Metrics
	log      interface{ Warn(string, ...any) }
	sink     engine.StatementSink // nil: no statement audit
	review   *reviewSet           // nil: no statement review
	reviewer engine.Reviewer
	mask     valueMasker // audit masking of texts and parameters; nil: none
	watch    bool        // count the agent's denials on the session
	hold     *holdSlot
	notice   func([]byte) error // writes to the client at a message boundary
	upNow    *time.Time         // the request pump's read time
	downNow  *time.Time         // the response pump's read time

	base time.Time // op times count from here

	mu      sync.Mutex
	cond    sync.Cond
	ops     []op
	head    int
	closed  bool
	waiting bool
	n       atomic.Int32 // len(ops)-head
	// confirmed by the server
	unnamed   *stmtInfo
	stmts     map[string]*stmtInfo
	uportal   portalInfo
	uportalOK bool
	portals   map[string]*portalInfo

	// request side only
	nextID     uint64
	groupStart uint64 // the first op id of the current Sync group
	lastParse  string // audit text of the group's last Parse
	skipping   bool
	skipErr    *engine.Error
	full       bool
	waitFor    uint64 // hold until every op before this id is answered
	held       *heldStmt
	scratch    []byte
	scratch2   []byte

	// response side only
	errSeen bool  // an error since the last ReadyForQuery
	lost    bool  // tracking lost (audit only): records are best effort
	seq     int64 // under mu
}

func newGwConv(ctx context.Context, sess *engine.Session, m *Metrics) *gwConv {
	c := &gwConv{ctx: ctx, sess: sess, m: m, nextID: 1, groupStart: 1, base: time.Now()}
	c.cond.L = &c.mu
	return c
}

var errConvClosed = errors.New("session ended")

func (c *gwConv) newOp(k opKind) op {
	at := c.since(*c.upNow)
	return op{kind: k, at: at, start: at, rows: -1}
}

// since is t as an op time.
func (c *gwConv) since(t time.Time) int64 { return int64(t.Sub(c.base)) }

// push queues an op for the response side.
func (c *gwConv) push(o op) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errConvClosed
	}
	o.id = c.nextID
	c.nextID++
	c.ops = append(c.ops, o)
	c.n.Add(1)
	if o.kind == opSync || o.kind == opQuery || o.kind == opFunc {
		c.groupStart = c.nextID
	}
	return nil
}

// pop removes the front op (under c.mu).
func (c *gwConv) pop() {
	c.ops[c.head] = op{}
	c.head++
	if c.head == len(c.ops) {
		c.ops, c.head = c.ops[:0], 0
	}
	c.n.Add(-1)
	if c.waiting {
		c.waiting = false
		c.cond.Broadcast()
	}
}

// front returns the oldest unanswered op (under c.mu), applying the forget
// markers before it; nil when none.
func (c *gwConv) front() *op {
	for c.head < len(c.ops) && c.ops[c.head].kind == opForget {
		clear(c.stmts)
		c.pop()
	}
	if c.head == len(c.ops) {
		return nil
	}
	return &c.ops[c.head]
}

// waitUntil blocks until there is room in the queue and every op before
// id (0: none) is answered, or the session ends.
func (c *gwConv) waitUntil(id uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && (len(c.ops)-c.head >= maxGwPending || id != 0 && c.front() != nil && c.ops[c.head].id < id) {
		c.waiting = true
		c.cond.Wait()
	}
	if c.closed {
		return errConvClosed
	}
	return nil
}

// close wakes a request side that waits; the session is ending.
func (c *gwConv) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

// finish records the statements still unanswered when the session ended.
// Both pumps have stopped.
func (c *gwConv) finish(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.since(now)
	for i := c.head; i < len(c.ops); i++ {
		o := &c.ops[i]
		if !o.statement() {
			continue
		}
		if o.outcome == "" {
			o.outcome, o.err = outcomeError, "the session ended before the statement completed"
		}
		c.emit(o, end)
	}
	c.ops, c.head = nil, 0
}

func (o *op) statement() bool { return o.kind == opQuery || o.kind == opFunc || o.kind == opExec }

// emit hands a finished statement to the statement sink (under c.mu, so
// records leave in order; the sink returns at once).
func (c *gwConv) emit(o *op, end int64) {
	if c.sink == nil {
		return
	}
	if o.end == 0 || o.dropped {
		o.end = end
	}
	d := time.Duration(o.end - o.start)
	if o.dropped || d < 0 {
		d = 0
	}
	c.seq++
	c.sink.Statement(engine.StatementRecord{
		SessionID: c.sess.ID, Seq: c.seq, At: c.base.Add(time.Duration(o.at)), Duration: d,
		Text: o.text, Params: o.params, Rows: o.rows,
		Outcome: o.outcome, Error: o.err, Rule: o.rule,
	})
}

// resolveStmt returns the definition a Bind of name would use now: the
// latest Parse or Close of it still queued, else the confirmed one (nil:
// none known). uncertain: that latest op belongs to an earlier Sync group
// and may still fail or be skipped.
func (c *gwConv) resolveStmt(name []byte) (st *stmtInfo, uncertain bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.ops) - 1; i >= c.head; i-- {
		o := &c.ops[i]
		switch {
		case o.kind == opForget && len(name) > 0:
			return nil, o.id < c.groupStart
		case o.kind == opParse && o.name == string(name):
			return o.stmt, o.id < c.groupStart
		case o.kind == opClose && !o.portal && o.name == string(name):
			return nil, o.id < c.groupStart
		}
	}
	if len(name) == 0 {
		return c.unnamed, false
	}
	return c.stmts[string(name)], false
}

// resolvePortal returns the binding an Execute of name runs: the latest
// Bind or Close of it still queued, else the confirmed one. A Bind that
// fails leaves the transaction failed, so nothing runs until its end, which
// drops every portal: no uncertainty here.
func (c *gwConv) resolvePortal(name []byte) (portalInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.ops) - 1; i >= c.head; i-- {
		o := &c.ops[i]
		switch {
		case o.kind == opBind && o.name == string(name):
			return o.bound, true
		case o.kind == opClose && o.portal && o.name == string(name):
			return portalInfo{}, false
		}
	}
	if len(name) == 0 {
		return c.uportal, c.uportalOK
	}
	if p := c.portals[string(name)]; p != nil {
		return *p, true
	}
	return portalInfo{}, false
}

// approve marks a portal's binding approved (where resolvePortal finds it).
func (c *gwConv) approve(name []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.ops) - 1; i >= c.head; i-- {
		if o := &c.ops[i]; o.kind == opBind && o.name == string(name) {
			o.bound.approved = true
			return
		}
	}
	if len(name) == 0 {
		c.uportal.approved = true
	} else if p := c.portals[string(name)]; p != nil {
		p.approved = true
	}
}

// ---- client → agent ----

type gwRequests struct{ c *gwConv }

var gwRequestWants = [256]bool{'Q': true, 'P': true, 'B': true, 'E': true, 'S': true, 'C': true, 'F': true}

func (r gwRequests) wants(typ byte) bool { return gwRequestWants[typ] || r.c.skipping }

func (r gwRequests) inspect(msg []byte, out []byte) ([]byte, error) {
	c := r.c
	typ, body := msg[0], msg[5:]
	if gwRequestWants[typ] && c.n.Load() >= maxGwPending {
		c.full = true
		return nil, errHold
	}
	if c.skipping && typ != 'S' {
		if typ == 'E' { // never forwarded: recorded as not executed
			o := c.newOp(opExec)
			o.dropped = true
			o.text, o.params = c.execText(body)
			o.outcome, o.err = outcomeError, "not executed: an earlier statement of the pipeline was refused"
			return nil, c.push(o)
		}
		return nil, nil // the server would skip it too
	}
	switch typ {
	case 'Q':
		sql, _, _ := cstringBytes(body)
		o := c.newOp(opQuery)
		raw := ""
		if c.review != nil {
			raw = string(sql)
		}
		if c.sink != nil {
			o.text = c.auditText(sql, raw, false)
		}
		if c.review != nil {
			kind, forgets := c.review.match(raw)
			if kind != "" {
				c.held = &heldStmt{op: o, kind: kind, text: raw, forgets: forgets}
				return nil, errHold
			}
			if forgets {
				c.push(op{kind: opForget})
			}
		}
		return msg, c.push(o)
	case 'P':
		name, rest, ok := cstringBytes(body)
		sql, _, ok2 := cstringBytes(rest)
		if !ok || !ok2 {
			return msg, nil // the server ends the session over it
		}
		prev, _ := c.resolveStmt(name)
		o := c.newOp(opParse)
		o.name = string(name)
		o.stmt = c.define(prev, sql, false)
		c.lastParse = o.stmt.text
		return msg, c.push(o)
	case 'B':
		pname, rest, ok := cstringBytes(body)
		sname, rest, ok2 := cstringBytes(rest)
		if !ok || !ok2 {
			return msg, nil
		}
		st, uncertain := c.resolveStmt(sname)
		if uncertain && c.review != nil {
			c.waitFor = c.groupStart
			return nil, errHold
		}
		o := c.newOp(opBind)
		o.name = string(pname)
		if err := c.bind(&o.bound, st, sname, rest, false); err != nil {
			return msg, nil // malformed: the server ends the session over it
		}
		return msg, c.push(o)
	case 'E':
		pname, _, _ := cstringBytes(body)
		p, known := c.resolvePortal(pname)
		o := c.newOp(opExec)
		if c.sink != nil {
			o.text, o.params = p.text, p.params
			if !known {
				o.text = "(portal " + strconv.Quote(string(pname)) + ")"
			}
		}
		forgets := known && p.stmt != nil && p.stmt.forgets
		if c.review != nil && known && p.stmt == nil {
			// Prepared in SQL, or its Parse was not seen: what would run
			// cannot be shown to a reviewer (fail closed).
			e := engine.Deny("statement refused: the text of this prepared statement is not known to the gateway, so it cannot be reviewed (statements prepared with SQL PREPARE cannot run on a connection with statement reviews)")
			c.refused(e)
			o.outcome, o.err, o.rule, o.dropped = outcomeRejected, e.Message, reviewOpaque, true
			c.skipping, c.skipErr = true, e
			return nil, c.push(o)
		}
		if c.review != nil && known && p.review != "" && !p.approved {
			text := p.text
			if p.stmt != nil && p.stmt.raw != "" {
				text = p.stmt.raw
			}
			c.held = &heldStmt{op: o, kind: p.review, text: text, params: p.rawParams, forgets: forgets,
				portal: append([]byte(nil), pname...), exec: true}
			return nil, errHold
		}
		if forgets {
			c.push(op{kind: opForget})
		}
		return msg, c.push(o)
	case 'S':
		o := c.newOp(opSync)
		o.text = c.lastParse
		c.lastParse = ""
		if c.skipping {
			o.deny = c.skipErr
			c.skipping, c.skipErr = false, nil
		}
		return msg, c.push(o)
	case 'C':
		if len(body) < 2 {
			return msg, nil
		}
		name, _, _ := cstringBytes(body[1:])
		return msg, c.push(op{kind: opClose, portal: body[0] == 'P', name: string(name)})
	case 'F':
		o := c.newOp(opFunc)
		o.text = "(FunctionCall protocol message)"
		if c.review != nil {
			// A function called by OID: nothing to review (fail closed).
			e := engine.Deny("statement refused: the FunctionCall protocol message is not allowed on a connection with statement reviews")
			o.outcome, o.err, o.rule = outcomeRejected, e.Message, reviewOpaque
			c.refused(e)
			return appendReviewRaise(out, e), c.push(o)
		}
		return msg, c.push(o)
	}
	return msg, nil
}

// hold waits for room in the queue, for earlier answers, or for the review
// of c.held.
func (r gwRequests) hold(msg []byte, out []byte) ([]byte, error) {
	c := r.c
	for c.held == nil {
		c.full = false
		id := c.waitFor
		c.waitFor = 0
		if err := c.waitUntil(id); err != nil {
			return nil, err
		}
		repl, err := r.inspect(msg, out)
		if err != errHold {
			return repl, err
		}
	}
	h := c.held
	c.held = nil
	err, canceled := c.await(h)
	if err == nil {
		h.op.start = c.since(time.Now())
		if h.exec {
			c.approve(h.portal)
		}
		if h.forgets {
			c.push(op{kind: opForget})
		}
		return msg, c.push(h.op)
	}
	if c.ctx.Err() != nil {
		// The session is ending: the statement never ran.
		h.op.outcome, h.op.err, h.op.rule, h.op.dropped = outcomeError, "the session ended while the statement waited for its review", h.kind, true
		c.mu.Lock()
		c.ops = append(c.ops, h.op) // recorded by finish, in order
		c.mu.Unlock()
		return nil, context.Cause(c.ctx)
	}
	e := reviewRefusal(err, canceled)
	c.refused(e)
	h.op.outcome, h.op.err, h.op.rule = outcomeRejected, e.Message, h.kind
	if !h.exec {
		return appendReviewRaise(out, e), c.push(h.op)
	}
	h.op.dropped = true
	c.skipping, c.skipErr = true, e
	return nil, c.push(h.op)
}

// await asks the Reviewer about a held statement. canceled reports a
// CancelRequest from the client.
func (c *gwConv) await(h *heldStmt) (err error, canceled bool) {
	hctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	c.hold.set(cancel)
	defer c.hold.set(nil)
	// The notice is written aside, so that a client slow to read never
	// blocks the Reviewer; the statement goes on (or is refused) only once
	// the notice is out, so that it comes first.
	var mu sync.Mutex
	var noticed chan struct{}
	err = c.reviewer.AwaitStatement(hctx, c.sess, h.kind, h.text, h.params, func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		if noticed != nil {
			return // at most once
		}
		noticed = make(chan struct{})
		b := appendNotice(nil, msg)
		go func() {
			defer close(noticed)
			c.notice(b)
		}()
	})
	mu.Lock()
	done := noticed
	mu.Unlock()
	if done != nil {
		<-done
	}
	return err, errors.Is(context.Cause(hctx), errHoldCanceled)
}

// refused counts a review refusal with the session's denials.
func (c *gwConv) refused(e *engine.Error) {
	c.sess.Denied(e.Message)
	c.m.Denials.WithLabelValues("review").Inc()
}

// tooLarge handles a request longer than the inspection limit: its record
// keeps the part at hand; under statement review it is refused (its text
// cannot be classified or bound to an approval).
func (r gwRequests) tooLarge(head []byte, size int, out []byte) ([]byte, bool, error) {
	c := r.c
	typ, body := head[0], head[5:]
	if c.skipping {
		return nil, false, nil
	}
	if gwRequestWants[typ] && c.n.Load() >= maxGwPending {
		if err := c.waitUntil(0); err != nil { // all before it is forwarded
			return nil, false, err
		}
	}
	tooBig := func() *engine.Error {
		return engine.Deny(fmt.Sprintf("statement refused: a %d-byte message exceeds the statement review inspection limit", size))
	}
	switch typ {
	case 'Q':
		o := c.newOp(opQuery)
		if c.sink != nil {
			o.text = c.auditText(body, "", true)
		}
		if c.review != nil {
			e := tooBig()
			o.outcome, o.err, o.rule = outcomeRejected, e.Message, reviewTooLarge
			c.refused(e)
			return appendReviewRaise(out, e), false, c.push(o)
		}
		return nil, true, c.push(o)
	case 'P':
		name, rest, ok := cstringBytes(body)
		if c.review != nil || !ok {
			// Not forwarded: its name may be beyond reach, its text is.
			c.skipping, c.skipErr = true, tooBig()
			c.refused(c.skipErr)
			return nil, false, nil
		}
		o := c.newOp(opParse)
		o.name = string(name)
		o.stmt = c.define(nil, rest, true)
		c.lastParse = o.stmt.text
		return nil, true, c.push(o)
	case 'B':
		pname, rest, ok := cstringBytes(body)
		sname, rest, ok2 := cstringBytes(rest)
		if !ok || !ok2 {
			c.skipping, c.skipErr = true, tooBig()
			c.refused(c.skipErr)
			return nil, false, nil
		}
		st, uncertain := c.resolveStmt(sname)
		o := c.newOp(opBind)
		o.name = string(pname)
		c.bind(&o.bound, st, sname, rest, true)
		if c.review != nil && (uncertain || st == nil || o.bound.review != "") {
			c.skipping, c.skipErr = true, tooBig()
			c.refused(c.skipErr)
			return nil, false, nil
		}
		return nil, true, c.push(o)
	case 'E', 'S', 'C', 'F':
		// Never this large from a real client: refuse under review, else
		// let the server answer it.
		if c.review != nil {
			return nil, false, engine.Errorf(engine.CodeProtocol, "a %d-byte %q message", size, typ)
		}
	}
	return nil, true, nil
}

// define returns the definition a Parse of sql makes: prev when it has the
// same text (no allocation), else a new one. partial: only the start of a
// longer text is at hand.
func (c *gwConv) define(prev *stmtInfo, sql []byte, partial bool) *stmtInfo {
	if !partial && prev != nil && prev.raw != "" && string(sql) == prev.raw {
		return prev
	}
	st := &stmtInfo{}
	raw := ""
	if !partial && (len(sql) <= keepRawText || c.review != nil) {
		raw = string(sql)
	}
	if c.review != nil {
		st.review = reviewTooLarge
		if !partial {
			st.review, st.forgets = c.review.match(raw)
		}
	}
	if c.sink != nil {
		st.text = c.auditText(sql, raw, partial)
	}
	if len(raw) <= keepRawText || st.review != "" {
		st.raw = raw
	}
	return st
}

// bind fills a portal's binding from a Bind body after its names. partial:
// only the start of a longer Bind is at hand.
func (c *gwConv) bind(p *portalInfo, st *stmtInfo, sname, rest []byte, partial bool) error {
	*p = portalInfo{stmt: st}
	if st != nil {
		p.text, p.review = st.text, st.review
	} else if c.sink != nil {
		p.text = "(unknown prepared statement " + strconv.Quote(string(sname)) + ")"
	}
	if partial {
		if c.sink != nil {
			p.params = fmt.Sprintf("(parameters of a Bind longer than %d bytes not inspected)", gwMaxInspect)
		}
		return nil
	}
	if c.sink == nil && p.review == "" {
		return nil
	}
	params, raw, err := c.bindParams(rest, p.review != "")
	p.params, p.rawParams = params, raw
	return err
}

// execText is the audit text and parameters of an Execute.
func (c *gwConv) execText(body []byte) (string, string) {
	if c.sink == nil {
		return "", ""
	}
	name, _, _ := cstringBytes(body)
	if p, ok := c.resolvePortal(name); ok {
		return p.text, p.params
	}
	return "(portal " + strconv.Quote(string(name)) + ")", ""
}

// auditText is the record's text of sql: at most maxAuditText bytes (cut at
// a character boundary, "…" marks the cut), masked by the session's
// detectors. raw, when not "", is string(sql), reused when nothing changes.
func (c *gwConv) auditText(sql []byte, raw string, partial bool) string {
	cut := partial
	if len(sql) > maxAuditText {
		sql, cut = sql[:utf8Cut(sql, maxAuditText)], true
	}
	if c.mask == nil {
		if !cut {
			if raw != "" {
				return raw
			}
			return string(sql)
		}
		b := append(append(c.scratch[:0], sql...), "…"...)
		c.scratch = b[:0]
		return string(b)
	}
	b := c.maskText(append(c.scratch[:0], sql...))
	if cut {
		b = append(b, "…"...)
	}
	return string(b)
}

// maskText applies the session's detectors to b (in c.scratch's space);
// the result is valid until the next call.
func (c *gwConv) maskText(b []byte) []byte {
	out, kinds := c.mask.mask(c.scratch2[:0], b, false)
	c.scratch = b[:0]
	if kinds != 0 && (len(out) == 0 || len(b) == 0 || &out[0] != &b[0]) {
		c.scratch2 = out[:0]
	}
	return out
}

// utf8Cut returns the largest n <= max at which b can be cut without
// splitting a character.
func utf8Cut(b []byte, max int) int {
	n := max
	for n > 0 && n > max-utf8.UTFMax && !utf8.RuneStart(b[n]) {
		n--
	}
	return n
}

// bindParams reads the parameters of a Bind body (after the names): their
// audit form ("$1='x', $2=NULL, $3=<binary 0x0000002a>"), bounded and
// masked, and, when keep, an exact copy.
func (c *gwConv) bindParams(b []byte, keep bool) (string, [][]byte, error) {
	rd := wireReader{b: b}
	nf := int(rd.int16())
	if rd.err || nf < 0 || !rd.need(2*nf) {
		return "", nil, errors.New("malformed Bind")
	}
	formats := rd.b[:2*nf]
	rd.skip(2 * nf)
	np := int(rd.int16())
	if rd.err || np < 0 {
		return "", nil, errors.New("malformed Bind")
	}
	var raw [][]byte
	if keep {
		raw = make([][]byte, np)
	}
	out := c.scratch[:0]
	cut := false
	for i := range np {
		l := int(rd.int32())
		var v []byte
		if l >= 0 {
			if !rd.need(l) {
				return "", nil, errors.New("malformed Bind")
			}
			v, rd.b = rd.b[:l], rd.b[l:]
		}
		if rd.err {
			return "", nil, errors.New("malformed Bind")
		}
		if keep && l >= 0 {
			raw[i] = append([]byte{}, v...)
		}
		if c.sink == nil || cut {
			continue
		}
		if len(out) >= maxAuditParams {
			out, cut = append(out, ", …"...), true
			continue
		}
		if i > 0 {
			out = append(out, ", "...)
		}
		out = append(out, '$')
		out = strconv.AppendInt(out, int64(i+1), 10)
		out = append(out, '=')
		f := 0 // text
		switch {
		case nf == 1:
			f = int(formats[0])<<8 | int(formats[1])
		case i < nf:
			f = int(formats[2*i])<<8 | int(formats[2*i+1])
		}
		out = appendParam(out, v, l < 0, f == 1)
	}
	if c.sink == nil {
		return "", raw, nil
	}
	if c.mask != nil {
		out = c.maskText(out)
	} else {
		c.scratch = out[:0]
	}
	return string(out), raw, nil
}

// appendParam appends one parameter's audit form.
func appendParam(out, v []byte, null, binary bool) []byte {
	switch {
	case null:
		return append(out, "NULL"...)
	case printable(v):
		out = append(out, '\'')
		w := v
		if len(w) > maxAuditParam {
			w = w[:utf8Cut(w, maxAuditParam)]
		}
		for _, ch := range w {
			if ch == '\'' {
				out = append(out, '\'')
			}
			out = append(out, ch)
		}
		out = append(out, '\'')
		if len(w) < len(v) {
			out = append(out, "…"...)
		}
		return out
	case binary && len(v) <= maxHexParam:
		out = append(out, "<binary 0x"...)
		for _, ch := range v {
			out = append(out, hexDigits[ch>>4], hexDigits[ch&15])
		}
		return append(out, '>')
	}
	out = append(out, '<')
	out = strconv.AppendInt(out, int64(len(v)), 10)
	return append(out, " bytes>"...)
}

const hexDigits = "0123456789abcdef"

// printable reports whether v is UTF-8 text without control characters
// (tab, newline and carriage return aside).
func printable(v []byte) bool {
	for _, ch := range v {
		if ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r' || ch == 0x7f {
			return false
		}
	}
	return utf8.Valid(v)
}

func cstringBytes(b []byte) ([]byte, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// ---- agent → client ----

type gwResponses struct{ c *gwConv }

var gwResponseWants = [256]bool{'1': true, '2': true, '3': true, 'C': true, 'I': true, 's': true, 'E': true, 'Z': true}

func (gwResponses) wants(typ byte) bool { return gwResponseWants[typ] }

func (r gwResponses) tooLarge(head []byte, size int, out []byte) ([]byte, bool, error) {
	if head[0] == 'E' {
		return nil, true, r.c.failed(nil, nil, fmt.Sprintf("(an error message of %d bytes)", size))
	}
	return nil, true, nil
}

func (r gwResponses) inspect(msg []byte, out []byte) ([]byte, error) {
	c := r.c
	switch typ := msg[0]; typ {
	case '1', '2', '3':
		return msg, c.confirmed(typ)
	case 'C', 'I', 's':
		return msg, c.completed(msg)
	case 'E':
		code, text := errorFields(msg[5:])
		return msg, c.failed(code, text, "")
	case 'Z':
		var status byte
		if len(msg) > 5 {
			status = msg[5]
		}
		e, err := c.ready(status)
		if e != nil {
			// The refused Execute never reached the server: answer it here,
			// just before the Sync's ReadyForQuery.
			out = appendError(out, e, false)
			return append(out, msg...), err
		}
		return msg, err
	}
	return msg, nil
}

// mismatch reports a response that does not answer the front op. Under
// statement review the session ends (what runs can no longer be known:
// fail closed); with audit only, records go on best effort.
func (c *gwConv) mismatch(resp byte) error {
	if c.review != nil {
		return engine.Errorf(engine.CodeProtocol, "statement review: protocol tracking lost at response %q", resp)
	}
	if !c.lost {
		c.lost = true
		if c.log != nil {
			c.log.Warn("statement audit: protocol tracking lost; records of this session are best effort", "response", string(resp))
		}
	}
	return nil
}

// confirmed applies a ParseComplete, BindComplete or CloseComplete.
func (c *gwConv) confirmed(typ byte) error {
	want := opParse
	switch typ {
	case '2':
		want = opBind
	case '3':
		want = opClose
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.front()
	if o == nil || o.kind != want {
		return c.mismatch(typ)
	}
	switch o.kind {
	case opParse:
		if o.name == "" {
			c.unnamed = o.stmt
		} else {
			if _, ok := c.stmts[o.name]; !ok && len(c.stmts) >= maxGwNames {
				c.pop()
				return engine.Errorf(engine.CodeProtocol, "more than %d prepared statements in one session", maxGwNames)
			}
			if c.stmts == nil {
				c.stmts = make(map[string]*stmtInfo)
			}
			c.stmts[o.name] = o.stmt
		}
	case opBind:
		if o.name == "" {
			c.uportal, c.uportalOK = o.bound, true
		} else {
			if _, ok := c.portals[o.name]; !ok && len(c.portals) >= maxGwNames {
				c.pop()
				return engine.Errorf(engine.CodeProtocol, "more than %d portals in one session", maxGwNames)
			}
			if c.portals == nil {
				c.portals = make(map[string]*portalInfo)
			}
			b := o.bound
			c.portals[o.name] = &b
		}
	case opClose:
		switch {
		case o.portal && o.name == "":
			c.uportal, c.uportalOK = portalInfo{}, false
		case o.portal:
			delete(c.portals, o.name)
		case o.name == "":
			c.unnamed = nil
		default:
			delete(c.stmts, o.name)
		}
	}
	c.pop()
	return nil
}

// completed answers the front op with a CommandComplete, EmptyQuery or
// PortalSuspended.
func (c *gwConv) completed(msg []byte) error {
	now := c.since(*c.downNow)
	c.mu.Lock()
	o := c.front()
	if o == nil || !o.statement() || o.dropped {
		c.mu.Unlock()
		return c.mismatch(msg[0])
	}
	if msg[0] == 'C' {
		if n, ok := tagRows(msg[5:]); ok {
			o.rows = max(o.rows, 0) + n
		}
	}
	o.end = now
	if o.kind == opExec {
		if o.outcome == "" {
			o.outcome = outcomeOK
		}
		c.emit(o, now)
		c.pop()
	}
	c.mu.Unlock()
	return nil
}

// failed answers with an error (code and text from an ErrorResponse, or
// only a description of one too large to read): the front statement fails;
// after an error in the extended protocol the server skips everything up to
// the next Sync.
func (c *gwConv) failed(code, text []byte, desc string) error {
	now := c.since(*c.downNow)
	denied := string(code) == "42501" && (bytes.HasPrefix(text, []byte("statement denied")) || bytes.HasPrefix(text, []byte("masking:")))
	// The agent's own masking failure in a result: not a server error, the
	// server goes on with the next messages.
	agentMasking := denied && bytes.HasPrefix(text, []byte("masking:")) && !bytes.Contains(text, []byte("error message"))
	msg := desc
	if msg == "" {
		msg = string(text)
	}
	set := func(o *op) {
		if o.outcome != "" {
			return
		}
		o.outcome, o.err = outcomeError, msg
		if denied {
			o.outcome, o.rule = outcomeDenied, denialRule(msg)
		}
		o.end = now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.front()
	if c.watch && (o == nil || o.outcome != outcomeRejected) { // not our own refusal, raised by the server
		watchDenial(c.sess, c.m, code, text)
	}
	c.errSeen = true
	if o == nil {
		return nil
	}
	switch {
	case o.kind == opQuery || o.kind == opFunc:
		set(o) // the Query goes on to its ReadyForQuery
		return nil
	case o.kind == opExec && agentMasking:
		set(o)
		c.emit(o, now)
		c.pop()
		return nil
	}
	// o failed (or, a Sync, a Describe before it did); the server skips the
	// rest of the group. The group's first statement carries the error; a
	// failing unnamed Parse has dropped the unnamed statement.
	if o.kind == opParse && o.name == "" {
		c.unnamed = nil
	}
	carried := false
	for p := o; p != nil && p.kind != opSync; p = c.front() {
		if p.statement() {
			if !carried {
				set(p)
				carried = true
			} else if p.outcome == "" {
				p.outcome, p.err, p.dropped = outcomeError, "not executed: an earlier message of the pipeline failed", true
			}
			c.emit(p, now)
		}
		c.pop()
	}
	if s := c.front(); s != nil && !carried && s.text != "" {
		// A Parse failed with no Execute after it: its record.
		rec := op{kind: opExec, at: s.at, start: s.at, rows: -1, text: s.text}
		s.text = ""
		set(&rec)
		c.emit(&rec, now)
	}
	return nil
}

// ready handles a ReadyForQuery: it answers the front Query, FunctionCall
// or Sync, and returns the refusal to report before it, if any.
func (c *gwConv) ready(status byte) (*engine.Error, error) {
	now := c.since(*c.downNow)
	var deny *engine.Error
	c.mu.Lock()
	o := c.front()
	if o == nil {
		c.mu.Unlock()
		return nil, c.mismatch('Z')
	}
	mismatch := false
loop:
	for ; o != nil; o = c.front() {
		switch o.kind {
		case opSync:
			if o.deny != nil && !c.errSeen {
				deny = o.deny
			}
			c.pop()
			break loop
		case opQuery, opFunc:
			if o.outcome == "" {
				o.outcome = outcomeOK
			}
			c.emit(o, now)
			c.pop()
			break loop
		case opExec:
			if o.outcome == "" {
				// Sent after an error of its group: the server skipped it.
				o.outcome, o.err, o.dropped = outcomeError, "not executed: an earlier message of the pipeline failed", true
				mismatch = mismatch || !c.errSeen
			}
			c.emit(o, now)
			c.pop()
		default: // a Parse, Bind or Close the server skipped after an error
			mismatch = mismatch || !c.errSeen
			c.pop()
		}
	}
	if status == 'I' {
		// Portals end with their transaction.
		if c.uportalOK {
			c.uportal, c.uportalOK = portalInfo{}, false
		}
		clear(c.portals)
	}
	c.errSeen = false
	c.mu.Unlock()
	if mismatch {
		return deny, c.mismatch('Z')
	}
	return deny, nil
}

// tagRows reads the row count of a CommandComplete tag ("INSERT 0 5",
// "SELECT 3", "UPDATE 2", "COPY 7", ...).
func tagRows(tag []byte) (int64, bool) {
	tag, _, _ = bytes.Cut(tag, []byte{0})
	word, _, _ := bytes.Cut(tag, []byte{' '})
	switch string(word) {
	case "INSERT", "UPDATE", "DELETE", "SELECT", "MERGE", "FETCH", "MOVE", "COPY":
	default:
		return 0, false
	}
	i := bytes.LastIndexByte(tag, ' ')
	if i < 0 || i == len(tag)-1 {
		return 0, false
	}
	var n int64
	for _, ch := range tag[i+1:] {
		if ch < '0' || ch > '9' || n > (1<<62)/10 {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// errorFields returns the SQLSTATE and message of an ErrorResponse body.
func errorFields(b []byte) (code, text []byte) {
	for f := b; len(f) > 1; {
		end := bytes.IndexByte(f[1:], 0)
		if end < 0 {
			break
		}
		switch f[0] {
		case 'C':
			code = f[1 : 1+end]
		case 'M':
			text = f[1 : 1+end]
		}
		f = f[2+end:]
	}
	return code, text
}

// denialRule names the rule in one of the agent's denial messages.
func denialRule(msg string) string {
	if rest, ok := strings.CutPrefix(msg, `statement denied by guardrail "`); ok {
		if i := strings.IndexByte(rest, '"'); i >= 0 {
			return rest[:i]
		}
	}
	switch {
	case strings.HasPrefix(msg, "masking:"):
		return "masking"
	case strings.Contains(msg, "exceeds the guardrail inspection limit"):
		return "too-large"
	case strings.Contains(msg, "client_encoding"):
		return "client-encoding"
	case strings.Contains(msg, "FunctionCall"):
		return "function-call"
	}
	return "guardrail"
}
