#!/usr/bin/python3
"""Waits until every point a `carbyne-loadgen plaintext` run sent is in whisper, reading the
files directly (os.pread and struct, not Carbyne's code), and says when.

The files are named from the loadgen's name template (`{prefix}`, `{i}`, `{h}` = i / 100,
`{m}` = i % 100 on two digits, `{d}` = i / 10000), so nothing walks the directory: each pass
looks only at the metrics not yet complete. A metric is complete when its file's first archive
holds every timestamp start, start + interval, ..., start + (points - 1) * interval. A cheap
check comes first (is the last timestamp in its slot?): writers write a metric's cached points
in one call, so the full check runs about once per file.

When every metric is complete, "done_at" is the newest modification time of the metrics'
files: the moment the last of their points was written (the writers' `write` calls set it, on
both sides; a file written through a shared mapping sets it at the first write to each page after
writeback instead, so with WRITER_MMAP it may be early by the time between that write and the
last). "seen_at" is when a pass found everything: late by up to the pass and the pause before it.
Between passes it sleeps twice as long as the pass took (at least 0.25 s), so that it takes at
most about a third of one core from the server it is waiting for. Prints one JSON line:
{"metrics", "complete", "files", "points", "passes", "done_at", "seen_at" (epoch seconds, null
when the timeout came first)}. Exit status 0 when complete.

Usage: verify_whisper.py DIR TEMPLATE PREFIX METRICS POINTS START INTERVAL TIMEOUT_S"""
import json
import os
import struct
import sys
import time


def metric_name(template, prefix, i):
    return (template.replace("{prefix}", prefix).replace("{i}", str(i)).replace("{h}", str(i // 100))
            .replace("{m}", "%02d" % (i % 100)).replace("{d}", str(i // 10000)))


def metric_path(root, name):
    if ";" in name:
        raise SystemExit("verify_whisper.py: tagged names are stored by hash; not supported")
    return os.path.join(root, *name.split(".")) + ".wsp"


class Archive:
    """The first archive of a whisper file: offset, seconds per point, points."""

    def __init__(self, fd):
        head = os.pread(fd, 28, 0)
        if len(head) < 28:
            raise ValueError("short header")
        self.offset, self.spp, self.points = struct.unpack("!3L", head[16:28])
        if self.spp == 0 or self.points == 0:
            raise ValueError("bad archive")

    def slot_ts(self, fd, slot):
        raw = os.pread(fd, 4, self.offset + 12 * slot)
        return struct.unpack("!L", raw)[0] if len(raw) == 4 else 0

    def all_ts(self, fd):
        data = os.pread(fd, 12 * self.points, self.offset)
        n = len(data) // 12
        return struct.unpack_from("!" + "L8x" * n, data) if n else ()


def count(path, start, points, interval):
    """Expected timestamps present in the file (0 when it does not exist yet)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        try:
            archive = Archive(fd)
        except ValueError:
            return 0  # being created
        base = archive.slot_ts(fd, 0)
        if base == 0:
            return 0
        last = start + (points - 1) * interval
        slot = ((last - base) // archive.spp) % archive.points
        if points > 1 and archive.slot_ts(fd, slot) != last:
            return 0  # not there yet: no need to read the rest
        end = start + points * interval
        return len({ts for ts in archive.all_ts(fd) if start <= ts < end and (ts - start) % interval == 0})
    finally:
        os.close(fd)


def last_written(paths):
    """The newest modification time of `paths`, in epoch seconds."""
    return max(os.stat(path).st_mtime_ns for path in paths) / 1e9


def main(root, template, prefix, metrics, points, start, interval, timeout_s):
    paths = [metric_path(root, metric_name(template, prefix, i)) for i in range(metrics)]
    pending = dict(enumerate(paths))
    deadline = time.time() + timeout_s
    passes = 0
    done_at = seen_at = None
    while True:
        t0 = time.time()
        passes += 1
        for i, path in list(pending.items()):
            if count(path, start, points, interval) == points:
                del pending[i]
        now = time.time()
        if not pending:
            seen_at = now
            done_at = last_written(paths)
            break
        if now >= deadline:
            break
        time.sleep(min(max(0.25, 2 * (now - t0)), max(0.0, deadline - now)))
    files = points_found = 0
    if pending:  # say how far it got, for the raw record
        for path in pending.values():
            n = count(path, start, points, interval)
            points_found += n
            files += os.path.exists(path)
    complete = metrics - len(pending)
    files += complete
    points_found += complete * points
    print(json.dumps({"metrics": metrics, "complete": complete, "files": files, "points": points_found,
                      "passes": passes, "done_at": done_at, "seen_at": seen_at}))
    return 0 if not pending else 1


if __name__ == "__main__":
    if len(sys.argv) != 9:
        raise SystemExit(__doc__)
    d, t, p, m, n, s, i, to = sys.argv[1:9]
    sys.exit(main(d, t, p, int(m), int(n), int(s), int(i), float(to)))
