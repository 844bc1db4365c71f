#!/usr/bin/env bash
# Carbyne vs Debian's carbon-cache on the same plaintext burst: now the ingest cases of
# tuning/experiments/ (see tuning/experiments/README.md); this wrapper is kept for the commands
# BENCHMARKS.md's earlier runs name.
#   benches/ingest_vs_carbon.sh [METRICS] [POINTS] [RUNS]   (defaults: 10000 100 3)
# 10000 x 100 runs the case ingest-1m-new, 10000 x 1000 ingest-10m-new, other sizes
# ingest-1m-new with --set METRICS=... --set POINTS=... (recorded in its summary).
set -euo pipefail
cd "$(dirname "$0")/.."
METRICS=${1:-10000}; POINTS=${2:-100}; RUNS=${3:-3}
case "$METRICS x $POINTS" in
    "10000 x 100") exec tuning/experiments/run ingest-1m-new --runs "$RUNS" ;;
    "10000 x 1000") exec tuning/experiments/run ingest-10m-new --runs "$RUNS" ;;
    *) exec tuning/experiments/run ingest-1m-new --runs "$RUNS" --set METRICS="$METRICS" --set POINTS="$POINTS" ;;
esac
