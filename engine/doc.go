// Package engine is the protocol-independent core of a session: who the user
// is (Identity), what they may do (Plan), the session record, typed errors
// that every protocol renders natively, the ordered plugin chain and the
// buffer pool of the data path.
//
// The data plane talks to the control plane only through the small interfaces
// defined here (Authenticator, Authorizer, AuditSink); control implements them
// and cmd/sluice wires them. engine must never import control/ (ARCHITECTURE §3).
package engine
