"""A bad catalog stops `jupyterhub` at start-up with one line naming the key; a good one starts.

Each config calls ``jupyterhub_ext.z2jh.setup(c)``, the same call the Helm chart's ``hub.extraConfig`` makes.
Every case goes through JupyterHub's own start-up (``JupyterHub.initialize``, what ``jupyterhub -f`` runs) in
this process; one bad and one good catalog also run as real ``jupyterhub`` processes end to end. (A process
per case costs ~4 CPU-seconds of imports each, mostly jupyter_events' grammar: 16 of them took minutes.)
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..spawner.conftest import DUMMY_KUBECONFIG, dummy_kubeconfig  # noqa: F401 (fixture)
from .bad_catalogs import CASES, GOOD

ROOT = Path(__file__).resolve().parents[2]
# 16 distinct mistakes, one of each kind the issue names and more
STARTUP_CASES = [c for c in CASES if c[0] in {
    "unknown-key", "camel-case-key", "wrong-type-slug", "gpus-zero", "malformed-memory", "guarantee-above-limit",
    "duplicate-slug", "extended-without-limit", "unknown-mig-profile", "empty-image", "free-text-without-pattern",
    "two-defaults", "override-typo", "override-camel", "override-bad-value", "unknown-kind",
}]

CONFIG = """
import json
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.JupyterHub.db_url = "sqlite:///{dir}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
c.JupyterHub.pid_file = "{dir}/hub.pid"
c.KubeSpawner.tolerations = [{{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}}]
c.ProfilesKubeSpawner.profiles = json.loads({profiles!r})
import jupyterhub_ext.z2jh
jupyterhub_ext.z2jh.setup(c)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_hub(tmp: Path, profiles, *, until: str | None = None, timeout: float = 120) -> tuple[int | None, str]:
    """Start a hub; return (exit code, log). With ``until``, stop it once that text appears (exit code None)."""
    config = write_config(tmp, profiles)
    (tmp / "kubeconfig").write_text(DUMMY_KUBECONFIG)
    env = {**os.environ, "KUBECONFIG": str(tmp / "kubeconfig"),
           "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    jupyterhub = shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) or "jupyterhub"
    log_path = tmp / "hub.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([jupyterhub, "-f", str(config)], cwd=tmp, env=env, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if until and until in log_path.read_text(errors="replace"):
                proc.terminate()
                proc.wait(30)
                return None, log_path.read_text(errors="replace")
            time.sleep(0.2)
        if proc.returncode is None:
            raise AssertionError(f"hub timed out ({until or 'exit'}):\n{log_path.read_text()[-3000:]}")
        return proc.returncode, log_path.read_text(errors="replace")
    finally:
        # whatever is left of the session (the hub, a proxy it failed to stop) goes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def write_config(tmp: Path, profiles) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "jupyterhub_config.py"
    config.write_text(CONFIG.format(port=free_port(), hub_port=free_port(), api_port=free_port(), dir=tmp,
                                    profiles=json.dumps(profiles)))
    return config


@pytest.mark.parametrize("case_id,profiles,path,fragment", STARTUP_CASES, ids=[c[0] for c in STARTUP_CASES])
async def test_bad_catalog_stops_jupyterhub_start_up(tmp_path, dummy_kubeconfig, case_id, profiles, path, fragment):
    from jupyterhub.app import JupyterHub

    config = write_config(tmp_path, profiles)
    JupyterHub.clear_instance()
    app = JupyterHub.instance()
    try:
        with pytest.raises(SystemExit) as info:
            await app.initialize(argv=["-f", str(config)])
    finally:
        JupyterHub.clear_instance()
    message = str(info.value)
    assert message.startswith(f"jupyterhub_ext: configuration error: {path}: ") and fragment in message
    assert not (tmp_path / "hub.sqlite").exists()  # stopped before the database, long before serving


def test_at_least_fifteen_distinct_cases():
    assert len({c[0] for c in STARTUP_CASES}) >= 15


def test_bad_catalog_stops_a_real_hub_process(tmp_path):
    case_id, profiles, path, fragment = next(c for c in STARTUP_CASES if c[0] == "gpus-zero")
    code, log = run_hub(tmp_path, profiles)
    assert code == 1, log[-2000:]
    line = next((l for l in log.splitlines() if l.startswith("jupyterhub_ext: configuration error:")), None)
    assert line == f"jupyterhub_ext: configuration error: {path}: expected a positive integer, got 0", log[-2000:]
    assert "JupyterHub is now running" not in log


def test_good_catalog_starts_a_real_hub(tmp_path):
    if not (ROOT / "node_modules" / ".bin" / "configurable-http-proxy").exists() and not shutil.which(
            "configurable-http-proxy"):
        pytest.skip("configurable-http-proxy is not installed (scripts/test installs it from npm)")
    _, log = run_hub(tmp_path / "good", [GOOD], until="JupyterHub is now running")
    assert "JupyterHub is now running" in log
    assert "Using Spawner: jupyterhub_ext.spawner.ProfilesKubeSpawner" in log
