#!/usr/bin/env bash
# Carbyne's render API vs graphite-web 1.1.8 (Debian's graphite-web, served by gunicorn as
# operators serve graphite.wsgi) on the same whisper directory, the same machine and the same
# requests, and then Carbyne's ingest with and without a concurrent render load.
#
# Data (python3-whisper, 10s:1d, 24 h of points ending when the script starts):
#   bench.host{0..HOSTS-1}.cpu        gauges in [0, 100)
#   bench.app{0..APPS-1}.requests     monotonic counters (for perSecond)
# Queries, as Grafana's Graphite data source sends them (POST form, from=-24h, until=now,
# format=json, maxDataPoints=MAX_POINTS):
#   a  bench.host1.cpu                                   one series
#   b  sumSeries(bench.host*.cpu)                        HOSTS series summed
#   c  aliasByNode(perSecond(bench.app*.requests),1)     APPS series
# Render latency: `carbyne-loadgen render`, closed loop, for each of CONNECTIONS concurrent
# clients, each query on each server for SECONDS seconds (after a warm-up of one request per
# client that is not counted), RUNS rounds alternating servers (graphite-web, Carbyne,
# graphite-web, ...). Before timing, each query is asked of both servers once with absolute
# from/until and the answers compared (series names, timestamps, values to 1e-9 relative).
#
# Ingest under render load: INGEST_RUNS pairs, alternating, of `carbyne-loadgen plaintext`
# (INGEST_METRICS metrics x INGEST_POINTS points over 4 connections, closed loop, stopped after
# INGEST_SECONDS) against a fresh `carbyne serve` on the same directory: alone, and with query b
# asked in a loop by one client for the whole ingest. Reported: accepted points/s (loadgen:
# points sent / time until the server had read them all) and the renders done meanwhile.
#
# Servers:
#   graphite-web: gunicorn, WORKERS sync workers (default 4: two per core), graphite.wsgi,
#     its defaults otherwise (no memcached, so no render cache; CARBONLINK_HOSTS empty, so no
#     carbon-cache is asked), in a settings module of its own pointing WHISPER_DIR at the data.
#   Carbyne: `carbyne serve --ephemeral-ports`, ingest on (plaintext, pickle), HTTP on, its
#     defaults otherwise (HTTP_THREADS 2, ingest threads one per core, 1 writer).
#
# Usage: benches/render_vs_graphite_web.sh [SECONDS] [RUNS]      (defaults: 20 s, 3 rounds)
# Environment: HOSTS (1000), APPS (100), MAX_POINTS (1000), CONNECTIONS ("1 4"), WORKERS (4),
#   QUERIES ("a b c"), INGEST_METRICS (10000), INGEST_POINTS (1000), INGEST_SECONDS (10),
#   INGEST_RUNS (3; 0 skips the ingest part), DATA (an existing whisper directory built by a
#   previous run with the same HOSTS and APPS: reused instead of built), PYTHON (/usr/bin/python3)
# Raw results: benches/results/render-latency.jsonl, render-ingest.jsonl; summary: render.md.
# Needs: graphite-web, python3-whisper, gunicorn (apt-get install -y graphite-web gunicorn).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_=${1:-20}; RUNS=${2:-3}
HOSTS=${HOSTS:-1000}; APPS=${APPS:-100}; MAX_POINTS=${MAX_POINTS:-1000}
CONNECTIONS=${CONNECTIONS:-1 4}; WORKERS=${WORKERS:-4}; QUERIES=${QUERIES:-a b c}
INGEST_METRICS=${INGEST_METRICS:-10000}; INGEST_POINTS=${INGEST_POINTS:-1000}
INGEST_SECONDS=${INGEST_SECONDS:-10}; INGEST_RUNS=${INGEST_RUNS:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
out=benches/results; mkdir -p "$out"
raw_latency="$out/render-latency.jsonl"; raw_ingest="$out/render-ingest.jsonl"

"$PYTHON" -c 'import whisper' 2>/dev/null || { echo "python3-whisper is not installed" >&2; exit 1; }
"$PYTHON" -c 'import graphite' 2>/dev/null || { echo "graphite-web is not installed" >&2; exit 1; }
GUNICORN=$(command -v gunicorn || true)
[ -n "$GUNICORN" ] || { echo "gunicorn is not installed (apt-get install -y gunicorn)" >&2; exit 1; }

work=$(mktemp -d)
pids=() # servers and background loads still to be stopped
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The binaries are copied, so that a build in the same target directory during the run (another
# checkout's, or CI's) cannot change what is measured, and the commit is taken when they are built.
cargo build --release -q -p carbyne -p carbyne-loadgen
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
changed=$(git status --porcelain --untracked-files=no 2>/dev/null | awk '{print $NF}' | cut -d/ -f1-2 | sort -u | paste -sd, - || true)
[ -n "$changed" ] && commit="$commit (uncommitted changes in ${changed//,/, })"
bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release
mkdir -p "$work/bin"; cp "$bin/carbyne" "$bin/carbyne-loadgen" "$work/bin/"
CARBYNE=$work/bin/carbyne; LOADGEN=$work/bin/carbyne-loadgen

query_expr() {
    case $1 in
        a) echo 'bench.host1.cpu' ;;
        b) echo 'sumSeries(bench.host*.cpu)' ;;
        c) echo 'aliasByNode(perSecond(bench.app*.requests),1)' ;;
        *) echo "unknown query $1" >&2; exit 1 ;;
    esac
}

