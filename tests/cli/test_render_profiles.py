"""``jupyterhub-ext profiles`` is what the form offers the same user, and ``render`` is the pod (and claim) the hub
creates for the same start.

* profiles, no cluster: a spawner built from the configuration the real chart makes (tests/deploy/real_chart.py,
  with the tests' Secrets) as tests/spawner builds one, not by the command line's make_spawner, renders its form for
  the user, as the hub does for GET /hub/spawn; the profiles, options and choices it offers, their defaults and
  free-text patterns, are the ones ``profiles`` lists; and what it does not offer is what ``profiles`` says is not
  shown. Then the same through a real hub's spawn page (e2e).
* render, e2e: a real jupyterhub on the chart's configuration (chart_hub.py, the chart's hub_connect_url kept) whose
  KubeSpawner talks to the emulated cluster; the user is made and put in the groups through the REST API, the start
  requested with the same options; the pod (and claim) the emulated API server stored are compared with render's.

What is normalised before comparing, and why:

* the API server's own: render's manifests go through the same defaulting the emulated API server applies to what
  it stores (tests/harness/resources.default_object: restartPolicy, dnsPolicy, terminationMessagePath, requests from
  limits, a claim's volumeMode and storageClassName and pvc-protection finalizer...); the metadata it sets (uid,
  resourceVersion, creationTimestamp, generation; namespace, which KubeSpawner gives in the request path: checked
  to be the chart's); status; the controllers' bindings: a pod's spec.nodeName (the scheduler's), a claim's
  spec.volumeName and pv.kubernetes.io/* annotations (the volume controller's, once it provisions the volume).
* per start, by design: JUPYTERHUB_API_TOKEN and JPY_API_TOKEN (the server's token, which JupyterHub makes for each
  start; render leaves them empty), and the annotation jupyterhub-ext/start (our spawner's id of this start). Each
  is checked to be there in the stored pod before it is blanked.
Nothing else: names, labels, the hub's address (http://hub:8081, as the chart connects pods), the OAuth client and
scopes, the server's URL prefix, images, resources, volumes, init containers, scheduling all compare as they are.
"""

from __future__ import annotations

import asyncio
import copy
import re
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import yaml

from jupyterhub_ext.cli.chart import NAMESPACE
from tests.deploy.hub import SECRETS
from tests.deploy.real_chart import hub_config
from tests.e2e.conftest import cluster  # noqa: F401 (fixture: the emulated cluster, CLUSTER_OPTIONS below)
from tests.harness.hub import BrowserSession, KubeHub
from tests.harness.resources import TYPES, default_object
from tests.support.hub_process import wait_until_healthy

from .chart_hub import API, COMBINATIONS, chart_args, prepare_chart_hub, run_cli, values_files, write_values

CLUSTER_OPTIONS = {"namespaces": (NAMESPACE,)}  # the chart's namespace (POD_NAMESPACE), which render makes pods for


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False

    def args(self) -> list[str]:
        return ["--user", self.name, "--groups", ",".join(self.groups), *(["--admin"] if self.admin else [])]

    def __str__(self) -> str:
        return self.name


EKS_USERS = [User("ana", ("data-engineers",)), User("gil", ("gpu-users",)), User("mo", ("ml-engineers", "students")),
             User("sam"), User("root", admin=True)]
CLASS_USERS = [User("student01", ("students",)), User("instructor", admin=True)]
FORMS = [(combination, user) for combination in COMBINATIONS
         for user in (CLASS_USERS if combination == "aks-classroom" else EKS_USERS)]


# -- the form's offer and profiles' listing, as the same shape -------------------------------------------------------

@dataclass
class Offer:
    """{profile: (default, {option: (choices, default choice, free-text pattern)})}, in order."""
    profiles: dict[str, tuple[bool, dict[str, tuple[list[str], str | None, str | None]]]] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """The radio buttons, selects and free-text inputs of KubeSpawner's profile form."""

    def __init__(self):
        super().__init__()
        self.offer: dict = {}
        self._select: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") == "profile":
            self.offer[a["value"]] = ["checked" in a, {}]
        elif tag == "select" and (a.get("name") or "").startswith("profile-option-"):
            profile, option = a["name"].removeprefix("profile-option-").split("--", 1)
            self.offer[profile][1][option] = [[], None, None]
            self._select = (profile, option)
        elif tag == "option" and self._select:
            profile, option = self._select
            entry = self.offer[profile][1][option]
            if a["value"] != "unlisted-choice":
                entry[0].append(a["value"])
                if "selected" in a:
                    entry[1] = a["value"]
        elif tag == "input" and (a.get("data-name") or "").endswith("--unlisted-choice"):
            profile, option = a["data-name"].removeprefix("profile-option-").removesuffix("--unlisted-choice") \
                .split("--", 1)
            self.offer[profile][1][option][2] = a["pattern"]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def form_offer(html: str) -> Offer:
    parser = _FormParser()
    parser.feed(html)
    return Offer({p: (default, {o: tuple(v) for o, v in options.items()})
                  for p, (default, options) in parser.offer.items()})


