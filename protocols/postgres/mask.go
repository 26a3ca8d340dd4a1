package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// column is one field of a RowDescription.
type column struct {
	tableOID uint32
	attnum   int16
	typeOID  uint32
	format   int16
}

type colAction uint8

const (
	actNone        colAction = iota
	actDetect                // content detectors on a text value
	actForce                 // a column rule: mask the whole value
	actNull                  // a column rule on a value that cannot be masked type-validly
	actDetectJSONB           // detectors on a binary jsonb value, past its version byte
)

// rowPlan says what to do with each value of the rows of one result.
type rowPlan struct {
	active  bool
	actions []colAction
	// unknown: no description was seen (the client never asked for one);
	// text values get the detectors, anything else fails closed.
	unknown bool
	formats []int16
	failure string // fail closed: withhold the rows with this error
	reason  string // the failure's metrics label
}

func parseRowDescription(b []byte) ([]column, error) {
	rd := wireReader{b: b}
	n := int(rd.int16())
	if n < 0 || n > 1664 { // MaxTupleAttributeNumber
		return nil, errors.New("malformed RowDescription")
	}
	cols := make([]column, n)
	for i := range cols {
		rd.cstring()
		cols[i].tableOID = uint32(rd.int32())
		cols[i].attnum = rd.int16()
		cols[i].typeOID = uint32(rd.int32())
		rd.skip(2 + 4) // typlen, typmod
		cols[i].format = rd.int16()
	}
	if rd.err {
		return nil, errors.New("malformed RowDescription")
	}
	return cols, nil
}

// Type OIDs (pg_type.dat) whose values are text a detector can read and a
// masked form keeps valid.
var textTypes = map[uint32]bool{25: true, 1043: true, 1042: true, 19: true, 705: true, 18: true, 114: true, 142: true,
	1009: true, 1015: true, 1014: true} // text[], varchar[], bpchar[]

// Types whose text form a masked value would make invalid (numbers, times,
// network addresses, ...): detectors leave them alone.
var opaqueTypes = map[uint32]bool{16: true, 17: true, 20: true, 21: true, 23: true, 26: true, 700: true, 701: true, 1700: true,
	1082: true, 1083: true, 1114: true, 1184: true, 1186: true, 1266: true, 2950: true, 869: true, 650: true, 829: true, 774: true,
	1000: true, 1005: true, 1007: true, 1016: true, 1021: true, 1022: true, 1231: true, 1115: true, 1185: true, 2951: true,
	3802: true} // jsonb: its binary form has a version byte; text form is handled as json below

// planFor decides per column. formats are the Bind result formats (nil: the
// description's own formats).
func (c *conversation) planFor(cols []column, formats []int16) *rowPlan {
	m := c.policy.mask
	if m == nil {
		return nil
	}
	if cols == nil {
		return &rowPlan{active: true, unknown: true, formats: formats, failure: c.unknownFailure(formats), reason: "undescribed"}
	}
	p := &rowPlan{actions: make([]colAction, len(cols))}
	if m.hasColumnRules() {
		if err := c.names.resolve(cols); err != nil {
			p.active, p.failure, p.reason = true, "masking: cannot resolve the result's columns: "+err.Error(), "catalog_error"
			return p
		}
	}
	for i, col := range cols {
		f := col.format
		switch {
		case formats == nil:
		case len(formats) == 1:
			f = formats[0]
		case i < len(formats):
			f = formats[i]
		}
		textual := textTypes[col.typeOID] || col.typeOID == 3802 && f == 0
		forced := false
		if col.tableOID != 0 && col.attnum > 0 && m.hasColumnRules() {
			t, name, ok := c.names.lookup(col.tableOID, col.attnum)
			if !ok {
				// Not visible to the catalog connection (e.g. created in this
				// session's open transaction): a rule may cover it, so fail closed.
				p.active, p.failure, p.reason = true, "masking: a result column's table is not visible to the catalog lookup; commit it first", "unresolved_column"
				return p
			}
			forced = m.columnRule(t, name)
		}
		switch {
		case forced && textual:
			p.actions[i] = actForce
		case forced:
			p.actions[i] = actNull
		case m.detecting() && (textual || f == 0 && !opaqueTypes[col.typeOID]):
			p.actions[i] = actDetect
		case m.detecting() && f != 0 && col.typeOID == 3802:
			p.actions[i] = actDetectJSONB
		case m.detecting() && f != 0 && !opaqueTypes[col.typeOID]:
			// A binary value of a type we cannot read (composite, extension
			// type): it may carry text the detectors would catch: fail closed.
			p.actions[i] = actNull
		}
		if p.actions[i] != actNone {
			p.active = true
		}
	}
	return p
}

func (c *conversation) unknownFailure(formats []int16) string {
	if c.policy.mask.hasColumnRules() {
		return "masking: the client executed a statement without describing it; column rules cannot be applied"
	}
	for _, f := range formats {
		if f != 0 {
			return "masking: binary results of an undescribed statement cannot be checked"
		}
	}
	return ""
}