# ---- data -------------------------------------------------------------------------------------
BUILD_PY='
import os, random, sys, time, whisper
root, hosts, apps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
step, n = 10, 8640
now = int(time.time()) // step * step
stamps = [now - (n - 1 - i) * step for i in range(n)]
rng = random.Random(1)
def make(path, values):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, [(step, n)], xFilesFactor=0.5, aggregationMethod="average")
    whisper.update_many(path, list(zip(stamps, values)), now=now + 1)
for h in range(hosts):
    make(os.path.join(root, "bench", "host%d" % h, "cpu.wsp"), [rng.random() * 100 for _ in stamps])
for a in range(apps):
    total, values = rng.randrange(10**6), []
    for _ in stamps:
        total += rng.randrange(1000)
        values.append(total)
    make(os.path.join(root, "bench", "app%d" % a, "requests.wsp"), values)
open(os.path.join(root, "BUILT_AT"), "w").write("%d\n" % now)
'
if [ -n "${DATA:-}" ]; then
    whisper_dir=$(realpath "$DATA")
    [ -f "$whisper_dir/BUILT_AT" ] || { echo "$whisper_dir was not built by this script" >&2; exit 1; }
else
    whisper_dir=$work/whisper
    echo "building $HOSTS + $APPS whisper files under $whisper_dir" >&2
    t0=$(date +%s)
    "$PYTHON" -c "$BUILD_PY" "$whisper_dir" "$HOSTS" "$APPS"
    echo "built in $(( $(date +%s) - t0 )) s" >&2
fi
built_at=$(cat "$whisper_dir/BUILT_AT")

# ---- servers ----------------------------------------------------------------------------------
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

