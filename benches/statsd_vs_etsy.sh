#!/usr/bin/env bash
# Carbyne's statsd vs etsy statsd 0.9 on the same UDP load: now the case statsd-full-speed of
# tuning/experiments/ (see tuning/experiments/README.md); this wrapper is kept for the commands
# BENCHMARKS.md's earlier runs and loadgen/README.md name.
#   benches/statsd_vs_etsy.sh [SECONDS] [RUNS]       (defaults: 10 s, 3 runs)
# Environment, passed on as the case's parameters: RATE (open loop, lines/s), LINES, KEYS,
# SENDERS, FLUSH_MS, BATCHES ("1 20").
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--set DURATION="${1:-10}" --runs "${2:-3}")
for key in RATE LINES KEYS SENDERS FLUSH_MS BATCHES; do
    [ -n "${!key:-}" ] && args+=(--set "$key=${!key}")
done
exec tuning/experiments/run statsd-full-speed "${args[@]}"
