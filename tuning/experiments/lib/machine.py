#!/usr/bin/python3
"""Writes what a result depends on besides the code, as one JSON object: the machine (CPU model
as lscpu names it, cores, memory), kernel, toolchain, commit (and which files differed from
it), reference versions, load average when the run started, the command and the parameters.

Usage: machine.py CASE COMMAND PARAMS_FILE [ETSY_VERSION]   (PARAMS_FILE: KEY=VALUE lines)"""
import json
import os
import platform
import subprocess
import sys
import time


def cmd(args, strip=True):
    try:
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return out.strip() if strip else out
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_model():
    out = cmd(["lscpu"]) or ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def mem_gib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def scratch(params_file):
    """Where the run's files went (the directory of PARAMS_FILE): the file system and its device,
    since creating files depends on its state (ext4 slows down after mass deletions)."""
    work = os.path.dirname(os.path.abspath(params_file))
    out = cmd(["findmnt", "-n", "-o", "SOURCE,FSTYPE,TARGET", "-T", work]) or ""
    fields = out.split()
    return {"dir": work, "source": fields[0] if fields else None, "fstype": fields[1] if len(fields) > 1 else None,
            "mount": fields[2] if len(fields) > 2 else None}


def dpkg(name):
    return cmd(["dpkg-query", "-W", "-f", "${Version}", name])


def main(case, command, params_file, etsy_version=None):
    params = {}
    for line in open(params_file):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            params[k] = v
    # Porcelain lines are "XY path": the status letters are kept whole, leading space included.
    changed = cmd(["git", "status", "--porcelain", "--untracked-files=no"], strip=False) or ""
    print(json.dumps({
        "case": case,
        "command": command,
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "params": params,
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "mem_gib": mem_gib(),
        "kernel": platform.release(),
        "rustc": cmd(["rustc", "--version"]),
        "python": platform.python_version(),
        "commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
        "changed_files": sorted({line[3:] for line in changed.splitlines() if line.strip()}),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "scratch": scratch(params_file),
        "net_core_rmem_max": cmd(["sysctl", "-n", "net.core.rmem_max"]),
        "net_core_rmem_default": cmd(["sysctl", "-n", "net.core.rmem_default"]),
        "references": {
            "graphite-carbon": dpkg("graphite-carbon"),
            "graphite-web": dpkg("graphite-web"),
            "gunicorn": dpkg("gunicorn"),
            "python3-whisper": dpkg("python3-whisper"),
            "node": cmd(["node", "--version"]),
            "etsy-statsd": etsy_version or None,
        },
    }, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:5])
