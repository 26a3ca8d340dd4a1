package mysql

import (
	"encoding/binary"
	"errors"
)

// trackHead is how many leading bytes of a packet the tracker needs: an OK
// packet's status flags sit after two length-encoded integers (1+9+9+2).
const trackHead = 32

// statusInTrans is SERVER_STATUS_IN_TRANS.
const statusInTrans = 0x0001

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

var errBadColumnCount = errors.New("bad column count")

// respTracker follows the server's answers far enough to know where the
// response to each command ends and what server status it leaves, from each
// packet's first bytes only (CLIENT_DEPRECATE_EOF is never negotiated, so
// result sets end with EOF packets; see "Text Resultset" and
// "COM_STMT_PREPARE Response" in the MySQL client/server protocol). The
// gateway uses it for statement timing, the agent for timing and masking.
type respTracker struct {
	st       respState
	ncols    int
	prepCols int
}

// packetInfo is what one packet meant.
type packetInfo struct {
	end       bool   // the response to the command ends with this packet
	row       bool   // a result row (text or binary)
	status    uint16 // server status flags, valid when hasStatus
	hasStatus bool
}

// feed takes the first bytes of a logical packet (head, at least
// min(n, trackHead) of them) of n bytes that answers a command of kind k.
// Callers feed only the first physical part of a continued packet (n is
// then maxPart): only rows are that large. It never panics on any input
// (fuzzed); an impossible column count is an error.
func (t *respTracker) feed(k respKind, head []byte, n int) (packetInfo, error) {
	var pi packetInfo
	eof := n < 9 && len(head) > 0 && head[0] == 0xfe
	switch k {
	case respNone:
		// nothing is owed for these; a packet here is not ours to judge
	case respSimple, respRefused:
		pi.end = true
		switch {
		case len(head) > 0 && head[0] == 0x00:
			pi.status, pi.hasStatus = parseOKStatus(head)
		case eof:
			pi.status, pi.hasStatus = eofStatus(head), len(head) >= 5
		}
	case respText, respBinary, respFetch:
		if k == respFetch && t.st == stFirst {
			t.st = stRows
		}
		switch t.st {
		case stFirst:
			switch {
			case n == 0 || len(head) == 0:
				pi.end = true
			case head[0] == 0x00:
				pi.status, pi.hasStatus = parseOKStatus(head)
				pi.end = pi.status&statusMoreResults == 0
			case head[0] == 0xff, head[0] == 0xfb: // ERR, or a LOCAL INFILE request (never negotiated)
				pi.end = true
			default:
				v, _, _, ok := readLenEnc(head)
				if !ok || v == 0 || v > 4096 {
					return pi, errBadColumnCount
				}
				t.ncols, t.st = int(v), stColumns
			}
		case stColumns:
			if t.ncols--; t.ncols <= 0 {
				t.st = stColumnEOF
			}
		case stColumnEOF:
			t.st = stRows
			if k == respBinary && eof && eofStatus(head)&statusCursorExists != 0 {
				pi.status, pi.hasStatus, pi.end = eofStatus(head), true, true // rows come with COM_STMT_FETCH
			}
		case stRows:
			switch {
			case eof:
				pi.status, pi.hasStatus = eofStatus(head), len(head) >= 5
				if pi.status&statusMoreResults != 0 && k != respFetch {
					t.st = stFirst
				} else {
					pi.end = true
				}
			case len(head) > 0 && head[0] == 0xff:
				pi.end = true
			default:
				pi.row = true
			}
		default:
			t.st = stFirst // a state of another kind: cannot happen; resynchronise
		}
	case respPrepare:
		switch t.st {
		case stFirst:
			if len(head) >= 9 && head[0] == 0x00 {
				t.prepCols = int(binary.LittleEndian.Uint16(head[5:7]))
				np := int(binary.LittleEndian.Uint16(head[7:9]))
				switch {
				case np > 0:
					t.ncols, t.st = np, stPrepParams
				case t.prepCols > 0:
					t.ncols, t.st = t.prepCols, stPrepCols
				default:
					pi.end = true
				}
			} else {
				pi.end = true
			}
		case stPrepParams:
			if t.ncols--; t.ncols <= 0 {
				t.st = stPrepParamsEOF
			}
		case stPrepParamsEOF:
			if t.prepCols > 0 {
				t.ncols, t.st = t.prepCols, stPrepCols
			} else {
				pi.end = true
			}
		case stPrepCols:
			if t.ncols--; t.ncols <= 0 {
				t.st = stPrepColsEOF
			}
		case stPrepColsEOF:
			pi.end = true
		default:
			t.st = stFirst
		}
		if pi.end && eof {
			pi.status, pi.hasStatus = eofStatus(head), len(head) >= 5
		}
	case respFields:
		pi.end = eof || (len(head) > 0 && head[0] == 0xff)
		if eof {
			pi.status, pi.hasStatus = eofStatus(head), len(head) >= 5
		}
	}
	if pi.end {
		t.st = stFirst
	}
	return pi, nil
}
