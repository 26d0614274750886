#!/usr/bin/env bash
# ensure-postgres.sh makes sure the PostgreSQL server binaries (initdb,
# postgres, pg_ctl) that inlet's embedded database runs are installed.
#
# It prints nothing and exits 0 when they are present: in $INLET_PG_BIN,
# under /usr/lib/postgresql/*/bin, or on $PATH. Otherwise, on Debian or
# Ubuntu, it installs the "postgresql" package with apt-get (as root, or
# through sudo). Where it cannot install, it says what to run and exits 1.
# Installing the package may also start a system cluster on port 5432;
# inlet does not need it, but the tests will use it if it lets them in.
set -euo pipefail

have_server_binaries() {
	local d
	if [[ -n "${INLET_PG_BIN:-}" && -x "$INLET_PG_BIN/pg_ctl" ]]; then
		return 0
	fi
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/pg_ctl" ]] && return 0
	done
	command -v pg_ctl >/dev/null 2>&1
}

if have_server_binaries; then
	exit 0
fi

install_cmd="apt-get update && apt-get install -y postgresql"

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<-EOF
		ensure-postgres: no PostgreSQL server binaries found (no pg_ctl under
		/usr/lib/postgresql/*/bin, in \$INLET_PG_BIN or on \$PATH).
		Install the PostgreSQL server with your system's package manager
		(for example "brew install postgresql@16" or "dnf install postgresql-server"),
		set INLET_PG_BIN to the directory holding initdb and postgres,
		or point inlet at an existing server with DATABASE_URL.
	EOF
	exit 1
fi

if [[ $EUID -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	cat >&2 <<-EOF
		ensure-postgres: no PostgreSQL server binaries found, and installing them needs root.
		Run as root:
		    $install_cmd
	EOF
	exit 1
fi

echo "ensure-postgres: installing the PostgreSQL server: $install_cmd" >&2
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql

if ! have_server_binaries; then
	echo "ensure-postgres: apt-get installed postgresql, but no pg_ctl is under /usr/lib/postgresql/*/bin" >&2
	exit 1
fi
