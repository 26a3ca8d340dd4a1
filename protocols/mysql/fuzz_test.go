package mysql

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sluice-gw/sluice/masking"
)

func FuzzHandshakeResponse(f *testing.F) {
	f.Add(clientHandshake("alice", "my-demo", pluginNative, bytes.Repeat([]byte{7}, 20), map[string]string{"_client_name": "libmariadb", "_os": "Linux"}))
	f.Add(clientHandshake("alice", "pg", pluginClear, []byte("token\x00"), nil))
	f.Add(append(binary.LittleEndian.AppendUint32(nil, capProtocol41|capSSL), make([]byte, 28)...))
	f.Fuzz(func(t *testing.T, p []byte) {
		parseHandshakeResponse(p)
	})
}

func FuzzPacketFraming(f *testing.F) {
	g, _ := appendPacket(nil, 0, greeting("8.0.0-sluice", 42, bytes.Repeat([]byte{'a'}, 20), serverCaps|capSSL))
	f.Add(g)
	q, _ := appendPacket(nil, 0, append([]byte{comQuery}, "SELECT 1"...))
	f.Add(q)
	f.Add([]byte{0xff, 0xff, 0xff, 0, 1, 2, 3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, wire []byte) {
		r := bytes.NewReader(wire)
		for {
			p, seq, _, err := readPacket(r, nil, 1<<20)
			if err != nil {
				return
			}
			again, _ := appendPacket(nil, seq, p)
			if p2, _, _, err := readPacket(bytes.NewReader(again), nil, 1<<20); err != nil || !bytes.Equal(p, p2) {
				t.Fatalf("round trip: %v", err)
			}
			parseErr(p)
			okStatus(p)
		}
	})
}

func FuzzRows(f *testing.F) {
	mp, _ := masking.Compile(masking.Config{Columns: []string{"customers.email", "customers.card"}, Detectors: []string{"ssn", "email"}})
	rules := &maskingRules{p: mp, columns: true}
	f.Add(columnDef("customers", "email", typeVarString), appendLenEncString(nil, []byte("a@b.example")))
	f.Add(columnDef("customers", "card", typeLongLong), []byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, def, row []byte) {
		c, err := parseColumn(def, rules)
		if err != nil {
			return
		}
		k := &masker{m: rules}
		k.reset([]column{c, {typ: typeVarString, detect: true}})
		k.textRow(row)
		k.binaryRow(row)
	})
}
