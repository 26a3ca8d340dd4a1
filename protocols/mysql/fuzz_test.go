package mysql

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sluice-gw/sluice/masking"
)

// The fuzz targets are seeded from the recorded sessions in testdata/capture
// (TestCaptureMariaDB) plus a few hand-made edge cases.

func FuzzHandshakeResponse(f *testing.F) {
	for _, c := range loadCaptures(f) {
		f.Add(splitPhases(f, c).handshake) // libmariadb, go-mysql, go-sql-driver
	}
	f.Add(clientHandshake("alice", "pg", pluginClear, []byte("token\x00"), nil))
	f.Add(append(binary.LittleEndian.AppendUint32(nil, capProtocol41|capSSL), make([]byte, 28)...))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := parseHandshakeResponse(p)
		if err == nil && len(r.attrs) > 64 {
			t.Fatal("attribute map not bounded")
		}
	})
}

func FuzzPacketFraming(f *testing.F) {
	for _, c := range loadCaptures(f) {
		f.Add(c.c2s)
		f.Add(c.s2c)
	}
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
			parseOKStatus(p)
			eofStatus(p)
		}
	})
}

// FuzzTracker feeds a server stream to the response tracker for a list of
// command kinds: it must never panic, and a response never ends twice.
func FuzzTracker(f *testing.F) {
	for _, c := range loadCaptures(f) {
		ph := splitPhases(f, c)
		var ks []byte
		for _, k := range ph.kinds() {
			ks = append(ks, byte(k))
		}
		f.Add(ks, ph.s2cCmds)
	}
	f.Fuzz(func(t *testing.T, kinds, wire []byte) {
		var trk respTracker
		r := bytes.NewReader(wire)
		for len(kinds) > 0 {
			p, _, _, err := readPacket(r, nil, 1<<20)
			if err != nil {
				return
			}
			pi, err := trk.feed(respKind(kinds[0]%uint8(respRefused+1)), p[:min(len(p), trackHead)], len(p))
			if err != nil {
				return
			}
			if pi.end {
				if trk.st != stFirst {
					t.Fatal("a response ended mid-state")
				}
				kinds = kinds[1:]
			}
		}
	})
}

// FuzzRows masks real column definitions and rows (text and binary) from
// the captures, and mutations of them.
func FuzzRows(f *testing.F) {
	mp, _ := masking.Compile(masking.Config{Columns: []string{"customers.email", "customers.card", "types.vc", "types.bi"}, Detectors: []string{"ssn", "email"}})
	rules := &maskingRules{p: mp, columns: true}
	f.Add(columnDef("customers", "email", typeVarString), appendLenEncString(nil, []byte("a@b.example")))
	f.Add(columnDef("customers", "card", typeLongLong), []byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	for _, c := range loadCaptures(f) {
		ph := splitPhases(f, c)
		kinds := ph.kinds()
		var trk respTracker
		var defs [][]byte
		for _, p := range packetsOf(f, ph.s2cCmds) {
			if len(kinds) == 0 {
				break
			}
			before := trk.st
			pi, err := trk.feed(kinds[0], p.payload[:min(len(p.payload), trackHead)], len(p.payload))
			if err != nil {
				f.Fatal(err)
			}
			switch {
			case before == stColumns && (kinds[0] == respText || kinds[0] == respBinary):
				defs = append(defs, p.payload)
			case pi.row:
				for _, d := range defs {
					f.Add(d, p.payload)
				}
			}
			if before == stFirst && trk.st == stColumns {
				defs = defs[:0]
			}
			if pi.end {
				kinds = kinds[1:]
			}
		}
	}
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
