package mysql

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Capability flags (MySQL client/server protocol, "Capabilities Flags").
const (
	capLongPassword     = 0x00000001
	capFoundRows        = 0x00000002
	capLongFlag         = 0x00000004
	capConnectWithDB    = 0x00000008
	capCompress         = 0x00000020
	capLocalFiles       = 0x00000080
	capIgnoreSpace      = 0x00000100
	capProtocol41       = 0x00000200
	capInteractive      = 0x00000400
	capSSL              = 0x00000800
	capIgnoreSigpipe    = 0x00001000
	capTransactions     = 0x00002000
	capSecureConn       = 0x00008000
	capMultiStatements  = 0x00010000
	capMultiResults     = 0x00020000
	capPSMultiResults   = 0x00040000
	capPluginAuth       = 0x00080000
	capConnectAttrs     = 0x00100000
	capPluginAuthLenenc = 0x00200000
	capSessionTrack     = 0x00800000
	capDeprecateEOF     = 0x01000000
	capQueryAttributes  = 0x08000000
)

// serverCaps is what the gateway offers. Deliberately absent, so that one
// framing flows end to end: CLIENT_DEPRECATE_EOF (EOF packets stay),
// CLIENT_SESSION_TRACK and CLIENT_QUERY_ATTRIBUTES (plain OK packets and
// COM_QUERY payloads), CLIENT_COMPRESS, CLIENT_LOCAL_FILES (LOAD DATA LOCAL
// INFILE is refused), and MariaDB's extended capabilities (we greet as MySQL).
const serverCaps = capLongPassword | capFoundRows | capLongFlag | capConnectWithDB |
	capIgnoreSpace | capProtocol41 | capInteractive | capIgnoreSigpipe | capTransactions |
	capSecureConn | capMultiStatements | capMultiResults | capPSMultiResults | capPluginAuth |
	capConnectAttrs | capPluginAuthLenenc

// forwardedCaps are the client's flags the agent requests upstream: the
// ones that change what the server sends or accepts.
const forwardedCaps = capFoundRows | capIgnoreSpace | capInteractive | capMultiStatements |
	capMultiResults | capPSMultiResults

const (
	pluginNative = "mysql_native_password"
	pluginClear  = "mysql_clear_password"
)

// Server status flags.
const (
	statusAutocommit   = 0x0002
	statusMoreResults  = 0x0008
	statusCursorExists = 0x0040
)

// greeting builds the HandshakeV10 payload.
func greeting(version string, connID uint32, salt []byte, caps uint32) []byte {
	b := make([]byte, 0, 128)
	b = append(b, 10)
	b = append(b, version...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, connID)
	b = append(b, salt[:8]...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps))
	b = append(b, 45) // utf8mb4_general_ci: known to MySQL and MariaDB
	b = binary.LittleEndian.AppendUint16(b, statusAutocommit)
	b = binary.LittleEndian.AppendUint16(b, uint16(caps>>16))
	b = append(b, byte(len(salt)+1))
	b = append(b, make([]byte, 10)...)
	b = append(b, salt[8:]...)
	b = append(b, 0)
	b = append(b, pluginNative...)
	return append(b, 0)
}

// handshakeResponse is a parsed HandshakeResponse41 (or an SSLRequest, which
// is its first 32 bytes).
type handshakeResponse struct {
	caps    uint32
	maxPkt  uint32
	charset byte
	user    string
	auth    []byte
	db      string
	plugin  string
	attrs   map[string]string
	sslOnly bool // an SSLRequest
}

var errBadHandshake = errors.New("malformed handshake response")

// parseHandshakeResponse decodes a client's handshake response. It never
// panics on any input (fuzzed).
func parseHandshakeResponse(p []byte) (*handshakeResponse, error) {
	if len(p) < 32 {
		return nil, errBadHandshake
	}
	r := &handshakeResponse{
		caps:    binary.LittleEndian.Uint32(p[0:4]),
		maxPkt:  binary.LittleEndian.Uint32(p[4:8]),
		charset: p[8],
	}
	if r.caps&capProtocol41 == 0 {
		return nil, errors.New("client does not speak protocol 4.1")
	}
	if len(p) == 32 {
		if r.caps&capSSL == 0 {
			return nil, errBadHandshake
		}
		r.sslOnly = true
		return r, nil
	}
	rest := p[32:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return nil, errBadHandshake
	}
	r.user, rest = string(rest[:i]), rest[i+1:]
	switch {
	case r.caps&capPluginAuthLenenc != 0:
		s, n, null, ok := readLenEncString(rest)
		if !ok || null {
			return nil, errBadHandshake
		}
		r.auth, rest = s, rest[n:]
	case r.caps&capSecureConn != 0:
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return nil, errBadHandshake
		}
		r.auth, rest = rest[1:1+int(rest[0])], rest[1+int(rest[0]):]
	default:
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, errBadHandshake
		}
		r.auth, rest = rest[:i], rest[i+1:]
	}
	if r.caps&capConnectWithDB != 0 && len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			r.db, rest = string(rest), nil
		} else {
			r.db, rest = string(rest[:i]), rest[i+1:]
		}
	}
	if r.caps&capPluginAuth != 0 && len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			r.plugin, rest = string(rest), nil
		} else {
			r.plugin, rest = string(rest[:i]), rest[i+1:]
		}
	}
	if r.caps&capConnectAttrs != 0 && len(rest) > 0 {
		total, n, null, ok := readLenEnc(rest)
		if !ok || null || uint64(len(rest)-n) < total {
			return nil, errBadHandshake
		}
		a := rest[n : n+int(total)]
		r.attrs = map[string]string{}
		for len(a) > 0 && len(r.attrs) < 64 {
			k, kn, _, ok := readLenEncString(a)
			if !ok {
				return nil, errBadHandshake
			}
			v, vn, _, ok := readLenEncString(a[kn:])
			if !ok {
				return nil, errBadHandshake
			}
			r.attrs[string(k)] = string(v)
			a = a[kn+vn:]
		}
	}
	return r, nil
}

// authSwitch is an AuthSwitchRequest to mysql_clear_password.
func authSwitch() []byte {
	b := []byte{0xfe}
	b = append(b, pluginClear...)
	return append(b, 0)
}
