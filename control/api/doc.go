// Package api is the gateway's REST API (JSON over net/http, bearer access
// tokens): login, users and tokens, agents and their keys, connections, and
// the audit log of sessions. Its routes are a contract the CLI and the web UI
// code against; see Server.
//
// api imports control/auth and control/store; it knows transport only through
// the small Agents interface, which transport.Hub satisfies.
package api
