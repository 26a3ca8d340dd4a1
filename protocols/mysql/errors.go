package mysql

import (
	"encoding/binary"

	"github.com/sluice-gw/sluice/engine"
)

// MySQL error numbers Sluice sends (mysqld_error.h / errmsg.h).
const (
	erAccessDenied     = 1045 // ER_ACCESS_DENIED_ERROR, 28000: bad or expired token
	erDBAccessDenied   = 1044 // ER_DBACCESS_DENIED_ERROR, 42000: no access rule for the connection
	erBadDB            = 1049 // ER_BAD_DB_ERROR, 42000: unknown connection
	erNoDB             = 1046 // ER_NO_DB_ERROR, 3D000: no connection named
	erTableAccess      = 1142 // ER_TABLEACCESS_DENIED_ERROR, 42000: guardrail / masking denial
	erSpecificAccess   = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR, 42000: refused command
	erNetPacketTooBig  = 1153 // ER_NET_PACKET_TOO_LARGE, 08S01
	erHandshake        = 1043 // ER_HANDSHAKE_ERROR, 08S01
	erUnknownCom       = 1047 // ER_UNKNOWN_COM_ERROR, 08S01
	erServerShutdown   = 1053 // ER_SERVER_SHUTDOWN, 08S01
	erUnknown          = 1105 // ER_UNKNOWN_ERROR, HY000
	erNoSuchThread     = 1094 // ER_NO_SUCH_THREAD, HY000
	crServerLost       = 2013 // CR_SERVER_LOST, 08S01: agent offline or lost
	crConnHostError    = 2003 // CR_CONN_HOST_ERROR, HY000: upstream unreachable or refused login
	crNotAllowedInfile = 1148 // ER_NOT_ALLOWED_COMMAND, 42000: LOAD DATA LOCAL
)

// errCode maps an engine code to the MySQL error number and SQLSTATE.
// login selects the connect-time meaning of a denial (1044 instead of 1142).
func errCode(c engine.Code, login bool) (uint16, string) {
	switch c {
	case engine.CodeAuthFailed:
		return erAccessDenied, "28000"
	case engine.CodeUnknownConnection:
		return erBadDB, "42000"
	case engine.CodeDenied:
		if login {
			return erDBAccessDenied, "42000"
		}
		return erTableAccess, "42000"
	case engine.CodeAgentOffline, engine.CodeAgentLost:
		return crServerLost, "08S01"
	case engine.CodeTooLarge:
		return erNetPacketTooBig, "08S01"
	case engine.CodeProtocol:
		return erHandshake, "08S01"
	case engine.CodeUpstream:
		return crConnHostError, "HY000"
	case engine.CodeShutdown:
		return erServerShutdown, "08S01"
	}
	return erUnknown, "HY000"
}

// errPayload is an ERR packet payload (CLIENT_PROTOCOL_41 form).
func errPayload(code uint16, state, msg string) []byte {
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	b := make([]byte, 0, 9+len(msg))
	b = append(b, 0xff)
	b = binary.LittleEndian.AppendUint16(b, code)
	b = append(b, '#')
	b = append(b, state...)
	return append(b, msg...)
}

// engineErrPayload renders err as an ERR payload.
func engineErrPayload(err error, login bool) []byte {
	e := engine.AsError(err)
	code, state := errCode(e.Code, login)
	return errPayload(code, state, e.Message)
}

// parseErr decodes an ERR payload.
func parseErr(p []byte) (code uint16, state, msg string, ok bool) {
	if len(p) < 3 || p[0] != 0xff {
		return 0, "", "", false
	}
	code = binary.LittleEndian.Uint16(p[1:3])
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		state, rest = string(rest[1:6]), rest[6:]
	}
	return code, state, string(rest), true
}

// okPayload is a minimal OK packet payload.
func okPayload(status uint16) []byte {
	return []byte{0x00, 0, 0, byte(status), byte(status >> 8), 0, 0}
}
