#!/usr/bin/env bash
# ensure-chromium.sh makes sure a Chromium is installed for the console's
# browser tests (test/browser_test.go drives it headless through chromedp).
#
# It prints nothing and exits 0 when one is found: $INLET_CHROMIUM, or
# "chromium" or "chromium-browser" on $PATH. Otherwise, on Debian or Ubuntu,
# it installs the "chromium" package with apt-get (as root, or through
# sudo). Where it cannot install, it says what to run and exits 1.
set -euo pipefail

have_chromium() {
	if [[ -n "${INLET_CHROMIUM:-}" && -x "$INLET_CHROMIUM" ]]; then
		return 0
	fi
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have_chromium; then
	exit 0
fi

install_cmd="apt-get update && apt-get install -y chromium"

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<-EOF2
		ensure-chromium: no Chromium found (no chromium or chromium-browser on
		\$PATH, and \$INLET_CHROMIUM is not set to an executable).
		Install Chromium with your system's package manager (for example
		"brew install --cask chromium" or "dnf install chromium"), or set
		INLET_CHROMIUM to the path of a Chromium or Chrome binary.
	EOF2
	exit 1
fi

if [[ $EUID -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	cat >&2 <<-EOF2
		ensure-chromium: no Chromium found, and installing it needs root.
		Run as root:
		    $install_cmd
	EOF2
	exit 1
fi

echo "ensure-chromium: installing Chromium for the browser tests: $install_cmd" >&2
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

if ! have_chromium; then
	echo "ensure-chromium: apt-get installed chromium, but no chromium is on \$PATH" >&2
	exit 1
fi
