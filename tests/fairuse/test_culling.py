"""Per-profile culling without a hub: the rules as written, the policy and its decisions, the culler's hook (with a
stand-in for the hub's API), the hook's imports, and the rewriting of the chart's culler service."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from traitlets.config import Config

from jupyterhub_ext.culling import arbiter, service
from jupyterhub_ext.culling.policy import ENV, decide, from_env, policy_of, to_env
from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.fairuse.model import parse_limits
from tests.support.culler import culler_14_wheel, culler_python

KEY = "ProfilesKubeSpawner.limits"
SLUGS = ["cpu", "gpu", "gpu-timeslice", "gpu-mig", "trainium"]
POOLS = {"a10g": ["gpu", "gpu-timeslice"]}
RULES = {"pools": POOLS, "culling": [
    {"pool": "a10g", "idle_minutes": 30, "max_age_hours": 12},
    {"profile": "gpu-timeslice", "idle_minutes": 60},
    {"profile": "cpu", "idle_minutes": 480},
    {"profile": "trainium", "max_age_hours": 0.5},
]}
CHART_ARGS = ["--url=http://localhost:8081/hub/api", "--timeout=3600", "--cull-every=600", "--concurrency=10",
              "--cull-admin-users=false"]
PY = "/opt/jupyterhub-idle-culler/bin/python"


def limits(raw=RULES):
    return parse_limits(raw, KEY, SLUGS)


def error(raw) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        parse_limits(raw, KEY, SLUGS)
    return e.value


# -- the rules as written ----------------------------------------------------------------------------------

def test_rules_are_parsed_per_pool_and_profile():
    lim = limits()
    pool, own, cpu, trn = lim.culling
    assert (pool.name, pool.profiles, pool.idle_minutes, pool.max_age_hours, pool.pool) == \
        ("a10g", frozenset({"gpu", "gpu-timeslice"}), 30.0, 12.0, True)
    assert (own.name, own.idle_minutes, own.max_age_hours, own.pool) == ("gpu-timeslice", 60.0, None, False)
    assert (trn.idle_minutes, trn.max_age_hours, trn.key) == (None, 0.5, f"{KEY}.culling[3]")
    assert cpu.profiles == frozenset({"cpu"})


def test_culling_alone_is_still_empty_limits():
    """Nothing is counted at a start for cull rules: the place-taking stays off."""
    lim = limits({"culling": [{"profile": "gpu", "idle_minutes": 30}]})
    assert lim.empty and lim.culling and not lim.caps and not lim.budgets
    assert not limits({"culling": [{"profile": "gpu", "idle_minutes": 1}],
                       "caps": [{"profile": "gpu", "total": 1}]}).empty


@pytest.mark.parametrize("raw, path, words", [
    ({"culling": [{"profile": "gpu", "idle_minutes": 0}]}, "culling[0].idle_minutes", "positive number of minutes"),
    ({"culling": [{"profile": "gpu", "idle_minutes": -5}]}, "culling[0].idle_minutes", "positive number"),
    ({"culling": [{"profile": "gpu", "idle_minutes": True}]}, "culling[0].idle_minutes", "positive number"),
    ({"culling": [{"profile": "gpu", "idle_minutes": "30m"}]}, "culling[0].idle_minutes", "got '30m'"),
    ({"culling": [{"profile": "gpu", "max_age_hours": float("nan")}]}, "culling[0].max_age_hours",
     "positive number of hours"),
    ({"culling": [{"profile": "gpu", "max_age_hours": float("inf")}]}, "culling[0].max_age_hours", "hours"),
    ({"culling": [{"profile": "gpu"}]}, "culling[0]", "culls nothing"),
    ({"culling": [{"profile": "gpu", "idle_minutes": None, "max_age_hours": None}]}, "culling[0]", "culls nothing"),
    ({"culling": [{"profile": "gpu", "idle_minute": 30}]}, "culling[0].idle_minute", "did you mean 'idle_minutes'"),
    ({"culling": [{"profile": "gpu", "maxAgeHours": 3}]}, "culling[0].maxAgeHours", "use 'max_age_hours'"),
    ({"culling": [{"profile": "gpux", "idle_minutes": 30}]}, "culling[0].profile", "did you mean 'gpu'"),
    ({"culling": [{"pool": "a100", "idle_minutes": 30}]}, "culling[0].pool", "no pool 'a100'"),
    ({"culling": [{"pool": "a10g", "profile": "gpu", "idle_minutes": 30}], "pools": POOLS}, "culling[0]",
     "exactly one of pool or profile"),
    ({"culling": [{"profile": "gpu", "idle_minutes": 30}, {"profile": "gpu", "max_age_hours": 1}]}, "culling[1]",
     "has a cull rule already"),
    ({"culling": [{"pool": "a10g", "idle_minutes": 30}, {"pool": "a10g", "idle_minutes": 5}], "pools": POOLS},
     "culling[1]", "'a10g' has a cull rule already (ProfilesKubeSpawner.limits.culling[0])"),
    ({"culling": [{"pool": "a10g", "idle_minutes": 30}, {"pool": "both", "idle_minutes": 5}],
      "pools": {**POOLS, "both": ["gpu", "cpu"]}}, "culling[1]", "profile 'gpu' is in pools 'a10g'"),
    ({"culling": {"profile": "gpu"}}, "culling", "expected a list of cull rules"),
    ({"culling": ["gpu"]}, "culling[0]", "expected a mapping"),
    ({"culing": []}, "culing", "did you mean 'culling'"),
])
def test_bad_rules_name_the_key_as_written(raw, path, words):
    e = error(raw)
    assert e.path == f"{KEY}.{path}" and words in e.message, (e.path, e.message)


def test_a_profile_in_two_pools_is_settled_by_its_own_rule():
    lim = limits({"pools": {**POOLS, "both": ["gpu", "cpu"]}, "culling": [
        {"pool": "a10g", "idle_minutes": 30}, {"pool": "both", "idle_minutes": 5}, {"profile": "gpu", "idle_minutes": 9}]})
    assert policy_of(lim)["gpu"]["idle_seconds"] == 9 * 60


# -- the policy and its decisions --------------------------------------------------------------------------

def test_policy_in_seconds_with_a_profiles_own_rule_over_its_pools():
    policy = policy_of(limits())
    assert policy == {
        "gpu": {"idle_seconds": 1800.0, "max_age_seconds": 43200.0},
        "gpu-timeslice": {"idle_seconds": 3600.0, "max_age_seconds": None},  # its own rule, whole
        "cpu": {"idle_seconds": 28800.0, "max_age_seconds": None},
        "trainium": {"idle_seconds": None, "max_age_seconds": 1800.0},
    }
    assert json.loads(to_env(policy)) == policy and from_env({ENV: to_env(policy)}) == policy
    assert from_env({}) == {} and policy_of(limits({})) == {}


@pytest.mark.parametrize("profile, inactive, age, expected", [
    ("gpu", 1799, 5000, None),
    ("gpu", 1800, 5000, "idle"),             # a GPU server idle 30 minutes goes
    ("cpu", 1800, 5000, None),               # a CPU server may idle for 8 hours
    ("cpu", 8 * 3600, 9 * 3600, "idle"),
    ("gpu", 10, 12 * 3600, "max_age"),       # active, but too old
    ("gpu", 4000, 12 * 3600, "max_age"),     # both: the maximum age is the reason
    ("trainium", 3599, 60, None),            # no idle rule of its own: the culler's timeout (3600)
    ("trainium", 3600, 60, "idle"),
    ("trainium", 0, 1800, "max_age"),
    ("elyra", 3599, 10 ** 6, None),          # no rule: the culler's own test (no --max-age here)
    ("elyra", 3600, 10, "idle"),
    (None, 3600, 10, "idle"),
    ("gpu", None, None, None),               # unknown times never cull by themselves
    ("gpu", None, 12 * 3600, "max_age"),
])
def test_decide(profile, inactive, age, expected):
    assert decide(profile, inactive, age, 3600, policy_of(limits())) == expected


@pytest.mark.parametrize("profile, age, expected", [
    ("elyra", 7199, None), ("elyra", 7200, "max_age"), (None, 7200, "max_age"),  # no rule: cull.maxAge
    ("cpu", 7200, "max_age"),                # a rule without a maximum age of its own: cull.maxAge
    ("gpu", 7200, None), ("gpu", 12 * 3600, "max_age"),  # its own maximum age, longer, is its own
])
def test_the_charts_max_age_is_decided_by_the_hook_for_profiles_without_their_own(profile, age, expected):
    policy = {**policy_of(limits()), "*": {"idle_seconds": None, "max_age_seconds": 7200.0}}
    assert decide(profile, 10, age, 3600, policy) == expected


# -- the hook, in the culler's process ---------------------------------------------------------------------

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)


def server_model(full_name="alice/", profile="gpu", started_minutes_ago=60, **extra):
    started = (NOW - datetime.timedelta(minutes=started_minutes_ago)).isoformat().replace("+00:00", "Z")
    return {"name": full_name.split("/", 1)[1], "full_name": full_name, "started": started,
            "last_activity": started, "ready": True, "pending": None,
            "user_options": {"profile": profile} if profile else {}, **extra}


class FakeHub:
    def __init__(self, code=204, fail=False):
        self.requests, self.code, self.fail = [], code, fail

    async def fetch(self, request, raise_error=True):
        self.requests.append(request)
        if self.fail:
            raise ConnectionRefusedError("hub down")
        return SimpleNamespace(code=self.code, body=b'{"message": "no"}')


def hook(hub: FakeHub, policy=None):
    return arbiter.make_arbiter(policy_of(limits()) if policy is None else policy, "http://hub:8081/hub/api/",
                                "culler-token", fetch=hub.fetch, clock=lambda: NOW)


def ask(h, minutes_idle, **model):
    return asyncio.run(h(inactive=datetime.timedelta(minutes=minutes_idle), inactive_limit=3600,
                         server=server_model(**model)))


def test_the_hook_tells_the_hub_before_it_answers_cull():
    hub = FakeHub()
    assert ask(hook(hub), 31) is True
    [request] = hub.requests
    assert request.method == "POST" and request.url == "http://hub:8081/hub/api/jupyterhub-ext/culls"
    assert request.headers["Authorization"] == "token culler-token"
    assert json.loads(request.body) == {"user": "alice", "server": "", "reason": "idle"}


def test_the_hook_keeps_what_its_rules_keep_and_asks_nothing():
    hub = FakeHub()
    assert ask(hook(hub), 29) is False
    assert ask(hook(hub), 120, profile="cpu") is False
    assert hub.requests == []


def test_the_hook_names_a_named_server_and_the_reason_max_age():
    hub = FakeHub()
    assert ask(hook(hub), 1, full_name="bob/big-run", started_minutes_ago=12 * 60 + 1) is True
    assert json.loads(hub.requests[0].body) == {"user": "bob", "server": "big-run", "reason": "max_age"}


def test_a_server_without_a_profile_gets_the_culler_own_test():
    hub = FakeHub()
    assert ask(hook(hub), 59, profile=None) is False
    assert ask(hook(hub), 60, profile=None) is True
    assert json.loads(hub.requests[0].body)["reason"] == "idle"


@pytest.mark.parametrize("hub", [FakeHub(fail=True), FakeHub(code=403)], ids=["unreachable", "refused"])
def test_a_hub_that_cannot_be_told_never_stops_the_cull(hub, caplog):
    with caplog.at_level(logging.WARNING, logger="IdleCuller"):
        assert ask(hook(hub), 31) is True
    assert "the usage ledger will say 'stopped'" in caplog.text


def test_the_hook_is_configured_from_the_services_environment():
    env = {ENV: to_env({"gpu": {"idle_seconds": 60, "max_age_seconds": None}}),
           "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_API_TOKEN": "t"}
    h = arbiter.arbiter_from_env(env)
    assert asyncio.iscoroutinefunction(h)


BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"jupyterhub", "kubespawner", "sqlalchemy", "yaml", "kubernetes_asyncio",
                                  "escapism", "oauthenticator", "traitlets"}:
            raise ImportError(f"{name} is not in the culler's environment")
sys.meta_path.insert(0, Block())
import jupyterhub_ext.culling.arbiter, jupyterhub_ext.culling.policy
print("ok")
"""


