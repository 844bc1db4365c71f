#!/usr/bin/env bash
# Carbyne's statsd vs etsy statsd 0.9 on the same machine and the same UDP load: SECONDS of statsd
# lines from `carbyne-loadgen statsd` (closed loop: as fast as one sender goes, unless RATE is
# set), once with 1 line per datagram and once with 20, RUNS alternating runs of each (etsy,
# Carbyne, etsy, Carbyne, ...). Each run's seed is its number, so both servers get the same lines.
#
# Per run, of the server:
#   lines lost:      lines the loadgen's kernel took minus the server's own statsd.metrics_received,
#                    summed over every flush (etsy: read from its graphite backend's output, caught
#                    on a TCP socket; Carbyne: read from the whisper file
#                    stats_counts/statsd/metrics_received.wsp after a clean stop)
#   kernel drops:    datagrams the kernel dropped on the server's socket(s) (/proc/net/udp `drops`)
#   lines/s:         lines received / time from the start of sending until the server had read
#                    every queued datagram (/proc/net/udp rx_queue back to 0)
#   CPU s, peak RSS: GNU time, for the whole life of the server
# Both flush every FLUSH_MS; after the queue is empty the script waits two flushes, then stops the
# server, so every line the server read has been flushed. Both run their defaults otherwise: etsy's
# socket gets the kernel's default receive buffer, Carbyne asks for UDP_RECEIVE_BUFFER (32 MiB,
# granted up to net.core.rmem_max). Carbyne also writes every flushed metric to whisper, which etsy
# leaves to carbon-cache, so its CPU and memory include that.
#
# Usage: benches/statsd_vs_etsy.sh [SECONDS] [RUNS]        (defaults: 10 s, 3 runs)
# Environment:
#   ETSY_STATSD   etsy's package directory; else CARBYNE_ETSY_STATSD (as the reference tests read
#                 it); else /tmp/etsy/node_modules/statsd; else target/reference/etsy/node_modules/
#                 statsd, where .ci/run installs it and where this script installs it with npm
#                 when it is missing
#   LINES         also stop after this many lines (default: no bound)
#   RATE          offered lines/s, open loop (default: closed loop)
#   KEYS (1000), SENDERS (1), FLUSH_MS (2000), BATCHES ("1 20": lines per datagram),
#   IMPLS ("etsy carbyne": which servers, in the order run), PYTHON (python3)
# Raw runs: benches/results/statsd-SECONDSs[-rateR][-linesN].jsonl; summary: the same name, .md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_=${1:-10}; RUNS=${2:-3}; LINES=${LINES:-}; RATE=${RATE:-}
KEYS=${KEYS:-1000}; SENDERS=${SENDERS:-1}; FLUSH_MS=${FLUSH_MS:-2000}; BATCHES=${BATCHES:-1 20}
IMPLS=${IMPLS:-etsy carbyne}
PYTHON=${PYTHON:-python3}
out=benches/results; mkdir -p "$out"
name="statsd-${SECONDS_}s${RATE:+-rate$RATE}${LINES:+-lines$LINES}"; raw="$out/$name.jsonl"; : > "$raw"
bounds=(--duration "$SECONDS_")
[ -n "$LINES" ] && bounds+=(--lines "$LINES")
[ -n "$RATE" ] && bounds+=(--rate "$RATE")
command -v node >/dev/null || { echo "node is not installed (etsy statsd needs it)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is not installed" >&2; exit 1; }

cargo build --release -q -p carbyne -p carbyne-loadgen
bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release
CARBYNE=$bin/carbyne; LOADGEN=$bin/carbyne-loadgen

etsy_prefix=$(realpath "${CARGO_TARGET_DIR:-target}")/reference/etsy
ETSY_STATSD=${ETSY_STATSD:-${CARBYNE_ETSY_STATSD:-}}
if [ -z "$ETSY_STATSD" ]; then
    ETSY_STATSD=/tmp/etsy/node_modules/statsd
    [ -f "$ETSY_STATSD/stats.js" ] || ETSY_STATSD=$etsy_prefix/node_modules/statsd
