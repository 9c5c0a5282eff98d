"""ProfilesKubeSpawner used where a KubeSpawner is: every hook KubeSpawner and JupyterHub document works as they
document it, on a real hub (issue 13's substitutability).

The operator's configuration gives volumes, mounts and init containers as lists (as z2jh does) and uses:
the authenticator's ``pre_spawn_start``, ``pre_spawn_hook`` (which appends to the list traits and sets an
environment variable that changes at every start), ``modify_pod_hook`` (which sees list-shaped traits and labels
the pod) and ``after_pod_created_hook``. A second hub gives KubeSpawner a callable ``profile_list`` and no
catalog. Each start must carry its own hooks' values, the storage plan and the profile, and nothing of the start
before it.
"""

from __future__ import annotations

import json

import pytest

from .conftest import NAMESPACE, start_module_hub, stop_module_hub

pytestmark = pytest.mark.e2e

PROFILES = [
    {"display_name": "Small", "slug": "small", "default": True, "hardware": {"kind": "cpu", "cpu": {"guarantee": 0.1}, "memory": {"guarantee": "64M"}},
     "env": {"PROFILE_ENV": "small"}},
    {"display_name": "Large", "slug": "large", "hardware": {"kind": "cpu", "cpu": {"guarantee": 0.2}, "memory": {"guarantee": "128M"}},
     "kubespawner_override": {"volumes": [{"name": "large-scratch", "emptyDir": {}}],
                              "volume_mounts": [{"name": "large-scratch", "mountPath": "/scratch"}]}},
]

HOOKS = '''
import json, os
from jupyterhub.auth import DummyAuthenticator

RECORD = {record!r}

def _record(event, **kw):
    with open(RECORD, "a") as f:
        f.write(json.dumps({{"event": event, **kw}}) + "\\n")

class HookedAuthenticator(DummyAuthenticator):
    async def pre_spawn_start(self, user, spawner):
        spawner.environment = {{**spawner.environment, "AUTH_PRE_SPAWN": user.name}}

c.JupyterHub.authenticator_class = HookedAuthenticator
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True

c.KubeSpawner.volumes = [{{"name": "chart-files", "emptyDir": {{}}}}]
c.KubeSpawner.volume_mounts = [{{"name": "chart-files", "mountPath": "/etc/chart-files"}}]
c.KubeSpawner.init_containers = []

_starts = {{}}

def pre_spawn_hook(spawner):
    n = _starts[spawner.user.name] = _starts.get(spawner.user.name, 0) + 1
    spawner.environment["START_NUMBER"] = str(n)
    spawner.volumes.append({{"name": "pre-hook", "emptyDir": {{}}}})
    spawner.volume_mounts.append({{"name": "pre-hook", "mountPath": "/pre-hook"}})
    _record("pre_spawn", user=spawner.user.name, n=n, shapes=[type(spawner.volumes).__name__,
            type(spawner.volume_mounts).__name__, type(spawner.init_containers).__name__])

def modify_pod_hook(spawner, pod):
    _record("modify_pod", user=spawner.user.name, shapes=[type(spawner.volumes).__name__,
            type(spawner.volume_mounts).__name__, type(spawner.init_containers).__name__,
            type(spawner.tolerations).__name__],
            volumes=sorted(v["name"] for v in spawner.volumes))
    pod.metadata.labels["hooked"] = "yes"
    return pod

async def after_pod_created_hook(spawner, pod):
    _record("after_pod_created", user=spawner.user.name, pod=pod["metadata"]["name"])

c.KubeSpawner.pre_spawn_hook = pre_spawn_hook
c.KubeSpawner.modify_pod_hook = modify_pod_hook
c.KubeSpawner.after_pod_created_hook = after_pod_created_hook
'''


def _events(path) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hooks") / "record.jsonl")


