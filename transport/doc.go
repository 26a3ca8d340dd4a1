// Package transport carries sessions between the gateway and its agents.
//
// A Tunnel is one agent's outbound connection to the gateway; each session
// rides its own Stream on it, so one slow session never blocks another
// (per-stream flow control, no head-of-line blocking). Implementations live
// in subpackages: grpc (HTTP/2 over TLS) and memtun (in memory, for tests).
//
// transport must never import control/ (ARCHITECTURE §3).
package transport
