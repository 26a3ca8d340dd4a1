package mysql

import (
	"errors"

	"github.com/sluice-gw/sluice/masking"
)

// MySQL column types (field_types.h).
const (
	typeDecimal    = 0x00
	typeTiny       = 0x01
	typeShort      = 0x02
	typeLong       = 0x03
	typeFloat      = 0x04
	typeDouble     = 0x05
	typeNull       = 0x06
	typeTimestamp  = 0x07
	typeLongLong   = 0x08
	typeInt24      = 0x09
	typeDate       = 0x0a
	typeTime       = 0x0b
	typeDateTime   = 0x0c
	typeYear       = 0x0d
	typeNewDate    = 0x0e
	typeVarchar    = 0x0f
	typeBit        = 0x10
	typeTimestamp2 = 0x11
	typeDateTime2  = 0x12
	typeTime2      = 0x13
	typeJSON       = 0xf5
	typeNewDecimal = 0xf6
	typeEnum       = 0xf7
	typeSet        = 0xf8
	typeTinyBlob   = 0xf9
	typeMediumBlob = 0xfa
	typeLongBlob   = 0xfb
	typeBlob       = 0xfc
	typeVarString  = 0xfd
	typeString     = 0xfe
	typeGeometry   = 0xff
)

// column is what masking needs of a column definition.
type column struct {
	typ    byte
	forced bool // a column rule covers it
	detect bool // detectors run on it (string types)
}

var errBadColumn = errors.New("malformed column definition")

// parseColumn decodes a ColumnDefinition41 far enough for masking. Column
// rules follow the column: they match org_table.org_name (the real column,
// whatever alias the query gave it), and the alias only for expressions.
func parseColumn(p []byte, m *maskingRules) (column, error) {
	var f [6][]byte // catalog, schema, table, org_table, name, org_name
	i := 0
	for k := range f {
		s, n, null, ok := readLenEncString(p[i:])
		if !ok || null {
			return column{}, errBadColumn
		}
		f[k] = s
		i += n
	}
	// fixed fields: length(lenenc, 0x0c) charset(2) length(4) type(1) flags(2) decimals(1)
	_, n, _, ok := readLenEnc(p[i:])
	if !ok || len(p) < i+n+7 {
		return column{}, errBadColumn
	}
	c := column{typ: p[i+n+6]}
	table, name := string(f[3]), string(f[5])
	if name == "" {
		table, name = string(f[2]), string(f[4])
	}
	if m.columns {
		c.forced = m.p.ColumnRule(table, name) ||
			(len(f[1]) > 0 && m.p.ColumnRule(string(f[1])+"."+table, name))
	}
	c.detect = isStringType(c.typ) && m.p.Detecting()
	return c, nil
}

func isStringType(t byte) bool {
	switch t {
	case typeVarchar, typeVarString, typeString, typeTinyBlob, typeMediumBlob, typeLongBlob, typeBlob,
		typeJSON, typeEnum, typeSet:
		return true
	}
	return false
}

// masker rewrites rows of one result set.
type masker struct {
	m       *maskingRules
	cols    []column
	any     bool // some column is forced or detected
	scratch []byte
	val     []byte
	counts  func(kinds masking.KindSet, forced bool)
}

func (k *masker) reset(cols []column) {
	k.cols = cols
	k.any = false
	for _, c := range cols {
		if c.forced || c.detect {
			k.any = true
		}
	}
}

// maskValue returns the masked form of v (nil, true: NULL it).
func (k *masker) maskValue(c column, v []byte) (out []byte, null, changed bool) {
	if c.forced && !isStringType(c.typ) {
		return nil, true, true // keep the column's type valid: NULL, never a token in a number
	}
	if !c.forced && !c.detect {
		return v, false, false
	}
	res, r := k.m.p.MaskValue(k.val[:0], v, c.forced)
	if !r.Changed {
		return v, false, false
	}
	if k.counts != nil {
		k.counts(r.Kinds, c.forced)
	}
	if !r.InPlace {
		k.val = res[:0]
	}
	return res, false, true
}