@pytest.fixture(scope="module")
def hooked_hub(request, cluster, record):
    from tests.harness.hub import DEFAULT_PASSWORD
    request.module.HUB_CONFIG = "\n".join([
        HOOKS.format(record=record, password=DEFAULT_PASSWORD),
        f"c.ProfilesKubeSpawner.profiles = {PROFILES!r}",
        "c.ProfilesKubeSpawner.home_mode = 'none'",
    ])
    hub = start_module_hub(request, cluster, NAMESPACE, storage="none",
                           spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner")
    yield hub
    stop_module_hub(request, hub)


def _pod(cluster, user: str) -> dict:
    return cluster.get("pods", f"jupyter-{user}", NAMESPACE)


def _env(pod: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}


def test_every_hook_runs_and_sees_the_shapes_the_operator_gave(hooked_hub, cluster, record, username):
    hooked_hub.start(username, {"profile": "large"})
    pod = _pod(cluster, username)
    env = _env(pod)
    assert env["AUTH_PRE_SPAWN"] == username and env["START_NUMBER"] == "1"
    assert pod["metadata"]["labels"]["hooked"] == "yes"
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    assert {"chart-files", "pre-hook", "large-scratch"} <= volumes
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert {"/etc/chart-files", "/pre-hook", "/scratch"} <= mounts
    mine = [e for e in _events(record) if e["user"] == username]
    assert [e["event"] for e in mine] == ["pre_spawn", "modify_pod", "after_pod_created"]
    assert mine[0]["shapes"] == ["list", "list", "list"]
    assert mine[1]["shapes"][:3] == ["list", "list", "list"]  # after the profile and the storage plan, too
    assert mine[2]["pod"] == f"jupyter-{username}"
    hooked_hub.stop_server(username)


def test_the_next_start_has_its_own_hook_values_and_nothing_of_the_last_profile(hooked_hub, cluster, record,
                                                                                 username):
    hooked_hub.start(username, {"profile": "large"})
    hooked_hub.stop_server(username)
    hooked_hub.start(username, {"profile": "small"})
    pod = _pod(cluster, username)
    env = _env(pod)
    assert env["START_NUMBER"] == "2" and env["AUTH_PRE_SPAWN"] == username and env["PROFILE_ENV"] == "small"
    volumes = [v["name"] for v in pod["spec"]["volumes"]]
    assert "large-scratch" not in volumes  # the last start's profile is gone
    assert volumes.count("pre-hook") == 1  # the hook appended to the configured list, not to the last start's
    hooked_hub.stop_server(username)


CALLABLE_PROFILES = '''
def profile_list(spawner):
    return [
        {{"display_name": "Mine", "slug": "mine", "default": True,
          "kubespawner_override": {{"environment": {{"WHO": spawner.user.name}}}}}},
        {{"display_name": "Other", "slug": "other",
          "kubespawner_override": {{"volumes": [{{"name": "other", "emptyDir": {{}}}}]}}}},
    ]

c.KubeSpawner.profile_list = profile_list
c.KubeSpawner.volumes = [{{"name": "chart-files", "emptyDir": {{}}}}]
c.KubeSpawner.volume_mounts = [{{"name": "chart-files", "mountPath": "/etc/chart-files"}}]
c.ProfilesKubeSpawner.home_mode = "efs"
c.ProfilesKubeSpawner.home_pvc = {claim!r}
'''


@pytest.fixture(scope="module")
def callable_hub(request, cluster):
    from tests.harness.platform import efs_objects
    objects = efs_objects(NAMESPACE)
    for plural, body in objects:
        if cluster.find(plural, body["metadata"]["name"], body["metadata"].get("namespace")) is None:
            cluster.create(plural, body, body["metadata"].get("namespace"))
    claim = next(body["metadata"]["name"] for plural, body in objects if plural == "persistentvolumeclaims")
    request.module.HUB_CONFIG = CALLABLE_PROFILES.format(claim=claim)
    hub = start_module_hub(request, cluster, NAMESPACE, storage="none",
                           spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner")
    yield hub
    stop_module_hub(request, hub)


def test_a_callable_profile_list_without_a_catalog_works_as_in_kubespawner(callable_hub, cluster, username):
    form = callable_hub.login(username).get("hub/spawn")
    assert "Mine" in form.text and "Other" in form.text  # KubeSpawner's own form of the callable's list
    callable_hub.start(username, {"profile": "other"})
    pod = _pod(cluster, username)
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    # the profile's list override, the configured list entry it replaced, and the storage plan's home
    assert {"other", "chart-files", "home"} <= volumes
    assert "/home/jovyan" in {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    callable_hub.stop_server(username)
    callable_hub.start(username, {"profile": "mine"})
    pod = _pod(cluster, username)
    assert _env(pod)["WHO"] == username
    assert "other" not in {v["name"] for v in pod["spec"]["volumes"]}
    callable_hub.stop_server(username)
