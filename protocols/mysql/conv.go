package mysql

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-gw/sluice/masking"
)

// Commands (COM_*).
const (
	comQuit             = 0x01
	comInitDB           = 0x02
	comQuery            = 0x03
	comFieldList        = 0x04
	comStatistics       = 0x09
	comProcessInfo      = 0x0a
	comProcessKill      = 0x0c
	comDebug            = 0x0d
	comPing             = 0x0e
	comRefresh          = 0x07
	comStmtPrepare      = 0x16
	comStmtExecute      = 0x17
	comStmtSendLongData = 0x18
	comStmtClose        = 0x19
	comStmtReset        = 0x1a
	comSetOption        = 0x1b
	comStmtFetch        = 0x1c
	comResetConnection  = 0x1f
)

// respKind is the shape of the response a command gets.
type respKind uint8

const (
	respNone    respKind = iota // no response (QUIT, STMT_CLOSE, SEND_LONG_DATA)
	respSimple                  // one packet: OK, ERR, EOF or a string
	respText                    // result sets with text rows (COM_QUERY)
	respBinary                  // result sets with binary rows (COM_STMT_EXECUTE)
	respPrepare                 // COM_STMT_PREPARE_OK + definitions
	respFields                  // column definitions until EOF (COM_FIELD_LIST)
	respFetch                   // binary rows until EOF (COM_STMT_FETCH)
	respRefused                 // refused: never forwarded
)

func commandKind(cmd byte) respKind {
	switch cmd {
	case comQuit, comStmtClose, comStmtSendLongData:
		return respNone
	case comInitDB, comPing, comStatistics, comDebug, comRefresh, comStmtReset, comSetOption, comResetConnection:
		return respSimple
	case comQuery, comProcessInfo:
		return respText
	case comStmtExecute:
		return respBinary
	case comStmtPrepare:
		return respPrepare
	case comFieldList:
		return respFields
	case comStmtFetch:
		return respFetch
	}
	return respRefused // CHANGE_USER, BINLOG_DUMP, REGISTER_SLAVE, SHUTDOWN, PROCESS_KILL, ...
}

// conversation is the agent's view of one session: the commands the
// upstream still owes a response to, so that an answer the agent makes up
// (a denial) is sent only when every earlier response has gone out, and so
// that each response can be timed and followed (masking).
type conversation struct {
	policy     *sessionPolicy
	connection string // the Sluice connection name (what COM_INIT_DB may name)
	database   string // the upstream database it stands for
	maxInspect int
	m          *Metrics
	sm         *sessionMetrics
	timer      stmtTimer // used by the response side only
	kills      killScanner

	mu      sync.Mutex
	cond    *sync.Cond
	pending []pendingCmd
}

func newConversation(p *sessionPolicy, connection, database string, maxInspect int, m *Metrics) *conversation {
	stage := "relay"
	if p != nil {
		stage = "inspect"
	}
	c := &conversation{policy: p, connection: connection, database: database, maxInspect: maxInspect, m: m, sm: m.session(connection, stage)}
	c.timer.m = c.sm
	c.cond = sync.NewCond(&c.mu)
	return c
}

// push queues a forwarded command's response. Commands the server does not
// answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT) are not queued:
// an entry nobody answers would shift every later response onto the wrong
// command (unmasked rows) and make waitIdle wait forever.
func (c *conversation) push(k respKind, at time.Time) {
	if k == respNone {
		return
	}
	c.mu.Lock()
	c.pending = append(c.pending, pendingCmd{k, at})
	c.mu.Unlock()
}

func (c *conversation) head() (pendingCmd, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return pendingCmd{}, false
	}
	return c.pending[0], true
}

