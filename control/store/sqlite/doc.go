// Package sqlite is the embedded store.Store backend on modernc.org/sqlite
// (pure Go, no cgo), the default for single-node gateways and `make demo`.
// The database runs in WAL mode with a busy timeout; its schema is a list of
// numbered migrations applied in order when the store is opened.
package sqlite
