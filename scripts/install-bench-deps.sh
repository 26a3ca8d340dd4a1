#!/usr/bin/env bash
# Install what `make bench` needs beyond `make deps` (scripts/install-deps.sh),
# only when missing:
#   - pgbouncer (the reference path in the benchmark; Debian package pgbouncer)
# Idempotent: does nothing (and no apt-get update) when everything is present.
# Never fatal for pgbouncer: if it cannot be installed, the harness reports the
# pgbouncer path as skipped with the reason, so this script exits 0 with a warning.
set -euo pipefail

have_pgbouncer() {
	command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]]
}

if have_pgbouncer; then
	echo "install-bench-deps: all dependencies present"
	exit 0
fi

warn() { echo "install-bench-deps: WARNING: $*; the pgbouncer path will be reported as skipped" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
	warn "pgbouncer is missing and apt-get is not available (install pgbouncer by hand)"
	exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		warn "need root or sudo to install pgbouncer"
		exit 0
	fi
	SUDO=(sudo)
fi

echo "install-bench-deps: installing pgbouncer"
if ! "${SUDO[@]}" apt-get update -qq; then
	warn "apt-get update failed"
	exit 0
fi
# The Debian package starts a system pgbouncer service on :6432; the bench runs
# its own instance on a free port and does not use it. policy-rc.d keeps
# invoke-rc.d from starting it where that is honoured.
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
	apt-get install -y -qq --no-install-recommends pgbouncer; then
	warn "apt-get install pgbouncer failed"
	exit 0
fi
if have_pgbouncer; then
	echo "install-bench-deps: installed pgbouncer"
else
	warn "pgbouncer still not found after installing"
fi
