"""A bad catalog stops a real `jupyterhub` process at start-up with one line naming the key; a good one starts.

Each config calls ``jupyterhub_ext.z2jh.setup(c)``, the same call the Helm chart's ``hub.extraConfig`` makes.
Every bad catalog runs as its own ``jupyterhub`` process (tests/support/hub_process.py), four at a time: each
costs ~3 CPU-seconds of imports, so the set takes about half a minute on 2 cores instead of a minute in a row.

JupyterHub has no start-up hook for a spawner class, so a hub configured with ``spawner_class =
"profiles-kube"`` alone (no setup(c)) starts; its first form and spawn then fail with the same line.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import entry_points

import pytest
import requests
from traitlets.config import Config

from jupyterhub_ext.errors import CONFIG_ERROR_PREFIX, ConfigUnusable

from ..spawner.conftest import DUMMY_KUBECONFIG, dummy_kubeconfig  # noqa: F401 (fixture)
from ..support.hub_process import ROOT, expect_start_failure, start_hub
from .bad_catalogs import CASES, GOOD

# 17 distinct mistakes: every kind the issue names, and more
STARTUP_IDS = [
    "unknown-key", "camel-case-key", "wrong-type-slug", "gpus-zero", "malformed-memory", "guarantee-above-limit",
    "duplicate-slug", "extended-without-limit", "unknown-mig-profile", "empty-image", "free-text-without-pattern",
    "two-defaults", "override-typo", "override-camel", "override-bad-value", "unknown-kind", "override-unknown-mig",
]
BY_ID = {c[0]: c for c in CASES}
STARTUP_CASES = [BY_ID[i] for i in STARTUP_IDS]
PARALLEL = 4

CHART = """
import json
c.KubeSpawner.tolerations = [{{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}}]
c.ProfilesKubeSpawner.profiles = json.loads({profiles!r})
"""
SETUP = """
import jupyterhub_ext.z2jh
jupyterhub_ext.z2jh.setup(c)
"""


def hub_config(profiles, *, setup: bool = True) -> str:
    return CHART.format(profiles=json.dumps(profiles)) + (SETUP if setup else "")


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> str:
    # KubeSpawner loads a kubeconfig when it is built; nothing here reaches the (unroutable) server
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(DUMMY_KUBECONFIG)
    return str(path)


@pytest.fixture(scope="module")
def refusals(request, tmp_path_factory, kubeconfig) -> dict[str, tuple[Future, object]]:
    """Start a hub for every selected bad catalog, PARALLEL at a time; each test waits for its own."""
    selected = {item.callspec.params["case_id"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_bad_catalog_stops_jupyterhub"}
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bad-catalog-hub")
    started = {}
    for case_id, profiles, path, _ in STARTUP_CASES:
        if case_id not in selected:
            continue
        workdir = tmp_path_factory.mktemp(f"hub-{case_id}")
        started[case_id] = (pool.submit(
            expect_start_failure, hub_config(profiles), name=f"bad-catalog-{case_id}", workdir=workdir,
            env={"KUBECONFIG": kubeconfig}, match=re.escape(f"{CONFIG_ERROR_PREFIX}{path}: "),
            timeout=120), workdir)  # a hang guard only: four hubs share two busy cores
    yield started
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("case_id,profiles,path,fragment", STARTUP_CASES, ids=STARTUP_IDS)
def test_bad_catalog_stops_jupyterhub(refusals, case_id, profiles, path, fragment):
    future, workdir = refusals[case_id]
    log = future.result()  # the hub exited non-zero and its log names the path (else: AssertionError, log)
    lines = [line for line in log.splitlines() if line.startswith(CONFIG_ERROR_PREFIX)]
    assert len(lines) == 1, log[-3000:]
    assert lines[0].startswith(f"{CONFIG_ERROR_PREFIX}{path}: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in log, log[-3000:]  # one line, not a stack trace
    assert not (workdir / "jupyterhub.sqlite").exists()  # stopped before the database, long before serving


def test_the_start_up_set_covers_every_mistake_the_issue_names():
    assert len(set(STARTUP_IDS)) == len(STARTUP_IDS) >= 15
    # unknown keys, camelCase, wrong types, quantities, guarantee > limit, duplicates, extended resource without
    # a limit, MIG names (hardware and raw override), empty image, free text without pattern, two defaults, and
    # raw override keys that are not KubeSpawner traits
    for needed in ("unknown key", "use 'display_name'", "expected a string", "expected a memory quantity",
                   "above the limit", "duplicate profile slug", "needs a limit", "unknown MIG profile",
                   "must not be empty", "needs a pattern", "two profiles are marked default",
                   "did you mean 'mem_limit'", "use 'lifecycle_hooks'"):
        assert any(needed in c[3] for c in STARTUP_CASES), needed
    assert {c[2].split(".")[-1] for c in STARTUP_CASES if "unknown MIG profile" in c[3]} >= {"mig_profile"}
    assert any("kubespawner_override.extra_resource_limits.nvidia.com/mig-" in c[2] for c in STARTUP_CASES)


def _have_proxy() -> bool:
    return (ROOT / "node_modules" / ".bin" / "configurable-http-proxy").exists() or bool(
        shutil.which("configurable-http-proxy"))


def test_good_catalog_starts_a_real_hub(kubeconfig):
    if not _have_proxy():
        pytest.skip("configurable-http-proxy is not installed (scripts/test installs it from npm)")
    with start_hub(hub_config([GOOD]), name="good-catalog", env={"KUBECONFIG": kubeconfig}) as hub:
        log = hub.log_text()
        assert hub.api("GET", "/").status_code == 200
    assert "Using Spawner: jupyterhub_ext.spawner.ProfilesKubeSpawner" in log
    assert CONFIG_ERROR_PREFIX not in log


# -- without setup(c): the entry point alone -------------------------------------------------------------

@pytest.mark.parametrize("name,value,module,cls", [
    ("profiles-kube", "jupyterhub_ext.spawner:ProfilesKubeSpawner", "jupyterhub_ext.spawner", "ProfilesKubeSpawner"),
    ("profiles-local", "jupyterhub_ext.local:LocalProfilesSpawner", "jupyterhub_ext.local.spawner",
     "LocalProfilesSpawner"),
])
def test_spawner_entry_points_resolve_as_jupyterhub_loads_them(name, value, module, cls):
    from jupyterhub.app import JupyterHub

    registered = {ep.name: ep for ep in entry_points(group="jupyterhub.spawners")}
    assert registered[name].value == value
    # JupyterHub's own resolution: c.JupyterHub.spawner_class = "<name>" through its EntryPointType trait
    app = JupyterHub(config=Config({"JupyterHub": {"spawner_class": name}}))
    assert (app.spawner_class.__module__, app.spawner_class.__name__) == (module, cls)
    assert app.spawner_class is registered[name].load()


OVERRIDE_TYPO = BY_ID["override-typo"]  # found only by the KubeSpawner trait check, not by parsing


def test_without_setup_the_first_form_and_spawn_fail_with_the_start_up_line(kubeconfig):
    if not _have_proxy():
        pytest.skip("configurable-http-proxy is not installed (scripts/test installs it from npm)")
    _, profiles, path, fragment = OVERRIDE_TYPO
    config = [{"JupyterHub": {"spawner_class": "profiles-kube", "authenticator_class": "dummy"},
               "Authenticator": {"allow_all": True}}, hub_config(profiles, setup=False)]
    with start_hub(config, name="catalog-without-setup", env={"KUBECONFIG": kubeconfig}) as hub:
        # it starts: JupyterHub offers no start-up hook for a spawner class (docs/catalog.md)
        line_start = f"{CONFIG_ERROR_PREFIX}{path}: "

        browser = requests.Session()
        r = browser.get(hub.url("hub/login"), timeout=30)
        xsrf = browser.cookies.get("_xsrf") or re.search(r'name="_xsrf"\s+value="([^"]+)"', r.text).group(1)
        r = browser.post(hub.url("hub/login?next="), data={"username": "alice", "password": "x", "_xsrf": xsrf},
                         timeout=30, allow_redirects=False)
        assert r.status_code == 302 and browser.cookies, r.status_code  # logged in (the redirect would spawn)
        r = browser.get(hub.url("hub/spawn/alice"), timeout=30)  # the first form
        assert r.status_code == 500
        shown = re.search(re.escape(CONFIG_ERROR_PREFIX) + r"[^<]*", html.unescape(r.text))
        assert shown and shown.group(0).strip().startswith(line_start) and fragment in shown.group(0), r.text[-2000:]

        for _ in range(2):  # the REST API, and again: a broken catalog is never taken as checked
            r = hub.api("POST", "/users/alice/server", json={"profile": "cpu"})
            assert r.status_code == 500, r.text
            assert r.json()["message"].startswith(line_start) and fragment in r.json()["message"]
        assert hub.api("GET", "/users/alice").json()["servers"] == {}
        assert f"{line_start}" in hub.log_text()


@pytest.mark.parametrize("case_id", ["gpus-zero", "override-typo", "override-unknown-mig", "two-defaults"])
async def test_a_spawner_without_the_start_up_check_refuses_with_the_same_line(case_id):
    from jupyterhub_ext.spawner import ProfilesKubeSpawner

    _, profiles, path, fragment = BY_ID[case_id]
    c = Config()
    c.ProfilesKubeSpawner.profiles = profiles
    spawner = ProfilesKubeSpawner(config=c, _mock=True)
    spawner.user.groups, spawner.user.admin = [], False
    # the default profile_list does not parse: a KubeSpawner trait default must not raise
    assert callable(spawner.profile_list)
    with pytest.raises(ConfigUnusable) as form:
        await spawner.get_options_form()
    spawner.user_options = {}
    with pytest.raises(ConfigUnusable) as start:
        await spawner.load_user_options()
    for info in (form, start):
        assert info.value.status_code == 500
        assert info.value.jupyterhub_message.startswith(f"{CONFIG_ERROR_PREFIX}{path}: ")
        assert fragment in info.value.jupyterhub_message
        assert info.value.log_message % info.value.args == info.value.jupyterhub_message  # the REST API's text