def test_the_hook_imports_only_the_standard_library_and_tornado():
    """What the culler's environment has (besides the culler's own dependencies): nothing of the hub's."""
    done = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# -- the chart's culler service, rewritten -----------------------------------------------------------------

def chart_config(enabled=True, args=CHART_ARGS) -> Config:
    """What z2jh 4.4.0's jupyterhub_config.py makes of cull.* (tests/deploy runs the real chart)."""
    c = Config()
    c.JupyterHub.services = [{"name": "other", "api_token": "x"}]
    c.JupyterHub.load_roles = []
    if enabled:
        c.JupyterHub.services.append({"name": "jupyterhub-idle-culler",
                                      "command": ["python3", "-m", "jupyterhub_idle_culler", *args]})
        c.JupyterHub.load_roles.append({"name": "jupyterhub-idle-culler", "services": ["jupyterhub-idle-culler"],
                                        "scopes": ["list:users", "read:users:activity", "read:servers",
                                                   "delete:servers"]})
    return c


def culler(c: Config) -> dict:
    return next(s for s in c.JupyterHub.services if s["name"] == "jupyterhub-idle-culler")


def answers(culler_version="2.0.0", hook=None):
    return lambda python: {"culler": culler_version, "hook": hook}


POLICY = {"gpu": {"idle_seconds": 1800.0, "max_age_seconds": None},
          "cpu": {"idle_seconds": 28800.0, "max_age_seconds": None}}