PROFILE_LINE = re.compile(r"^  ([a-z0-9-]+)( \(default\))?: ")
OPTION_LINE = re.compile(r"^      ([a-z0-9-]+): (.*)$")


def listed_offer(out: str) -> tuple[Offer, list[str]]:
    """What ``profiles`` lists for the user, and the profiles it says are not shown."""
    offer: dict = {}
    hidden: list[str] = []
    current = None
    for line in out.splitlines():
        if (m := PROFILE_LINE.match(line)):
            current = m.group(1)
            offer[current] = (bool(m.group(2)), {})
        elif (m := OPTION_LINE.match(line)) and current:
            choices, default, pattern = [], None, None
            for item in m.group(2).split(", "):
                if item.startswith("free text ("):
                    pattern = item.removeprefix("free text (").removesuffix(")")
                    continue
                choices.append(item.rstrip("*"))
                default = item.rstrip("*") if item.endswith("*") else default
            offer[current][1][m.group(1)] = (choices, default, pattern)
        elif line.startswith("Not shown to "):
            hidden = line.split(": ", 1)[1].split(", ")
    return Offer(offer), hidden


def _spawner(config, user: User):
    """The configured spawner class for ``user``, with the user's name, groups and admin flag (what the form reads)."""
    spawner = config.JupyterHub.spawner_class(config=config, _mock=True)
    spawner.user.name, spawner.user.admin = user.name, user.admin
    spawner.user.groups = [SimpleNamespace(name=g) for g in user.groups]
    return spawner


@pytest.fixture(scope="module")
def chart_configs(helm, chart, tmp_path_factory):
    """{combination: the Config the hub loads}, from the real chart with the test Secrets (tests/deploy)."""
    return {name: hub_config(helm, tmp_path_factory.mktemp(f"chart-{name}"), list(files), secrets=SECRETS)
            for name, files in COMBINATIONS.items()}


@pytest.mark.parametrize("combination, user", FORMS, ids=[f"{c}-{u}" for c, u in FORMS])
def test_profiles_lists_what_the_form_offers(combination, user, chart_configs, helm):
    listed = run_cli("profiles", *values_files(COMBINATIONS[combination]), *chart_args(helm), *user.args())
    assert listed.code == 0, listed.out + listed.err
    offer, hidden = listed_offer(listed.out)

    async def form():
        spawner = _spawner(chart_configs[combination], user)
        return await spawner.get_options_form(), [p.slug for p in spawner.catalog.profiles]

    html, every = asyncio.run(form())
    offered = form_offer(html)
    assert offered.profiles, html[:2000]
    assert offer == offered, f"profiles said\n{listed.out}\nthe form offers {offered}"
    assert hidden == [slug for slug in every if slug not in offered.profiles]


def test_the_users_see_different_forms():
    # the users above are chosen to see different things: a test of equality must have something to tell apart
    def label(user):
        return (user.groups, user.admin)
    assert len({label(u) for u in EKS_USERS}) == len(EKS_USERS) and len({label(u) for u in CLASS_USERS}) == 2


# -- render and the hub's own start (e2e) -----------------------------------------------------------------------------

TOKEN = secrets.token_hex(24)
PASSWORD = "e2e-class-password-" + secrets.token_hex(8)
ADMIN_PASSWORD = "e2e-admin-password-" + secrets.token_hex(16)  # admin_users log in with it (32+ characters)


