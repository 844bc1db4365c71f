#!/usr/bin/python3
"""Asks two Graphite render APIs the same request (POST, as Grafana) and compares the answers:
series names in order, timestamps, values to 1e-9 relative, nulls. Prints one JSON line:
{"series", "points", "values", "same", "problems" (at most 5)}.

Usage: render_compare.py URL_A URL_B EXPR FROM UNTIL MAX_DATA_POINTS"""
import json
import sys
import urllib.parse
import urllib.request


def main(url_a, url_b, expr, frm, until, points):
    body = urllib.parse.urlencode({"target": expr, "from": frm, "until": until, "format": "json",
                                   "maxDataPoints": points}).encode()

    def get(url):
        with urllib.request.urlopen(url + "/render", data=body, timeout=600) as r:
            return json.load(r)

    a, b = get(url_a), get(url_b)
    problems = []
    if [s["target"] for s in a] != [s["target"] for s in b]:
        problems.append("targets differ: %r vs %r" % ([s["target"] for s in a][:3], [s["target"] for s in b][:3]))
    n_points = n_values = 0
    for sa, sb in zip(a, b):
        pa, pb = sa["datapoints"], sb["datapoints"]
        if [p[1] for p in pa] != [p[1] for p in pb]:
            problems.append("%s: timestamps differ (%d vs %d points)" % (sa["target"], len(pa), len(pb)))
            continue
        for (va, t), (vb, _) in zip(pa, pb):
            n_points += 1
            if va is None or vb is None:
                if (va is None) != (vb is None):
                    problems.append("%s at %d: %r vs %r" % (sa["target"], t, va, vb))
                continue
            n_values += 1
            if abs(va - vb) > 1e-9 * max(abs(va), abs(vb), 1.0):
                problems.append("%s at %d: %r vs %r" % (sa["target"], t, va, vb))
    print(json.dumps({"series": len(a), "points": n_points, "values": n_values, "same": not problems,
                      "problems": problems[:5]}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
