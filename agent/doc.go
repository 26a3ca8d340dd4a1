// Package agent is the agent runtime: it dials the gateway's tunnel (and
// redials with jittered backoff while the gateway is away), accepts the
// session streams the gateway opens, and hands each to the protocol's
// upstream side, which resolves the target and dials it.
//
// agent imports transport, protocols and engine, never control/
// (ARCHITECTURE §3).
package agent