def test_the_culler_runs_the_2x_python_with_every_chart_argument_and_the_hook():
    c = chart_config()
    assert service.wire_culler(c, POLICY, PY, ask=answers()) is True
    command = culler(c)["command"]
    assert command == [PY, "-m", "jupyterhub_idle_culler", *CHART_ARGS, f"--config={service.CONFIG_FILE}"]
    assert json.loads(culler(c)["environment"][ENV]) == POLICY
    assert service.CONFIG_FILE.is_file()
    from jupyterhub_ext.culling.handler import CullMarkHandler

    assert c.JupyterHub.extra_handlers == [("/api/jupyterhub-ext/culls", CullMarkHandler)]
    # the role keeps the chart's scopes: read:servers already shows the culler each server's user_options
    assert c.JupyterHub.load_roles[0]["scopes"] == ["list:users", "read:users:activity", "read:servers",
                                                    "delete:servers"]
    assert service.wire_culler(c, POLICY, PY, ask=answers()) is True  # twice: the same command, one handler
    assert culler(c)["command"] == command and len(c.JupyterHub.extra_handlers) == 1


def test_the_charts_max_age_goes_to_the_hook_so_its_culls_are_recorded():
    c = chart_config(args=[*CHART_ARGS, "--max-age=86400"])
    assert service.wire_culler(c, POLICY, PY, ask=answers()) is True
    assert json.loads(culler(c)["environment"][ENV]) == {**POLICY, "*": {"idle_seconds": None,
                                                                         "max_age_seconds": 86400.0}}


