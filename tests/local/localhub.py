"""The repository's ``jupyterhub -f jupyterhub_config.py``, run as a real process for a test.

Only ports, the data directory and (optionally) the course are changed, from the command line and the
environment, as a user of the README's command could: the configuration file is the shipped one. Process
handling, the health wait and log archiving are tests/support/hub_process.py's (``spawn_hub_process``,
``wait_until_healthy``), as for every other hub of the tests.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import requests

from tests.support.hub_process import HubProcess, free_port, hub_path, spawn_hub_process, wait_until_healthy

from .helpers import ROOT

PASSWORD_FILES = {"student": "student-password", "instructor": "instructor-password"}


class LocalHub:
    def __init__(self, process: HubProcess, data_dir: Path, env: Mapping[str, str]):
        self.process = process
        self.data_dir = data_dir
        self.base_url = process.base_url
        self._env = env

    # -- people --------------------------------------------------------------------------------------------

    def password(self, user: str) -> str:
        env_name = "JUPYTERHUB_SHARED_ADMIN_PASSWORD" if user == "instructor" else "JUPYTERHUB_SHARED_PASSWORD"
        if self._env.get(env_name):
            return self._env[env_name]
        return (self.data_dir / "hub" / PASSWORD_FILES[user]).read_text().strip()

    def login(self, user: str, password: str | None = None) -> requests.Session:
        """A logged-in session (cookies, as a browser has), or AssertionError with the hub's answer."""
        s = requests.Session()
        s.get(self.url("hub/login"), timeout=10)
        r = s.post(self.url("hub/login"), data={"username": user, "password": password or self.password(user),
                                                "_xsrf": s.cookies.get("_xsrf")}, allow_redirects=False, timeout=10)
        if r.status_code != 302:
            raise AssertionError(f"login of {user} answered {r.status_code}")
        return s

    def token(self, user: str) -> str:
        """An API token of ``user`` (made through the REST API with their login session)."""
        s = self.login(user)
        r = s.post(self.url(f"hub/api/users/{user}/tokens"), json={"note": "test"},
                   headers={"X-XSRFToken": s.cookies.get("_xsrf")}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    # -- requests ------------------------------------------------------------------------------------------

    def url(self, path: str = "") -> str:
        return self.base_url + path.lstrip("/")

    def api(self, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.url("hub/api/" + path.lstrip("/")),
                                headers={"Authorization": f"token {token}"}, **kwargs)

    def server(self, token: str, user: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to ``user``'s server (its REST API, e.g. ``api/contents/...``)."""
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.url(f"user/{user}/{path.lstrip('/')}"),
                                headers={"Authorization": f"token {token}"}, **kwargs)

    def start_server(self, token: str, user: str, options: Mapping[str, Any], timeout: float = 90) -> None:
        r = self.api(token, "POST", f"users/{user}/server", json=dict(options))
        assert r.status_code in (201, 202), (r.status_code, r.text)
        self.wait_ready(token, user, timeout)

    def wait_ready(self, token: str, user: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api(token, "GET", f"users/{user}").json()
            server = model["servers"].get("")
            if server and server["ready"]:
                return
            if not server and not model.get("pending"):
                raise AssertionError(f"{user}'s server stopped while starting:\n{self.log()[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"{user}'s server not ready after {timeout}s:\n{self.log()[-3000:]}")

    def stop_server(self, token: str, user: str, timeout: float = 60) -> None:
        r = self.api(token, "DELETE", f"users/{user}/server")
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + timeout
        while self.api(token, "GET", f"users/{user}").json()["servers"]:
            assert time.monotonic() < deadline, f"{user}'s server did not stop"
            time.sleep(0.3)

    # -- the process -----------------------------------------------------------------------------------------

    def log(self) -> str:
        return self.process.log_text()

    def banner(self) -> str:
        match = re.search(r"(-{20,}\n.*?\n-{20,})", self.log(), flags=re.S)
        return match.group(1) if match else ""

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> "LocalHub":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.process.__exit__(exc_type, exc, tb)  # a failing test's hub log goes to artifacts/hub-logs/


def start_local_hub(data_dir: Path, *, course: Path | None = None, env: Mapping[str, str] | None = None,
                    cwd: Path | None = None, config_arg: str | None = None, preexec_fn=None,
                    command: list[str] | None = None, extra_args: tuple[str, ...] = (), name: str = "local",
                    timeout: float = 60) -> LocalHub:
    """Start ``jupyterhub -f jupyterhub_config.py`` (the venv's ``jupyterhub`` command) and wait until healthy.

    ``cwd`` (default: a new empty directory) is where it runs; ``config_arg`` what follows ``-f`` (default: the
    file's absolute path); ``command`` replaces ``jupyterhub -f <config>`` (``scripts/run``). ``preexec_fn``
    runs the hub as another account (the normal-user test).
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"hub-{name}-"))
    os.chmod(workdir, 0o755)
    cwd = cwd or (workdir / "cwd")
    cwd.mkdir(exist_ok=True)
    port, hub_port, proxy_port = free_port(), free_port(), free_port()
    jupyterhub = str(Path(sys.executable).parent / "jupyterhub")
    argv = (command or [jupyterhub, "-f", config_arg or str(ROOT / "jupyterhub_config.py")]) + [
            f"--JupyterHub.bind_url=http://127.0.0.1:{port}",
            f"--JupyterHub.hub_bind_url=http://127.0.0.1:{hub_port}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{proxy_port}"]
    # the tests' expectations assume a machine without accelerators, whatever this one has (detection has
    # its own tests)
    argv.append("--LocalProfilesSpawner.accelerators=[]")
    if course is not None:
        argv.append(f"--LocalProfilesSpawner.course_source={course}")
    argv += list(extra_args)
    child_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))}
    child_env.update({"PATH": hub_path(), "JUPYTERHUB_EXT_DATA": str(data_dir), **(env or {})})
    process = spawn_hub_process(argv, name=name, workdir=workdir, cwd=cwd, env=child_env,
                                base_url=f"http://127.0.0.1:{port}/", preexec_fn=preexec_fn)
    return LocalHub(wait_until_healthy(process, timeout), data_dir, child_env)
