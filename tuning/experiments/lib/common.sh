# Shared helpers of tuning/experiments/run (sourced, not run): templates, processes under GNU
# time, ports, /proc/net/udp counters, the command log. Owns no case logic: the runner's
# kind_* functions decide what to start and what to measure.
#
# Expects from the runner: $ROOT (the repository), $EXP (tuning/experiments), $WORK (the run's
# scratch directory), $RESULTS (the results directory), $BIN (the copied binaries).

# The reference tools' Python (Debian's, with python3-whisper and graphite-web); the helpers in
# lib/ run on it too, so that the recorded Python version is the one the references used.
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || PYTHON=python3

# Processes started by this run and not yet stopped (pids of /usr/bin/time or of the server).
PIDS=()

die() { echo "run: $*" >&2; exit 1; }

note() { echo "run: $*" >&2; }

# Appends a command line to the results' command log, with the scratch paths named the way a
# reader reproduces them: $WORK for the scratch directory, target/release/ for the binaries,
# paths in the repository relative to its root.
# Arguments with shell syntax in them are single-quoted; $WORK and the like are left to expand.
log_cmd() {
    local words=() a line safe='^[-A-Za-z0-9_@%+=:,./$]+$'
    for a in "$@"; do
        a=${a//"$BIN/"/target/release/}
        a=${a//"$WORK"/'$WORK'}
        a=${a//"$ROOT/"/}
        if [[ ! $a =~ $safe ]]; then a="'${a//\'/\'\\\'\'}'"; fi
        words+=("$a")
    done
    line="${words[*]}"
    grep -qxF -- "$line" "$RESULTS/commands.txt" 2>/dev/null || echo "$line" >> "$RESULTS/commands.txt"
}

# Copies template $1 to $2, replacing every @NAME@ by $TPL_NAME (an unknown name is an error).
template() {
    "$PYTHON" "$EXP/lib/template.py" "$1" "$2"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Waits until something accepts TCP connections on 127.0.0.1:$1 (60 s at most).
wait_port() {
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Fails when something already listens on 127.0.0.1:$1 (a leftover server would be measured).
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "port $1 is already in use on 127.0.0.1: stop what listens there first"
    fi
}

# Starts "$@" in the background under GNU time (wall, user, sys seconds and peak RSS KiB into
# $dir/time), output into $dir/out. The pid of time goes to $TIMED_PID and PIDS. A sampler
# keeps the peak of the process's anonymous memory (RssAnon + RssShmem, KiB) in $dir/rss_anon,
# every 0.1 s: peak RSS also counts the pages of files the process maps (Carbyne's writers map
# whisper files), which are page cache either way.
start_timed() { # dir command...
    local dir=$1; shift
    log_cmd "$@"
    /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$@" > "$dir/out" 2>&1 &
    TIMED_PID=$!
    PIDS+=("$TIMED_PID")
    sample_anon "$TIMED_PID" "$dir/rss_anon" &
}

sample_anon() { # pid-of-time file
    local child="" peak=0 kb key value _unit
    echo 0 > "$2"
    while kill -0 "$1" 2>/dev/null; do
        [ -n "$child" ] || child=$(pgrep -P "$1" 2>/dev/null | head -n 1 || true)
        if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
            kb=0
            while read -r key value _unit; do
                case $key in RssAnon:|RssShmem:) kb=$((kb + value)) ;; esac
            done < "/proc/$child/status" 2>/dev/null || true
            if [ "$kb" -gt "$peak" ]; then peak=$kb; echo "$peak" > "$2"; fi
        fi
        sleep 0.1
    done
}

forget_pid() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

# Stops a process started by start_timed: SIGTERM to the server under time, then waits for
# both (the server's own clean stop: carbyne drains its cache to whisper first).
stop_timed() {
    local child
    child=$(pgrep -P "$1" || true)
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

# Stops a plain background process by pid and waits for it.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

# "user+sys rss_mib anon_mib" of a finished start_timed process. GNU time prints "Command
# terminated by signal 15" first when the server stopped on SIGTERM, so the numbers are on the
# last line.
time_of() { # dir
    local _wall user sys rss_kb anon_kb
    read -r _wall user sys rss_kb < <(tail -n 1 "$1/time")
    anon_kb=$(cat "$1/rss_anon" 2>/dev/null || echo 0)
    awk -v u="$user" -v s="$sys" -v r="$rss_kb" -v a="$anon_kb" \
        'BEGIN { printf "%.2f %.1f %.1f\n", u + s, r / 1024, a / 1024 }'
}

# Stops everything still running (the EXIT trap): children of time first, then the rest.
stop_all() {
    local pid child
    for pid in "${PIDS[@]}"; do
        for child in $(pgrep -P "$pid" 2>/dev/null || true); do kill -TERM "$child" 2>/dev/null || true; done
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# Starts `carbyne serve --ephemeral-ports --config $dir/carbon.conf` and waits for its
# "listening" line. Sets CB_PID (time's pid), CB_LINE, CB_STATSD, CB_HTTP (host:port or off).
start_carbyne() { # dir
    local dir=$1 listening
    start_timed "$dir" "$BIN/carbyne" serve --ephemeral-ports --config "$dir/carbon.conf"
    CB_PID=$TIMED_PID
    for _ in $(seq 1200); do
        grep -q 'listening' "$dir/out" 2>/dev/null && break
        kill -0 "$CB_PID" 2>/dev/null || break
        sleep 0.1
    done
    listening=$(grep 'listening' "$dir/out" || true)
    [ -n "$listening" ] || { cat "$dir/out" >&2; die "carbyne did not start (output above)"; }
    CB_LINE=$(sed -n 's/.* plaintext-tcp=\([^ ]*\).*/\1/p' <<< "$listening")
    CB_STATSD=$(sed -n 's/.* statsd-udp=\([^ ]*\).*/\1/p' <<< "$listening")
    CB_HTTP=$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<< "$listening")
}

# Starts carbon-cache in the foreground on $dir/carbon.conf (ports from TPL_*). Sets CC_PID.
start_carbon_cache() { # dir
    local dir=$1
    port_free "$TPL_LINE_PORT"
    mkdir -p "$dir/log"
    start_timed "$dir" carbon-cache --config="$dir/carbon.conf" --nodaemon --logdir="$dir/log" \
        --pidfile="$dir/carbon.pid" start
    CC_PID=$TIMED_PID
    wait_port "$TPL_LINE_PORT" || { cat "$dir/out" >&2; die "carbon-cache did not listen on $TPL_LINE_PORT"; }
}

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
    local n
    for _ in $(seq 300); do
        read -r _ _ n < <(udp_stats "$1")
        [ "$n" -gt 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# Waits until nothing is queued on UDP port $1 any more; prints that moment (epoch seconds).
wait_udp_drained() {
    local rx
    for _ in $(seq 30000); do
        read -r rx _ _ < <(udp_stats "$1")
        [ "$rx" -eq 0 ] && { date +%s.%N; return 0; }
        sleep 0.01
    done
    echo "port $1 still has $rx bytes queued after 300 s" >&2
    date +%s.%N
}
