package engine

import (
	"errors"
	"fmt"
)

// Code classifies a session failure. Each protocol maps codes to its own
// native error (a Postgres SQLSTATE, a MySQL error number, an HTTP status).
type Code int

const (
	CodeInternal          Code = iota
	CodeAuthFailed             // bad or expired token
	CodeUnknownConnection      // no such connection
	CodeDenied                 // a rule forbids it
	CodeAgentOffline           // the connection's agent has no tunnel
	CodeAgentLost              // the tunnel dropped during the session
	CodeTooLarge               // a message exceeds the configured limit
	CodeProtocol               // malformed or unsupported input
	CodeUpstream               // the target could not be reached or refused login
	CodeShutdown               // the gateway or agent is stopping
	CodeReviewTimeout          // a just-in-time review was not decided in time
	CodeSessionEnded           // ended by the control plane (token revoked, killed, time limit)
)

// Error is a typed session failure whose Message is safe to show the client.
type Error struct {
	Code    Code
	Message string
	Err     error // internal cause, logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a client-visible message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Deny is the typed denial every protocol renders natively.
func Deny(reason string) *Error { return &Error{Code: CodeDenied, Message: reason} }

// AsError returns err as an *Error, wrapping unknown errors as CodeInternal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}
