// Package postgres speaks the PostgreSQL frontend/backend protocol (v3) on
// both sides of the tunnel: Frontend accepts psql, pgbench and drivers on the
// gateway; Upstream logs in to the real server in the agent and relays.
//
// Messages are framed by our own pump over pooled buffers, so messages nobody
// inspects are never decoded; pgx's pgproto3 encodes the few we build.
// Every read is bounded (start-up size and deadline, a per-message cap) and
// every failure the client can hear about is a native ErrorResponse.
//
// On the gateway, session and statement reviews, statement audit and
// recording (Config.Reviewer, Statements, Recorder) are described in
// docs/reviews-and-audit.md; gwconv.go follows the conversation for them.
package postgres