// maskRow masks one DataRow per plan: in place where lengths are kept,
// otherwise the row alone is re-encoded into out.
func (c *conversation) maskRow(msg []byte, p *rowPlan, out []byte) ([]byte, error) {
	if p == nil || !p.active {
		return msg, nil
	}
	if p.failure != "" {
		c.dropping = true
		c.maskFailure(p.reason)
		return appendPgError(out, "ERROR", "42501", p.failure), nil
	}
	m := c.policy.mask
	body := msg[5:]
	if len(body) < 2 {
		return nil, errors.New("malformed DataRow")
	}
	n := int(binary.BigEndian.Uint16(body))
	if !p.unknown && n != len(p.actions) {
		// The description does not fit the rows: never guess which column is which.
		c.dropping = true
		c.maskFailure("column_mismatch")
		return appendPgError(out, "ERROR", "42501", "masking: result rows do not match their description; the result is withheld"), nil
	}
	pos := 2
	rebuilding := false
	start := len(out)
	for i := range n {
		if pos+4 > len(body) {
			return nil, errors.New("malformed DataRow")
		}
		l := int(int32(binary.BigEndian.Uint32(body[pos:])))
		vEnd := pos + 4 + max(l, 0)
		if vEnd > len(body) {
			return nil, errors.New("malformed DataRow")
		}
		act := actNone
		switch {
		case p.unknown:
			act = actDetect
		case i < len(p.actions):
			act = p.actions[i]
		}
		if l < 0 || act == actNone {
			if rebuilding {
				out = append(out, body[pos:vEnd]...)
			}
			pos = vEnd
			continue
		}
		v := body[pos+4 : vEnd]
		var masked []byte
		var kinds uint64
		switch {
		case act == actNull:
			kinds = 1 << 63
		case act == actDetectJSONB && len(v) > 1:
			// Mask the JSON text after the version byte; if the length would
			// change, the value cannot stay valid in place: NULL it.
			var inner []byte
			inner, kinds = m.mask(c.tmp[:0], v[1:], false)
			if kinds != 0 && (len(inner) != len(v)-1 || &inner[0] != &v[1]) {
				act = actNull
			}
			masked = v
		case act == actDetectJSONB:
		default:
			masked, kinds = m.mask(c.tmp[:0], v, act == actForce)
		}
		changed := kinds != 0
		if changed {
			c.countMasked(kinds)
		}
		inPlace := !changed || act != actNull && len(masked) == len(v) && (len(v) == 0 || &masked[0] == &v[0])
		if !inPlace && !rebuilding {
			rebuilding = true
			out = append(out, 'D', 0, 0, 0, 0)
			out = append(out, body[:pos]...)
		}
		switch {
		case inPlace && rebuilding:
			out = append(out, body[pos:vEnd]...)
		case act == actNull:
			out = binary.BigEndian.AppendUint32(out, 0xffffffff)
		case !inPlace:
			out = binary.BigEndian.AppendUint32(out, uint32(len(masked)))
			out = append(out, masked...)
			c.tmp = masked[:0]
		}
		pos = vEnd
	}
	if !rebuilding {
		return msg, nil
	}
	binary.BigEndian.PutUint32(out[start+1:], uint32(len(out)-start-1))
	return out, nil
}

// maskNotice masks the human-readable fields of an ErrorResponse or
// NoticeResponse, which can quote data values ("Key (email)=(...) exists").
func (c *conversation) maskNotice(msg []byte, out []byte) ([]byte, error) {
	m := c.policy.mask
	if m == nil || !m.detecting() {
		return msg, nil
	}
	body := msg[5:]
	start := len(out)
	out = append(out, msg[0], 0, 0, 0, 0)
	changedLen := false
	for len(body) > 0 && body[0] != 0 {
		ft := body[0]
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return nil, errors.New("malformed error fields")
		}
		v := body[1 : 1+end]
		out = append(out, ft)
		switch ft {
		case 'M', 'D', 'H', 'W', 'q':
			masked, kinds := m.mask(c.tmp[:0], v, false)
			c.countMasked(kinds)
			if kinds != 0 && (len(masked) != len(v) || &masked[0] != &v[0]) {
				changedLen = true
				out = append(out, masked...)
				c.tmp = masked[:0]
			} else {
				out = append(out, v...)
			}
		default:
			out = append(out, v...)
		}
		out = append(out, 0)
		body = body[2+end:]
	}
	if !changedLen {
		return msg, nil // masked in place, if at all
	}
	out = append(out, 0)
	binary.BigEndian.PutUint32(out[start+1:], uint32(len(out)-start-1))
	return out, nil
}

