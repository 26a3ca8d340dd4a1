// Package scratchmysql starts real, throwaway MariaDB servers.
//
// It exists so that Sluice's integration tests, the `sluice demo` command and
// the benchmark harness can talk to a genuine MySQL-protocol backend without
// any pre-provisioned database. [Start] finds mariadb-install-db and mariadbd
// (or the mysql_install_db / mysqld names), initialises a data directory in a
// temporary directory, starts the server on a free port on 127.0.0.1
// (optionally with TLS from PEM files the caller provides, see [NewTLS]), and
// waits until it accepts connections. [Server.Stop] shuts it down and
// deletes the temporary directory.
//
// The superuser root has no password and is reached over the server's unix
// socket by [Server.Exec] and [Server.DB]; TCP logins use accounts the caller
// creates with Exec, addressed by [Server.URL].
//
// As root, the server runs as the "mysql" system user (created by Debian's
// mariadb-server package); the temporary directory is chowned to it.
//
// If MariaDB is not installed, Start returns an error wrapping
// [ErrNotInstalled] that says what to install. Tests must fail on it, never
// skip; `sluice demo` runs without MySQL and says so.
//
// It imports none of Sluice's packages.
package scratchmysql
