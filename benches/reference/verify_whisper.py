#!/usr/bin/python3
"""Counts the points a load generator run left in a whisper directory, reading the files
directly (struct, not Carbyne's code): for every .wsp under DIR/PREFIX, the slots of its first
archive whose timestamp lies in [START, START + POINTS * INTERVAL) on the interval grid.

Prints one JSON line: {"files": n, "complete": metrics with all POINTS points, "points": total}.
Exit status 0 when METRICS files are complete, 1 otherwise."""
import json
import os
import struct
import sys


def count_points(path, start, end, interval):
    with open(path, "rb") as f:
        meta = f.read(16)
        if len(meta) < 16:
            return 0
        _, _, _, n_archives = struct.unpack("!2LfL", meta)
        offset, _, points = struct.unpack("!3L", f.read(12))
        f.seek(offset)
        data = f.read(points * 12)
    seen = set()
    for i in range(0, len(data) - 11, 12):
        (ts,) = struct.unpack_from("!L", data, i)
        if start <= ts < end and (ts - start) % interval == 0:
            seen.add(ts)
    return len(seen)


def main(directory, prefix, metrics, points, start, interval):
    root = os.path.join(directory, prefix)
    end = start + points * interval
    files = complete = total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".wsp"):
                continue
            files += 1
            n = count_points(os.path.join(dirpath, name), start, end, interval)
            total += n
            complete += n == points
    print(json.dumps({"files": files, "complete": complete, "points": total}))
    return 0 if complete == metrics and files == metrics else 1


if __name__ == "__main__":
    d, p, m, n, s, i = sys.argv[1:7]
    sys.exit(main(d, p, int(m), int(n), int(s), int(i)))
