#!/usr/bin/python3
"""Serves graphite-web 1.1.8's real HTTP views in-process, over a given whisper directory, for
Carbyne's end-to-end differential tests (`reference_render_*` in tests/it/reference_render.rs).

Usage: graphite_web_http.py <whisper directory>

The request goes through Django's test `Client`: the URL configuration, the middleware, the
views (`/render`, `/metrics/find`, `/metrics/expand`, ...), the standard finder and the whisper
reader, exactly as a WSGI server would run them, without a socket. Settings are graphite-web's
own `graphite.settings`, with a local settings module written to a temporary directory (what
`GRAPHITE_SETTINGS_MODULE` names) that only points the storage at the given directory:
STANDARD_DIRS / WHISPER_DIR / STORAGE_DIR, no carbon-cache to ask (CARBONLINK_HOSTS = []),
logs in the temporary directory, UTC, and an in-memory SQLite database (find asks for a user
profile, so the tables are created at start-up). Nothing outside the temporary directory is
written, and /etc/graphite is not read.

Optional: with GRAPHITE_CLUSTER_SERVERS set in the environment (a comma-separated list of
CLUSTER_SERVERS entries, `host:port` or a URL, each with graphite-web's own `?format=...`
options), graphite-web is a cluster frontend: it asks those nodes over HTTP for every find and
render (the `reference_cluster_*` tests in tests/it/reference_cluster.rs give it an empty
whisper directory, so that every answer comes from them). GRAPHITE_REMOTE_STORE_USE_POST=1
also sets REMOTE_STORE_USE_POST (those requests are then POSTs with a multipart form body).

Optional: with GRAPHITE_CARBONLINK_HOSTS set in the environment (a comma-separated list of
CARBONLINK_HOSTS entries, `host:port[:instance]`), graphite-web asks those carbon-caches over
carbonlink for the points they hold but have not written, and overlays them on the files'
(`reference_carbonlink_graphite_web` in tests/it/carbonlink.rs); CARBONLINK_TIMEOUT is then
10 s, so that a busy test machine does not make it give up on the cache.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout, in order.
The first line written, before any request is read, is the handshake:
    {"ready": true, "graphite": "<path of graphite/__init__.py>", "python": [3, 11, 2]}
    or {"ready": false, "error": "..."}
A request:
    {"method": "GET" | "POST", "path": "/render", "params": [["target", "a.b"], ...],
     "body": "<optional raw form body>"}
GET sends the params as the query string. POST sends them as a form body, or, when "body" is
given, sends that body (as `application/x-www-form-urlencoded`, the way Grafana sends an
unencoded `query=a.b.*`) with the params in the query string.
The answer:
    {"status": 200, "content_type": "application/json", "body": "<text>"}
plus "error" (the exception's class and message) when a view raised, which Django answers with
a 500 page.
"""

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings

sys.path.insert(0, "/usr/lib/python3/dist-packages")

LOCAL_SETTINGS = """
import os
_here = {tmp!r}
STORAGE_DIR = _here
WHISPER_DIR = {whisper!r}
STANDARD_DIRS = [WHISPER_DIR]
CERES_DIR = os.path.join(_here, 'no-ceres')
RRD_DIR = os.path.join(_here, 'no-rrd')
INDEX_FILE = os.path.join(_here, 'index')
LOG_DIR = os.path.join(_here, 'log')
CARBONLINK_HOSTS = []
TIME_ZONE = 'UTC'
SECRET_KEY = 'carbyne-differential-test'
DATABASES = {{'default': {{'NAME': ':memory:', 'ENGINE': 'django.db.backends.sqlite3'}}}}
FUNCTION_PLUGINS = []
"""


def cluster_settings():
    """CLUSTER_SERVERS (and REMOTE_STORE_USE_POST) from the environment, or nothing."""
    servers = [s for s in os.environ.get("GRAPHITE_CLUSTER_SERVERS", "").split(",") if s]
    settings = "CLUSTER_SERVERS = %r\n" % servers if servers else ""
    if os.environ.get("GRAPHITE_REMOTE_STORE_USE_POST") == "1":
        settings += "REMOTE_STORE_USE_POST = True\n"
    return settings


def carbonlink_settings():
    """CARBONLINK_HOSTS from $GRAPHITE_CARBONLINK_HOSTS, or nothing when it is unset or empty."""
    hosts = [h for h in os.environ.get("GRAPHITE_CARBONLINK_HOSTS", "").split(",") if h]
    return "CARBONLINK_HOSTS = %r\nCARBONLINK_TIMEOUT = 10.0\n" % hosts if hosts else ""


def setup(whisper_dir):
    """Writes the local settings, starts Django and creates the (in-memory) tables."""
    tmp = tempfile.mkdtemp(prefix="carbyne-graphite-web-")
    atexit.register(shutil.rmtree, tmp, True)
    os.makedirs(os.path.join(tmp, "log"))
    name = "carbyne_graphite_local_settings"
    with open(os.path.join(tmp, name + ".py"), "w") as f:
        f.write(LOCAL_SETTINGS.format(tmp=tmp, whisper=os.path.abspath(whisper_dir)))
        f.write(cluster_settings())
        f.write(carbonlink_settings())
    sys.path.insert(0, tmp)
    os.environ["GRAPHITE_SETTINGS_MODULE"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "graphite.settings"
    warnings.simplefilter("ignore")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    # A view that raises is answered with a 500 page; Django would also log it to stderr.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    from django.test import Client

    return Client(raise_request_exception=False)


def handle(client, req):
    from urllib.parse import urlencode

    params = [(k, v) for k, v in req.get("params", [])]
    path = req["path"]
    if req.get("method", "GET") == "GET":
        query = urlencode(params)
        response = client.get(path + ("?" + query if query else ""))
    elif "body" in req:
        query = urlencode(params)
        response = client.generic(
            "POST",
            path + ("?" + query if query else ""),
            req["body"].encode(),
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = client.generic(
            "POST", path, urlencode(params).encode(), content_type="application/x-www-form-urlencoded"
        )
    answer = {
        "status": response.status_code,
        "content_type": response.get("Content-Type", ""),
        "body": response.content.decode("utf-8", "replace"),
    }
    exc_info = getattr(response, "exc_info", None)
    if exc_info:
        answer["error"] = "%s: %s" % (exc_info[0].__name__, exc_info[1])
    return answer


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: graphite_web_http.py <whisper directory>\n")
        sys.exit(2)
    try:
        client = setup(sys.argv[1])
        import graphite
    except Exception as e:  # The Rust side turns this into a failing test with this message.
        sys.stdout.write(json.dumps({"ready": False, "error": "starting graphite-web failed: %r" % e}) + "\n")
        sys.stdout.flush()
        sys.exit(3)
    sys.stdout.write(
        json.dumps({"ready": True, "graphite": graphite.__file__, "python": list(sys.version_info[:3])}) + "\n"
    )
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(client, json.loads(line))
        except Exception as e:
            answer = {"status": 0, "content_type": "", "body": "", "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
