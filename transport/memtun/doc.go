// Package memtun is an in-memory transport.Tunnel for tests: Pair returns the
// gateway and agent ends of one tunnel. Each stream direction buffers a
// bounded number of bytes, so a writer blocks when its peer does not read,
// as on a real tunnel.
package memtun
