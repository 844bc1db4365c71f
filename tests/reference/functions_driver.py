#!/usr/bin/python3
"""Drives graphite-web 1.1.8's render functions for Carbyne's differential tests
(`reference_functions_*` tests in src/render/functions/).

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout, in order.
The first line written, before any request is read, is the handshake:
    {"ready": true, "graphite": "<path of functions.py>", "python": [3, 11, 2]}
    or {"ready": false, "error": "..."}

A request evaluates one target the way graphite-web's render view does, except that the data is
given instead of fetched: every path expression of the target maps to the series it fetches.
    {"target": "sumSeries(a.*)", "from": 0, "until": 600, "now": 600, "xFilesFactor": 0.0,
     "fetched": {"a.*": [{"name": "a.b", "start": 0, "end": 600, "step": 60, "values": [...]}]}}
Values are JSON numbers, null for None, or the strings "nan", "inf", "-inf".

The answer lists the series as graphite-web's JSON format shows them: the name, the tags, the
datapoints ([value, timestamp] pairs, after any consolidation the series carries), and the
attributes a later function would see:
    {"series": [{"name", "pathExpression", "tags", "start", "end", "step", "valuesPerPoint",
                 "xFilesFactor", "consolidationFunc", "datapoints"}]}
An exception is answered as {"error": "<class name>", "message": "..."}. Input validation is
enforced (ENFORCE_INPUT_VALIDATION), so an argument graphite-web would only log as invalid is an
error here, as it is in Carbyne.
"""

import json
import math
import os
import sys
import traceback
from datetime import datetime, timezone

sys.path.insert(0, "/usr/lib/python3/dist-packages")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")

try:
    import warnings

    warnings.simplefilter("ignore")
    import django

    django.setup()
    from django.conf import settings

    settings.ENFORCE_INPUT_VALIDATION = True
    import graphite.render.functions as functions
    from graphite.render.datalib import TimeSeries
    from graphite.render.evaluator import evaluateTokens
    from graphite.render.grammar import grammar
except Exception as e:  # The Rust side turns this into a failing test with this message.
    sys.stdout.write(json.dumps({"ready": False, "error": "import graphite-web failed: %r" % e}) + "\n")
    sys.stdout.flush()
    sys.exit(3)


def value_in(v):
    if isinstance(v, str):
        return float(v)
    return v


def value_out(v):
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def context(req):
    start, end, now = req["from"], req["until"], req["now"]
    prefetched = {}
    for pattern, series in req["fetched"].items():
        prefetched[pattern] = [
            (s["name"], ((s["start"], s["end"], s["step"]), [value_in(v) for v in s["values"]])) for s in series
        ]
    return {
        "startTime": datetime.fromtimestamp(start, timezone.utc),
        "endTime": datetime.fromtimestamp(end, timezone.utc),
        "now": datetime.fromtimestamp(now, timezone.utc),
        "localOnly": False,
        "template": {},
        "tzinfo": timezone.utc,
        "forwardHeaders": None,
        "sourceIdHeaders": {},
        "data": [],
        "prefetched": {(start, end, now): prefetched},
        "xFilesFactor": req.get("xFilesFactor", 0.0),
        "maxDataPoints": None,
        "targets": [req["target"]],
    }


def evaluate(req):
    ctx = context(req)
    result = evaluateTokens(ctx, grammar.parseString(req["target"]))
    if isinstance(result, TimeSeries):
        result = [result]
    out = []
    for s in result or []:
        out.append(
            {
                "name": s.name,
                "pathExpression": s.pathExpression,
                "tags": dict(s.tags),
                "start": s.start,
                "end": s.end,
                "step": s.step,
                "valuesPerPoint": s.valuesPerPoint,
                "xFilesFactor": s.xFilesFactor,
                "consolidationFunc": s.consolidationFunc,
                "datapoints": [[value_out(v), t] for v, t in s.datapoints()],
            }
        )
    return {"series": out}


def main():
    sys.stdout.write(
        json.dumps({"ready": True, "graphite": functions.__file__, "python": list(sys.version_info[:3])}) + "\n"
    )
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = evaluate(json.loads(line))
        except Exception as e:
            answer = {"error": type(e).__name__, "message": str(e), "trace": traceback.format_exc(limit=3)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
