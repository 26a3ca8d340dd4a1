// Package scratchpg starts real, throwaway PostgreSQL servers.
//
// It exists so that Sluice's integration tests, the `sluice demo` command and
// the benchmark harness can talk to a genuine PostgreSQL backend without any
// pre-provisioned database. [Start] locates the PostgreSQL server binaries
// (pg_config --bindir, falling back to the newest /usr/lib/postgresql/*/bin),
// runs initdb into a temporary directory, starts postgres on a free port on
// 127.0.0.1 (optionally with a self-signed TLS certificate), and waits until
// it accepts connections. [Server.Stop] shuts it down and deletes the
// temporary directory.
//
// Local (unix socket) connections use trust authentication and are used by
// the superuser helpers ([Server.Exec], [Server.Query], [Server.CreateUser],
// [Server.CreateDatabase]). TCP connections to 127.0.0.1 use
// [Options.HostAuth] (scram-sha-256 by default), overridden per role by the
// method given to [Server.CreateUser].
//
// PostgreSQL refuses to run as root. When the calling process has euid 0,
// initdb and postgres are run as the "postgres" system user (created by the
// Debian packages) or, if that does not exist, as a "sluicepg" system user
// created with useradd; the data directory is chowned to that user.
//
// If no PostgreSQL installation can be found, Start returns an error telling
// the caller exactly what to install (apt-get install -y postgresql-15).
// Callers in tests should fail, not skip, on that error.
package scratchpg
