#!/usr/bin/env bash
# Measures what cached points cost in memory: starts `carbyne serve` with its writers held back
# (one update per second, one create per minute, so everything sent stays in the cache), sends
# METRICS x POINTS plaintext points with carbyne-loadgen, and prints the growth of the resident
# set per point. Used for the memory budget in README.md; run it from the repository root:
#
#   cargo build --release --workspace
#   tuning/profiles/c3.xlarge/measure-cache-memory.sh 100000 10
#
# CARBYNE and LOADGEN name the binaries (default: target/release/...). Needs Linux (/proc).
set -euo pipefail
metrics=${1:?usage: $0 METRICS POINTS}
points=${2:?usage: $0 METRICS POINTS}
carbyne=${CARBYNE:-target/release/carbyne}
loadgen=${LOADGEN:-target/release/carbyne-loadgen}
work=$(mktemp -d)
pid=
stop() { if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap stop EXIT

mkdir -p "$work/conf"
cat > "$work/conf/carbon.conf" <<CONF
[cache]
LOCAL_DATA_DIR = $work/whisper
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 1
MAX_CREATES_PER_MINUTE = 1
ENABLE_STATSD = False
HTTP_PORT = 0
CACHE_QUERY_PORT = 0
CARBON_METRIC_INTERVAL = 0
CONF
printf '[default]\npattern = .*\nretentions = 10s:1d\n' > "$work/conf/storage-schemas.conf"

"$carbyne" serve --config "$work/conf/carbon.conf" --ephemeral-ports > "$work/out.txt" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'listening' "$work/out.txt" && break; sleep 0.1; done
port=$(grep -o 'plaintext-tcp=[0-9.:]*' "$work/out.txt" | sed 's/.*://')
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
sleep 1
before=$(rss_kib)
"$loadgen" plaintext --target "127.0.0.1:$port" --metrics "$metrics" --points "$points" --quiet > /dev/null
# The writers absorb what the receivers handed off within a few milliseconds; wait generously.
sleep 3
after=$(rss_kib)
total=$((metrics * points))
echo "metrics=$metrics points_per_metric=$points points=$total rss_growth_kib=$((after - before))" \
     "bytes_per_point=$(((after - before) * 1024 / total))"