// textRow masks a text-protocol row. It returns p itself when nothing
// changed (or was changed in place), else a rebuilt payload.
func (k *masker) textRow(p []byte) ([]byte, error) {
	if !k.any {
		return p, nil
	}
	out := k.scratch[:0]
	rebuilt := false
	i := 0
	for ci, c := range k.cols {
		start := i
		s, n, null, ok := readLenEncString(p[i:])
		if !ok {
			return nil, errBadRow
		}
		i += n
		if null {
			if rebuilt {
				out = append(out, 0xfb)
			}
			continue
		}
		mv, toNull, changed := k.maskValue(c, s)
		inPlace := changed && !toNull && len(mv) == len(s) && len(mv) > 0 && &mv[0] == &s[0]
		if changed && !inPlace && !rebuilt {
			out = append(out, p[:start]...)
			rebuilt = true
		}
		if rebuilt {
			switch {
			case toNull:
				out = append(out, 0xfb)
			case changed && !inPlace:
				out = appendLenEncString(out, mv)
			default:
				out = append(out, p[start:i]...)
			}
		}
		_ = ci
	}
	if i != len(p) {
		return nil, errBadRow
	}
	if !rebuilt {
		return p, nil
	}
	k.scratch = out[:0]
	return out, nil
}

var errBadRow = errors.New("malformed row")

// binaryValueLen is the size of a non-NULL binary-protocol value at b.
func binaryValueLen(t byte, b []byte) (int, bool) {
	switch t {
	case typeNull:
		return 0, true
	case typeTiny:
		return 1, len(b) >= 1
	case typeShort, typeYear:
		return 2, len(b) >= 2
	case typeInt24, typeLong, typeFloat:
		return 4, len(b) >= 4
	case typeLongLong, typeDouble:
		return 8, len(b) >= 8
	case typeDate, typeDateTime, typeTimestamp, typeTime, typeNewDate, typeDateTime2, typeTimestamp2, typeTime2:
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return 0, false
		}
		return 1 + int(b[0]), true
	}
	_, n, null, ok := readLenEncString(b)
	return n, ok && !null
}

// binaryRow masks a binary-protocol row: 0x00, NULL bitmap (offset 2),
// values. Non-string columns covered by a rule become NULL (bitmap bit set).
func (k *masker) binaryRow(p []byte) ([]byte, error) {
	if !k.any {
		return p, nil
	}
	nb := (len(k.cols) + 7 + 2) / 8
	if len(p) < 1+nb || p[0] != 0x00 {
		return nil, errBadRow
	}
	out := k.scratch[:0]
	rebuilt := false
	i := 1 + nb
	for ci, c := range k.cols {
		bit := ci + 2
		if p[1+bit/8]&(1<<(bit%8)) != 0 {
			continue // NULL: no value bytes
		}
		start := i
		n, ok := binaryValueLen(c.typ, p[i:])
		if !ok {
			return nil, errBadRow
		}
		i += n
		if !c.forced && !c.detect {
			if rebuilt {
				out = append(out, p[start:i]...)
			}
			continue
		}
		var v []byte
		if isStringType(c.typ) {
			v, _, _, _ = readLenEncString(p[start:i])
		}
		mv, toNull, changed := k.maskValue(c, v)
		inPlace := changed && !toNull && len(mv) == len(v) && len(mv) > 0 && &mv[0] == &v[0]
		if changed && !inPlace && !rebuilt {
			out = append(out, p[:start]...)
			rebuilt = true
		}
		if !rebuilt {
			continue
		}
		switch {
		case toNull:
			out[1+bit/8] |= 1 << (bit % 8)
		case changed && !inPlace:
			out = appendLenEncString(out, mv)
		default:
			out = append(out, p[start:i]...)
		}
	}
	if i != len(p) {
		return nil, errBadRow
	}
	if !rebuilt {
		return p, nil
	}
	k.scratch = out[:0]
	return out, nil
}
