package mysql

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

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
// (a denial) is sent only when every earlier response has gone out.
type conversation struct {
	policy     *sessionPolicy
	connection string // the Sluice connection name (what COM_INIT_DB may name)
	database   string // the upstream database it stands for
	maxInspect int
	m          *Metrics

	mu      sync.Mutex
	cond    *sync.Cond
	pending []respKind
	gwMu    sync.Mutex // serialises writes to the gateway stream
}

func newConversation(p *sessionPolicy, connection, database string, maxInspect int, m *Metrics) *conversation {
	c := &conversation{policy: p, connection: connection, database: database, maxInspect: maxInspect, m: m}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *conversation) push(k respKind) {
	c.mu.Lock()
	c.pending = append(c.pending, k)
	c.mu.Unlock()
}

func (c *conversation) head() (respKind, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return 0, false
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

// requests relays commands from the gateway to the upstream, applying the
// guardrails and refusing commands Sluice does not relay.
func (c *conversation) requests(gw *bufio.Reader, gwOut *lockedWriter, up *bufio.Writer, n *atomic.Int64, done *atomic.Bool) error {
	r := &relayer{src: gw, dst: up, n: n}
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
		inspect := cmd == comInitDB || kind == respRefused ||
			(c.policy != nil && c.policy.guard != nil && (cmd == comQuery || cmd == comStmtPrepare)) ||
			(cmd == comStmtFetch && c.policy != nil && c.policy.mask != nil)
		if !inspect {
			c.push(kind)
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
		default: // guarded statement
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
		_ = parts
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
		c.push(kind)
		out, _ := appendPacket(nil, seq, payload)
		if err := r.write(out); err != nil {
			return err
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

// response parser states.
type respState uint8

const (
	stFirst     respState = iota // the first packet of a (next) result
	stColumns                    // column definitions
	stColumnEOF                  // the EOF after them
	stRows                       // rows until EOF or ERR
	stPrepParams
	stPrepParamsEOF
	stPrepCols
	stPrepColsEOF
)

// responses relays the upstream's answers to the gateway, masking rows.
func (c *conversation) responses(up *bufio.Reader, gw *bufio.Writer, n *atomic.Int64) error {
	r := &relayer{src: up, dst: gw, n: n}
	var (
		st       respState
		ncols    int
		cols     []column
		prepCols int
		delta    byte // sequence shift after rewritten packets
		withheld bool // rest of this response is dropped (masking failed closed)
		buf      = make([]byte, 0, 64<<10)
		mk       *masker
		mask     = c.policy != nil && c.policy.mask != nil
	)
	if mask {
		mk = &masker{m: c.policy.mask, counts: func(kinds masking.KindSet, forced bool) {
			if kinds == 0 {
				c.m.Masked.WithLabelValues("column").Inc()
				return
			}
			kinds.Each(func(k masking.Kind) { c.m.Masked.WithLabelValues(c.policy.mask.p.KindName(k)).Inc() })
		}}
	}
	done := func() {
		st, delta, withheld, cols = stFirst, 0, false, nil
		c.pop()
	}
	for {
		ln, seq, err := r.header()
		if err != nil {
			return err
		}
		kind, ok := c.head()
		rowsMasked := mask && st == stRows && mk.any && (kind == respText || kind == respBinary || kind == respFetch)
		// Packets that need no look: stream them through.
		if !ok || (ln == maxPart && !rowsMasked) {
			if !withheld {
				if err := r.writeHeader(ln, seq+delta); err != nil {
					return err
				}
				if err := r.copyN(ln); err != nil {
					return err
				}
			} else if err := r.discard(ln); err != nil {
				return err
			}
			for ln == maxPart {
				if ln, seq, err = r.header(); err != nil {
					return err
				}
				if withheld {
					if err := r.discard(ln); err != nil {
						return err
					}
					continue
				}
				if err := r.writeHeader(ln, seq+delta); err != nil {
					return err
				}
				if err := r.copyN(ln); err != nil {
					return err
				}
			}
			continue
		}
		limit := c.maxInspect
		payload, parts, tooBig, err := readRest(r, ln, buf[:0], limit)
		if err != nil {
			return err
		}
		if cap(payload) <= 1<<20 {
			buf = payload[:0]
		}
		out := payload
		end := false
		if tooBig { // only rows are held beyond a packet
			if !withheld {
				c.m.MaskFailures.WithLabelValues("too_large").Inc()
				e := errPayload(erTableAccess, "42000", fmt.Sprintf("masking: a row of more than %d bytes cannot be masked; result withheld", limit))
				b, _ := appendPacket(nil, seq+delta, e)
				if err := r.write(b); err != nil {
					return err
				}
				withheld = true
			}
			continue
		}
		switch kind {
		case respNone, respRefused:
			// unexpected: pass through
		case respSimple:
			end = true
		case respText, respBinary, respFetch:
			if kind == respFetch && st == stFirst {
				st = stRows
			}
			switch st {
			case stFirst:
				switch {
				case len(payload) == 0:
					end = true
				case payload[0] == 0x00:
					end = okStatus(payload)&statusMoreResults == 0
				case payload[0] == 0xff || payload[0] == 0xfb:
					end = true
				default:
					v, _, _, ok := readLenEnc(payload)
					if !ok || v == 0 || v > 4096 {
						return fmt.Errorf("bad column count")
					}
					ncols, cols, st = int(v), cols[:0], stColumns
				}
			case stColumns:
				if mask {
					col, err := parseColumn(payload, c.policy.mask)
					if err != nil {
						return err
					}
					cols = append(cols, col)
				}
				if ncols--; ncols == 0 {
					st = stColumnEOF
				}
			case stColumnEOF:
				st = stRows
				if mask {
					mk.reset(cols)
				}
				if kind == respBinary && eofStatus(payload)&statusCursorExists != 0 {
					end = true
				}
			case stRows:
				switch {
				case isEOF(payload):
					if eofStatus(payload)&statusMoreResults != 0 && kind != respFetch {
						st = stFirst
					} else {
						end = true
					}
				case len(payload) > 0 && payload[0] == 0xff:
					end = true
				case mask && mk.any:
					var err error
					if kind == respText {
						out, err = mk.textRow(payload)
					} else {
						out, err = mk.binaryRow(payload)
					}
					if err != nil {
						return err
					}
				}
			}
		case respPrepare:
			switch st {
			case stFirst:
				if len(payload) >= 9 && payload[0] == 0x00 {
					prepCols = int(binary.LittleEndian.Uint16(payload[5:7]))
					np := int(binary.LittleEndian.Uint16(payload[7:9]))
					switch {
					case np > 0:
						ncols, st = np, stPrepParams
					case prepCols > 0:
						ncols, st = prepCols, stPrepCols
					default:
						end = true
					}
				} else {
					end = true
				}
			case stPrepParams:
				if ncols--; ncols == 0 {
					st = stPrepParamsEOF
				}
			case stPrepParamsEOF:
				if prepCols > 0 {
					ncols, st = prepCols, stPrepCols
				} else {
					end = true
				}
			case stPrepCols:
				if ncols--; ncols == 0 {
					st = stPrepColsEOF
				}
			case stPrepColsEOF:
				end = true
			}
		case respFields:
			end = isEOF(payload) || (len(payload) > 0 && payload[0] == 0xff)
		}
		if !withheld {
			b := r.dst
			_ = b
			hdrOut, next := appendPacket(nil, seq+delta, out)
			if err := r.write(hdrOut); err != nil {
				return err
			}
			delta += next - (seq + delta) - byte(parts)
		}
		if end {
			done()
		}
	}
}
