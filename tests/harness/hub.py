"""A real JupyterHub pointed at a Kubernetes API (emulated or real), and a client that drives it.

    hub = start_kube_hub(cluster.kubeconfig, namespace="jhub")       # KubeSpawner, shared password
    hub.spawn("alice", {"profile": "gpu"})                            # REST, with the admin service token
    server = hub.wait_ready("alice")                                  # or SpawnFailed(message, events)
    hub.server_get("alice", "api/status").json()                      # the user's server, via the proxy
    browser = hub.login("bob")                                        # cookies + xsrf, like a browser
    browser.spawn_form({"profile": "cpu"})                            # POST /hub/spawn
    hub.stop_server("alice"); hub.delete_user("alice")

The hub process comes from :mod:`tests.support.hub_process` (temp dir, sqlite, free ports,
configurable-http-proxy from ``node_modules/.bin``). The spawner class and any extra configuration are
parameters, so the same fixture serves vanilla ``kubespawner.KubeSpawner`` and ``ProfilesKubeSpawner``.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from tests.support.hub_process import Config, HubProcess, start_hub

DEFAULT_IMAGE = "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
DEFAULT_PASSWORD = "e2e-shared-password"


def port_free_on_all_interfaces(port: int) -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def kube_hub_config(*, namespace: str, spawner_class: str = "kubespawner.KubeSpawner", image: str = DEFAULT_IMAGE,
                    auth: str = "dummy", password: str = DEFAULT_PASSWORD, start_timeout: int = 30,
                    http_timeout: int = 30, storage: str = "dynamic", request_retry_timeout: int = 10,
                    singleuser_port: int | None = None, hub_connect_ip: str | None = None,
                    slow_spawn_timeout: float | None = 0) -> str:
    """jupyterhub_config.py lines shaped like the z2jh 4.4 chart's defaults for KubeSpawner.

    ``storage``: "dynamic" (a PVC claim-<user> per user at /home/jovyan, as z2jh's default) or "none".
    ``slow_spawn_timeout``: 0 (the default here) makes a spawn request answer 202 at once, and tests follow the
    progress stream; None keeps JupyterHub's own 10 s (as z2jh does), within which a start that fails fast, such
    as a refused request, is answered by the request itself.
    """
    port = singleuser_port or (8888 if port_free_on_all_interfaces(8888) else 18888)
    lines = [
        f"c.JupyterHub.spawner_class = {spawner_class!r}",
        f"c.KubeSpawner.namespace = {namespace!r}",
        f"c.KubeSpawner.image = {image!r}",
        "c.KubeSpawner.cmd = ['jupyterhub-singleuser']",
        f"c.KubeSpawner.port = {port}",
        "c.KubeSpawner.uid = 1000",
        "c.KubeSpawner.fs_gid = 100",
        "c.KubeSpawner.mem_guarantee = '1G'",
        "c.KubeSpawner.events_enabled = True",
        "c.KubeSpawner.common_labels = {'app': 'jupyterhub', 'heritage': 'jupyterhub', 'release': 'e2e'}",
        f"c.KubeSpawner.start_timeout = {start_timeout}",
        f"c.KubeSpawner.http_timeout = {http_timeout}",
        f"c.KubeSpawner.k8s_api_request_retry_timeout = {request_retry_timeout}",
        "c.Spawner.default_url = '/lab'",
    ]
    if slow_spawn_timeout is not None:
        lines.append(f"c.JupyterHub.tornado_settings = {{'slow_spawn_timeout': {slow_spawn_timeout!r}}}")
    if hub_connect_ip:
        lines.append(f"c.JupyterHub.hub_connect_ip = {hub_connect_ip!r}")
    if storage == "dynamic":
        lines += [
            "c.KubeSpawner.storage_pvc_ensure = True",
            "c.KubeSpawner.pvc_name_template = 'claim-{user_server}'",
            "c.KubeSpawner.storage_capacity = '10Gi'",
            "c.KubeSpawner.storage_access_modes = ['ReadWriteOnce']",
            "c.KubeSpawner.volumes = {'volume-{user_server}': {'name': 'volume-{user_server}', "
            "'persistentVolumeClaim': {'claimName': '{pvc_name}'}}}",
            "c.KubeSpawner.volume_mounts = {'volume-{user_server}': {'mountPath': '/home/jovyan', "
            "'name': 'volume-{user_server}'}}",
        ]
    # Test logins admit any (generated) user name with one password: the dummy, as z2jh's own default. The
    # shared-password mode refuses allow_all once jupyterhub_ext.z2jh.setup has given it our checks.
    if auth == "shared-password":
        lines += ["c.JupyterHub.authenticator_class = 'shared-password'",
                  f"c.SharedPasswordAuthenticator.user_password = {password!r}",
                  "c.Authenticator.allow_all = True"]
    elif auth == "dummy":
        lines += ["c.JupyterHub.authenticator_class = 'dummy'", f"c.DummyAuthenticator.password = {password!r}",
                  "c.Authenticator.allow_all = True"]
    return "\n".join(lines)


class ProgressUnavailable(AssertionError):
    """The progress endpoint answered 400 "is not starting": between JupyterHub clearing the pending flag of a
    failed start and that start's future settling (the clean-up stop runs in between), or nothing to follow."""


class SpawnFailed(AssertionError):
    def __init__(self, message: str, events: list[dict]):
        super().__init__(message + "\nprogress:\n" + "\n".join(e.get("message", "") for e in events))
        self.message = message
        self.events = events

    @property
    def messages(self) -> list[str]:
        return [e.get("message", "") for e in self.events]


@dataclass
class KubeHub:
    process: HubProcess
    namespace: str
    password: str = DEFAULT_PASSWORD
    kubeconfig: str | None = None
    progress_log: dict[str, list[dict]] = field(default_factory=dict)

    # --- plumbing -----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.process.base_url.rstrip("/")

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.process.api(method, path, **kw)

    @staticmethod
    def _server_path(name: str, server: str = "") -> str:
        return f"/users/{name}/servers/{server}" if server else f"/users/{name}/server"

    # --- users and servers (REST) ---------------------------------------------------------------------------------

    def user(self, name: str) -> dict | None:
        r = self.api("GET", f"/users/{name}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def ensure_user(self, name: str, admin: bool = False) -> dict:
        r = self.api("POST", f"/users/{name}", json={"admin": admin} if admin else None)
        if r.status_code not in (201, 409):
            raise AssertionError(f"creating user {name}: {r.status_code} {r.text}")
        return self.user(name)

    def spawn(self, name: str, user_options: dict | None = None, server: str = "") -> requests.Response:
        """POST /users/{name}/server with user_options as the JSON body (the REST way to pick a profile)."""
        self.ensure_user(name)
        return self.api("POST", self._server_path(name, server), json=user_options or {})

    def server_model(self, name: str, server: str = "") -> dict | None:
        user = self.user(name)
        return ((user or {}).get("servers") or {}).get(server)

    def progress(self, name: str, server: str = "", timeout: float = 60, until=None) -> list[dict]:
        """Follow the spawn's event stream until ready or failed (what the spawn-pending page shows), or until
        ``until(event)`` is true."""
        path = f"/users/{name}/servers/{server}/progress" if server else f"/users/{name}/server/progress"
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        with self.api("GET", path, stream=True, timeout=(5, timeout)) as r:
            if r.status_code == 400:
                raise ProgressUnavailable(f"progress for {name}: {r.status_code} {r.text}")
            if r.status_code != 200:
                raise AssertionError(f"progress for {name}: {r.status_code} {r.text}")
            for raw in r.iter_lines(decode_unicode=True):
                if raw and raw.startswith("data:"):
                    ev = json.loads(raw[5:])
                    events.append(ev)
                    if ev.get("ready") or ev.get("failed") or (until is not None and until(ev)):
                        break
                if time.monotonic() > deadline:
                    break
        self.progress_log[f"{name}/{server}"] = events
        return events

    def wait_ready(self, name: str, server: str = "", timeout: float = 90) -> dict:
        """Wait for a pending spawn to finish; the server model, or SpawnFailed with the user's message."""
        deadline = time.monotonic() + timeout
        events: list[dict] = []
        while time.monotonic() < deadline:
            model = self.server_model(name, server)
            if model and model.get("ready"):
                return model
            if model and model.get("pending") == "spawn":
                try:
                    events = self.progress(name, server, timeout=max(1.0, deadline - time.monotonic()))
                except ProgressUnavailable:
                    time.sleep(0.2)  # the start is failing and cleaning up: look again
                    continue
                if events and events[-1].get("failed"):
                    raise SpawnFailed(events[-1].get("message", "spawn failed"), events)
                continue
            if model is None:
                # not pending and not ready: the spawn already ended (failed before we looked)
                events = self.progress_log.get(f"{name}/{server}", events)
                raise SpawnFailed(self.last_spawn_error(name, server) or "server is not running", events)
            time.sleep(0.2)
        raise TimeoutError(f"server {name}/{server} not ready after {timeout}s; progress: "
                           f"{[e.get('message') for e in events]}")

    def last_spawn_error(self, name: str, server: str = "", timeout: float = 10) -> str | None:
        """The failure message JupyterHub keeps for a user's last spawn (via the progress endpoint): what a
        reloaded spawn-pending page shows."""
        path = f"/users/{name}/servers/{server}/progress" if server else f"/users/{name}/server/progress"
        deadline = time.monotonic() + timeout
        while True:
            with self.api("GET", path, stream=True, timeout=10) as r:
                if r.status_code != 200:
                    try:
                        message = r.json().get("message")
                    except ValueError:
                        message = r.text
                    if r.status_code == 400 and "is not starting" in (message or "") \
                            and time.monotonic() < deadline:
                        time.sleep(0.2)  # a failed start still cleaning up (see ProgressUnavailable)
                        continue
                    return message
                for raw in r.iter_lines(decode_unicode=True):
                    if raw and raw.startswith("data:"):
                        ev = json.loads(raw[5:])
                        if ev.get("failed") or ev.get("ready"):
                            return ev.get("message")
            return None

    def start(self, name: str, user_options: dict | None = None, server: str = "", timeout: float = 90) -> dict:
        r = self.spawn(name, user_options, server)
        if r.status_code not in (201, 202):
            raise SpawnFailed(f"{r.status_code}: {_message(r)}", [])
        return self.wait_ready(name, server, timeout)

    def stop_server(self, name: str, server: str = "", timeout: float = 60) -> None:
        r = self.api("DELETE", self._server_path(name, server))
        if r.status_code not in (202, 204, 400, 404):
            raise AssertionError(f"stopping {name}/{server}: {r.status_code} {r.text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model(name, server)
            if not model:
                return
            if not model.get("pending") and not model.get("ready"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"server {name}/{server} still stopping after {timeout}s: {self.server_model(name, server)}")

    def delete_user(self, name: str, timeout: float = 60) -> None:
        """Stop all servers and delete the user (KubeSpawner.delete_forever deletes the PVC)."""
        user = self.user(name)
        if user is None:
            return
        for server in (user.get("servers") or {}):
            self.stop_server(name, server, timeout)
        r = self.api("DELETE", f"/users/{name}")
        if r.status_code not in (204, 404):
            raise AssertionError(f"deleting {name}: {r.status_code} {r.text}")

    def server_get(self, name: str, path: str = "api/status", server: str = "", **kw) -> requests.Response:
        """GET the user's server through the proxy with the admin token (scope access:servers)."""
        prefix = f"/user/{name}/{server + '/' if server else ''}"
        kw.setdefault("timeout", 30)
        return requests.get(self.url + prefix + path.lstrip("/"),
                            headers={"Authorization": f"token {self.process.api_token}"}, **kw)

    def login(self, name: str, password: str | None = None) -> "BrowserSession":
        s = BrowserSession(self, name)
        s.login(password or self.password)
        return s


def _message(r: requests.Response) -> str:
    try:
        return r.json().get("message") or r.text
    except ValueError:
        return r.text


_XSRF = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


class BrowserSession:
    """A user's browser: cookies, the login form and the spawn form, redirects followed."""

    def __init__(self, hub: KubeHub, name: str):
        self.hub, self.name = hub, name
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return urljoin(self.hub.url + "/", path.lstrip("/"))

    def _xsrf(self, html: str) -> str:
        m = _XSRF.search(html)
        if m:
            return m.group(1)
        return self.session.cookies.get("_xsrf", "")

    def login(self, password: str) -> None:
        r = self.session.get(self.url("hub/login"), timeout=30)
        r = self.session.post(self.url("hub/login?next="), data={"username": self.name, "password": password,
                                                                 "_xsrf": self._xsrf(r.text)}, timeout=30)
        if r.status_code >= 400 or "/hub/login" in r.url and "Invalid" in r.text:
            raise AssertionError(f"login of {self.name} failed: {r.status_code} {r.url}")

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.session.get(self.url(path), **kw)

    def spawn_form(self, data: dict[str, Any] | None = None, server: str = "") -> requests.Response:
        """GET the options form, then POST it with ``data`` (plus _xsrf). Returns the final response:
        the spawn-pending page, the user's server, or the form again with an error message."""
        path = f"hub/spawn/{self.name}/{server}" if server else f"hub/spawn/{self.name}"
        form = self.get(path)
        if "spawn-pending" in form.url or f"/user/{self.name}/" in form.url or "<form" not in form.text:
            return form  # no options form: GET /hub/spawn already started the server, as in a browser
        body = dict(data or {})
        body["_xsrf"] = self._xsrf(form.text)
        return self.session.post(self.url(path), data=body, timeout=60)

    def pending_page(self, server: str = "") -> requests.Response:
        return self.get(f"hub/spawn-pending/{self.name}/{server}" if server else f"hub/spawn-pending/{self.name}")

    def open_server(self, path: str = "lab", server: str = "") -> requests.Response:
        """The user's server through the proxy, with the OAuth redirects a browser follows."""
        prefix = f"user/{self.name}/{server + '/' if server else ''}"
        return self.get(prefix + path.lstrip("/"), timeout=60)


def start_kube_hub(kubeconfig: str, *, namespace: str, config: Config = "", name: str = "kube-hub",
                   **options) -> KubeHub:
    """Start a hub whose KubeSpawner talks to the API in ``kubeconfig``. ``options`` go to kube_hub_config;
    ``config`` (string or mapping, see hub_process) comes last and may override anything."""
    password = options.get("password", DEFAULT_PASSWORD)
    base = kube_hub_config(namespace=namespace, **options)
    process = start_hub([base, config], name=name, env={"KUBECONFIG": kubeconfig})
    return KubeHub(process, namespace, password, kubeconfig)