def hub_overlay(users: list[User]) -> dict:
    """What the test needs of the hub, given to the command line too: a service token with the admin role (the
    chart's hub.services and hub.loadRoles), the users allowed to log in (admins among admin_users, or a login
    with the students' password would take their admin flag away) and both shared passwords."""
    return {"hub": {"services": {"cli-e2e": {"apiToken": TOKEN}}, "loadRoles": {"admin": {"services": ["cli-e2e"]}},
                    "config": {"ClassroomSharedPasswordAuthenticator": {
                        "allowed_users": sorted({"admin", "instructor", *(u.name for u in users)}),
                        "admin_users": sorted({"admin", "instructor", *(u.name for u in users if u.admin)})}},
                    "extraEnv": {"JUPYTERHUB_SHARED_PASSWORD": {"value": PASSWORD, "valueFrom": None},
                                 "JUPYTERHUB_SHARED_ADMIN_PASSWORD": {"value": ADMIN_PASSWORD, "valueFrom": None}}}}


@dataclass(frozen=True)
class Start:
    combination: str
    user: User
    options: dict

    def render_args(self) -> list[str]:
        rest = [f"{k}={v}" for k, v in self.options.items() if k != "profile"]
        return [*self.user.args(), "--profile", self.options["profile"], *(a for r in rest for a in ("--option", r))]

    @property
    def id(self) -> str:
        return f"{self.combination}-{self.user}-{self.options['profile']}"


STARTS = [
    Start("base", User("ana", ("data-engineers",)),
          {"profile": "data-engineering", "image": "pyspark-3-4", "size": "large"}),
    Start("base", User("dee", ("data-engineers",)),
          {"profile": "data-engineering", "image--unlisted-choice": "quay.io/jupyter/pyspark-notebook:spark-3.5.0"}),
    Start("base", User("gil", ("gpu-users",)), {"profile": "gpu-mig"}),
    Start("base", User("mo", ("ml-engineers",)), {"profile": "trainium", "image": "tensorflow-neuronx"}),
    Start("base", User("root", admin=True), {"profile": "gpu"}),
    Start("aks-classroom", User("student01", ("students",)), {"profile": "classroom"}),
]
HUB_COMBINATIONS = sorted({s.combination for s in STARTS})
FORM_USERS = {c: [User(f"{u.name}-form", u.groups, u.admin) for u in users]
              for c, users in (("base", EKS_USERS), ("aks-classroom", CLASS_USERS))}


@pytest.fixture(scope="module")
def chart_hubs(cluster, helm, chart, tmp_path_factory):  # noqa: F811 (cluster: the fixture imported above)
    """{combination: (a real hub on the chart's configuration whose spawner talks to ``cluster``, its files)}."""
    started = {}
    try:
        for combination in HUB_COMBINATIONS:
            root = tmp_path_factory.mktemp(f"e2e-{combination}")
            users = [s.user for s in STARTS if s.combination == combination] + FORM_USERS[combination]
            files = values_files(COMBINATIONS[combination], write_values(root / "test.yaml", hub_overlay(users)))
            process = prepare_chart_hub(helm, files, root / "hub", kubeconfig=cluster.kubeconfig,
                                        name=f"cli-e2e-{combination}", serve=API).start()
            process.api_token = TOKEN
            started[combination] = (KubeHub(process, NAMESPACE, PASSWORD, cluster.kubeconfig), files)
        for hub, _ in started.values():
            wait_until_healthy(hub.process, 120)
        yield started
    finally:
        for hub, _ in started.values():
            hub.process.stop()


def _member(hub: KubeHub, user: User) -> None:
    hub.ensure_user(user.name, admin=user.admin)
    for group in user.groups:
        hub.api("POST", f"/groups/{group}")
        r = hub.api("POST", f"/groups/{group}/users", json={"users": [user.name]})
        assert r.status_code == 200, r.text


FORM_CASES = [(c, u) for c in HUB_COMBINATIONS for u in FORM_USERS[c]]


@pytest.mark.e2e
@pytest.mark.parametrize("combination, user", FORM_CASES, ids=[f"{c}-{u}" for c, u in FORM_CASES])
def test_profiles_lists_what_the_hubs_spawn_page_offers(combination, user, chart_hubs, helm):
    hub, files = chart_hubs[combination]
    _member(hub, user)
    browser = BrowserSession(hub, user.name)
    browser.login(ADMIN_PASSWORD if user.admin else PASSWORD)
    page = browser.get(f"hub/spawn/{user.name}")
    assert page.status_code == 200 and 'name="profile"' in page.text, (page.status_code, page.url)
    listed = run_cli("profiles", *files, *chart_args(helm), *user.args())
    assert listed.code == 0, listed.out + listed.err
    assert listed_offer(listed.out)[0] == form_offer(page.text)


SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")
PER_START_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
PER_START_ANNOTATIONS = ("jupyterhub-ext/start",)
PER_START = "<made for each start>"


