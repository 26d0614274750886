#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for FUZZTIME (default 3s).
# Inputs that fail are written to testdata/fuzz/ by go test: commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0 count=0
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	count=$((count + 1))
	if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; then
		echo "FAIL fuzz $pkg $target"
		cat "$log"
		status=1
	else
		echo "ok   fuzz $pkg $target ($fuzztime)"
	fi
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' pkg cmd test 2>/dev/null | sed -E 's/:func /:/' | sort -u)
echo "fuzzed $count targets for $fuzztime each"
exit $status
