"""Run a real ``jupyterhub`` process for a test: temp dir, sqlite, free ports, configurable-http-proxy from PATH.

Generic on purpose (no authenticator or spawner specifics), for any test that needs a live hub::

    from tests.support.hub_process import start_hub, expect_start_failure

    with start_hub({"JupyterHub": {"authenticator_class": "dummy"}}, crypt_key=True) as hub:
        r = hub.api("GET", "/users")            # admin service token
        r = requests.get(hub.url("/hub/login"))  # through the proxy
    log = expect_start_failure("c.Foo.bar = 1", match="Foo.bar")

A hub started some other way (another command line, another account: tests/local/localhub.py) uses the same
process handling through ``spawn_hub_process`` and ``wait_until_healthy``, with ``hub_path()`` as its PATH.

``config`` is a string of Python (the body of a ``jupyterhub_config.py``), a mapping
``{"Section": {"trait": value}}`` rendered to ``c.Section.trait = <repr(value)>``, or a list mixing both
(applied in order). The helper's own settings come first, so a test may override any of them; a test that
sets ``JupyterHub.services`` or ``JupyterHub.load_roles`` should append to them to keep the admin service.

The process always ends: ``stop()``, the context manager, and an ``atexit`` hook terminate the hub's whole
process group (so the proxy it started too). Logs of hubs that failed to start, died, or were marked by
``save_log()`` are copied to ``artifacts/hub-logs/``.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("HUB_PROCESS_ARTIFACTS", ROOT / "artifacts" / "hub-logs"))
ADMIN_SERVICE = "hub-process-admin"

Config = str | Mapping[str, Mapping[str, Any]] | Iterable[str | Mapping[str, Mapping[str, Any]]]

_running: set[HubProcess] = set()


class HubStartError(RuntimeError):
    """The hub did not become healthy. ``log`` is its output."""

    def __init__(self, message: str, log: str):
        super().__init__(f"{message}\n--- hub log (last 60 lines) ---\n" + "\n".join(log.splitlines()[-60:]))
        self.log = log


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_config(config: Config) -> str:
    """Python source for a jupyterhub_config.py from a string, a mapping, or a list of them."""
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping):
        lines = []
        for section, traits in config.items():
            if not isinstance(traits, Mapping):
                raise TypeError(f"config[{section!r}] must be a mapping of trait -> value")
            for trait, value in traits.items():
                lines.append(f"c.{section}.{trait} = {value!r}")
        return "\n".join(lines)
    return "\n".join(render_config(part) for part in config)


def hub_path() -> str:
    """PATH with the repository's node_modules/.bin (configurable-http-proxy) and this Python's bin first."""
    parts = [str(ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    return os.pathsep.join(parts + [os.environ.get("PATH", "")])


class HubProcess:
    """A running hub. Attributes: ``base_url`` (public URL through the proxy, ends with '/'),
    ``hub_api_url`` (``.../hub/api``), ``api_token`` (admin service token), ``workdir``, ``name``."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        proc: subprocess.Popen,
        log_path: Path,
        base_url: str,
        api_token: str,
        owns_workdir: bool,
    ):
        self.name = name
        self.workdir = workdir
        self.proc = proc
        self.log_path = log_path
        self.base_url = base_url
        self.hub_api_url = base_url + "hub/api"
        self.api_token = api_token
        self._owns_workdir = owns_workdir
        self._stopped = False
        self._save_requested: str | None = None

    # -- use ---------------------------------------------------------------------------------------------

    def url(self, path: str = "") -> str:
        """Absolute public URL for ``path`` (relative to the hub's base URL)."""
        return self.base_url + path.lstrip("/")

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A REST API request with the admin service token; ``path`` is relative to ``/hub/api``."""
        headers = {"Authorization": f"token {self.api_token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 10)
        return requests.request(method, self.hub_api_url + "/" + path.lstrip("/"), headers=headers, **kwargs)

    def log_text(self) -> str:
        """Everything the hub (and the proxy it started) printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 10.0) -> re.Match:
        """Wait until ``pattern`` (regex) appears in the log; return the match."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"{regex.pattern!r} not in the log of hub {self.name!r} after {timeout}s")
            time.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    # -- end ---------------------------------------------------------------------------------------------

    def save_log(self, reason: str = "requested") -> Path:
        """Copy the log to artifacts/hub-logs/ now (and again at stop, to include the end)."""
        self.keep_log(reason)
        return self._copy_log(reason)

    def keep_log(self, reason: str) -> None:
        """Copy the log to artifacts/hub-logs/ when the hub stops."""
        self._save_requested = reason

    def _copy_log(self, reason: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)[:80]
        target = ARTIFACTS / f"{safe}-{stamp}-{os.getpid()}.log"
        target.write_text(f"# {reason}\n" + self.log_text(), encoding="utf-8")
        return target

    def stop(self, timeout: float = 10.0, *, exit_expected: bool = False) -> int | None:
        """Terminate the hub and everything it started; idempotent. Returns the exit code.

        The log is archived when the hub had died by itself (unless ``exit_expected``) or a save was asked.
        """
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        _running.discard(self)
        died_early = not exit_expected and self.proc.poll() is not None and self.proc.returncode != 0
        _terminate_group(self.proc, timeout)
        if died_early:
            self._copy_log(f"hub exited by itself with code {self.proc.returncode}")
        elif self._save_requested:
            self._copy_log(self._save_requested)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self) -> HubProcess:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.keep_log(f"test failed: {exc_type.__name__}: {exc}")
        self.stop()

    def __repr__(self) -> str:
        return f"<HubProcess {self.name} {self.base_url} pid={self.proc.pid}>"


def _terminate_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the hub (it stops its proxy), then make sure nothing of its process group survives.

    The hub leads its own session, so its group's id is its pid. Once the hub is reaped (killed and waited for
    by a test, or exited on a bad config), that number is free again unless a member of its group lives: a
    process that holds it now is a stranger (pids wrap at pid_max, 32768 here), perhaps another test run's hub
    leading its own group, which a killpg would SIGKILL without a word. Then nothing of ours is left to kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    # the leader is reaped now: each time, a process holding its pid means our group is gone (see above)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if os.path.exists(f"/proc/{proc.pid}"):
            break
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.2)


def running_hubs() -> list["HubProcess"]:
    """The hubs this process started that have not been stopped."""
    return list(_running)


@atexit.register
def _stop_all() -> None:
    for hub in list(_running):
        hub.stop(timeout=5)


def spawn_hub_process(
    argv: Iterable[str],
    *,
    name: str,
    workdir: Path,
    base_url: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    api_token: str = "",
    owns_workdir: bool = True,
    preexec_fn: Callable[[], Any] | None = None,
) -> HubProcess:
    """Run ``argv`` (a ``jupyterhub`` command line) as a hub: in a process group of its own, output to
    ``workdir/hub.log``, ended by ``stop()`` or at exit. ``env`` is its whole environment (``hub_path()``
    gives the PATH that finds configurable-http-proxy); ``cwd`` defaults to ``workdir``; ``base_url`` is its
    public URL (ends with '/'). Returns at once: ``wait_until_healthy`` waits for it."""
    log_path = Path(workdir) / "hub.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd or workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() can reach the proxy too
            preexec_fn=preexec_fn,
        )
    hub = HubProcess(name, Path(workdir), proc, log_path, base_url, api_token, owns_workdir)
    _running.add(hub)
    return hub


def launch_hub(
    config: Config = "",
    *,
    name: str = "hub",
    crypt_key: bool | str = False,
    env: Mapping[str, str] | None = None,
    base_path: str = "/",
    debug: bool = False,
    workdir: Path | None = None,
    extra_args: Iterable[str] = (),
    port: int | None = None,
) -> HubProcess:
    """``start_hub`` without the wait: the process is started and returned at once (for timing a start-up,
    or a hub expected to refuse to start). Same arguments as ``start_hub``."""
    owns = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"hub-{name}-")) if workdir is None else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if not base_path.startswith("/") or not base_path.endswith("/"):
        raise ValueError(f"base_path must start and end with '/', got {base_path!r}")
    port = port or free_port()
    hub_port, proxy_api_port = free_port(), free_port()
    api_token = secrets.token_hex(32)
    own = {
        "JupyterHub": {
            "bind_url": f"http://127.0.0.1:{port}{base_path}",
            "hub_bind_url": f"http://127.0.0.1:{hub_port}",
            "db_url": f"sqlite:///{workdir / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(workdir / "jupyterhub_cookie_secret"),
            "pid_file": str(workdir / "jupyterhub.pid"),
            "cleanup_servers": True,
            "cleanup_proxy": True,
            "log_level": "DEBUG" if debug else "INFO",
            "services": [{"name": ADMIN_SERVICE, "api_token": api_token}],
            "load_roles": [{"name": "admin", "services": [ADMIN_SERVICE]}],
        },
        "ConfigurableHTTPProxy": {
            "api_url": f"http://127.0.0.1:{proxy_api_port}",
            "pid_file": str(workdir / "proxy.pid"),
        },
    }
    config_path = workdir / "jupyterhub_config.py"
    config_path.write_text(render_config([own, config]) + "\n", encoding="utf-8")

    child_env = {k: v for k, v in os.environ.items() if k not in ("JUPYTERHUB_CRYPT_KEY", "CONFIGPROXY_AUTH_TOKEN")}
    child_env["PATH"] = hub_path()
    child_env["CONFIGPROXY_AUTH_TOKEN"] = secrets.token_hex(32)
    if crypt_key:
        child_env["JUPYTERHUB_CRYPT_KEY"] = crypt_key if isinstance(crypt_key, str) else secrets.token_hex(32)
    child_env.update(env or {})
    return spawn_hub_process(
        [sys.executable, "-m", "jupyterhub", "-f", str(config_path), *extra_args],
        name=name,
        workdir=workdir,
        base_url=f"http://127.0.0.1:{port}{base_path}",
        env=child_env,
        api_token=api_token,
        owns_workdir=owns,
    )




def _healthy(hub: HubProcess) -> bool:
    try:
        return requests.get(hub.url("hub/health"), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_until_healthy(hub: HubProcess, timeout: float = 60.0) -> HubProcess:
    """Wait until ``/hub/health`` answers 200 through the proxy and return the hub. If it exits or is not
    healthy within ``timeout`` seconds, stop it (its log saved under artifacts/) and raise HubStartError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(hub):
            return hub
        if not hub.alive:
            break
        time.sleep(0.1)
    log = hub.log_text()
    reason = "exited" if not hub.alive else f"not healthy after {timeout}s"
    hub.keep_log(f"start failed: {reason}")
    hub.stop()
    raise HubStartError(f"hub {hub.name!r} {reason}", log)


