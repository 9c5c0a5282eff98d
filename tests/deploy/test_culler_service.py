"""The culler service of the real z2jh 4.4.0 chart (helm-rendered, its own jupyterhub_config.py run over it), as our
``setup(c)`` leaves it: with cull rules and a 2.x culler, the chart's command runs that Python with every argument
the chart gave it and our config file; without a 2.x culler, or without rules, it is the chart's, untouched."""

from __future__ import annotations

import json
import logging

import pytest

from jupyterhub_ext.culling.handler import ROUTE, CullMarkHandler
from jupyterhub_ext.culling.policy import ENV
from jupyterhub_ext.culling.service import CONFIG_FILE
from tests.support.culler import culler_python

from . import real_chart

LIMITS = {"pools": {"a10g": ["gpu", "gpu-timeslice"]},
          "culling": [{"pool": "a10g", "idle_minutes": 30}, {"profile": "data-engineering", "idle_minutes": 480}]}
# every cull.* value the chart turns into an argument
CULL = {"enabled": True, "timeout": 7200, "every": 120, "concurrency": 5, "users": True, "adminUsers": False,
        "removeNamedServers": True, "maxAge": 86400}


def culler_of(c) -> tuple[dict, dict]:
    [service] = [s for s in c.JupyterHub.services if s["name"] == "jupyterhub-idle-culler"]
    [role] = [r for r in c.JupyterHub.load_roles if r["name"] == "jupyterhub-idle-culler"]
    return service, role


def configured(helm, tmp_path, name: str, spawner: dict | None = None, cull: dict = CULL):
    extra = {"cull": cull, "hub": {"config": {"ProfilesKubeSpawner": spawner or {}}}}
    return real_chart.hub_config(helm, tmp_path / name, ["values.yaml"], extra)


@pytest.fixture(scope="module")
def charts_own(helm, tmp_path_factory):
    """The chart's culler with no cull rules: setup(c) leaves it as the chart made it."""
    return culler_of(configured(helm, tmp_path_factory.mktemp("chart"), "plain"))


def test_without_rules_the_culler_is_the_charts(charts_own):
    service, role = charts_own
    assert service["command"][:3] == ["python3", "-m", "jupyterhub_idle_culler"]
    assert "--url=http://localhost:8081/hub/api" in service["command"] and "--max-age=86400" in service["command"]
    assert "environment" not in service
    assert role["scopes"] == ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"]


def test_with_rules_setup_runs_the_2x_python_keeping_every_chart_argument(helm, tmp_path, charts_own):
    python = culler_python()
    c = configured(helm, tmp_path, "rules", {"limits": LIMITS, "culler_python": python})
    service, role = culler_of(c)
    chart_service, chart_role = charts_own
    assert service["command"] == [python, "-m", "jupyterhub_idle_culler", *chart_service["command"][3:],
                                  f"--config={CONFIG_FILE}"]
    assert json.loads(service["environment"][ENV]) == {
        "gpu": {"idle_seconds": 1800.0, "max_age_seconds": None},
        "gpu-timeslice": {"idle_seconds": 1800.0, "max_age_seconds": None},
        "data-engineering": {"idle_seconds": 28800.0, "max_age_seconds": None},
        # this test's cull.maxAge (CULL): decided by the hook for every profile without its own maximum age
        "*": {"idle_seconds": None, "max_age_seconds": 86400.0}}
    assert role == chart_role  # read:servers already shows each server's user_options
    assert (ROUTE, CullMarkHandler) in c.JupyterHub.extra_handlers


def test_the_charts_default_hub_image_says_per_profile_culling_is_off(helm, tmp_path, charts_own, caplog):
    """No 2.x Python where the setting points (the chart's own hub image): the culler is the chart's, and why
    per-profile culling is off is in the hub's log."""
    missing = str(tmp_path / "opt" / "jupyterhub-idle-culler" / "bin" / "python")
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        c = configured(helm, tmp_path, "no-2x", {"limits": LIMITS, "culler_python": missing})
    assert culler_of(c)[0] == charts_own[0]
    assert "per-profile culling is off" in caplog.text and f"{missing} is not there" in caplog.text


def test_with_the_culler_off_rules_are_said_to_do_nothing(helm, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        c = configured(helm, tmp_path, "off", {"limits": LIMITS}, cull={"enabled": False})
    assert not [s for s in c.JupyterHub.services if s["name"] == "jupyterhub-idle-culler"]
    assert "the chart's culler is not running (cull.enabled: false)" in caplog.text
