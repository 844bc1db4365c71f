#!/usr/bin/python3
"""Sums a statsd counter's flushed counts: from etsy's graphite output (plaintext lines caught
by statsd_sink.py) or from a whisper file (read with struct, not Carbyne's code; the first
archive, which the case's schema keeps at 1 s so that every flush has its own point).

Prints "sum flushes last_count" (last_count -1 when there was no flush).
Usage: statsd_count.py plaintext FILE NAME | statsd_count.py whisper FILE"""
import struct
import sys


def main(kind, path, name=None):
    counts = []
    if kind == "plaintext":
        for line in open(path, errors="replace"):
            f = line.split()
            if len(f) == 3 and f[0] == name:
                counts.append((int(f[2]), float(f[1])))
    else:
        data = open(path, "rb").read()
        offset, _, n_points = struct.unpack(">LLL", data[16:28])
        for i in range(n_points):
            ts, v = struct.unpack(">Ld", data[offset + 12 * i: offset + 12 * i + 12])
            if ts:
                counts.append((ts, v))
    counts.sort()
    print("%d %d %d" % (sum(v for _, v in counts), len(counts), counts[-1][1] if counts else -1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
