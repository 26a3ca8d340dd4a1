// Package open picks and opens a store.Store backend from a spec, the
// value of SLUICE_STORE: "" or "sqlite" is the embedded sqlite database
// in the data directory, a postgres:// or postgresql:// URL the shared
// PostgreSQL backend. It is a package of its own because it imports both
// backends, which import store.
package open
