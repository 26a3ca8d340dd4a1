package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-gw/sluice/engine"
)

// sqlState maps an engine code to the SQLSTATE a Postgres client expects
// (PostgreSQL docs, Appendix A).
func sqlState(c engine.Code) string {
	switch c {
	case engine.CodeAuthFailed:
		return "28P01" // invalid_password
	case engine.CodeUnknownConnection:
		return "3D000" // invalid_catalog_name
	case engine.CodeDenied:
		return "42501" // insufficient_privilege
	case engine.CodeAgentOffline, engine.CodeAgentLost:
		return "08006" // connection_failure
	case engine.CodeTooLarge, engine.CodeProtocol:
		return "08P01" // protocol_violation
	case engine.CodeUpstream:
		return "08001" // sqlclient_unable_to_establish_sqlconnection
	case engine.CodeShutdown, engine.CodeSessionEnded:
		return "57P01" // admin_shutdown
	case engine.CodeReviewTimeout:
		return "57014" // query_canceled
	default:
		return "XX000" // internal_error
	}
}

// appendError appends an ErrorResponse for err. Session-ending errors are
// FATAL; denials are ERROR and the session continues.
func appendError(dst []byte, err error, fatal bool) []byte {
	e := engine.AsError(err)
	sev := "ERROR"
	if fatal {
		sev = "FATAL"
	}
	msg := &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                sqlState(e.Code),
		Message:             e.Message,
	}
	out, encErr := msg.Encode(dst)
	if encErr != nil { // only on absurd sizes; fall back to a fixed message
		out, _ = (&pgproto3.ErrorResponse{Severity: sev, Code: "XX000", Message: fmt.Sprintf("error of %d bytes", len(e.Message))}).Encode(dst)
	}
	return out
}

// appendPgError appends an ErrorResponse with an explicit SQLSTATE.
func appendPgError(dst []byte, severity, code, message string) []byte {
	out, err := (&pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: message}).Encode(dst)
	if err != nil {
		return dst
	}
	return out
}
