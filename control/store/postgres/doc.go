// Package postgres is the shared store.Store backend on PostgreSQL, for
// production and for several gateway replicas on one database
// (ARCHITECTURE §6, §7). It talks to the server through a pgx connection
// pool (github.com/jackc/pgx/v5/pgxpool).
//
// The schema is a list of numbered migrations recorded in
// schema_migrations. Open applies the pending ones in one transaction that
// first takes a transaction-level advisory lock, so gateways starting
// together against one database apply each migration exactly once; a
// database whose schema is newer than the binary is refused.
//
// Times are timestamptz (microsecond precision; the zero time is stored as
// 0001-01-01 UTC so it sorts first, as in the sqlite backend), durations
// bigint nanoseconds, lists text[], policies jsonb. Names and IDs use the
// "C" collation so lists come back in byte order whatever the database's
// locale. Races between replicas are settled by the database: reviews are
// decided with one conditional UPDATE, batches are written in key order
// inside one transaction (no deadlocks between concurrent batches).
package postgres
