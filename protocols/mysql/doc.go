// Package mysql is the MySQL/MariaDB wire protocol of Sluice: the gateway side
// (Frontend) greets clients, upgrades to TLS on SSLRequest, takes the access
// token with mysql_clear_password and dispatches the session to the agent;
// the agent side (Upstream) logs in to the real server (caching_sha2_password,
// mysql_native_password, TLS or not, via go-mysql's client), applies
// guardrails (TiDB parser) and masking (text and binary rows), and relays.
//
// Both sides frame with the same code (packet.go): a 3-byte little-endian
// length and a sequence id; a packet of 0xffffff bytes continues in the next.
// No length is trusted beyond Config.MaxMessage. Both follow the server's
// answers with the same tracker (track.go), from each packet's first bytes,
// to time statements (metrics.go); the agent also masks with it. The agent
// refuses any KILL the gateway did not map (killscan.go).
package mysql
