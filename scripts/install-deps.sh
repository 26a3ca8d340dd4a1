#!/usr/bin/env bash
# Install the system packages Sluice's tests and demo need, only when missing:
#   - PostgreSQL server binaries (initdb, postgres, pgbench): postgresql-15
#   - PostgreSQL client (psql):                               postgresql-client
#   - CA certificates:                                        ca-certificates
#   - MariaDB server + client (MySQL e2e tests, the demo's mysql-demo, the
#     bench's MySQL paths):                                   mariadb-server, mariadb-client
# Idempotent: does nothing (and no apt-get update) when everything is present.
# Debian/Ubuntu only; elsewhere it fails with what to install.
set -euo pipefail

PG_VERSION="${PG_VERSION:-15}"
missing=()   # apt packages to install
why=()       # what each is for, for the message

have_pg_server() {
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
	command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

if ! have_pg_server; then
	missing+=("postgresql-${PG_VERSION}")
	why+=("PostgreSQL server binaries (initdb, postgres, pgbench)")
fi
if ! command -v psql >/dev/null 2>&1; then
	missing+=("postgresql-client")
	why+=("psql")
fi
# internal/scratchmysql needs both the server and the data-directory initialiser.
have_mariadb_server() {
	{ command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd || -x /usr/sbin/mysqld ]]; } &&
		{ command -v mariadb-install-db >/dev/null 2>&1 || command -v mysql_install_db >/dev/null 2>&1; }
}
if ! have_mariadb_server; then
	missing+=("mariadb-server")
	why+=("MariaDB server (mariadbd, mariadb-install-db)")
fi
if ! command -v mariadb >/dev/null 2>&1 && ! command -v mysql >/dev/null 2>&1; then
	missing+=("mariadb-client")
	why+=("mariadb/mysql client")
fi
if [[ ! -s /etc/ssl/certs/ca-certificates.crt ]]; then
	missing+=("ca-certificates")
	why+=("CA certificates")
fi

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps: all dependencies present"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing dependencies and apt-get is not available; please install:" >&2
	for i in "${!missing[@]}"; do
		echo "  - ${why[$i]} (Debian package ${missing[$i]})" >&2
	done
	exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	fi
	SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -qq

# Releases without postgresql-15 (e.g. newer Debian): fall back to the
# distribution's default PostgreSQL server.
for i in "${!missing[@]}"; do
	if [[ ${missing[$i]} == "postgresql-${PG_VERSION}" ]] &&
		! apt-cache show "postgresql-${PG_VERSION}" >/dev/null 2>&1; then
		echo "install-deps: postgresql-${PG_VERSION} is not available here; installing the default 'postgresql'"
		missing[i]="postgresql"
	fi
done

# RUNLEVEL=1: where invoke-rc.d honours it, the packages do not start system
# PostgreSQL/MariaDB services; the tests, demo and bench start their own.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
	apt-get install -y -qq --no-install-recommends "${missing[@]}"

echo "install-deps: installed ${missing[*]}"
if ! have_pg_server; then
	echo "install-deps: PostgreSQL server binaries still not found under /usr/lib/postgresql/*/bin" >&2
	exit 1
fi
if ! have_mariadb_server; then
	echo "install-deps: MariaDB server binaries (mariadbd, mariadb-install-db) still not found" >&2
	exit 1
fi
