#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for FUZZTIME (default 3s).
# Inputs that fail are written to testdata/fuzz/ by go test: commit them.
#
# Go's fuzzing coordinator before Go 1.27 can report a bare "context
# deadline exceeded" when -fuzztime ends while a worker is mid-call
# (go.dev/issue/75804): no input is written and nothing failed. Such a run
# is tried once more, and a second one like it is reported as a warning;
# any run that wrote an input, panicked or failed otherwise fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# deadline_only reports whether a failed fuzzing run's log shows nothing but
# the coordinator's deadline: no input written, no panic, no test failure.
deadline_only() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$1"
}
status=0 count=0
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	count=$((count + 1))
	result=ok
	for _ in 1 2; do
		if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; then
			result=ok
			break
		fi
		if deadline_only "$log"; then
			result=deadline
		else
			result=fail
			break
		fi
	done
	case $result in
	ok) echo "ok   fuzz $pkg $target ($fuzztime)" ;;
	deadline) echo "ok   fuzz $pkg $target ($fuzztime; twice stopped by the coordinator's deadline, go.dev/issue/75804)" ;;
	*)
		echo "FAIL fuzz $pkg $target"
		cat "$log"
		status=1
		;;
	esac
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' pkg cmd test 2>/dev/null | sed -E 's/:func /:/' | sort -u)
echo "fuzzed $count targets for $fuzztime each"
exit $status
