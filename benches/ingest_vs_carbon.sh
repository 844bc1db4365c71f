#!/usr/bin/env bash
# Carbyne vs Debian's carbon-cache (graphite-carbon) on the same machine and the same load:
# METRICS metrics x POINTS points over 4 TCP connections, RUNS alternating runs of each.
#   accepted points/s: until the server has read everything (loadgen: half-close, wait for close)
#   durable points/s:  until every point is in whisper (verify_whisper.py polled on the files)
#   CPU seconds and peak RSS of the server (GNU time)
# Both with MAX_UPDATES_PER_SECOND and MAX_CREATES_PER_MINUTE = inf, MAX_CACHE_SIZE = inf.
# Usage: benches/ingest_vs_carbon.sh [METRICS] [POINTS] [RUNS]   (needs graphite-carbon, time)
set -euo pipefail
cd "$(dirname "$0")/.."
METRICS=${1:-10000}; POINTS=${2:-100}; RUNS=${3:-3}; INTERVAL=10
out=benches/results; mkdir -p "$out"
raw="$out/ingest-${METRICS}x${POINTS}.jsonl"; : > "$raw"
cargo build --release -q -p carbyne -p carbyne-loadgen
bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release
CARBYNE=$bin/carbyne; LOADGEN=$bin/carbyne-loadgen
command -v carbon-cache >/dev/null || { echo "graphite-carbon is not installed" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"; pkill -f "$work" || true' EXIT

write_conf() { # dir line_port pickle_port
    cat > "$1/carbon.conf" <<CONF
[cache]
LOCAL_DATA_DIR = $1/whisper
LOG_DIR = $1/log
PID_DIR = $1
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $2
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $3
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $(( $3 + 5000 ))
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LOG_UPDATES = False
LOG_CREATES = False
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
CONF
    printf '[carbon]\npattern = ^carbon\\.\nretentions = 60:1d\n\n[all]\npattern = .*\nretentions = 10s:3h\n' > "$1/storage-schemas.conf"
}

wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

one_run() { # impl run
    local impl=$1 d="$work/$1-$2" port pid start t0 t1 t2
    mkdir -p "$d/log"; start=$(( ($(date +%s) - POINTS * INTERVAL - 60) / INTERVAL * INTERVAL ))
    if [ "$impl" = carbyne ]; then
        port=23003; write_conf "$d" $port 23004
        /usr/bin/time -f '%e %U %S %M' -o "$d/time" "$CARBYNE" serve --config "$d/carbon.conf" > "$d/out" 2>&1 &
    else
        port=24003; write_conf "$d" $port 24004
        /usr/bin/time -f '%e %U %S %M' -o "$d/time" carbon-cache --config="$d/carbon.conf" --nodaemon \
            --logdir="$d/log" --pidfile="$d/carbon.pid" start > "$d/out" 2>&1 &
    fi
    pid=$!; wait_port $port
    t0=$(date +%s.%N)
    "$LOADGEN" plaintext --target 127.0.0.1:$port --metrics "$METRICS" --points "$POINTS" --start "$start" \
        --interval $INTERVAL --connections 4 --quiet --json --accept-timeout 600 > "$d/loadgen.json"
    t1=$(date +%s.%N)
    until /usr/bin/python3 benches/reference/verify_whisper.py "$d/whisper" loadgen "$METRICS" "$POINTS" "$start" $INTERVAL > "$d/verify.json"; do
        sleep 0.2
        if (( $(date +%s) - ${t1%.*} > 900 )); then echo "$impl: not durable after 900 s: $(cat "$d/verify.json")" >&2; break; fi
    done
    t2=$(date +%s.%N)
    pkill -TERM -P $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
    # GNU time prints "Command terminated by signal 15" first when the server stops on SIGTERM.
    read -r _wall user sys rss_kb < <(tail -n 1 "$d/time")
    awk -v impl="$impl" -v run="$2" -v n=$((METRICS * POINTS)) -v t0="$t0" -v t1="$t1" -v t2="$t2" \
        -v user="$user" -v sys="$sys" -v rss="$rss_kb" -v verify="$(cat "$d/verify.json")" 'BEGIN {
        printf "{\"impl\":\"%s\",\"run\":%d,\"points\":%d,\"accept_s\":%.6f,\"durable_s\":%.6f,\"cpu_s\":%.2f,\"rss_mb\":%.1f,\"verify\":%s}\n",
            impl, run, n, t1 - t0, t2 - t0, user + sys, rss / 1024, verify }' | tee -a "$raw"
    rm -rf "$d/whisper"
}

for run in $(seq "$RUNS"); do
    one_run carbyne "$run"
    one_run carbon "$run"
done
/usr/bin/python3 benches/reference/summarize_ingest.py "$raw" "$METRICS" "$POINTS" | tee "$out/ingest-${METRICS}x${POINTS}.md"
