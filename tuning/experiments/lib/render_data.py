#!/usr/bin/python3
"""Builds the render cases' whisper directory with python3-whisper (the reference's own
engine), 10s:1d, 24 h of points ending now:
  bench.host{0..HOSTS-1}.cpu        gauges in [0, 100)
  bench.app{0..APPS-1}.requests     monotonic counters (for perSecond)
and writes BUILT_AT (the last timestamp) so that a later run can reuse the directory.

Usage: render_data.py DIR HOSTS APPS"""
import os
import random
import sys
import time

import whisper


def main(root, hosts, apps):
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
    with open(os.path.join(root, "BUILT_AT"), "w") as f:
        f.write("%d %d %d\n" % (now, hosts, apps))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
