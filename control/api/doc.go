// Package api is the gateway's REST API (JSON over net/http, bearer access
// tokens): login, users and tokens, groups, agents and their keys,
// connections, access rules, the audit log of sessions with their
// statements and recordings, just-in-time reviews, and webhooks with their
// dead letters. Its routes are a contract the CLI and the web UI code
// against: the route table in routes.go, documented in docs/openapi.yaml
// (embedded and served at GET /api/v1/openapi.yaml; a test keeps the two in
// step).
//
// api imports control/auth and control/store, control/recording (for its
// errors and Report) and control/webhook (to check endpoints as the
// dispatcher will). It knows the other services only through small
// interfaces in Config (Agents, Revoker, Killer, Decider, Recordings,
// Redeliverer, and the Login, IssueToken and HoursValidator funcs), each
// optional.
package api