fi
if [ ! -f "$ETSY_STATSD/stats.js" ]; then
    echo "etsy statsd not found at $ETSY_STATSD: installing statsd@0.9.0 under $etsy_prefix" >&2
    command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 1; }
    npm install --prefix "$etsy_prefix" --no-audit --no-fund --loglevel=error statsd@0.9.0 >&2
    ETSY_STATSD=$etsy_prefix/node_modules/statsd
fi
ETSY_VERSION=$(node -p "require('$ETSY_STATSD/package.json').version")

work=$(mktemp -d)
pids=() # processes of the current run still to be stopped (emptied after each run)
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# A TCP sink standing in for carbon: appends everything etsy's graphite backend sends to a file.
SINK_PY='
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
out, lock = open(sys.argv[2], "ab"), threading.Lock()
def take(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            with lock:
                out.write(data)
                out.flush()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=take, args=(conn,), daemon=True).start()
'

# Sums a statsd counter's flushed counts, from etsy's graphite output or a whisper file (read
# with struct, not with our code). Prints "sum flushes last_count".
SUM_PY='
import struct, sys
kind, path, name = sys.argv[1:4]
counts = []
if kind == "plaintext":
    for line in open(path, errors="replace"):
        f = line.split()
        if len(f) == 3 and f[0] == name:
            counts.append((int(f[2]), float(f[1])))
else:
    data = open(path, "rb").read()
    n_archives = struct.unpack(">LLfL", data[:16])[3]
    for a in range(n_archives):
        offset, _, n_points = struct.unpack(">LLL", data[16 + 12 * a: 28 + 12 * a])
        for i in range(n_points):
            ts, v = struct.unpack(">Ld", data[offset + 12 * i: offset + 12 * i + 12])
            if ts:
                counts.append((ts, v))
        break  # the first archive holds every point at 1 s
counts.sort()
print("%d %d %d" % (sum(v for _, v in counts), len(counts), counts[-1][1] if counts else -1))
'