def as_stored(rendered: dict, plural: str, default_storage_class: str | None) -> dict:
    """Render's manifest after the emulated API server's defaulting, with its namespace (the request's)."""
    obj = copy.deepcopy(rendered)
    obj["metadata"]["namespace"] = NAMESPACE
    default_object(TYPES[plural], obj, default_storage_class)
    return normalised(obj)


def normalised(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    for key in SERVER_SET:
        obj["metadata"].pop(key, None)
    obj.get("spec", {}).pop("nodeName", None)  # the scheduler's, when it binds the pod
    if obj["kind"] == "PersistentVolumeClaim":  # the volume controller's, when it binds the claim
        obj["spec"].pop("volumeName", None)
        for key in [k for k in obj["metadata"].get("annotations") or {} if k.startswith("pv.kubernetes.io/")]:
            del obj["metadata"]["annotations"][key]
    for key in PER_START_ANNOTATIONS:  # the hub's pod has it, render's has not (assert_per_start_values)
        (obj["metadata"].get("annotations") or {}).pop(key, None)
    for container in obj.get("spec", {}).get("containers", []):
        for entry in container.get("env") or []:
            if entry["name"] in PER_START_ENV:
                entry["value"] = PER_START
    return obj


def differences(a, b, path: str = "") -> list[str]:
    """Where two manifests differ, one line each (``.spec.containers[0].env[3]: <render> != <hub>``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for key in sorted(set(a) | set(b), key=str)
                for line in (differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}"))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b)) for line in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def assert_same(rendered: dict, stored: dict) -> None:
    found = differences(rendered, stored)
    assert not found, "render != the hub's (after normalising):\n" + "\n".join(found)


def assert_per_start_values(stored_pod: dict, rendered_pod: dict) -> None:
    """What normalised() blanks is there in the hub's pod (made for this start) and empty or absent in render's."""
    notebook = next(c for c in stored_pod["spec"]["containers"] if c["name"] == "notebook")
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert all(re.fullmatch(r"[0-9a-f]{32}", env[name]) for name in PER_START_ENV), env
    assert re.fullmatch(r"[0-9a-f]{32}", stored_pod["metadata"]["annotations"]["jupyterhub-ext/start"])
    rendered_notebook = next(c for c in rendered_pod["spec"]["containers"] if c["name"] == "notebook")
    assert {e["name"]: e.get("value") for e in rendered_notebook["env"] if e["name"] in PER_START_ENV} == \
        {name: "" for name in PER_START_ENV}
    assert "jupyterhub-ext/start" not in (rendered_pod["metadata"].get("annotations") or {})
    assert stored_pod["metadata"]["namespace"] == NAMESPACE


@pytest.mark.e2e
@pytest.mark.parametrize("start", STARTS, ids=[s.id for s in STARTS])
def test_render_is_the_pod_the_hub_creates(start, chart_hubs, cluster, helm):  # noqa: F811
    hub, files = chart_hubs[start.combination]
    rendered = run_cli("render", *files, *chart_args(helm), *start.render_args())
    assert rendered.code == 0, rendered.out + rendered.err
    *claims, pod = list(yaml.safe_load_all(rendered.out))
    assert pod["kind"] == "Pod" and all(c["kind"] == "PersistentVolumeClaim" for c in claims)

    _member(hub, start.user)
    r = hub.spawn(start.user.name, start.options)
    assert r.status_code in (201, 202), r.text
    name = pod["metadata"]["name"]
    stored = cluster.wait_for(lambda: cluster.find("pods", name, NAMESPACE), 60, what=f"pod {name}")
    assert_per_start_values(stored, pod)
    default_class = cluster.store.default_storage_class
    assert_same(as_stored(pod, "pods", default_class), normalised(stored))
    for claim in claims:
        stored_claim = cluster.get("persistentvolumeclaims", claim["metadata"]["name"], NAMESPACE)
        assert_same(as_stored(claim, "persistentvolumeclaims", default_class), normalised(stored_claim))


def test_the_starts_cover_options_free_text_admins_and_claims():
    assert any("--unlisted-choice" in k for s in STARTS for k in s.options)
    assert any(len(s.options) > 2 for s in STARTS) and any(s.user.admin for s in STARTS)
    assert "aks-classroom" in HUB_COMBINATIONS  # home_mode pvc: a claim per user, rendered and created
    assert len({s.user.name for s in STARTS}) == len(STARTS)  # one start each: every pod is the first