// maskNotify masks a NOTIFY payload.
func (c *conversation) maskNotify(msg []byte, out []byte) ([]byte, error) {
	m := c.policy.mask
	if m == nil || !m.detecting() || len(msg) < 9 {
		return msg, nil
	}
	chEnd := bytes.IndexByte(msg[9:], 0)
	if chEnd < 0 {
		return nil, errors.New("malformed NotificationResponse")
	}
	payStart := 9 + chEnd + 1
	payEnd := len(msg) - 1
	if payStart > payEnd {
		return nil, errors.New("malformed NotificationResponse")
	}
	v := msg[payStart:payEnd]
	masked, kinds := m.mask(c.tmp[:0], v, false)
	c.countMasked(kinds)
	if kinds == 0 || len(masked) == len(v) && (len(v) == 0 || &masked[0] == &v[0]) {
		return msg, nil
	}
	start := len(out)
	out = append(out, msg[:payStart]...)
	out = append(out, masked...)
	out = append(out, 0)
	binary.BigEndian.PutUint32(out[start+1:], uint32(len(out)-start-1))
	return out, nil
}

// startCopyOut handles CopyOutResponse: text COPY data gets the content
// detectors; COPY cannot be attributed to columns, so with column rules (or
// in binary format) it fails closed.
func (c *conversation) startCopyOut(msg []byte, out []byte) ([]byte, error) {
	m := c.policy.mask
	if m == nil {
		return msg, nil
	}
	c.copyOut = true
	switch {
	case m.hasColumnRules():
		c.dropping = true
		c.maskFailure("copy_column_rules")
		return appendPgError(out, "ERROR", "42501", "masking: COPY TO is not available on a connection with column masking rules; use SELECT"), nil
	case len(msg) > 5 && msg[5] != 0:
		c.dropping = true
		c.maskFailure("binary_copy")
		return appendPgError(out, "ERROR", "42501", "masking: binary COPY TO cannot be masked; use text format"), nil
	}
	return msg, nil
}

// maskCopyData masks each field of a text COPY row.
func (c *conversation) maskCopyData(msg []byte, out []byte) ([]byte, error) {
	if c.dropping {
		return nil, nil
	}
	m := c.policy.mask
	if !m.detecting() {
		return msg, nil
	}
	body := msg[5:]
	start := len(out)
	rebuilding := false
	field := 0
	for i := 0; i <= len(body); i++ {
		if i < len(body) && body[i] != '\t' && body[i] != '\n' {
			continue
		}
		v := body[field:i]
		masked, kinds := m.mask(c.tmp[:0], v, false)
		c.countMasked(kinds)
		inPlace := kinds == 0 || len(masked) == len(v) && (len(v) == 0 || &masked[0] == &v[0])
		if !inPlace && !rebuilding {
			rebuilding = true
			out = append(out, 'd', 0, 0, 0, 0)
			out = append(out, body[:field]...)
		}
		if rebuilding {
			if inPlace {
				out = append(out, v...)
			} else {
				out = append(out, masked...)
				c.tmp = masked[:0]
			}
			if i < len(body) {
				out = append(out, body[i])
			}
		}
		field = i + 1
	}
	if !rebuilding {
		return msg, nil
	}
	binary.BigEndian.PutUint32(out[start+1:], uint32(len(out)-start-1))
	return out, nil
}

// columnNames resolves (table OID, attribute number) to names for column
// rules, over a side connection to the same database, opened on first need.
type columnNames struct {
	dial   func(ctx context.Context) (*pgconn.PgConn, error)
	conn   *pgconn.PgConn
	tables map[uint32]map[int16]string // attnum 0 holds the table name
}

func (n *columnNames) lookup(oid uint32, att int16) (table, col string, ok bool) {
	t := n.tables[oid]
	if t == nil {
		return "", "", false
	}
	col, ok = t[att]
	return t[0], col, ok
}

func (n *columnNames) resolve(cols []column) error {
	var want []string
	for _, c := range cols {
		if c.tableOID != 0 && n.tables[c.tableOID] == nil {
			want = append(want, strconv.FormatUint(uint64(c.tableOID), 10))
		}
	}
	if len(want) == 0 {
		return nil
	}
	if n.dial == nil {
		return errors.New("no catalog connection")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n.conn == nil {
		conn, err := n.dial(ctx)
		if err != nil {
			return fmt.Errorf("catalog connection: %w", err)
		}
		n.conn = conn
	}
	if n.tables == nil {
		n.tables = map[uint32]map[int16]string{}
	}
	res := n.conn.ExecParams(ctx,
		`SELECT c.oid, c.relname, a.attnum, a.attname FROM pg_catalog.pg_class c
		 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		 WHERE c.oid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`,
		[][]byte{[]byte("{" + strings.Join(want, ",") + "}")}, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	for _, row := range res.Rows {
		oid, _ := strconv.ParseUint(string(row[0]), 10, 32)
		att, _ := strconv.ParseInt(string(row[2]), 10, 16)
		t := n.tables[uint32(oid)]
		if t == nil {
			t = map[int16]string{0: string(row[1])}
			n.tables[uint32(oid)] = t
		}
		t[int16(att)] = string(row[3])
	}
	for _, w := range want { // tables this backend cannot see: remember as nameless
		oid, _ := strconv.ParseUint(w, 10, 32)
		if n.tables[uint32(oid)] == nil {
			n.tables[uint32(oid)] = map[int16]string{0: ""}
		}
	}
	return nil
}

func (n *columnNames) close() {
	if n.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.conn.Close(ctx)
		cancel()
	}
}
