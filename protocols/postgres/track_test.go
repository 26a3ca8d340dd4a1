package postgres

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
)

func enc(t *testing.T, msgs ...pgproto3.Message) []byte {
	t.Helper()
	var b []byte
	var err error
	for _, m := range msgs {
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func testPolicy(t *testing.T, m *engine.MaskingPolicy) *sessionPolicy {
	t.Helper()
	mk, err := compileMasking(m, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	return &sessionPolicy{mask: mk}
}

// relayThrough runs server bytes through the server-side inspector and
// returns what the client would get, framed back into messages.
func relayThrough(t *testing.T, c *conversation, in []byte) []pgproto3.BackendMessage {
	t.Helper()
	var n atomic.Int64
	out := &countingWriter{}
	p := &pump{src: bytes.NewReader(in), dst: out, buf: make([]byte, 4096), max: 1 << 20, n: &n,
		insp: serverSide{c}, maxInspect: 1 << 20, grow: func(n int) []byte { return make([]byte, n) }, release: func([]byte) {}}
	if err := p.run(); err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(bytes.NewReader(out.Bytes()), nil)
	var msgs []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err != nil {
			if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("decode: %v", err)
			}
			break
		}
		switch v := m.(type) { // copy: the frontend reuses its messages
		case *pgproto3.ErrorResponse:
			cp := *v
			msgs = append(msgs, &cp)
		case *pgproto3.DataRow:
			cp := &pgproto3.DataRow{}
			for _, x := range v.Values {
				cp.Values = append(cp.Values, append([]byte(nil), x...))
			}
			msgs = append(msgs, cp)
		case *pgproto3.CopyData:
			msgs = append(msgs, &pgproto3.CopyData{Data: append([]byte(nil), v.Data...)})
		default:
			msgs = append(msgs, m)
		}
	}
	return msgs
}

func TestErrorsPassThroughMasking(t *testing.T) {
	c := newConversation(testPolicy(t, &engine.MaskingPolicy{Detectors: []string{"email", "credit_card", "phone", "ssn", "iban"}}), nil, NewMetrics(nil, "agent"))
	raise := &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42501",
		Message: `statement denied by guardrail "delete-without-where": DELETE FROM plain`,
		Where:   "PL/pgSQL function inline_code_block line 1 at RAISE", File: "pl_exec.c", Line: 3911, Routine: "exec_stmt_raise"}
	for range 3 {
		c.push(expect{kind: expQuery})
	}
	in := enc(t, raise, &pgproto3.ReadyForQuery{TxStatus: 'I'}, raise, &pgproto3.ReadyForQuery{TxStatus: 'I'},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "23505", Message: "duplicate key", Detail: "Key (email)=(ada@example.com) already exists."},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	msgs := relayThrough(t, c, in)
	if len(msgs) != 6 {
		t.Fatalf("got %d messages: %#v", len(msgs), msgs)
	}
	if e := msgs[2].(*pgproto3.ErrorResponse); e.Message != raise.Message || e.Where != raise.Where {
		t.Fatalf("second error altered: %+v", e)
	}
	if d := msgs[4].(*pgproto3.ErrorResponse).Detail; strings.Contains(d, "ada@example.com") || !strings.Contains(d, "already exists") {
		t.Fatalf("detail not masked: %q", d)
	}
}

