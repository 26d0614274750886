#!/usr/bin/env bash
# check-alerts.sh checks the Prometheus alerting rules in configs/prometheus/
# (syntax, expressions, templates) and runs their unit tests with promtool.
# promtool evaluates everything itself: no Prometheus server is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-promtool.sh
promtool check rules configs/prometheus/inlet-alerts.yaml
promtool test rules configs/prometheus/inlet-alerts.test.yaml
