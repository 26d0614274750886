#!/usr/bin/env bash
# check-alerts.sh checks the Prometheus alerting rules in configs/prometheus/
# (syntax, expressions, templates), runs their unit tests, and checks that
# every query of the Grafana dashboard is valid PromQL, all with promtool.
# promtool evaluates everything itself: no Prometheus server is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-promtool.sh

promtool check rules configs/prometheus/inlet-alerts.yaml
promtool test rules configs/prometheus/inlet-alerts.test.yaml

# The dashboard's queries become recording rules for promtool to parse, with
# Grafana's variables replaced by values. Grafana writes one "expr" a line;
# the count below fails the check if that ever stops being so.
dashboard=configs/grafana/inlet-dashboard.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
{
	printf 'groups:\n  - name: inlet-dashboard-queries\n    rules:\n'
	while IFS= read -r expr; do
		n=$((n + 1))
		printf '      - record: dashboard:query_%d\n        expr: |\n          %s\n' "$n" "$expr"
	done < <(sed -n 's/^ *"expr": "\(.*\)",\{0,1\}$/\1/p' "$dashboard" |
		sed -e 's/\\"/"/g' -e 's/\\u003c/</g' -e 's/\\u003e/>/g' -e 's/\\u0026/\&/g' -e 's/\\\\/\\/g' \
			-e 's/\$__rate_interval/5m/g' -e 's/\$__interval/1m/g' -e 's/\$__range/1h/g' \
			-e 's/\${\{0,1\}[A-Za-z_][A-Za-z0-9_]*}\{0,1\}/.*/g')
} >"$tmp/dashboard-queries.yaml"
want=$(grep -c '"expr":' "$dashboard")
if [[ $n -ne $want ]]; then
	echo "check-alerts: read $n queries from $dashboard, but it has $want \"expr\" keys" >&2
	exit 1
fi
echo "Checking the $n queries of $dashboard"
promtool check rules "$tmp/dashboard-queries.yaml"