def test_no_rules_leave_the_chart_culler_alone():
    c = chart_config()
    assert service.wire_culler(c, {}, PY, ask=lambda p: pytest.fail("no need to ask")) is False
    assert culler(c)["command"][0] == "python3" and "environment" not in culler(c)


@pytest.mark.parametrize("found, words", [
    ({"error": f"{PY} is not there"}, f"{PY} is not there"),
    ({"culler": "1.4.0", "hook": None}, "has jupyterhub-idle-culler 1.4.0; the per-profile hook needs 2.0"),
    ({"culler": None, "hook": None}, "has no jupyterhub-idle-culler"),
    ({"culler": "2.0.0", "hook": "ModuleNotFoundError: No module named 'jupyterhub_ext'"},
     "cannot import jupyterhub_ext.culling.arbiter"),
])
def test_without_a_2x_culler_the_hub_says_per_profile_culling_is_off(found, words, caplog):
    c = chart_config()
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        assert service.wire_culler(c, POLICY, PY, ask=lambda p: found) is False
    assert "per-profile culling is off (cpu: idle 480 min; gpu: idle 30 min in limits.culling)" in caplog.text
    assert words in caplog.text and "one timeout for every server (cull.timeout)" in caplog.text
    assert culler(c)["command"][:3] == ["python3", "-m", "jupyterhub_idle_culler"]  # as the chart made it
    assert "extra_handlers" not in c.JupyterHub


