#!/usr/bin/env bash
# ensure-wrk.sh makes sure wrk, the HTTP load generator that `make bench`
# measures with by default, is installed.
#
# It prints nothing and exits 0 when wrk is on $PATH. Otherwise, on Debian
# or Ubuntu, it installs the "wrk" package with apt-get (as root, or through
# sudo). Where it cannot install, it says what to run and exits 1.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
	exit 0
fi

install_cmd="apt-get update && apt-get install -y wrk"

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<-EOT
		ensure-wrk: wrk is not on \$PATH.
		Install it with your system's package manager (for example
		"brew install wrk" or "dnf install wrk"), or build it from
		https://github.com/wg/wrk, or run the benchmark with its own
		Go load generator: scripts/bench.sh -load go
	EOT
	exit 1
fi

if [[ $EUID -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	cat >&2 <<-EOT
		ensure-wrk: wrk is not installed, and installing it needs root.
		Run as root:
		    $install_cmd
	EOT
	exit 1
fi

echo "ensure-wrk: installing wrk: $install_cmd" >&2
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk

if ! command -v wrk >/dev/null 2>&1; then
	echo "ensure-wrk: apt-get installed wrk, but it is not on \$PATH" >&2
	exit 1
fi
