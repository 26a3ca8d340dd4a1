package mysql

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sluice-gw/sluice/masking"
)

// clientHandshake builds a HandshakeResponse41 laid out as libmariadb and
// go-sql-driver send it.
func clientHandshake(user, db, plugin string, auth []byte, attrs map[string]string) []byte {
	caps := uint32(capLongPassword | capProtocol41 | capSecureConn | capPluginAuth | capPluginAuthLenenc |
		capMultiStatements | capMultiResults | capTransactions | capConnectWithDB | capConnectAttrs)
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = binary.LittleEndian.AppendUint32(b, 16<<20)
	b = append(b, 45)
	b = append(b, make([]byte, 23)...)
	b = append(append(b, user...), 0)
	b = appendLenEncString(b, auth)
	b = append(append(b, db...), 0)
	b = append(append(b, plugin...), 0)
	var a []byte
	for k, v := range attrs {
		a = appendLenEncString(appendLenEncString(a, []byte(k)), []byte(v))
	}
	return appendLenEncString(b, a)
}

func TestParseHandshakeResponse(t *testing.T) {
	p := clientHandshake("alice", "my-demo", pluginClear, []byte("tok\x00"), map[string]string{"_client_name": "libmariadb"})
	r, err := parseHandshakeResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.user != "alice" || r.db != "my-demo" || r.plugin != pluginClear || string(r.auth) != "tok\x00" || r.attrs["_client_name"] != "libmariadb" {
		t.Fatalf("%+v", r)
	}
	ssl := append(binary.LittleEndian.AppendUint32(nil, capProtocol41|capSSL), make([]byte, 28)...)
	if r, err := parseHandshakeResponse(ssl); err != nil || !r.sslOnly {
		t.Fatalf("ssl request: %+v %v", r, err)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, maxPart - 1, maxPart, maxPart + 7, 2 * maxPart} {
		payload := bytes.Repeat([]byte{'x'}, n)
		wire, next := appendPacket(nil, 3, payload)
		if int(next-3) != partsOf(n) {
			t.Fatalf("%d: %d parts, want %d", n, next-3, partsOf(n))
		}
		got, seq, parts, err := readPacket(bytes.NewReader(wire), nil, 64<<20)
		if err != nil || seq != 3 || parts != partsOf(n) || !bytes.Equal(got, payload) {
			t.Fatalf("%d: %v seq %d parts %d len %d", n, err, seq, parts, len(got))
		}
	}
	wire, _ := appendPacket(nil, 0, make([]byte, maxPart+10))
	if _, _, _, err := readPacket(bytes.NewReader(wire), nil, 1<<20); err == nil {
		t.Fatal("cap not enforced")
	}
}

func TestGuard(t *testing.T) {
	g, err := compileGuard([]string{"drop", "truncate", "alter", "grant", "delete-without-where", "update-without-where", "set-role"}, []string{"audit_log"})
	if err != nil {
		t.Fatal(err)
	}
	for sql, rule := range map[string]string{
		"SELECT * FROM t":                        "",
		"select 'dropped' from t":                "",
		"DELETE FROM t WHERE id = 1":             "",
		"DROP TABLE t":                           "drop",
		"drop database x":                        "drop",
		"TRUNCATE TABLE t":                       "truncate",
		"ALTER TABLE t ADD c INT":                "alter",
		"RENAME TABLE a TO b":                    "alter",
		"GRANT ALL ON *.* TO x":                  "grant",
		"REVOKE ALL ON *.* FROM x":               "grant",
		"DELETE FROM t":                          "delete-without-where",
		"DELETE FROM t LIMIT 5":                  "delete-without-where",
		"UPDATE t SET a = 1":                     "update-without-where",
		"INSERT INTO audit_log VALUES (1)":       "deny_tables",
		"UPDATE appdb.audit_log SET a=1 WHERE 1": "deny_tables",
		"SELECT 1; DROP TABLE t":                 "drop",
		"PREPARE s FROM 'DROP TABLE t'":          "drop",
		"PREPARE s FROM @q":                      "dynamic-sql",
		"SET ROLE r1":                            "set-role",
		"DROP TABLE t WHERE garbage (":           "unparseable",
	} {
		d := g.check(sql)
		if d.rule != rule || d.allow != (rule == "") {
			t.Errorf("%q: got rule %q allow %v, want %q", sql, d.rule, d.allow, rule)
		}
		if !d.allow && !strings.HasPrefix(d.reason, "statement denied by guardrail") {
			t.Errorf("%q: reason %q", sql, d.reason)
		}
	}
	if !g.check("SELECT id FROM customers").allow || g.check("SELECT id FROM customers").parsed {
		t.Fatal("prefilter should answer a plain select")
	}
}

func columnDef(table, name string, typ byte) []byte {
	var b []byte
	for _, s := range []string{"def", "appdb", "c", table, "alias_" + name, name} {
		b = appendLenEncString(b, []byte(s))
	}
	b = append(b, 0x0c, 45, 0, 0, 1, 0, 0, typ, 0, 0, 0, 0, 0)
	return b
}

func TestMaskRows(t *testing.T) {
	mp, err := masking.Compile(masking.Config{Columns: []string{"customers.email", "customers.card"}, Detectors: []string{"ssn"}})
	if err != nil {
		t.Fatal(err)
	}
	rules := &maskingRules{p: mp, columns: true}
	var cols []column
	for _, d := range [][]byte{columnDef("customers", "email", typeVarString), columnDef("customers", "card", typeLongLong), columnDef("customers", "ssn", typeVarString), columnDef("customers", "id", typeLong)} {
		c, err := parseColumn(d, rules)
		if err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	k := &masker{m: rules}
	k.reset(cols)
	var row []byte
	for _, v := range []string{"ada@example.com", "4111111111111111", "123-45-6789", "7"} {
		row = appendLenEncString(row, []byte(v))
	}
	out, err := k.textRow(row)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("ada@example.com")) || bytes.Contains(out, []byte("4111111111111111")) || bytes.Contains(out, []byte("123-45-6789")) {
		t.Fatalf("text row not masked: %q", out)
	}
	if !bytes.Contains(out, []byte{0xfb}) {
		t.Fatalf("BIGINT under a rule must be NULL: %q", out)
	}
	// binary: 0x00, bitmap (4 cols + 2 bits → 1 byte), values
	b := []byte{0x00, 0x00}
	b = appendLenEncString(b, []byte("ada@example.com"))
	b = binary.LittleEndian.AppendUint64(b, 4111111111111111)
	b = appendLenEncString(b, []byte("123-45-6789"))
	b = binary.LittleEndian.AppendUint32(b, 7)
	out, err = k.binaryRow(b)
	if err != nil {
		t.Fatal(err)
	}
	if out[1]&(1<<3) == 0 {
		t.Fatalf("card's NULL bit not set: %x", out[1])
	}
	if bytes.Contains(out, []byte("ada@example.com")) || bytes.Contains(out, []byte("123-45-6789")) {
		t.Fatalf("binary row not masked: %q", out)
	}
	if got := binary.LittleEndian.Uint32(out[len(out)-4:]); got != 7 {
		t.Fatalf("id changed: %d", got)
	}
}
