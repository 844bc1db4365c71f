#!/usr/bin/env bash
# Carbyne's render API vs graphite-web 1.1.8 on the same whisper files: now the cases
# render-latency (this comparison, no ingest) and render-under-ingest (latency while plaintext
# is ingested) of tuning/experiments/ (see tuning/experiments/README.md); this wrapper is kept for
# the commands BENCHMARKS.md's earlier runs and loadgen/README.md name.
#   benches/render_vs_graphite_web.sh [SECONDS] [RUNS]      (defaults: 15 s, 2 rounds)
# Environment, passed on as the case's parameters: HOSTS, APPS, MAX_POINTS, CONNECTIONS,
# WORKERS, QUERIES; DATA (a directory a previous run built) as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--set RENDER_SECONDS="${1:-15}" --runs "${2:-2}")
for key in HOSTS APPS MAX_POINTS CONNECTIONS WORKERS QUERIES; do
    [ -n "${!key:-}" ] && args+=(--set "$key=${!key}")
done
exec tuning/experiments/run render-latency "${args[@]}"
