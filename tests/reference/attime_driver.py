#!/usr/bin/python3
"""Drives graphite-web's time parsing for Carbyne's differential test (src/render/time.rs,
`reference_attime_against_graphite_web`).

It runs the installed graphite-web (Debian's python3-graphite-web 1.1.8) under its own settings
module, `graphite.settings` (which reads /etc/graphite/local_settings.py), so that every call below
is the code a live /render request runs: `attime.parseATTime`, `attime.parseTimeOffset`,
`render.views.parseOptions` and `datalib.timebounds`. Nothing is reimplemented here except the
two-line sign rule of timeShift/timeStack (see op_shift).

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout, in order.
The first line written, before any request is read, is the handshake:
    {"ready": true, "graphite": "<path of attime.py>", "python": [3, 11, 2]}
    or {"ready": false, "error": "..."}

Requests (field "op"); every answer is {"ok": ...} or {"error": "<exception class>: <message>"}:
  attime  text, now, tz   -> epoch of parseATTime(text, timezone(tz), now as an aware datetime)
  offset  text            -> parseTimeOffset(text) in whole seconds (what summarize & co. use)
  shift   text            -> timeShift's delta in whole seconds
  tz      name            -> str(pytz.timezone(name)), the canonical zone name
  zones                   -> pytz.all_timezones, every name pytz knows
  window  from, until, now, tz (each a string or null: null leaves the parameter out), clock
                          -> [from, until, now] as datalib.timebounds computes them from
                             views.parseOptions on a GET /render, with the wall clock at `clock`
Epochs are what graphite-web itself uses downstream: graphite.util.epoch, whole seconds.
"""

import json
import os
import sys

try:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")
    import warnings

    warnings.simplefilter("ignore")  # graphite.settings warns about its default SECRET_KEY.
    import django

    django.setup()
    import datetime as datetime_module

    import pytz
    from django.test import RequestFactory
    from graphite.render import attime, datalib, views
    from graphite.util import epoch
except Exception as e:  # The Rust side turns this into a failing test with this message.
    sys.stdout.write(json.dumps({"ready": False, "error": "importing graphite-web failed: %r" % e}) + "\n")
    sys.stdout.flush()
    sys.exit(3)


class Clock:
    """The wall clock graphite-web reads through `datetime.now(tz)`, set per request."""

    epoch = 0


class FrozenDatetime(datetime_module.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime_module.datetime.fromtimestamp(Clock.epoch, tz)


# views.parseOptions and attime.parseTimeReference both call datetime.now(tzinfo).
views.datetime = FrozenDatetime
attime.datetime = FrozenDatetime

FACTORY = RequestFactory()


def seconds(delta):
    return delta.days * 86400 + delta.seconds


def op_attime(req):
    tz = pytz.timezone(req["tz"])
    now = datetime_module.datetime.fromtimestamp(req["now"], tz)
    return epoch(attime.parseATTime(req["text"], tz, now))


def op_offset(req):
    return seconds(attime.parseTimeOffset(req["text"]))


def op_shift(req):
    # functions.timeShift and timeStack, before they call parseTimeOffset: "Default to negative".
    text = req["text"]
    if text[0].isdigit():
        text = "-" + text
    return seconds(attime.parseTimeOffset(text))


def op_tz(req):
    return str(pytz.timezone(req["name"]))


def op_zones(req):
    return list(pytz.all_timezones)


def op_window(req):
    Clock.epoch = req["clock"]
    params = {"target": "a.b"}
    for key in ("from", "until", "now", "tz"):
        if req.get(key) is not None:
            params[key] = req[key]
    _, options = views.parseOptions(FACTORY.get("/render", params))
    return list(datalib.timebounds(options))


OPS = {
    "attime": op_attime,
    "offset": op_offset,
    "shift": op_shift,
    "tz": op_tz,
    "zones": op_zones,
    "window": op_window,
}


def answer(line):
    req = json.loads(line)
    try:
        return {"ok": OPS[req["op"]](req)}
    except Exception as e:  # Any failure is an answer: graphite-web turns them into HTTP errors.
        return {"error": "%s: %s" % (type(e).__name__, e)}


def main():
    hello = {"ready": True, "graphite": attime.__file__, "python": list(sys.version_info[:3])}
    sys.stdout.write(json.dumps(hello) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(answer(line)) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