def start_hub(
    config: Config = "",
    *,
    name: str = "hub",
    crypt_key: bool | str = False,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    base_path: str = "/",
    debug: bool = False,
    timeout: float = 60.0,
    workdir: Path | None = None,
    extra_args: Iterable[str] = (),
) -> HubProcess:
    """Start a hub and wait until ``/hub/health`` answers 200 through the proxy.

    ``port`` fixes the public (proxy) port, for configs that must know their URL in advance (OAuth
    callback URLs); by default a free one is picked. Hub API and proxy API ports are always picked.

    ``crypt_key``: True for a random ``JUPYTERHUB_CRYPT_KEY``, a string for that key, False for none (an
    inherited one is removed). ``env`` is added to the environment. Raises HubStartError (with the log,
    also saved under artifacts/) if the hub exits or is not healthy within ``timeout`` seconds.
    """
    for attempt in range(3):
        hub = launch_hub(
            config,
            name=name,
            crypt_key=crypt_key,
            env=env,
            base_path=base_path,
            debug=debug,
            workdir=workdir,
            extra_args=extra_args,
            port=port,  # a fixed public port is kept; the others are picked again
        )
        try:
            return wait_until_healthy(hub, timeout)
        except HubStartError as e:
            # Another process may have taken a port between free_port() and bind: try again with new ones.
            if "address already in use" in e.log.lower() and attempt < 2:
                continue
            raise
    raise AssertionError("unreachable")


