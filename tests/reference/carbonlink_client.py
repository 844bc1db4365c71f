#!/usr/bin/env python3
"""A carbonlink client (carbon-cache's cache-query protocol) for Carbyne's integration tests
(tests/it/carbonlink.rs). Python's standard library only.

Usage: carbonlink_client.py HOST:PORT < requests.json

stdin: a JSON list of [protocol, request] pairs. Every request is a JSON object (its lists
stay lists) pickled with `pickle.dumps(request, protocol=protocol)`, so any protocol from 0 to
5 can be asked for. All of them go over ONE connection, as graphite-web's pooled connections
do: a 4-byte big-endian length, the pickle, then the reply (same framing) is read before the
next request is sent (the protocol strictly alternates).

stdout: one JSON line per reply, in order:
    {"protocol": p, "reply": <the reply>}
The reply is unpickled with a restricted unpickler that refuses every global, as
graphite-web's does; tuples become JSON lists, bytes become {"bytes": "<hex>"}.
When the connection fails (closed by the server, a short reply, a reply that does not
unpickle), one line {"protocol": p, "error": "..."} is printed for that request and the
client exits with status 1.
"""

import io
import json
import pickle
import socket
import struct
import sys


class RestrictedUnpickler(pickle.Unpickler):
    """Plain values only: any global (a class, a function) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))


def recv_exactly(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def plain(value):
    """The reply as JSON can hold it."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    return value


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: carbonlink_client.py HOST:PORT < requests.json\n")
        return 2
    host, port = sys.argv[1].rsplit(":", 1)
    pairs = json.load(sys.stdin)
    conn = socket.create_connection((host, int(port)), timeout=30)
    for protocol, request in pairs:
        body = pickle.dumps(request, protocol=protocol)
        try:
            conn.sendall(struct.pack("!L", len(body)) + body)
            (size,) = struct.unpack("!L", recv_exactly(conn, 4))
            reply = RestrictedUnpickler(io.BytesIO(recv_exactly(conn, size))).load()
        except Exception as e:
            print(json.dumps({"protocol": protocol, "error": "%s: %s" % (type(e).__name__, e)}), flush=True)
            return 1
        print(json.dumps({"protocol": protocol, "reply": plain(reply)}), flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
