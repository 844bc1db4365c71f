#!/usr/bin/python3
"""The operations of benches/whisper.rs, timed in whisper.py (python3-whisper), on the same
schemas and the same point pattern. Prints one line per operation, in the bencher format
cargo bench uses:  test <name> ... bench: <ns> ns/iter (+/- 0)

Two variants of each update, as in the Rust bench: "open" calls whisper.update_many(path, ...),
which opens the file per call (what carbon does); "handle" calls whisper.file_update_many(fh,
...) on a file object kept open, the fair counterpart of Carbyne's cached handles."""
import os
import sys
import tempfile
import time

import whisper

SCHEMAS = [
    ("1-archive", "10s:1d"),
    ("3-archive", "10s:6h,1m:7d,10m:5y"),
    ("5-archive", "10s:6h,1m:1d,5m:7d,1h:90d,1d:5y"),
]
T0 = 1_700_000_000
STEP = 10
WRAP = 10 * 365 * 86400  # the bench clock wraps after ten years, as in benches/whisper.rs


def advance(now, by):
    return T0 + (now - T0 + by) % WRAP
SECONDS_PER_CASE = float(os.environ.get("WHISPER_BENCH_SECONDS", "2"))


def make_file(directory, name, schema):
    path = os.path.join(directory, name + ".wsp")
    whisper.create(path, [whisper.parseRetentionDef(d) for d in schema.split(",")])
    return path


def next_points(now, n):
    return [(now - STEP * (n - 1 - i), (now % 1000) + i * 0.5) for i in range(n)]


def timed(name, op):
    # Warm up, then run whole batches until the time budget is spent; report the mean per call.
    for _ in range(200):
        op()
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(200):
            op()
        calls += 200
        elapsed = time.perf_counter() - start
        if elapsed >= SECONDS_PER_CASE:
            break
    print("test %s ... bench: %d ns/iter (+/- 0)" % (name, elapsed / calls * 1e9), flush=True)


def bench_updates(directory):
    for name, schema in SCHEMAS:
        for n in (1, 10, 100):
            path = make_file(directory, "%s-%d-h" % (name, n), schema)
            fh = open(path, "r+b", 0)
            state = {"now": T0}

            def by_handle():
                state["now"] = advance(state["now"], STEP * n)
                pts = next_points(state["now"], n)
                pts.sort(key=lambda p: p[0], reverse=True)  # update_many's own preparation
                whisper.file_update_many(fh, pts, state["now"])

            timed("update_many/%s/handle/%d" % (name, n), by_handle)
            fh.close()
            path = make_file(directory, "%s-%d-p" % (name, n), schema)
            state2 = {"now": T0}

            def by_path():
                state2["now"] = advance(state2["now"], STEP * n)
                whisper.update_many(path, next_points(state2["now"], n), state2["now"])

            timed("update_many/%s/open/%d" % (name, n), by_path)


def bench_fetch(directory):
    path = make_file(directory, "day", "10s:1d")
    now = T0 + 86400
    whisper.update_many(path, [(T0 + STEP * (i + 1), float(i)) for i in range(8640)], now)
    with open(path, "rb") as fh:
        timed("fetch/1-archive/handle/1d", lambda: whisper.file_fetch(fh, now - 86400, now, now))
    timed("fetch/1-archive/open/1d", lambda: whisper.fetch(path, now - 86400, now, now))


def main():
    with tempfile.TemporaryDirectory() as directory:
        bench_updates(directory)
        bench_fetch(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