# Bytes queued, drops and sockets over every UDP socket bound to port $1 (udp and udp6).
udp_stats() {
    local hex rx=0 drops=0 n=0 _sl local _rem _st queues _tr _rt _uid _to _inode _ref _ptr d
    hex=$(printf ':%04X' "$1")
    while read -r _sl local _rem _st queues _tr _rt _uid _to _inode _ref _ptr d _; do
        [ "${local: -5}" = "$hex" ] || continue
        rx=$((rx + 16#${queues#*:})); drops=$((drops + d)); n=$((n + 1))
    done < <(tail -q -n +2 /proc/net/udp /proc/net/udp6 2>/dev/null)
    echo "$rx $drops $n"
}

wait_udp_port() { # port
    for _ in $(seq 300); do
        read -r _ _ n < <(udp_stats "$1")
        [ "$n" -gt 0 ] && return 0
        sleep 0.1
    done
    return 1
}

wait_drained() { # port -> seconds since epoch when nothing was queued any more
    local rx
    for _ in $(seq 30000); do
        read -r rx _ _ < <(udp_stats "$1")
        [ "$rx" -eq 0 ] && { date +%s.%N; return 0; }
        sleep 0.01
    done
    echo "port $1 still has $rx bytes queued after 300 s" >&2
    date +%s.%N
}

start_etsy() { # dir port -> the server's pid in $server_pid, sink's in $sink_pid
    local d=$1 port=$2 gport=$(($2 + 1)) mport=$(($2 + 2))
    cat > "$d/config.js" <<CONF
{ port: $port, address: "127.0.0.1", mgmt_port: $mport, mgmt_address: "127.0.0.1",
  flushInterval: $FLUSH_MS, backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1", graphitePort: $gport, graphite: { legacyNamespace: true } }
CONF
    : > "$d/graphite.txt"
    "$PYTHON" -c "$SINK_PY" "$gport" "$d/graphite.txt" & sink_pid=$!; pids+=("$sink_pid")
    /usr/bin/time -f '%e %U %S %M' -o "$d/time" node "$ETSY_STATSD/stats.js" "$d/config.js" > "$d/out" 2>&1 &
    server_pid=$!; pids+=("$server_pid")
}

start_carbyne() { # dir port -> the server's pid in $server_pid
    local d=$1 port=$2
    cat > "$d/carbon.conf" <<CONF
[cache]
LOCAL_DATA_DIR = $d/whisper
LINE_RECEIVER_PORT = 0
PICKLE_RECEIVER_PORT = 0
ENABLE_UDP_LISTENER = False
ENABLE_STATSD = True
STATSD_INTERFACE = 127.0.0.1
STATSD_PORT = $port
STATSD_ADMIN_PORT = 0
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf

[statsd]
flushInterval = $FLUSH_MS
CONF
    # statsd's own counters at 1 s, so that every flush keeps its own point; the rest small.
    printf '[statsd_self]\npattern = ^stats_counts\\.statsd\\.\nretentions = 1s:1h\n\n[carbon]\npattern = ^carbon\\.\nretentions = 60:1d\n\n[all]\npattern = .*\nretentions = 60s:1h\n' \
        > "$d/storage-schemas.conf"
    /usr/bin/time -f '%e %U %S %M' -o "$d/time" "$CARBYNE" serve --config "$d/carbon.conf" > "$d/out" 2>&1 &
    server_pid=$!; pids+=("$server_pid")
    for _ in $(seq 300); do
        grep -q 'listening' "$d/out" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep 'listening' "$d/out" 2>/dev/null | grep -q "statsd-udp=127.0.0.1:$port"; then
        echo "carbyne did not report statsd-udp=127.0.0.1:$port (no statsd listener in this build?):" >&2
        cat "$d/out" >&2
        exit 1
    fi
}

stop() { # pid of /usr/bin/time: SIGTERM to the server under it, then wait for both
    local child
    child=$(pgrep -P "$1" || true)
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
    wait "$1" 2>/dev/null || true
}

one_run() { # impl run lines_per_datagram
    local impl=$1 run=$2 lpd=$3 d="$work/$1-$2-$3" port t0 t_drained rx drops n_socks received packets
    mkdir -p "$d"
    if [ "$impl" = etsy ]; then port=28125; start_etsy "$d" $port; else port=38125; start_carbyne "$d" $port; fi
    wait_udp_port $port || { echo "$impl: nothing listens on UDP $port" >&2; cat "$d/out" >&2; exit 1; }
    t0=$(date +%s.%N)
    "$LOADGEN" statsd --target 127.0.0.1:$port "${bounds[@]}" --keys "$KEYS" --senders "$SENDERS" \
        --lines-per-datagram "$lpd" --seed "$run" --json --quiet > "$d/loadgen.json" || true
    t_drained=$(wait_drained $port)
    read -r rx drops n_socks < <(udp_stats $port)
    # Two flushes after the queue emptied: every line the server read has been flushed.
    sleep "$(awk -v ms="$FLUSH_MS" 'BEGIN { print 2 * ms / 1000 + 0.5 }')"
    stop "$server_pid"
    if [ "$impl" = etsy ]; then
        kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true
        received=$("$PYTHON" -c "$SUM_PY" plaintext "$d/graphite.txt" stats_counts.statsd.metrics_received)
        packets=$("$PYTHON" -c "$SUM_PY" plaintext "$d/graphite.txt" stats_counts.statsd.packets_received)
    else
        received=$("$PYTHON" -c "$SUM_PY" whisper "$d/whisper/stats_counts/statsd/metrics_received.wsp" -)
        packets=$("$PYTHON" -c "$SUM_PY" whisper "$d/whisper/stats_counts/statsd/packets_received.wsp" -)
    fi
    pids=()
    # GNU time prints "Command terminated by signal 15" first when the server stops on SIGTERM.
    read -r _wall user sys rss_kb < <(tail -n 1 "$d/time")
    "$PYTHON" - "$impl" "$run" "$lpd" "$d/loadgen.json" "$t0" "$t_drained" "$drops" "$n_socks" \
        "$received" "$packets" "$user" "$sys" "$rss_kb" <<'PY' | tee -a "$raw"
import json, sys
impl, run, lpd, loadgen, t0, t_drained, drops, n_socks, received, packets, user, sys_s, rss_kb = sys.argv[1:]
lg = json.load(open(loadgen))
lines, flushes, last = (int(x) for x in received.split())
pkts = int(packets.split()[0])
drain_s = float(t_drained) - float(t0)
print(json.dumps({
    "impl": impl, "run": int(run), "lines_per_datagram": int(lpd),
    "lines_sent": lg["lines_sent"], "datagrams_sent": lg["datagrams_sent"],
    "send_s": lg["send_elapsed_s"], "sent_lines_per_s": lg["sent_lines_per_s"],
    "lines_received": lines, "datagrams_received": pkts, "flushes": flushes, "last_flush_count": last,
    "lines_lost": lg["lines_sent"] - lines, "loss_pct": 100.0 * (lg["lines_sent"] - lines) / max(lg["lines_sent"], 1),
    "kernel_drops": int(drops), "sockets": int(n_socks), "drained_s": round(drain_s, 3),
    "processed_lines_per_s": lines / drain_s if drain_s > 0 else None,
    "cpu_s": round(float(user) + float(sys_s), 2), "rss_mb": round(int(rss_kb) / 1024, 1),
    "loadgen": lg}))
PY
}

for run in $(seq "$RUNS"); do
    for lpd in $BATCHES; do
        for impl in $IMPLS; do one_run "$impl" "$run" "$lpd"; done
    done
done

"$PYTHON" - "$raw" "${bounds[*]}" "$KEYS" "$SENDERS" "$FLUSH_MS" "$ETSY_VERSION" <<'PY' | tee "$out/$name.md"
import json, os, platform, statistics, subprocess, sys
path, bounds, keys, senders, flush_ms, etsy_version = sys.argv[1:]
runs = [json.loads(l) for l in open(path) if l.strip()]

def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"

def fmt(v):
    return "%.3g" % v if abs(v) < 1000 else "{:,.0f}".format(v)

fields = [("sent_lines_per_s", "lines/s sent (loadgen)"), ("loss_pct", "lines lost (%)"),
          ("kernel_drops", "kernel drops (datagrams)"), ("processed_lines_per_s", "lines/s processed"),
          ("cpu_s", "CPU seconds"), ("rss_mb", "peak RSS (MiB)")]
n_runs = max((r["run"] for r in runs), default=0)
loop = "open loop" if "--rate" in bounds else "closed loop"
print("Load: `carbyne-loadgen statsd %s` over %s keys (mix c=40,ms=30,g=20,s=10), %s UDP sender(s), %s; "
      "flushInterval %s ms; %d runs each, alternating." % (bounds, keys, senders, loop, flush_ms, n_runs))
for lpd in sorted({r["lines_per_datagram"] for r in runs}):
    print()
    print("#### %d line%s per datagram" % (lpd, "" if lpd == 1 else "s"))
    print()
    print("| measure | etsy statsd median (range) | Carbyne median (range) | Carbyne / etsy |")
    print("|---|---:|---:|---:|")
    for key, label in fields:
        med, cells = {}, []
        for impl in ("etsy", "carbyne"):
            values = [r[key] for r in runs if r["impl"] == impl and r["lines_per_datagram"] == lpd and r[key] is not None]
            med[impl] = statistics.median(values) if values else float("nan")
            cells.append("%s (%s - %s)" % (fmt(med[impl]), fmt(min(values)), fmt(max(values))) if values else "-")
        ok = all(v == v for v in med.values()) and med["etsy"] != 0
        ratio = "%.2fx" % (med["carbyne"] / med["etsy"]) if ok else "-"
        print("| %s | %s | %s | %s |" % (label, cells[0], cells[1], ratio))
flushed = all(r["last_flush_count"] == 0 for r in runs)
print()
print("Every server's last flush counted 0 lines (all it read was flushed): %s." % ("yes" if flushed else "NO (see the raw file)"))
print("Machine: %s, %d cores; kernel %s; net.core.rmem_max %s, rmem_default %s; %s; node %s; etsy statsd %s; commit %s." % (
    cpu(), os.cpu_count() or 0, platform.release(), cmd(["sysctl", "-n", "net.core.rmem_max"]),
    cmd(["sysctl", "-n", "net.core.rmem_default"]), cmd(["rustc", "--version"]), cmd(["node", "--version"]),
    etsy_version, cmd(["git", "rev-parse", "--short", "HEAD"])))
PY