func TestCopyDataMasked(t *testing.T) {
	c := newConversation(testPolicy(t, &engine.MaskingPolicy{Detectors: []string{"email", "credit_card"}, Style: "redact"}), nil, NewMetrics(nil, "agent"))
	c.push(expect{kind: expQuery})
	in := enc(t, &pgproto3.CopyOutResponse{OverallFormat: 0, ColumnFormatCodes: []uint16{0, 0}},
		&pgproto3.CopyData{Data: []byte("ada@example.com\t5500000000000004\n")},
		&pgproto3.CopyData{Data: []byte("nothing\there\n")},
		&pgproto3.CopyDone{}, &pgproto3.CommandComplete{CommandTag: []byte("COPY 2")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	msgs := relayThrough(t, c, in)
	if len(msgs) != 6 {
		t.Fatalf("got %d messages: %#v", len(msgs), msgs)
	}
	row := string(msgs[1].(*pgproto3.CopyData).Data)
	if strings.Contains(row, "ada@") || strings.Contains(row, "5500") || !strings.HasSuffix(row, "\n") || strings.Count(row, "\t") != 1 {
		t.Fatalf("copy row: %q", row)
	}
	if got := string(msgs[2].(*pgproto3.CopyData).Data); got != "nothing\there\n" {
		t.Fatalf("clean row changed: %q", got)
	}
}

func clientMsg(t *testing.T, c *conversation, m pgproto3.FrontendMessage) []byte {
	t.Helper()
	b, _ := m.Encode(nil)
	out, err := clientSide{c}.inspect(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func serverMsg(c *conversation, m pgproto3.BackendMessage) ([]byte, error) {
	b, _ := m.Encode(nil)
	return serverSide{c}.inspect(b, nil)
}

func detectorsConv(t *testing.T) *conversation {
	return newConversation(testPolicy(t, &engine.MaskingPolicy{Detectors: []string{"email"}}), nil, NewMetrics(nil, "agent"))
}

// A SQL cursor executed over the extended protocol was never bound or
// described by the client: its rows still get the detectors.
func TestUnboundPortalRowsAreMasked(t *testing.T) {
	c := detectorsConv(t)
	clientMsg(t, c, &pgproto3.Execute{Portal: "c"})
	clientMsg(t, c, &pgproto3.Sync{})
	out, err := serverMsg(c, &pgproto3.DataRow{Values: [][]byte{[]byte("ada@example.com")}})
	if err != nil || bytes.Contains(out, []byte("ada@")) {
		t.Fatalf("cursor row leaked: %q %v", out, err)
	}
}

// Re-parsing the unnamed statement drops its old description, so the new
// statement's rows are not planned with the old statement's columns.
func TestReparseForgetsOldDescription(t *testing.T) {
	c := detectorsConv(t)
	clientMsg(t, c, &pgproto3.Parse{Query: "SELECT 1"})
	clientMsg(t, c, &pgproto3.Describe{ObjectType: 'S'})
	clientMsg(t, c, &pgproto3.Sync{})
	for _, m := range []pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.ParameterDescription{},
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23, DataTypeSize: 4}}},
		&pgproto3.ReadyForQuery{TxStatus: 'I'}} {
		if _, err := serverMsg(c, m); err != nil {
			t.Fatal(err)
		}
	}
	clientMsg(t, c, &pgproto3.Parse{Query: "SELECT email FROM users"})
	clientMsg(t, c, &pgproto3.Bind{})
	clientMsg(t, c, &pgproto3.Execute{})
	clientMsg(t, c, &pgproto3.Sync{})
	serverMsg(c, &pgproto3.ParseComplete{})
	serverMsg(c, &pgproto3.BindComplete{})
	out, err := serverMsg(c, &pgproto3.DataRow{Values: [][]byte{[]byte("ada@example.com")}})
	if err != nil || bytes.Contains(out, []byte("ada@")) {
		t.Fatalf("row planned with a stale description leaked: %q %v", out, err)
	}
}

// A response the tracking cannot attribute ends the session (fail closed).
func TestUnattributableResponseFailsClosed(t *testing.T) {
	c := detectorsConv(t)
	if _, err := serverMsg(c, &pgproto3.BindComplete{}); err == nil {
		t.Fatal("BindComplete with nothing pending was accepted")
	}
	c = detectorsConv(t)
	if _, err := serverMsg(c, &pgproto3.DataRow{Values: [][]byte{[]byte("x")}}); err == nil {
		t.Fatal("DataRow with nothing pending was accepted")
	}
}

// After an extended-protocol error the server skips queued simple Queries
// up to the Sync; so must the tracking.
func TestErrorSkipsQueriesToSync(t *testing.T) {
	c := detectorsConv(t)
	clientMsg(t, c, &pgproto3.Parse{Query: "bad"})
	clientMsg(t, c, &pgproto3.Query{String: "SELECT 1"})
	clientMsg(t, c, &pgproto3.Sync{})
	for _, m := range []pgproto3.BackendMessage{&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax"}, &pgproto3.ReadyForQuery{TxStatus: 'I'}} {
		if _, err := serverMsg(c, m); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.pending) != 0 {
		t.Fatalf("%d requests still pending after the Sync: tracking is out of step", len(c.pending))
	}
}

func TestFunctionCallDeniedUnderPolicy(t *testing.T) {
	c := detectorsConv(t)
	out := clientMsg(t, c, &pgproto3.FunctionCall{Function: 2078})
	if len(out) == 0 || out[0] != 'Q' || !bytes.Contains(out, []byte("42501")) {
		t.Fatalf("FunctionCall not replaced by a denial: %q", out)
	}
}

func TestChangesEncoding(t *testing.T) {
	for sql, want := range map[string]bool{
		"SET client_encoding = 'SJIS'": true, "set   NAMES 'LATIN1'": true, "select set_config('client_encoding','SJIS',false)": true,
		"RESET CLIENT_ENCODING": true, "SELECT names FROM t": false, "SHOW client_encoding": false,
		"SET SESSION client_encoding TO 'SJIS'": true, "select current_setting('client_encoding')": false, "SELECT 1": false, "UPDATE t SET names = 1 WHERE id = 2": false,
	} {
		if got := changesEncoding(sql); got != want {
			t.Errorf("changesEncoding(%q) = %v, want %v", sql, got, want)
		}
	}
}
