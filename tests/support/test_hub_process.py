"""The hub process helper itself: config rendering, a real start and stop, a refused start."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from tests.support.hub_process import (
    ADMIN_SERVICE,
    HubStartError,
    expect_start_failure,
    free_port,
    hub_path,
    render_config,
    spawn_hub_process,
    start_hub,
    wait_until_healthy,
)


def test_render_config_forms():
    assert render_config("c.A.b = 1") == "c.A.b = 1"
    assert render_config({"A": {"b": 1, "c": "x"}, "D": {"e": {"f"}}}) == "c.A.b = 1\nc.A.c = 'x'\nc.D.e = {'f'}"
    assert render_config([{"A": {"b": [1]}}, "c.A.b.append(2)"]) == "c.A.b = [1]\nc.A.b.append(2)"
    with pytest.raises(TypeError):
        render_config({"A": 1})


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_start_use_and_stop_leave_nothing_behind():
    port = free_port()
    with start_hub(
        [{"JupyterHub": {"authenticator_class": "dummy"}}, "c.Authenticator.allow_all = True"],
        crypt_key=True,
        port=port,
        name="helper-self-test",
    ) as hub:
        assert hub.base_url == f"http://127.0.0.1:{port}/"
        assert requests.get(hub.url("hub/health"), timeout=5).status_code == 200
        me = hub.api("GET", "/user").json()
        assert me["kind"] == "service" and me["name"] == ADMIN_SERVICE
        assert hub.api("POST", "/users/someone").status_code == 201  # admin rights
        hub.wait_for_log(r"JupyterHub is now running")
        proxy_pid = int((hub.workdir / "proxy.pid").read_text())
        workdir = hub.workdir
    assert not hub.alive
    assert port_is_free(port)
    with pytest.raises(ProcessLookupError):
        os.kill(proxy_pid, 0)
    assert not workdir.exists()


def test_expect_start_failure_returns_the_log():
    log = expect_start_failure(
        {"JupyterHub": {"authenticator_class": "no-such-authenticator"}},
        match=r"no-such-authenticator",
    )
    assert "could not be imported" in log


def test_a_process_that_exits_is_a_start_error_with_its_log(monkeypatch, tmp_path):
    """What a hub started from its own command line (tests/local) gets: the same wait, stop and archive."""
    monkeypatch.setattr("tests.support.hub_process.ARTIFACTS", tmp_path / "hub-logs")
    workdir = Path(tempfile.mkdtemp(prefix="hub-exits-"))
    hub = spawn_hub_process([sys.executable, "-c", "print('no config for you'); raise SystemExit(3)"],
                            name="exits", workdir=workdir, base_url=f"http://127.0.0.1:{free_port()}/",
                            env={"PATH": hub_path()})
    with pytest.raises(HubStartError) as info:
        wait_until_healthy(hub, timeout=30)
    assert "exited" in str(info.value) and "no config for you" in info.value.log
    assert hub.proc.returncode == 3 and not workdir.exists()
    (saved,) = (tmp_path / "hub-logs").iterdir()
    assert saved.read_text() == "# hub exited by itself with code 3\nno config for you\n"
