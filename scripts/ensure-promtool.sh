#!/usr/bin/env bash
# ensure-promtool.sh makes sure promtool, which checks and unit-tests the
# Prometheus rules in configs/prometheus/, is installed.
#
# It prints nothing and exits 0 when promtool is on $PATH. Otherwise, on
# Debian or Ubuntu, it installs the "prometheus" package (which carries
# promtool) with apt-get, as root or through sudo, without its recommended
# node exporter. Where it cannot install, it says what to run and exits 1.
#
# The package also brings a Prometheus server and, on a machine run by
# systemd, starts it on port 9090. Only promtool is wanted here, and it works
# offline, so a server that this script's install started is stopped and
# disabled again; one that was running before is left alone.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
	exit 0
fi

install_cmd="apt-get update && apt-get install -y --no-install-recommends prometheus"

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<-EOF
		ensure-promtool: promtool is not on \$PATH.
		Install Prometheus, which carries it, with your system's package
		manager (for example "brew install prometheus"), take promtool from a
		release archive at https://prometheus.io/download/, or build it:
		    go install github.com/prometheus/prometheus/cmd/promtool@latest
	EOF
	exit 1
fi

if [[ $EUID -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	cat >&2 <<-EOF
		ensure-promtool: promtool is not on \$PATH, and installing it needs root.
		Run as root:
		    $install_cmd
	EOF
	exit 1
fi

# systemd is the init only when this directory exists (sd_booted(3));
# elsewhere the package's SysV script starts and reports the server.
server_running() {
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		systemctl is-active --quiet prometheus.service 2>/dev/null
	elif [[ -x /etc/init.d/prometheus ]]; then
		/etc/init.d/prometheus status >/dev/null 2>&1
	else
		return 1
	fi
}

was_running=false
server_running && was_running=true

echo "ensure-promtool: installing promtool: $install_cmd" >&2
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

if ! $was_running && server_running; then
	echo "ensure-promtool: stopping and disabling the Prometheus server that the package started" >&2
	if [[ -d /run/systemd/system ]]; then
		${sudo[@]+"${sudo[@]}"} systemctl disable --now prometheus.service
	else
		${sudo[@]+"${sudo[@]}"} /etc/init.d/prometheus stop
		${sudo[@]+"${sudo[@]}"} update-rc.d prometheus disable
	fi
fi

if ! command -v promtool >/dev/null 2>&1; then
	echo "ensure-promtool: apt-get installed prometheus, but promtool is still not on \$PATH" >&2
	exit 1
fi
