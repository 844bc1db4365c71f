#!/usr/bin/python3
"""functions_driver.py with a store: for the functions that fetch again over another window
(movingAverage's look-back, timeShift, hitcount's alignment, linearRegression's source range).

Same protocol and answers as functions_driver.py (this script runs its main loop), except that
values come back as strings (Python's repr: "1.5", "nan", "-inf"), and a request
may carry, instead of "fetched", the data itself:
    "store": {"retention": 8640000, "series": [{"name": "a.b", "start": 0, "step": 60,
                                                 "values": [...]}]}
Every fetch, the request's window and any other one a function asks for, is then cut from it as
whisper's fetch cuts a file with one archive of that retention (clamped to (now - retention,
now], both bounds moved up to the next step), the same cut as `TestStore` in
src/render/functions/testutil.rs. Paths match exactly or with `*` inside a node.
"""

import fnmatch
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import functions_driver as driver  # noqa: E402  (sets up Django and graphite-web first)

from graphite.render.evaluator import extractPathExpressions  # noqa: E402
from graphite.storage import STORE  # noqa: E402

STORE_DATA = {"retention": 0, "series": []}


def matches(pattern, name):
    p_nodes, n_nodes = pattern.split("."), name.split(".")
    return len(p_nodes) == len(n_nodes) and all(
        fnmatch.fnmatchcase(n, p.replace("[", "[[]")) for p, n in zip(p_nodes, n_nodes)
    )


def cut(series, from_time, until_time, now):
    """whisper.fetch over one archive: None when the window lies outside the retention."""
    if from_time > until_time:
        raise ValueError("Invalid time interval: from time '%s' is after until time '%s'" % (from_time, until_time))
    oldest = now - STORE_DATA["retention"]
    if from_time > now or until_time < oldest:
        return None
    from_time, until_time = max(from_time, oldest), min(until_time, now)
    step = series["step"]
    first = from_time - from_time % step + step
    last = until_time - until_time % step + step
    if first == last:
        last += step
    values = []
    for t in range(first, last, step):
        idx = (t - series["start"]) // step
        values.append(series["values"][idx] if t >= series["start"] and idx < len(series["values"]) else None)
    return (first, last, step), [driver.value_in(v) for v in values]


def store_fetch(patterns, start_time, end_time, now, request_context):
    """graphite.storage.STORE.fetch's shape: one dict per (pattern, leaf) found."""
    results = []
    for pattern in patterns:
        for s in sorted(STORE_DATA["series"], key=lambda s: s["name"]):
            if not matches(pattern, s["name"]):
                continue
            got = cut(s, start_time, end_time, now)
            if got is not None:
                results.append({"pathExpression": pattern, "name": s["name"], "time_info": got[0], "values": got[1]})
    return results


STORE.fetch = store_fetch


def evaluate(req):
    if "store" in req:
        STORE_DATA.update(req["store"])
        ctx = driver.context(dict(req, fetched={}))
        fetched = {}
        for result in store_fetch(extractPathExpressions(ctx, [req["target"]]), req["from"], req["until"], req["now"], ctx):
            (start, end, step), values = result["time_info"], result["values"]
            fetched.setdefault(result["pathExpression"], []).append(
                {"name": result["name"], "start": start, "end": end, "step": step, "values": values}
            )
        req = dict(req, fetched=fetched)
    answer = ORIGINAL_EVALUATE(req)
    # Values go back as Python's repr, so that a reader with an inexact float parser (serde_json
    # without float_roundtrip) still gets the exact double.
    for series in answer.get("series", []):
        series["datapoints"] = [[v if v is None else repr(float(v)), t] for v, t in series["datapoints"]]
    return answer


ORIGINAL_EVALUATE = driver.evaluate
driver.evaluate = evaluate

if __name__ == "__main__":
    driver.main()
