#!/usr/bin/python3
"""Summarises ingest_vs_carbon.sh's raw runs: medians and ranges per implementation and the
Carbyne / carbon-cache ratios, with the machine, kernel, toolchain and commit."""
import json
import os
import platform
import statistics
import subprocess
import sys


def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(path, metrics, points):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    by = {}
    for r in runs:
        r["accepted_pps"] = r["points"] / r["accept_s"]
        r["durable_pps"] = r["points"] / r["durable_s"]
        by.setdefault(r["impl"], []).append(r)
    fields = [("accepted_pps", "accepted points/s", True), ("durable_pps", "durable points/s", True),
              ("cpu_s", "CPU seconds", False), ("rss_mb", "peak RSS (MiB)", False)]
    print("Load: %s metrics x %s points (%s points) over 4 TCP connections; %d runs each, alternating."
          % (metrics, points, int(metrics) * int(points), len(by.get("carbyne", []))))
    print()
    print("| measure | carbon-cache median (range) | Carbyne median (range) | Carbyne / carbon |")
    print("|---|---:|---:|---:|")
    for key, label, higher_better in fields:
        med = {}
        cells = []
        for impl in ("carbon", "carbyne"):
            values = [r[key] for r in by.get(impl, [])]
            med[impl] = statistics.median(values) if values else float("nan")
            cells.append("%s (%s - %s)" % (fmt(med[impl]), fmt(min(values)), fmt(max(values))) if values else "-")
        ratio = med["carbyne"] / med["carbon"] if med["carbon"] else float("nan")
        print("| %s | %s | %s | %.2fx |" % (label, cells[0], cells[1], ratio))
    complete = all(r["verify"]["complete"] == int(metrics) for r in runs)
    print()
    print("Every point verified in whisper in every run: %s." % ("yes" if complete else "NO (see the raw file)"))
    print("Machine: %s, %d cores; kernel %s; %s; carbon-cache %s; commit %s." % (
        cpu(), os.cpu_count() or 0, platform.release(), cmd(["rustc", "--version"]),
        cmd(["dpkg-query", "-W", "-f", "${Version}", "graphite-carbon"]), cmd(["git", "rev-parse", "--short", "HEAD"])))


def fmt(v):
    return "%.3g" % v if v < 1000 else "{:,.0f}".format(v)


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main(*sys.argv[1:4])