start_graphite_web() { # -> $gw_url, $gw_pid
    local d=$work/graphite-web port=28080
    mkdir -p "$d/log"
    cat > "$d/bench_graphite_settings.py" <<PY
SECRET_KEY = 'carbyne-render-bench'
ALLOWED_HOSTS = ['*']
STORAGE_DIR = '$d'
WHISPER_DIR = '$whisper_dir'
LOG_DIR = '$d/log'
INDEX_FILE = '$d/index'
CARBONLINK_HOSTS = []
DATABASES = {'default': {'NAME': '$d/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
PY
    GRAPHITE_SETTINGS_MODULE=bench_graphite_settings DJANGO_SETTINGS_MODULE=graphite.settings PYTHONPATH=$d \
        "$GUNICORN" --workers "$WORKERS" --worker-class sync --timeout 600 --bind 127.0.0.1:$port \
        --chdir "$d" graphite.wsgi:application > "$d/out" 2>&1 &
    gw_pid=$!; pids+=("$gw_pid")
    wait_port $port || { echo "gunicorn did not listen on $port:" >&2; cat "$d/out" >&2; exit 1; }
    gw_url=http://127.0.0.1:$port
}

write_carbyne_conf() { # dir
    cat > "$1/carbon.conf" <<CONF
[cache]
LOCAL_DATA_DIR = $whisper_dir
LINE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
ENABLE_UDP_LISTENER = False
ENABLE_STATSD = False
HTTP_INTERFACE = 127.0.0.1
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
CONF
    # bench.* already exist (10s:1d); the ingest load's metrics are created at 10s:3h.
    printf '[carbon]\npattern = ^carbon\\.\nretentions = 60:1d\n\n[bench]\npattern = ^bench\\.\nretentions = 10s:1d\n\n[all]\npattern = .*\nretentions = 10s:3h\n' \
        > "$1/storage-schemas.conf"
}

start_carbyne() { # dir -> $cb_url, $cb_line, $cb_pid
    local d=$1 listening
    mkdir -p "$d"; write_carbyne_conf "$d"
    "$CARBYNE" serve --ephemeral-ports --config "$d/carbon.conf" > "$d/out" 2>&1 &
    cb_pid=$!; pids+=("$cb_pid")
    for _ in $(seq 600); do
        grep -q 'listening' "$d/out" 2>/dev/null && break
        kill -0 "$cb_pid" 2>/dev/null || break
        sleep 0.1
    done
    listening=$(grep 'listening' "$d/out" || true)
    cb_url=http://$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<< "$listening")
    cb_line=$(sed -n 's/.* plaintext-tcp=\([^ ]*\).*/\1/p' <<< "$listening")
    if [ "$cb_url" = http:// ] || [ "$cb_url" = http://off ] || [ -z "$cb_line" ]; then
        echo "carbyne did not report its http= and plaintext-tcp= addresses:" >&2; cat "$d/out" >&2; exit 1
    fi
    # The metric index is loaded before "listening"; wait until the HTTP side answers.
    wait_port "${cb_url##*:}"
}

stop_pid() { # pid: SIGTERM, then wait for a clean exit
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=()
    for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    pids=("${keep[@]}")
}

render() { # url query connections [loadgen flags...]: one loadgen render run, JSON on stdout
    local url=$1 q=$2 c=$3; shift 3
    "$LOADGEN" render --url "$url" --query "$(query_expr "$q")" --from=-24h --until=now --format=json \
        --max-data-points "$MAX_POINTS" --connections "$c" --timeout 600 --json --quiet "$@"
}

# ---- the same answers -------------------------------------------------------------------------
COMPARE_PY='
import json, sys, urllib.parse, urllib.request
gw, cb, expr, frm, until, points = sys.argv[1:7]
body = urllib.parse.urlencode({"target": expr, "from": frm, "until": until, "format": "json",
                               "maxDataPoints": points}).encode()
def get(url):
    with urllib.request.urlopen(url + "/render", data=body, timeout=600) as r:
        return json.load(r)
a, b = get(gw), get(cb)
problems = []
if [s["target"] for s in a] != [s["target"] for s in b]:
    problems.append("targets differ: %r vs %r" % ([s["target"] for s in a][:3], [s["target"] for s in b][:3]))
n_points = n_values = 0
for sa, sb in zip(a, b):
    pa, pb = sa["datapoints"], sb["datapoints"]
    if [p[1] for p in pa] != [p[1] for p in pb]:
        problems.append("%s: timestamps differ (%d vs %d points)" % (sa["target"], len(pa), len(pb)))
        continue
    for (va, t), (vb, _) in zip(pa, pb):
        n_points += 1
        if va is None or vb is None:
            if (va is None) != (vb is None):
                problems.append("%s at %d: %r vs %r" % (sa["target"], t, va, vb))
            continue
        n_values += 1
        if abs(va - vb) > 1e-9 * max(abs(va), abs(vb), 1.0):
            problems.append("%s at %d: %r vs %r" % (sa["target"], t, va, vb))
print(json.dumps({"series": len(a), "points": n_points, "values": n_values, "same": not problems,
                  "problems": problems[:5]}))
'

# ---- render latency ---------------------------------------------------------------------------
: > "$raw_latency"
start_graphite_web
start_carbyne "$work/carbyne-render"
echo "graphite-web (gunicorn, $WORKERS workers) at $gw_url; carbyne at $cb_url" >&2

# Every gunicorn worker imports graphite-web's modules on its first request.
render "$gw_url" a "$WORKERS" --requests $((4 * WORKERS)) > /dev/null || true
render "$cb_url" a 1 --requests 4 > /dev/null || true

declare -A same
for q in $QUERIES; do
    same[$q]=$("$PYTHON" -c "$COMPARE_PY" "$gw_url" "$cb_url" "$(query_expr "$q")" \
        $((built_at - 86400)) "$built_at" "$MAX_POINTS")
    echo "query $q: $(query_expr "$q"): ${same[$q]}" >&2
done

one_render_run() { # impl url run query connections
    local impl=$1 url=$2 run=$3 q=$4 c=$5 load_before load_after json
    render "$url" "$q" "$c" --requests "$c" > /dev/null || true
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    json=$(render "$url" "$q" "$c" --duration "$SECONDS_" || true)
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    [ -n "$json" ] || { echo "$impl: loadgen printed no report for query $q" >&2; exit 1; }
    "$PYTHON" - "$impl" "$run" "$q" "$(query_expr "$q")" "$c" "$load_before" "$load_after" "$json" "${same[$q]}" \
        <<'PY' | tee -a "$raw_latency"
import json, sys
impl, run, q, expr, c, before, after, lg, same = sys.argv[1:]
lg = json.loads(lg)
lat = lg["latency_ms"]
print(json.dumps({"impl": impl, "run": int(run), "query": q, "expr": expr, "connections": int(c),
    "responses_200": lg["responses_200"], "non_200": lg["non_200"], "failures": lg["failures"],
    "requests_per_s": lg["requests_per_s"], "p50_ms": lat["p50"], "p90_ms": lat["p90"],
    "p99_ms": lat["p99"], "max_ms": lat["max"], "body_bytes": lg["body_bytes"],
    "loadavg_before": before, "loadavg_after": after, "same_answer": json.loads(same)["same"],
    "loadgen": lg}))
PY
}

for run in $(seq "$RUNS"); do
    for c in $CONNECTIONS; do
        for q in $QUERIES; do
            one_render_run graphite-web "$gw_url" "$run" "$q" "$c"
            one_render_run carbyne "$cb_url" "$run" "$q" "$c"
        done
    done
done
stop_pid "$gw_pid"
stop_pid "$cb_pid"

# ---- ingest with and without render load ------------------------------------------------------
: > "$raw_ingest"
one_ingest_run() { # mode run
    local mode=$1 run=$2 d="$work/carbyne-ingest-$1-$2" start render_pid="" load_before load_after
    start=$(( ($(date +%s) - INGEST_POINTS * 10 - 60) / 10 * 10 ))
    start_carbyne "$d"
    if [ "$mode" = with-render ]; then
        render "$cb_url" b 1 --duration $((INGEST_SECONDS + 2)) > "$d/render.json" &
        render_pid=$!; pids+=("$render_pid")
        sleep 1
    fi
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    "$LOADGEN" plaintext --target "$cb_line" --metrics "$INGEST_METRICS" --points "$INGEST_POINTS" \
        --start "$start" --interval 10 --connections 4 --duration "$INGEST_SECONDS" --accept-timeout 600 \
        --quiet --json > "$d/ingest.json"
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ -n "$render_pid" ]; then
        wait "$render_pid" || true
        local keep=(); for pid in "${pids[@]}"; do [ "$pid" = "$render_pid" ] || keep+=("$pid"); done; pids=("${keep[@]}")
    else
        echo '{}' > "$d/render.json"
    fi
    stop_pid "$cb_pid"
    rm -rf "$whisper_dir/loadgen"
    "$PYTHON" - "$mode" "$run" "$d/ingest.json" "$d/render.json" "$load_before" "$load_after" <<'PY' | tee -a "$raw_ingest"
import json, sys
mode, run, ingest, render, before, after = sys.argv[1:]
ing, ren = json.load(open(ingest)), json.load(open(render))
print(json.dumps({"mode": mode, "run": int(run), "points_sent": ing["points_sent"],
    "accepted": ing["accepted"], "accepted_s": ing["accepted_s"],
    "accepted_points_per_s": ing["accepted_points_per_s"],
    "renders_200": ren.get("responses_200"), "render_p50_ms": (ren.get("latency_ms") or {}).get("p50"),
    "loadavg_before": before, "loadavg_after": after, "ingest": ing, "render": ren or None}))
PY
}
for run in $(seq "$INGEST_RUNS"); do
    one_ingest_run alone "$run"
    one_ingest_run with-render "$run"
done

# ---- summary ----------------------------------------------------------------------------------
"$PYTHON" - "$raw_latency" "$raw_ingest" "$SECONDS_" "$RUNS" "$WORKERS" "$HOSTS" "$APPS" "$MAX_POINTS" \
    "$INGEST_METRICS" "$INGEST_POINTS" "$INGEST_SECONDS" "$commit" <<'PY' | tee "$out/render.md"
import json, os, platform, statistics, subprocess, sys
(lat_path, ing_path, secs, runs, workers, hosts, apps, max_points,
 ing_metrics, ing_points, ing_secs, commit) = sys.argv[1:]
lat = [json.loads(l) for l in open(lat_path) if l.strip()]
ing = [json.loads(l) for l in open(ing_path) if l.strip()]

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
    if v is None or v != v:
        return "-"
    return "{:,.0f}".format(v) if abs(v) >= 1000 else "%.3g" % v

def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-", float("nan")
    med = statistics.median(values)
    return ("%s (%s - %s)" % (fmt(med), fmt(min(values)), fmt(max(values))) if len(values) > 1 else fmt(med)), med

def ratio(a, b):
    return "%.2fx" % (a / b) if a == a and b == b and b else "-"

print("Data: %s series `bench.host*.cpu` and %s counters `bench.app*.requests`, whisper `10s:1d`, 24 h of points "
      "(python3-whisper). Requests: POST /render, `from=-24h&until=now&format=json&maxDataPoints=%s`, as Grafana "
      "sends them. graphite-web: gunicorn, %s sync workers, no render cache (no memcached), CARBONLINK_HOSTS empty. "
      "Carbyne: `carbyne serve`, ingest on, HTTP_THREADS 2. Closed loop (`carbyne-loadgen render`), %s s per "
      "query, server and concurrency, %s rounds alternating servers; medians of the rounds, (range)."
      % (hosts, apps, max_points, workers, secs, runs))
queries = []
for r in lat:
    if r["query"] not in [q for q, _ in queries]:
        queries.append((r["query"], r["expr"]))
for c in sorted({r["connections"] for r in lat}):
    print()
    print("#### %d concurrent client%s" % (c, "" if c == 1 else "s"))
    print()
    print("| query | graphite-web p50 ms | Carbyne p50 ms | p50 speed-up | graphite-web p99 ms | Carbyne p99 ms "
          "| p99 speed-up | graphite-web req/s | Carbyne req/s | requests (gw / Carbyne) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for q, expr in queries:
        rows = {impl: [r for r in lat if r["impl"] == impl and r["query"] == q and r["connections"] == c]
                for impl in ("graphite-web", "carbyne")}
        p50 = {i: cell([r["p50_ms"] for r in rs]) for i, rs in rows.items()}
        p99 = {i: cell([r["p99_ms"] for r in rs]) for i, rs in rows.items()}
        rps = {i: cell([r["requests_per_s"] for r in rs]) for i, rs in rows.items()}
        n = {i: sum(r["responses_200"] for r in rs) for i, rs in rows.items()}
        print("| (%s) `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |" % (
            q, expr, p50["graphite-web"][0], p50["carbyne"][0], ratio(p50["graphite-web"][1], p50["carbyne"][1]),
            p99["graphite-web"][0], p99["carbyne"][0], ratio(p99["graphite-web"][1], p99["carbyne"][1]),
            rps["graphite-web"][0], rps["carbyne"][0], n["graphite-web"], n["carbyne"]))
bad = sum(r["non_200"] + r["failures"] for r in lat)
same = {r["query"]: r["same_answer"] for r in lat}
print()
print("Speed-up = graphite-web / Carbyne (above 1: Carbyne is faster). Every response a 200: %s. "
      "Same answer from both servers (checked once per query with absolute from/until: series, timestamps, "
      "values to 1e-9): %s."
      % ("yes" if bad == 0 else "NO (%d failures or other statuses, see the raw file)" % bad,
         ", ".join("%s %s" % (q, "yes" if s else "NO") for q, s in sorted(same.items()))))
if ing:
    print()
    print("#### Ingest with and without render load")
    print()
    print("Load: `carbyne-loadgen plaintext`, %s metrics x up to %s points over 4 TCP connections, closed loop, "
          "stopped after %s s, against a fresh `carbyne serve` on the same directory; render load: query (b) in a "
          "loop from one client, from 1 s before the ingest until %s s after its start (no render starts later). "
          "%d runs each, alternating."
          % (ing_metrics, ing_points, ing_secs, int(ing_secs) + 1, len([r for r in ing if r["mode"] == "alone"])))
    print()
    print("| measure | ingest alone median (range) | ingest + render loop median (range) | with / alone |")
    print("|---|---:|---:|---:|")
    a, w = cell([r["accepted_points_per_s"] for r in ing if r["mode"] == "alone"]), \
        cell([r["accepted_points_per_s"] for r in ing if r["mode"] == "with-render"])
    print("| accepted points/s | %s | %s | %s |" % (a[0], w[0], ratio(w[1], a[1])))
    ps, pw = cell([r["points_sent"] for r in ing if r["mode"] == "alone"]), \
        cell([r["points_sent"] for r in ing if r["mode"] == "with-render"])
    print("| points sent | %s | %s | %s |" % (ps[0], pw[0], ratio(pw[1], ps[1])))
    rr = cell([r["renders_200"] for r in ing if r["mode"] == "with-render"])
    rl = cell([r["render_p50_ms"] for r in ing if r["mode"] == "with-render"])
    print("| query (b) renders completed by the loop | - | %s | |" % rr[0])
    print("| query (b) p50 ms in the loop | - | %s | |" % rl[0])
    accepted = all(r["accepted"] for r in ing)
    print()
    print("Every ingest run accepted in full: %s." % ("yes" if accepted else "NO (see the raw file)"))
loads = [r["loadavg_before"] for r in lat + ing] + [r["loadavg_after"] for r in lat + ing]
one_min = [float(l.split()[0]) for l in loads]
print("Load average (1 min) during the runs: %s to %s (the machine may have had other work)." % (
    fmt(min(one_min)), fmt(max(one_min))))
print("Machine: %s, %d cores; kernel %s; %s; Python %s; graphite-web %s; gunicorn %s; commit %s." % (
    cpu(), os.cpu_count() or 0, platform.release(), cmd(["rustc", "--version"]), platform.python_version(),
    cmd(["dpkg-query", "-W", "-f", "${Version}", "graphite-web"]),
    cmd(["dpkg-query", "-W", "-f", "${Version}", "gunicorn"]), commit))
PY
