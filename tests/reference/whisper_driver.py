#!/usr/bin/python3
"""Drives python3-whisper for Carbyne's differential tests (tests/it/reference_whisper.rs).

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout, in order.
The first line written, before any request is read, is the handshake:
    {"ready": true, "whisper": "<path of whisper.py>", "python": [3, 11, 2]}
    or {"ready": false, "error": "..."}

Values cross the pipe as the 16 hex digits of their IEEE-754 bits (big-endian), so nothing is
lost to decimal formatting; None is JSON null. Every time-dependent call gets an explicit `now`.

Requests (field "op"):
  create         path, archives [[spp, points]...], xff, method  -> {}
  update_many    path, now, points [[ts, bits]...]               -> {}
  update         path, now, ts (or null), value (bits)           -> {}
  fetch_many     path, ranges [[from, until, archive|null, now]]  -> {"results": [fetch...]}
                 where fetch = null | {"from","until","step","values"} | {"error","message"}
  info           path -> {"info": whisper.info(path)} with xFilesFactor as bits, like values
  set_aggregation path, method|null, xff|null -> {"old_method"} (setAggregationMethod, when a
                 method is given) or {"old_xff": bits} (setXFilesFactor, when only xff is given)
  resize         path, new_path, archives, xff|null, method|null, now -> {}
                 whisper-resize's default mode (no --aggregate) with an explicit `now`.
An exception raised by whisper is answered as {"error": "<class name>", "message": "..."}.
"""

import json
import struct
import sys
import traceback

try:
    import whisper
except ImportError as e:  # The Rust side turns this into a failing test with this message.
    sys.stdout.write(json.dumps({"ready": False, "error": "import whisper failed: %s" % e}) + "\n")
    sys.stdout.flush()
    sys.exit(3)


def to_bits(v):
    return None if v is None else struct.pack(">d", v).hex()


def from_bits(s):
    return struct.unpack(">d", bytes.fromhex(s))[0]


def points_of(req):
    return [(int(ts), from_bits(bits)) for ts, bits in req["points"]]


def op_create(req):
    archives = [tuple(a) for a in req["archives"]]
    whisper.create(req["path"], archives, xFilesFactor=req["xff"], aggregationMethod=req["method"])
    return {}


def op_update_many(req):
    whisper.update_many(req["path"], points_of(req), now=req["now"])
    return {}


def op_update(req):
    whisper.update(req["path"], from_bits(req["value"]), timestamp=req["ts"], now=req["now"])
    return {}


def fetch_one(path, now, from_time, until_time, archive):
    try:
        result = whisper.fetch(path, from_time, until_time, now=now, archiveToSelect=archive)
    except Exception as e:  # noqa: BLE001 - reported to the Rust side, which compares errors
        return {"error": type(e).__name__, "message": str(e)}
    if result is None:
        return None
    (start, end, step), values = result
    return {"from": start, "until": end, "step": step, "values": [to_bits(v) for v in values]}


def op_fetch_many(req):
    path = req["path"]
    return {"results": [fetch_one(path, now, f, u, a) for f, u, a, now in req["ranges"]]}


def op_info(req):
    info = whisper.info(req["path"])
    if info is not None:
        info["xFilesFactor"] = to_bits(info["xFilesFactor"])
    return {"info": info}


def op_set_aggregation(req):
    if req["method"] is not None:
        return {"old_method": whisper.setAggregationMethod(req["path"], req["method"], req["xff"])}
    return {"old_xff": to_bits(whisper.setXFilesFactor(req["path"], req["xff"]))}


def op_resize(req):
    """whisper-resize without --aggregate, step by step, with `now` given instead of time.time().

    As the script does: read every old archive, coarsest first, with a plain fetch (no archive
    selection, so fetch picks the archive by age) from now - retention + step to now; create the
    new file with the old (or given) xFilesFactor and method; then update_many each old archive's
    known points into it, coarsest first.
    """
    path, new_path, now = req["path"], req["new_path"], req["now"]
    info = whisper.info(path)
    old_archives = sorted(info["archives"], key=lambda a: a["secondsPerPoint"], reverse=True)
    xff = info["xFilesFactor"] if req["xff"] is None else req["xff"]
    method = info["aggregationMethod"] if req["method"] is None else req["method"]
    data = []
    for archive in old_archives:
        from_time = now - archive["retention"] + archive["secondsPerPoint"]
        data.append(whisper.fetch(path, from_time, now, now=now))
    whisper.create(new_path, [tuple(a) for a in req["archives"]], xFilesFactor=xff, aggregationMethod=method)
    for timeinfo, values in data:
        datapoints = [p for p in zip(range(*timeinfo), values) if p[1] is not None]
        whisper.update_many(new_path, datapoints, now=now)
    return {}


OPS = {
    "create": op_create,
    "update_many": op_update_many,
    "update": op_update,
    "fetch_many": op_fetch_many,
    "info": op_info,
    "set_aggregation": op_set_aggregation,
    "resize": op_resize,
}


def answer(line):
    req = json.loads(line)
    try:
        return OPS[req["op"]](req)
    except (whisper.WhisperException, ValueError, AssertionError) as e:
        # AssertionError: whisper.py's own check in __archive_update_many; the Rust side fails on it.
        return {"error": type(e).__name__, "message": str(e) or traceback.format_exc()}


def main():
    hello = {"ready": True, "whisper": whisper.__file__, "python": list(sys.version_info[:3])}
    sys.stdout.write(json.dumps(hello) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(answer(line)) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
