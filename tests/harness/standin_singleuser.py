"""A stand-in for ``jupyterhub-singleuser``: stdlib only, starts in ~50 ms, for tests and benchmarks where the
notebook server itself is not what is being tested (API faults, hundreds of concurrent spawns).

It listens where JupyterHub asked (``JUPYTERHUB_SERVICE_URL``), checks each request's token with the hub
(``GET $JUPYTERHUB_API_URL/user``: the owner, or a token with ``access:servers``), and serves under
``JUPYTERHUB_SERVICE_PREFIX``: ``api`` (version), ``api/status`` and ``api/contents/<path>`` (GET/PUT of text
files relative to the working directory, i.e. the user's home). SIGTERM stops it with exit code 0.

Use it through the kubelet's command map:
``EmulatedCluster(command_map={**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND})``.
"""

import datetime
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
_cache = {}


def authorized(token):
    if not token:
        return False
    if token in _cache:
        return _cache[token]
    req = urllib.request.Request(os.environ["JUPYTERHUB_API_URL"].rstrip("/") + "/user",
                                 headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            model = json.load(r)
    except (urllib.error.URLError, ValueError):
        return False
    user = os.environ.get("JUPYTERHUB_USER")
    scopes = set(model.get("scopes") or [])
    ok = model.get("name") == user or "access:servers" in scopes or \
        any(s.startswith("access:servers!") and (s.endswith(f"user={user}") or f"server={user}/" in s)
            for s in scopes)
    _cache[token] = ok
    return ok


class Handler(BaseHTTPRequestHandler):
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")

    def log_message(self, fmt, *args):
        sys.stderr.write("[standin] " + fmt % args + "\n")

    def _token(self):
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("token "):
            return auth[6:].strip()
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("token", [""])[0]

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith(self.prefix):
            self._send(404, {"message": "not found"})
            return None
        if not authorized(self._token()):
            self._send(403, {"message": "forbidden"})
            return None
        return path[len(self.prefix):]

    def do_GET(self):
        rest = self._route()
        if rest is None:
            return
        if rest in ("api", "api/"):
            self._send(200, {"version": "standin"})
        elif rest == "api/status":
            self._send(200, {"started": STARTED, "last_activity": STARTED, "connections": 0, "kernels": 0})
        elif rest.startswith("api/contents/"):
            rel = urllib.parse.unquote(rest[len("api/contents/"):])
            try:
                with open(rel) as f:
                    self._send(200, {"name": os.path.basename(rel), "path": rel, "type": "file",
                                     "format": "text", "content": f.read()})
            except OSError as e:
                self._send(404, {"message": str(e)})
        else:
            self._send(200, {"message": "stand-in single-user server", "path": rest})

    def do_PUT(self):
        rest = self._route()
        if rest is None:
            return
        if not rest.startswith("api/contents/"):
            self._send(405, {"message": "method not allowed"})
            return
        rel = urllib.parse.unquote(rest[len("api/contents/"):])
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        try:
            with open(rel, "w") as f:
                f.write(body.get("content", ""))
        except OSError as e:
            self._send(403, {"message": str(e)})
            return
        self._send(201, {"name": os.path.basename(rel), "path": rel, "type": "file"})


def main():
    url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    server = ThreadingHTTPServer((url.hostname, url.port or 8888), Handler)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    sys.stderr.write(f"[standin] serving {Handler.prefix} on {url.hostname}:{url.port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