func (c *conversation) pop() {
	c.mu.Lock()
	if len(c.pending) > 0 {
		c.pending = c.pending[1:]
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// waitIdle blocks until every forwarded command has its response, or done.
func (c *conversation) waitIdle(done *atomic.Bool) {
	c.mu.Lock()
	for len(c.pending) > 0 && !done.Load() {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

func (c *conversation) stop(done *atomic.Bool) {
	done.Store(true)
	c.mu.Lock()
	c.cond.Broadcast()
	c.mu.Unlock()
}

// errLateKill ends a session whose command, too large to hold, showed a
// KILL after part of it had gone upstream: the agent closes the upstream
// connection before the command is complete, so the server never runs it,
// and tells the client with ERR (seq is its sequence id).
type errLateKill struct{ seq byte }

func (e *errLateKill) Error() string {
	return "a command too large to hold had a KILL after part of it was forwarded; session closed"
}

// requests relays commands from the gateway to the upstream, applying the
// guardrails, refusing commands Sluice does not relay and KILLs it does not
// map (killscan.go).
func (c *conversation) requests(gw *bufio.Reader, clock *timedReader, gwOut *lockedWriter, up *bufio.Writer, n *atomic.Int64, done *atomic.Bool) error {
	r := &relayer{src: gw, dst: up, n: n, overhead: c.sm.overhead, clock: clock}
	buf := make([]byte, 0, 4096)
	for {
		ln, seq, err := r.header()
		if err != nil {
			return err
		}
		if ln == 0 {
			if err := r.writeHeader(0, seq); err != nil {
				return err
			}
			continue
		}
		first, err := gw.Peek(1)
		if err != nil {
			return io.ErrUnexpectedEOF
		}
		cmd := first[0]
		kind := commandKind(cmd)
		sqlCmd := cmd == comQuery || cmd == comStmtPrepare
		guarded := sqlCmd && c.policy != nil && c.policy.guard != nil
		inspect := cmd == comInitDB || kind == respRefused || guarded ||
			(cmd == comStmtFetch && c.policy != nil && c.policy.mask != nil)
		killSeen := false
		if sqlCmd && !inspect {
			if ln < maxPart && ln <= gw.Size() {
				p, err := gw.Peek(ln)
				if err != nil {
					return io.ErrUnexpectedEOF
				}
				killSeen = containsKill(p[1:])
			} else {
				relayed, err := c.streamLexed(r, ln, seq, kind, clock.at)
				if err != nil {
					return err // an *errLateKill ends the session
				}
				if relayed {
					continue
				}
				killSeen = true // in the first buffer: nothing forwarded, refused below
			}
			inspect = killSeen
		}
		if !inspect {
			c.push(kind, clock.at)
			if err := r.writeHeader(ln, seq); err != nil {
				return err
			}
			if err := r.copyN(ln); err != nil {
				return err
			}
			for ln == maxPart { // continuation parts of a large command
				if ln, seq, err = r.header(); err != nil {
					return err
				}
				if err := r.writeHeader(ln, seq); err != nil {
					return err
				}
				if err := r.copyN(ln); err != nil {
					return err
				}
			}
			continue
		}
		// Hold the whole command.
		payload, parts, tooBig, err := readRest(r, ln, buf[:0], c.maxInspect)
		if err != nil {
			return err
		}
		if cap(payload) <= 1<<20 {
			buf = payload[:0]
		}
		var deny []byte
		switch {
		case killSeen || (sqlCmd && !tooBig && containsKill(payload[1:])):
			deny = errPayload(erSpecificAccess, "42000", killRefusal)
		case tooBig:
			deny = errPayload(erTableAccess, "42000", fmt.Sprintf("statement denied: a command of more than %d bytes cannot be inspected by the guardrails", c.maxInspect))
		case kind == respRefused:
			deny = errPayload(erUnknownCom, "08S01", fmt.Sprintf("command 0x%02x is not supported through Sluice", cmd))
		case cmd == comStmtFetch:
			deny = errPayload(erTableAccess, "42000", "masking: cursor fetches cannot be masked on this connection; execute without a cursor")
		case cmd == comInitDB:
			if db := string(payload[1:]); strings.EqualFold(db, c.connection) && c.database != "" {
				payload = append([]byte{comInitDB}, c.database...)
			}
		case guarded:
			d := c.policy.guard.check(string(payload[1:]))
			path := "prefilter"
			if d.parsed {
				path = "parse"
			}
			if d.allow {
				c.m.GuardDecisions.WithLabelValues("none", "allow", path).Inc()
			} else {
				c.m.GuardDecisions.WithLabelValues(d.rule, "deny", path).Inc()
				deny = errPayload(erTableAccess, "42000", d.reason)
			}
		}
		if deny != nil {
			if err := r.flush(); err != nil {
				return err
			}
			c.waitIdle(done)
			out, _ := appendPacket(nil, seq+byte(parts), deny)
			if err := gwOut.write(out); err != nil {
				return err
			}
			continue
		}
		c.push(kind, clock.at)
		out, _ := appendPacket(nil, seq, payload)
		if err := r.write(out); err != nil {
			return err
		}
	}
}

// streamLexed relays a COM_QUERY or COM_STMT_PREPARE too large for the read
// buffer (first part ln bytes, sequence id seq) while lexing it for KILL,
// so that it needs no more memory than the buffer. A KILL in the first
// buffer-full returns relayed false with nothing forwarded (the caller
// refuses it). A KILL further on returns an *errLateKill after the rest of
// the command was read and dropped: its last bytes never went upstream.
func (c *conversation) streamLexed(r *relayer, ln int, seq byte, kind respKind, at time.Time) (relayed bool, err error) {
	gw := r.src
	c.kills.reset()
	p, err := gw.Peek(min(ln, gw.Size()))
	if len(p) < min(ln, gw.Size()) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, err
	}
	if c.kills.feed(p[1:]) {
		return false, nil
	}
	c.push(kind, at)
	if err := r.writeHeader(ln, seq); err != nil {
		return true, err
	}
	last := ln < maxPart
	left := ln
	lexed := true // the first chunk is p, lexed above
	for {
		for left > 0 {
			b, err := gw.Peek(min(left, gw.Size()))
			if len(b) == 0 {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return true, err
			}
			// Lex before writing; the final chunk also waits for the end of the text.
			found := !lexed && c.kills.feed(b)
			lexed = false
			if !found && last && left == len(b) {
				found = c.kills.end()
			}
			if found {
				if err := r.discard(left); err != nil {
					return true, err
				}
				for !last {
					var n int
					if n, seq, err = readHeader(gw, &r.hdr); err != nil {
						return true, err
					}
					if err := r.discard(n); err != nil {
						return true, err
					}
					last = n < maxPart
				}
				return true, &errLateKill{seq: seq + 1}
			}
			r.waited = true
			if err := r.write(b); err != nil {
				return true, err
			}
			gw.Discard(len(b))
			left -= len(b)
		}
		if last {
			return true, nil
		}
		if ln, seq, err = readHeader(gw, &r.hdr); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return true, err
		}
		last, left = ln < maxPart, ln
		if err := r.writeHeader(ln, seq); err != nil {
			return true, err
		}
	}
}

// readRest reads a logical packet whose first header (length ln) was read,
// holding up to limit bytes; beyond that it skips the rest and reports tooBig.
func readRest(r *relayer, ln int, buf []byte, limit int) (payload []byte, parts int, tooBig bool, err error) {
	payload = buf
	for {
		parts++
		if !tooBig && len(payload)+ln > limit {
			tooBig = true
			payload = payload[:0]
		}
		if tooBig {
			if err := r.discard(ln); err != nil {
				return nil, parts, true, err
			}
		} else {
			start := len(payload)
			payload = append(payload, make([]byte, ln)...)
			if err := r.readFull(payload[start:]); err != nil {
				return nil, parts, false, err
			}
		}
		if ln < maxPart {
			return payload, parts, tooBig, nil
		}
		var hdr [4]byte
		if ln, _, err = readHeader(r.src, &hdr); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, parts, tooBig, err
		}
	}
}

// lockedWriter serialises whole writes to the gateway stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  *atomic.Int64
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(b)
	if l.n != nil {
		l.n.Add(int64(n))
	}
	return n, err
}