def expect_start_failure(
    config: Config = "",
    *,
    match: str | re.Pattern | None = None,
    name: str = "hub-expected-failure",
    crypt_key: bool | str = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    workdir: Path | None = None,
) -> str:
    """Start a hub that must refuse to start: assert it exits non-zero (never becomes healthy) and, with
    ``match``, that its log contains ``match`` (a regex string or compiled pattern; plain strings are searched
    as regexes, so escape them with re.escape if needed). Returns the log."""
    hub = launch_hub(config, name=name, crypt_key=crypt_key, env=env, workdir=workdir)
    try:
        try:
            hub.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            healthy = _healthy(hub)
            hub.keep_log("expected a start-up failure, but the hub kept running")
            raise AssertionError(
                f"hub {name!r} was expected to refuse to start but is still running"
                f"{' and healthy' if healthy else ''} after {timeout}s\n{hub.log_text()[-4000:]}"
            ) from None
        log = hub.log_text()
        if hub.proc.returncode == 0:
            hub.keep_log("expected a start-up failure, but the hub exited 0")
            raise AssertionError(f"hub {name!r} exited 0, expected a start-up failure\n{log[-4000:]}")
        if match is not None:
            regex = re.compile(match) if isinstance(match, str) else match
            if not regex.search(log):
                hub.keep_log(f"start-up failure without {regex.pattern!r}")
                raise AssertionError(
                    f"hub {name!r} failed to start, but its log lacks {regex.pattern!r}:\n{log[-4000:]}"
                )
        return log
    finally:
        # A refusal is the expected outcome here: archived only when the expectation failed.
        hub.stop(timeout=5, exit_expected=True)
