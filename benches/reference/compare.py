#!/usr/bin/python3
"""Joins two bencher-format result files (Carbyne, reference) into a markdown table with the
machine, kernel, toolchain and commit they were measured on."""
import os
import platform
import re
import subprocess
import sys

LINE = re.compile(r"^test (\S+) \.\.\. bench:\s+([\d,]+) ns/iter")


def load(path):
    results = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                results[m.group(1)] = int(m.group(2).replace(",", ""))
    return results


def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(ours_path, ref_path):
    ours, ref = load(ours_path), load(ref_path)
    # A reference "handle" row is also compared with Carbyne's "mapped" handle (what the writer
    # pool uses where files can be mapped); "open" rows have no mapped counterpart.
    print("| operation | whisper.py (µs/call) | Carbyne (µs/call) | speed-up | Carbyne mapped (µs/call) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ref_ns in ref.items():
        ours_ns = ours.get(name)
        if ours_ns is None:
            continue
        mapped_ns = ours.get(name.replace("/handle/", "/mapped/")) if "/handle/" in name else None
        mapped = "| %.2f | %.1fx |" % (mapped_ns / 1000, ref_ns / mapped_ns) if mapped_ns else "| - | - |"
        print("| `%s` | %.2f | %.2f | %.1fx %s" % (name, ref_ns / 1000, ours_ns / 1000, ref_ns / ours_ns, mapped))
    print()
    print("Machine: %s, %d cores; kernel %s; %s; Python %s; commit %s." % (
        cpu_model(), os.cpu_count() or 0, platform.release(), cmd(["rustc", "--version"]),
        platform.python_version(), cmd(["git", "rev-parse", "--short", "HEAD"])))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
