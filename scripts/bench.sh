#!/usr/bin/env bash
# bench.sh is `make bench`: it builds inlet and inlet-bench, then runs the
# load benchmark (cmd/inlet-bench run), which starts inlet on a temporary
# data directory (embedded PostgreSQL and NATS, or DATABASE_URL and NATS_URL
# when set), a bare Echo baseline server, the load generator and a sink that
# inlet forwards every event to in each phase's measurement with a
# destination, prints the tables and writes bench/results/<run>.json and
# <run>.cpu.pprof.
#
# The load generator is wrk (installed by scripts/ensure-wrk.sh when
# missing) with bench/wrk/signed.lua, unless -load go picks inlet-bench's
# own. bench/README.md explains both.
#
# Arguments go to inlet-bench run, for example:
#     scripts/bench.sh -rounds 5 -d 10s
#     scripts/bench.sh -before /tmp/inlet-old   # also measure another build
#     scripts/bench.sh -load go -rate 2000      # open loop at 2,000 req/s
# The benchmark times things; `make test` does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
if [[ -z "${DATABASE_URL:-}" ]]; then
	scripts/ensure-postgres.sh
fi
load=wrk
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	-load | --load) load=${args[i + 1]:-} ;;
	-load=* | --load=*) load=${args[i]#*=} ;;
	esac
done
if [[ $load == wrk ]]; then
	scripts/ensure-wrk.sh
fi
mkdir -p bin
"$GO" build -trimpath -o bin/inlet ./cmd/inlet
"$GO" build -trimpath -o bin/inlet-bench ./cmd/inlet-bench
exec bin/inlet-bench run -inlet bin/inlet -packs packs -results bench/results \
	-wrk-script bench/wrk/signed.lua "$@"