def test_with_the_culler_off_the_hub_says_per_profile_culling_is_off(caplog):
    c = chart_config(enabled=False)
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        assert service.wire_culler(c, POLICY, PY, ask=answers()) is False
    assert "per-profile culling is off" in caplog.text and "cull.enabled: false" in caplog.text


def test_the_probe_asks_a_real_python():
    """This test Python has no culler 2.x (or has it: then it is named) and imports the hook."""
    found = service.probe(sys.executable)
    assert found["hook"] is None and set(found) == {"culler", "hook"}
    assert service.probe("/nonexistent/python") == {"error": "/nonexistent/python is not there"}


def test_the_probe_reads_the_images_own_culler_14(monkeypatch):
    """The hub image's Python has the chart's culler 1.4 (here: its wheel on PYTHONPATH): too old for the hook."""
    monkeypatch.setenv("PYTHONPATH", culler_14_wheel())
    found = service.probe(sys.executable)
    assert found == {"culler": "1.4.0", "hook": None}
    assert "has jupyterhub-idle-culler 1.4.0; the per-profile hook needs 2.0" in service._problem(sys.executable, found)


def test_the_probe_accepts_the_2x_environment():
    assert service.probe(culler_python()) == {"culler": "2.0.0", "hook": None}


@pytest.mark.parametrize("args, words", [
    (["--timeout=3600", "--cull-every=600"], "looks every 600 s (cull.every), longer than the shortest idle"),
    (["--timeout=600"], "looks every 300 s"),                  # the culler's default: half its timeout
    (["--cull-every=60", "--max-age=3600"], "maximum age of gpu is longer than the culler's --max-age"),
])
def test_timing_the_culler_would_undo_is_said(args, words, caplog):
    policy = {"gpu": {"idle_seconds": 120.0, "max_age_seconds": 7200.0}}
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        assert service.wire_culler(chart_config(args=args), policy, PY, ask=answers()) is True
    assert words in caplog.text, caplog.text


# -- the operators' page says what the code does -----------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "fair-use.md"
EKS = Path(__file__).resolve().parents[2] / "jupyterhub_ext" / "catalogs" / "eks.yaml"


def _doc_culling_examples() -> list[dict]:
    out = []
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S):
        data = yaml.safe_load(block)
        data = data.get("hub", {}).get("config", {}).get("ProfilesKubeSpawner", data)
        if "culling" in (data.get("limits") or {}):
            out.append(data["limits"])
    return out


def test_the_docs_culling_examples_are_valid_and_the_quoted_warning_is_the_hubs(caplog):
    slugs = [p["slug"] for p in yaml.safe_load(EKS.read_text())["profiles"]]
    examples = _doc_culling_examples()
    assert len(examples) == 3  # the settings, the class, the research group
    policies = [policy_of(parse_limits(raw, KEY, slugs)) for raw in examples]
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        service.wire_culler(chart_config(), policies[0], PY, ask=lambda p: {"error": f"{p} is not there"})
    [quote] = [" ".join(line[2:] for line in para.splitlines())
               for para in DOC.read_text().split("\n\n") if para.startswith("> jupyterhub_ext: per-profile")]
    assert quote in caplog.text, (quote, caplog.text)
