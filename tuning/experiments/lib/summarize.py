#!/usr/bin/python3
"""Summarises one run of a case (tuning/experiments/run): reads RESULTS/runs.jsonl, env.json and
commands.txt, and writes RESULTS/summary.md (printed too) and RESULTS/summary.json.

Every figure is a median over the runs of one side with its range (min - max), next to the
other side's and their ratio (Carbyne / reference). The machine, kernel, toolchain, commit and
load averages go with the numbers, and so do the commands that produced them.

summary.json: {"case", "title", "kind", "command", "quick", "reference", "headline": [{"measure",
"reference", "carbyne", "ratio", "better"}], "checks": [..], "results": dir name} for
tuning/experiments/report.

Usage: summarize.py CASE_DIR RESULTS_DIR"""
import json
import os
import statistics
import sys

REFERENCE = {"ingest": "carbon-cache", "statsd": "etsy statsd", "render": "graphite-web"}


def fmt(v):
    if v is None or v != v:
        return "-"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "%.3g" % v


def median(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


def cell(values):
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0])
    return "%s (%s - %s)" % (fmt(statistics.median(values)), fmt(min(values)), fmt(max(values)))


def ratio(a, b, digits=2):
    """a / b as "1.23x", "-" when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return "-"
    return "%.*fx" % (digits, a / b)


class Summary:
    def __init__(self, case, env, kind):
        self.md = []
        self.case, self.env, self.kind = case, env, kind
        self.ref = REFERENCE[kind]
        self.headline = []
        self.checks = []

    def line(self, text=""):
        self.md.append(text)

    def table(self, header, rows, n_left=1):
        self.line("| " + " | ".join(header) + " |")
        self.line("|" + "|".join(["---"] * n_left + ["---:"] * (len(header) - n_left)) + "|")
        for row in rows:
            self.line("| " + " | ".join(row) + " |")

    def side_by_side(self, rows, tag=""):
        """rows: (label, reference values, carbyne values, better: 'higher'|'lower'|None,
        headline: bool); `tag` is added to the label in the headline (which has no section)."""
        out = []
        for label, ref_values, cb_values, better, headline in rows:
            r, c = median(ref_values), median(cb_values)
            out.append([label, cell(ref_values), cell(cb_values), ratio(c, r)])
            if headline:
                self.headline.append({"measure": label + tag, "reference": r, "carbyne": c,
                                      "ratio": (c / r) if r and c is not None else None, "better": better})
        self.table(["measure", "%s median (range)" % self.ref, "Carbyne median (range)", "Carbyne / %s" % self.ref],
                   out)

    def check(self, text, ok):
        self.checks.append({"check": text, "ok": bool(ok)})
        self.line("- %s: %s" % (text, "yes" if ok else "**NO** (see runs.jsonl)"))


def by(runs, **match):
    return [r for r in runs if all(r.get(k) == v for k, v in match.items())]


# ---- ingest -------------------------------------------------------------------------------------
def durable_seconds(r):
    """Seconds from the loadgen's start until every point was in the files (None if never): from
    the start its report gives (with --pregenerate it formats every line before its clock
    starts), else from just before it was launched."""
    done = (r.get("verify") or {}).get("done_at")
    start = (r.get("loadgen") or {}).get("started_unix_s") or r["t0"]
    return done - start if done else None


def ingest(s, runs, p):
    for r in runs:
        lg, verify = r.get("loadgen") or {}, r.get("verify") or {}
        r["accepted_pps"] = lg.get("accepted_points_per_s")
        r["sent_pps"] = lg.get("sent_points_per_s")
        r["durable_s"] = durable_seconds(r)
        r["durable_pps"] = r["points"] / r["durable_s"] if r["durable_s"] else None
    metrics, points = int(p["METRICS"]), int(p["POINTS"])
    loop = "open loop at %s points/s" % fmt(float(p["RATE"])) if p.get("RATE") else "closed loop"
    if p.get("PREGENERATE") == "1":
        loop += ", every line formatted before the clock starts (`--pregenerate`)"
    s.line("Load: `carbyne-loadgen plaintext`, %s metrics x %s points (%s points) into %s series, over %s TCP "
           "connections, %s; whisper schema as in the case's storage-schemas.conf; %d run(s) of each side, "
           "alternating." % (fmt(metrics), fmt(points), fmt(metrics * points),
                             "existing" if p.get("EXISTING") == "1" else "new", p["CONNECTIONS"], loop,
                             len(by(runs, impl="carbyne"))))
    s.line()
    ref, cb = by(runs, impl="reference"), by(runs, impl="carbyne")
    col = lambda rs, k: [r.get(k) for r in rs]  # noqa: E731
    s.side_by_side([
        ("accepted points/s", col(ref, "accepted_pps"), col(cb, "accepted_pps"), "higher", True),
        ("durable points/s", col(ref, "durable_pps"), col(cb, "durable_pps"), "higher", True),
        ("seconds until durable", col(ref, "durable_s"), col(cb, "durable_s"), "lower", False),
        ("CPU seconds (server)", col(ref, "cpu_s"), col(cb, "cpu_s"), "lower", True),
        ("peak RSS MiB (server)", col(ref, "rss_mb"), col(cb, "rss_mb"), "lower", True),
        ("peak anonymous RSS MiB (server)", col(ref, "rss_anon_mb"), col(cb, "rss_anon_mb"), "lower", True),
    ])
    s.line()
    s.line("Accepted: points / the loadgen's \"accepted after\" (every connection read to the end by the "
           "server). Durable: points / the time from the loadgen's start until the last point was written: "
           "`lib/verify_whisper.py` finds every point in whisper, reading the files itself, then takes the newest "
           "modification time of the metrics' files (runs whose verifier reported no `seen_at` used the poll "
           "time, late by up to two passes). Peak RSS: GNU time's, which counts the pages of files the server "
           "maps (Carbyne's writers map the whisper files they keep open when WRITER_MMAP is on); peak "
           "anonymous RSS: RssAnon + RssShmem sampled every 0.1 s, the "
           "server's own memory without those page-cache pages (runs before it was sampled show -).")
    s.line()
    s.check("every run accepted in full", all((r.get("loadgen") or {}).get("accepted") for r in runs))
    s.check("every point of every metric found in whisper in every run",
            all((r.get("verify") or {}).get("complete") == metrics for r in runs))


# ---- statsd -------------------------------------------------------------------------------------
def statsd(s, runs, p):
    for r in runs:
        lg = r.get("loadgen") or {}
        lines, flushes, last = (int(x) for x in str(r["received"]).split())
        r["lines_received"], r["flushes"], r["last_flush_count"] = lines, flushes, last
        sent = lg.get("lines_sent") or 0
        r["sent_lps"] = lg.get("sent_lines_per_s")
        # Carbyne's samples refused at maxPendingSamples (its statsd.samplesDropped self-metric):
        # read, so in metrics_received, but not aggregated. etsy has no such bound. Runs recorded
        # before it was read show -.
        dropped = r.get("samples_dropped")
        r["bound_drops"] = int(str(dropped).split()[0]) if dropped is not None else (
            0 if r["impl"] == "reference" else None)
        r["loss_pct"] = 100.0 * (sent - lines + (r["bound_drops"] or 0)) / max(sent, 1)
        drain = float(r["t_drained"]) - float(r["t0"])
        r["processed_lps"] = lines / drain if drain > 0 else None
    loop = "open loop at %s lines/s" % fmt(float(p["RATE"])) if p.get("RATE") else "closed loop"
    if p.get("PREGENERATE") == "1":
        loop += ", datagrams formatted before the clock starts and sent over and over (`--pregenerate`)"
    s.line("Load: `carbyne-loadgen statsd --duration %s` over %s keys (mix c=40,ms=30,g=20,s=10), %s UDP "
           "sender(s), %s; flushInterval %s ms; %d run(s) of each side, alternating. Carbyne writes every "
           "flush to whisper; etsy's graphite backend sends it to a sink." % (
               p["DURATION"], p["KEYS"], p["SENDERS"], loop, p["FLUSH_MS"], len(by(runs, impl="carbyne")) // max(
                   1, len(p["BATCHES"].split()))))
    for lpd in sorted({r["lines_per_datagram"] for r in runs}):
        s.line()
        s.line("#### %d line%s per datagram" % (lpd, "" if lpd == 1 else "s"))
        s.line()
        ref, cb = by(runs, impl="reference", lines_per_datagram=lpd), by(runs, impl="carbyne", lines_per_datagram=lpd)
        col = lambda rs, k: [r.get(k) for r in rs]  # noqa: E731
        s.side_by_side([
            ("lines/s sent (loadgen)", col(ref, "sent_lps"), col(cb, "sent_lps"), None, False),
            ("lines lost (%)", col(ref, "loss_pct"), col(cb, "loss_pct"), "lower", True),
            ("kernel drops (datagrams)", col(ref, "kernel_drops"), col(cb, "kernel_drops"), "lower", False),
            ("samples dropped at maxPendingSamples", col(ref, "bound_drops"), col(cb, "bound_drops"), "lower", False),
            ("lines/s processed", col(ref, "processed_lps"), col(cb, "processed_lps"), "higher", True),
            ("CPU seconds (server)", col(ref, "cpu_s"), col(cb, "cpu_s"), "lower", False),
            ("peak RSS MiB (server)", col(ref, "rss_mb"), col(cb, "rss_mb"), "lower", False),
            ("peak anonymous RSS MiB (server)", col(ref, "rss_anon_mb"), col(cb, "rss_anon_mb"), "lower", False),
        ], tag=", %d line%s/datagram" % (lpd, "" if lpd == 1 else "s"))
    s.line()
    s.line("Lost: lines the loadgen's kernel took minus the server's own `statsd.metrics_received` summed "
           "over its flushes, plus (Carbyne) the samples it read but refused at its `maxPendingSamples` bound "
           "(`statsd.samplesDropped`; etsy has no bound: 0). Processed: lines received / time until the server's socket queue was empty. "
           "Kernel drops: /proc/net/udp `drops` of the server's sockets.")
    s.line()
    s.check("every server's last flush counted 0 lines (all it read was flushed)",
            all(r["last_flush_count"] == 0 for r in runs))


# ---- render -------------------------------------------------------------------------------------
def render(s, runs, p):
    for r in runs:
        rj = r.get("render") or {}
        lat = rj.get("latency_ms") or {}
        r["p50"], r["p99"], r["rps"] = lat.get("p50"), lat.get("p99"), rj.get("requests_per_s")
        # A closed-loop ingest alone has no render to count.
        expected = r["mode"] != "peak-alone"
        r["bad"] = (rj.get("non_200") or 0) + (rj.get("failures") or 0) + (0 if rj or not expected else 1)
        ing = r.get("ingest")
        if ing:
            r["ingest_pps"] = ing.get("accepted_points_per_s")
            acc, sent = ing.get("accepted_s"), ing.get("send_elapsed_s")
            r["ingest_lag_s"] = acc - sent if acc is not None and sent is not None else None
    queries = []
    for r in runs:
        if (r["query"], r["expr"]) not in queries:
            queries.append((r["query"], r["expr"]))
    modes = [m for m in ("alone", "ingest", "peak-render") if by(runs, mode=m)]
    carbonlink = "asks carbon-cache for cached points (CARBONLINK_HOSTS)" if p.get("CARBONLINK") == "1" else \
        "does not ask carbon-cache (CARBONLINK_HOSTS empty)"
    s.line("Data: %s series `bench.host*.cpu` and %s counters `bench.app*.requests`, whisper `10s:1d`, 24 h of "
           "points (python3-whisper). Requests: POST /render, `from=-24h&until=now&format=json&maxDataPoints=%s`, "
           "as Grafana sends them, closed loop (`carbyne-loadgen render`), %s s per query, side and concurrency. "
           "Reference: carbon-cache + graphite-web under gunicorn (%s sync workers, no memcached), which %s. "
           "Carbyne: `carbyne serve`, one process." % (p["HOSTS"], p["APPS"], p["MAX_POINTS"], p["RENDER_SECONDS"],
                                                      p["WORKERS"], carbonlink))
    if "ingest" in modes:
        s.line()
        s.line("Under ingest: `carbyne-loadgen plaintext` into the same server, open loop at %s points/s over %s "
               "connections (%s new metrics each time, 10 s apart), started 1 s before the render loop and "
               "running 1 s past it." % (fmt(float(p["INGEST_RATE"])), p["INGEST_CONNECTIONS"],
                                          fmt(int(p["INGEST_METRICS"]))))
    if "peak-render" in modes:
        s.line()
        s.line("Peak ingest: `carbyne-loadgen plaintext` closed loop (as fast as the server reads) for %s s over %s "
               "connections into %s existing series (1 s apart), measured alone and while one render loop runs "
               "(started 1 s before, stopping 1 s after), the two in alternating order from run to run; "
               "mode `peak-render` in the latency table is that render loop over its whole run, the seconds "
               "around the ingest included (renders that wait for the CPU during the ingest complete few requests, "
               "so its median is mostly the time outside). Carbyne's HTTP threads run with "
               "HTTP_PRIORITY = %s." % (p["PEAK_SECONDS"], p["INGEST_CONNECTIONS"], fmt(int(p["INGEST_METRICS"])),
                                        p.get("HTTP_PRIORITY", "idle")))
    s.line()
    s.line("%d run(s) of each side, alternating; medians over the runs (range)." % (
        len({r["run"] for r in runs})))
    for c in sorted({r["connections"] for r in runs}):
        s.line()
        s.line("#### %d concurrent client%s" % (c, "" if c == 1 else "s"))
        s.line()
        rows = []
        for q, expr in queries:
            for m in modes:
                ref, cb = by(runs, impl="reference", query=q, connections=c, mode=m), \
                    by(runs, impl="carbyne", query=q, connections=c, mode=m)
                rp50, cp50 = median([r["p50"] for r in ref]), median([r["p50"] for r in cb])
                rp99, cp99 = median([r["p99"] for r in ref]), median([r["p99"] for r in cb])
                rows.append(["(%s) `%s`" % (q, expr), m, cell([r["p50"] for r in ref]), cell([r["p50"] for r in cb]),
                             ratio(rp50, cp50, 1), cell([r["p99"] for r in ref]), cell([r["p99"] for r in cb]),
                             ratio(rp99, cp99, 1), cell([r["rps"] for r in ref]), cell([r["rps"] for r in cb])])
                s.headline.append({"measure": "(%s) p50 ms, %s, %d client%s" % (q, m, c, "" if c == 1 else "s"),
                                   "reference": rp50, "carbyne": cp50,
                                   "ratio": cp50 / rp50 if rp50 and cp50 is not None else None, "better": "lower"})
        s.table(["query", "mode", "graphite-web p50 ms", "Carbyne p50 ms", "p50 speed-up", "graphite-web p99 ms",
                 "Carbyne p99 ms", "p99 speed-up", "graphite-web req/s", "Carbyne req/s"], rows, n_left=2)
    if "ingest" in modes:
        s.line()
        s.line("#### What ingest costs each side")
        s.line()
        rows = []
        for c in sorted({r["connections"] for r in runs}):
            for q, _ in queries:
                cells = []
                for impl in ("reference", "carbyne"):
                    alone = median([r["p50"] for r in by(runs, impl=impl, query=q, connections=c, mode="alone")])
                    under = median([r["p50"] for r in by(runs, impl=impl, query=q, connections=c, mode="ingest")])
                    cells.append(ratio(under, alone))
                ing = {impl: by(runs, impl=impl, query=q, connections=c, mode="ingest") for impl in ("reference", "carbyne")}
                rows.append(["(%s), %d client%s" % (q, c, "" if c == 1 else "s"), cells[0], cells[1],
                             cell([r.get("ingest_pps") for r in ing["reference"]]),
                             cell([r.get("ingest_pps") for r in ing["carbyne"]]),
                             cell([r.get("ingest_lag_s") for r in ing["reference"]]),
                             cell([r.get("ingest_lag_s") for r in ing["carbyne"]])])
        s.table(["render", "graphite-web p50 under ingest / alone", "Carbyne p50 under ingest / alone",
                 "carbon-cache accepted points/s", "Carbyne accepted points/s",
                 "carbon-cache s to read the rest after sending", "Carbyne s to read the rest after sending"], rows)
    if "peak-render" in modes:
        s.line()
        s.line("#### What a render loop costs the peak ingest")
        s.line()
        rows = []
        for c in sorted({r["connections"] for r in runs}):
            for q, expr in queries:
                row, kept = ["(%s) `%s`, %d client%s" % (q, expr, c, "" if c == 1 else "s")], {}
                for impl in ("reference", "carbyne"):
                    alone = [r.get("ingest_pps") for r in by(runs, impl=impl, query=q, connections=c, mode="peak-alone")]
                    under = [r.get("ingest_pps") for r in by(runs, impl=impl, query=q, connections=c, mode="peak-render")]
                    row += [cell(alone), cell(under), ratio(median(under), median(alone), 2)]
                    m_alone, m_under = median(alone), median(under)
                    kept[impl] = m_under / m_alone if m_alone and m_under is not None else None
                rows.append(row)
                ref_kept, cb_kept = kept["reference"], kept["carbyne"]
                s.headline.append({"measure": "(%s) peak ingest kept under renders (with / alone), %d client%s" % (
                    q, c, "" if c == 1 else "s"), "reference": ref_kept, "carbyne": cb_kept,
                    "ratio": cb_kept / ref_kept if ref_kept and cb_kept is not None else None, "better": "higher"})
        s.table(["render loop", "carbon-cache accepted points/s alone", "with renders", "with / alone",
                 "Carbyne accepted points/s alone", "with renders", "with / alone"], rows)
        s.line()
        s.line("With / alone below 1: the renders took that share of the ingest's rate.")
    s.line()
    s.line("Speed-up = graphite-web / Carbyne (above 1: Carbyne is faster).")
    s.line()
    for impl, name in (("carbyne", "Carbyne"), ("reference", "graphite-web")):
        bad = sum(r["bad"] for r in by(runs, impl=impl))
        s.check("every %s response a 200%s" % (name, "" if bad == 0 else " (%d were not)" % bad), bad == 0)
    same = {r["query"]: (r.get("same") or {}).get("same") for r in runs}
    s.check("same answer from both sides for every query (absolute from/until; series, timestamps, values "
            "to 1e-9): %s" % ", ".join("%s %s" % (q, "yes" if v else "NO") for q, v in sorted(same.items())),
            all(same.values()))
    ingests = [r for r in runs if r.get("ingest")]
    if ingests:
        s.check("every ingest accepted in full", all(r["ingest"].get("accepted") for r in ingests))


def machine_lines(s, env, runs):
    loads = [env["loadavg_start"][0]] + [r[k].split()[0] for r in runs for k in ("loadavg_before", "loadavg_after")
                                         if r.get(k)]
    loads = [float(x) for x in loads]
    changed = env.get("changed_files") or []
    commit = env.get("commit") or "unknown"
    if changed:
        tops = sorted({"/".join(f.split("/")[:2]) for f in changed})
        commit += " with uncommitted changes in %d file(s) (%s)" % (len(changed), ", ".join(tops[:8]) +
                                                                  (", ..." if len(tops) > 8 else ""))
    refs = env.get("references") or {}
    wanted = {"ingest": ["graphite-carbon"], "statsd": ["node", "etsy-statsd"],
              "render": ["graphite-web", "graphite-carbon", "gunicorn", "python3-whisper"]}[s.kind]
    s.line()
    s.line("Machine: %s, %s cores, %s GiB; kernel %s; %s; Python %s; %s; commit %s." % (
        env.get("cpu_model"), env.get("cores"), env.get("mem_gib"), env.get("kernel"), env.get("rustc"),
        env.get("python"), "; ".join("%s %s" % (k, refs.get(k)) for k in wanted), commit))
    scratch = env.get("scratch") or {}
    if s.kind == "ingest" and scratch.get("fstype"):
        s.line("Data directories on %s (%s, mounted at %s)." % (scratch.get("source"), scratch.get("fstype"),
                                                                scratch.get("mount")))
    if s.kind == "statsd":
        s.line("net.core.rmem_max %s, rmem_default %s." % (env.get("net_core_rmem_max"),
                                                           env.get("net_core_rmem_default")))
    s.line("Load average (1 min): %s at the start, %s to %s around the runs. On %s cores the load generator, "
           "the server and whatever else runs (other builds) share the CPUs: these numbers are noisy; compare "
           "ranges, not single figures." % (fmt(loads[0]), fmt(min(loads)), fmt(max(loads)), env.get("cores")))


def main(case_dir, results):
    env = json.load(open(os.path.join(results, "env.json")))
    runs = [json.loads(line) for line in open(os.path.join(results, "runs.jsonl")) if line.strip()]
    p = env["params"]
    kind = p["KIND"]
    case = os.path.basename(os.path.normpath(case_dir))
    s = Summary(case, env, kind)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(case_dir))))
    quick = p.get("QUICK") == "1"
    s.line("# %s: %s" % (case, p.get("TITLE", "")))
    s.line()
    s.line("Command: `%s` (started %s UTC; results `%s`)%s" % (
        env["command"], env["started_utc"], os.path.relpath(results, root),
        ". **Quick smoke run: sizes about 100x smaller than the case's; not a measurement.**" if quick else "."))
    s.line()
    if not runs:
        s.line("No run completed.")
    else:
        {"ingest": ingest, "statsd": statsd, "render": render}[kind](s, runs, p)
        machine_lines(s, env, runs)
    commands = open(os.path.join(results, "commands.txt")).read().splitlines()
    s.line()
    s.line("Commands run (`$WORK` is the run's scratch directory; the configuration files as the servers "
           "read them are next to this summary):")
    s.line()
    for c in commands:
        s.line("    " + c)
    md = "\n".join(s.md) + "\n"
    with open(os.path.join(results, "summary.md"), "w") as f:
        f.write(md)
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump({"case": case, "title": p.get("TITLE"), "kind": kind, "command": env["command"], "quick": quick,
                   "reference": s.ref, "headline": s.headline, "checks": s.checks,
                   "results": os.path.basename(os.path.normpath(results)), "commit": env.get("commit"),
                   "started_utc": env.get("started_utc")}, f, indent=1)
    sys.stdout.write(md)


if __name__ == "__main__":
    main(*sys.argv[1:3])
