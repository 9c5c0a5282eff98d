"""A bad catalog stops a real `jupyterhub` at start-up with one line naming the key; a good one starts.

Each case is a real hub process loading a config that calls ``jupyterhub_ext.z2jh.setup(c)``, the same call
the Helm chart's ``hub.extraConfig`` makes. The processes run concurrently to keep this quick.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..spawner.conftest import DUMMY_KUBECONFIG
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
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "kubeconfig").write_text(DUMMY_KUBECONFIG)
    config = tmp / "jupyterhub_config.py"
    config.write_text(CONFIG.format(port=free_port(), hub_port=free_port(), api_port=free_port(), dir=tmp,
                                    profiles=json.dumps(profiles)))
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


def test_bad_catalogs_stop_a_real_hub(tmp_path):
    assert len(STARTUP_CASES) >= 15
    # a hub start is ~4 CPU-seconds of imports: run a few at once, not all 16 on two cores
    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda case: run_hub(tmp_path / case[0], case[1]), STARTUP_CASES))
    for (case_id, _, path, fragment), (code, log) in zip(STARTUP_CASES, results):
        assert code not in (0, None), f"{case_id}: the hub did not refuse to start\n{log[-2000:]}"
        line = next((l for l in log.splitlines() if l.startswith("jupyterhub_ext: configuration error:")), None)
        assert line is not None, f"{case_id}: no configuration error line\n{log[-3000:]}"
        assert f"{path}: " in line and fragment in line, f"{case_id}: {line}"
        assert "JupyterHub is now running" not in log


def test_good_catalog_starts_a_real_hub(tmp_path):
    if not (ROOT / "node_modules" / ".bin" / "configurable-http-proxy").exists() and not shutil.which(
            "configurable-http-proxy"):
        pytest.skip("configurable-http-proxy is not installed (scripts/test installs it from npm)")
    _, log = run_hub(tmp_path / "good", [GOOD], until="JupyterHub is now running")
    assert "JupyterHub is now running" in log
    assert "Using Spawner: jupyterhub_ext.spawner.ProfilesKubeSpawner" in log
