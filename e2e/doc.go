// Package e2e holds the end-to-end tests: a real PostgreSQL started in a
// temporary directory, a real gateway and agent (in-process, over the real
// gRPC+TLS tunnel), and the real clients users run (psql, pgbench, pgx).
package e2e