func (l *lockedWriter) write(b []byte) error {
	if _, err := l.Write(b); err != nil {
		return &writeError{err}
	}
	return nil
}

// responses relays the upstream's answers to the gateway, masking rows and
// timing each command. Packets are streamed through from the read buffer
// after a look at their first bytes; only column definitions and rows that
// masking must rewrite are held whole.
func (c *conversation) responses(up *bufio.Reader, clock *timedReader, gw *bufio.Writer, n *atomic.Int64) error {
	r := &relayer{src: up, dst: gw, n: n, overhead: c.sm.overhead, clock: clock}
	var (
		trk      respTracker
		cols     []column
		delta    byte // sequence shift after rewritten packets
		withheld bool // rest of this response is dropped (masking failed closed)
		buf      []byte
		mk       *masker
		mask     = c.policy != nil && c.policy.mask != nil
	)
	if mask {
		buf = make([]byte, 0, 64<<10)
		mk = &masker{m: c.policy.mask, counts: func(kinds masking.KindSet, forced bool) {
			if kinds == 0 {
				c.m.Masked.WithLabelValues("column").Inc()
				return
			}
			kinds.Each(func(k masking.Kind) { c.m.Masked.WithLabelValues(c.policy.mask.p.KindName(k)).Inc() })
		}}
	}
	done := func(pc pendingCmd, pi packetInfo) {
		delta, withheld, cols = 0, false, cols[:0]
		c.timer.done(pc.at, clock.at, pi)
		c.pop()
	}
	for {
		ln, seq, err := r.header()
		if err != nil {
			return err
		}
		pc, ok := c.head()
		rows := pc.kind == respText || pc.kind == respBinary || pc.kind == respFetch
		rowsMasked := mask && rows && trk.st == stRows && mk.any
		// Packets that need no look: stream them through.
		if !ok || (ln == maxPart && !rowsMasked) {
			if err := c.passPacket(r, ln, seq, delta, withheld); err != nil {
				return err
			}
			continue
		}
		before := trk.st
		if !(rowsMasked || (mask && rows && before == stColumns)) {
			head, err := r.src.Peek(min(ln, trackHead))
			if len(head) < min(ln, trackHead) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			pi, err := trk.feed(pc.kind, head, ln)
			if err != nil {
				return err
			}
			switch {
			case mask && before == stColumnEOF && trk.st == stRows:
				mk.reset(cols)
			case before == stFirst && trk.st == stColumns:
				cols = cols[:0]
			}
			if err := c.passPacket(r, ln, seq, delta, withheld); err != nil {
				return err
			}
			if pi.end {
				done(pc, pi)
			}
			continue
		}
		// Held: a column definition masking must read, or a row it may rewrite.
		payload, parts, tooBig, err := readRest(r, ln, buf[:0], c.maxInspect)
		if err != nil {
			return err
		}
		if cap(payload) <= 1<<20 {
			buf = payload[:0]
		}
		if tooBig { // only rows are held beyond a packet
			if !withheld {
				c.m.MaskFailures.WithLabelValues("too_large").Inc()
				e := errPayload(erTableAccess, "42000", fmt.Sprintf("masking: a row of more than %d bytes cannot be masked; result withheld", c.maxInspect))
				b, _ := appendPacket(nil, seq+delta, e)
				if err := r.write(b); err != nil {
					return err
				}
				withheld = true
			}
			continue
		}
		if before == stColumns {
			col, err := parseColumn(payload, c.policy.mask)
			if err != nil {
				return err
			}
			cols = append(cols, col)
		}
		pi, err := trk.feed(pc.kind, payload, len(payload))
		if err != nil {
			return err
		}
		out := payload
		if pi.row {
			if pc.kind == respText {
				out, err = mk.textRow(payload)
			} else {
				out, err = mk.binaryRow(payload)
			}
			if err != nil {
				return err
			}
		}
		if !withheld {
			hdrOut, next := appendPacket(nil, seq+delta, out)
			if err := r.write(hdrOut); err != nil {
				return err
			}
			delta += next - (seq + delta) - byte(parts)
		}
		if pi.end {
			done(pc, pi)
		}
	}
}

// passPacket relays one logical packet whose first header (ln, seq) was
// read, unchanged but for its sequence ids (shifted by delta), or drops it.
func (c *conversation) passPacket(r *relayer, ln int, seq, delta byte, drop bool) error {
	for {
		if drop {
			if err := r.discard(ln); err != nil {
				return err
			}
		} else {
			if err := r.writeHeader(ln, seq+delta); err != nil {
				return err
			}
			if err := r.copyN(ln); err != nil {
				return err
			}
		}
		if ln < maxPart {
			return nil
		}
		var err error
		if ln, seq, err = r.header(); err != nil {
			return err
		}
	}
}
