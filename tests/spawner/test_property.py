"""Property: through ProfilesKubeSpawner itself, random ``user_options`` from random users are accepted only
when they name something in that user's list, and nothing else reaches pod creation.

What a user may start is worked out here from the catalog data as written (the YAML / plain dicts) and the
access rules as docs/catalog.md states them — not from the spawner's own view — so a mistake in the view (or in
its per-kind-of-user cache) shows up as a difference.
"""

from __future__ import annotations

import asyncio
import re

import yaml
from hypothesis import HealthCheck, event, given, settings, strategies as st

from jupyterhub_ext.errors import SpawnRefused
from jupyterhub_ext.profiles import builtin_catalog_path

from .conftest import chart_config, make_spawner

with open(builtin_catalog_path("eks"), encoding="utf-8") as f:
    EKS = yaml.safe_load(f)["profiles"]

PATTERN = r"img/[a-z]+:[0-9]+"
RULES = [  # every kind of rule: groups, users, both, admin_only, on profiles, choices and free text
    {"slug": "open", "display_name": "Open", "image": "img/open:1", "hardware": {"kind": "cpu"}, "options": [
        {"slug": "image", "display_name": "Image", "choices": [
            {"slug": "a", "display_name": "A", "image": "img/a:1"},
            {"slug": "staff", "display_name": "Staff", "image": "img/staff:1", "default": True,
             "access": {"groups": ["staff"]}},
            {"slug": "mine", "display_name": "Mine", "image": "img/mine:1", "access": {"users": ["ann"]}},
            {"slug": "root", "display_name": "Root", "image": "img/root:1", "access": {"admin_only": True}},
        ], "free_text": {"display_name": "Other", "pattern": PATTERN, "access": {"groups": ["power"]}}},
        {"slug": "size", "display_name": "Size", "choices": [
            {"slug": "big", "display_name": "Big", "access": {"groups": ["staff"], "users": ["ben"]}}]},
    ]},
    {"slug": "staff-gpu", "display_name": "Staff GPU", "default": True, "image": "img/gpu:1",
     "hardware": {"kind": "gpu"}, "access": {"groups": ["staff", "Gpu Users"]}},
    {"slug": "only-ann", "display_name": "Ann's", "hardware": {"kind": "cpu"}, "access": {"users": ["ann", "Ann Ó"]}},
    {"slug": "admins", "display_name": "Admins", "hardware": {"kind": "cpu"}, "access": {"admin_only": True}},
    {"slug": "free-only", "display_name": "Free", "hardware": {"kind": "cpu"}, "options": [
        {"slug": "image", "display_name": "Image", "choices": [], "free_text": {"pattern": PATTERN}}]},
]
CLOSED = [{"slug": "staff-only", "display_name": "Staff", "hardware": {"kind": "cpu"},
           "access": {"groups": ["staff"]}}]
CATALOGS = {"eks": EKS, "rules": RULES, "closed": CLOSED}
UNLISTED = "--unlisted-choice"


# -- the oracle: the catalog as written -------------------------------------------------------------------

def may(access: dict | None, user) -> bool:
    """docs/catalog.md: admins see everything (admins_see_all); admin_only is for admins; otherwise any listed
    group or user, and no rule at all means everyone."""
    name, groups, admin = user
    access = access or {}
    if admin:
        return True
    if access.get("admin_only"):
        return False
    users, wanted = access.get("users") or [], access.get("groups") or []
    if not users and not wanted:
        return True
    return name in users or any(g in groups for g in wanted)


def offered(raw: list[dict], user) -> list[dict]:
    """The profiles, options and choices ``user`` may see, each option with its default; one default profile."""
    out = []
    for profile in raw:
        if not may(profile.get("access"), user):
            continue
        options = {}
        for option in profile.get("options") or []:
            choices = [c for c in option.get("choices") or [] if may(c.get("access"), user)]
            free = option.get("free_text")
            free = free if free is not None and may(free.get("access"), user) else None
            if not choices and free is None:
                continue  # nothing to choose: the option is not offered
            default = next((c for c in choices if c.get("default")), choices[0] if choices else None)
            options[option["slug"]] = {"choices": {c["slug"]: c for c in choices}, "default": default, "free": free}
        out.append({"raw": profile, "options": options, "default": False})
    if out:
        next((p for p in out if p["raw"].get("default")), out[0])["default"] = True
    return out


def expected(raw: list[dict], user, options) -> tuple[dict, str | None] | None:
    """(labels, image) of the start ``options`` asks for, or None when it must be refused."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return None
    profiles = offered(raw, user)
    slug = options.get("profile")
    if slug is None or slug == "":
        chosen = next((p for p in profiles if p["default"]), None)
    elif isinstance(slug, str):
        chosen = next((p for p in profiles if p["raw"]["slug"] == slug), None)
    else:
        chosen = None
    if chosen is None:
        return None
    labels, image = {"profile": chosen["raw"]["slug"]}, chosen["raw"].get("image")
    custom = None
    for key, option in chosen["options"].items():
        value, typed = options.get(key), options.get(key + UNLISTED)
        if any(v is not None and not isinstance(v, str) for v in (value, typed)):
            return None
        if typed:
            if option["free"] is None or re.fullmatch(option["free"]["pattern"], typed) is None:
                return None
            labels[key], custom = "custom", typed
        elif value:
            if value not in option["choices"]:
                return None
            labels[key] = value
            image = option["choices"][value].get("image") or image
        elif option["default"] is not None:
            labels[key] = option["default"]["slug"]
            image = option["default"].get("image") or image
    allowed_keys = {"profile"} | {k for key in chosen["options"] for k in (key, key + UNLISTED)}
    if set(options) - allowed_keys:
        return None
    return labels, custom or image


def form_of(profiles: list[dict]) -> list[tuple]:
    """The parts of the form that say what may be chosen."""
    return [(p["slug"], p["default"], {k: (list(o["choices"]), [c for c, v in o["choices"].items() if v["default"]],
                                          o["unlisted_choice"]["enabled"], o["unlisted_choice"]["validation_regex"])
                                      for k, o in p["profile_options"].items()})
            for p in profiles]


def oracle_form(raw: list[dict], user) -> list[tuple]:
    return [(p["raw"]["slug"], p["default"],
             {k: (list(o["choices"]), [o["default"]["slug"]] if o["default"] else [], o["free"] is not None,
                  o["free"]["pattern"] if o["free"] else "") for k, o in p["options"].items()})
            for p in offered(raw, user)]


# -- strategies: drawn from the catalog's own names, near misses and anything else ------------------------

def names_in(raw: list[dict]) -> tuple[set[str], set[str], set[str], set[str], set[str]]:
    profiles, options, choices, groups, users = set(), set(), set(), set(), set()
    for p in raw:
        profiles.add(p["slug"])
        rules = [p.get("access")]
        for o in p.get("options") or []:
            options.add(o["slug"])
            for c in o.get("choices") or []:
                choices.add(c["slug"])
                rules.append(c.get("access"))
            rules.append((o.get("free_text") or {}).get("access"))
        for rule in filter(None, rules):
            groups.update(rule.get("groups") or [])
            users.update(rule.get("users") or [])
    return profiles, options, choices, groups, users


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=14)
IMAGES = ["img/x:1", "img/x:1 ", "img/x:1@evil/miner", "IMG/x:1", "quay.io/jupyter/base-notebook:2024-12-09",
          "quay.io/jupyter/base-notebook:1@evil/x", "quay.io/jupyter/x:1\n", "evil/miner:1"]


@st.composite
def cases(draw):
    catalog = draw(st.sampled_from(sorted(CATALOGS)))
    raw = CATALOGS[catalog]
    profiles, options, choices, groups, users = names_in(raw)
    name = draw(st.one_of(st.sampled_from(sorted(users | {"ann", "ben", "Ann"})), TEXT.filter(bool)))
    user_groups = draw(st.lists(st.one_of(st.sampled_from(sorted(groups | {"staff ", "STAFF", "x"})), TEXT),
                                unique=True, max_size=5))
    user = (name, user_groups, draw(st.booleans()))

    value = st.one_of(st.sampled_from(sorted(profiles | choices) + IMAGES + ["", "nope"]), st.none(), TEXT,
                      st.integers(), st.booleans(), st.lists(st.sampled_from(sorted(profiles)), max_size=2))
    keys = sorted({"profile", "mem_limit", "image_pull_policy"} | options | {o + UNLISTED for o in options})
    anything = st.dictionaries(st.one_of(st.sampled_from(keys), TEXT), value, max_size=4)
    # mostly well-formed requests (a profile, then a value for some of its options), which reach the rules
    slug = draw(st.sampled_from(sorted(profiles) + [None, ""]))
    shaped = {} if slug is None else {"profile": slug}
    profile = next((p for p in raw if p["slug"] == slug), None)
    for option in (profile or {}).get("options") or []:
        how = draw(st.sampled_from(["skip", "choice", "free", "empty"]))
        if how == "choice":
            shaped[option["slug"]] = draw(st.sampled_from(sorted(choices) + ["nope"]))
        elif how == "free":
            shaped[option["slug"] + UNLISTED] = draw(st.one_of(st.sampled_from(IMAGES), TEXT))
        elif how == "empty":
            shaped[option["slug"]] = ""
    request = draw(st.one_of(st.just(shaped), anything))  # a dict: Spawner.user_options is a Dict trait
    return catalog, user, request


class Reached(Exception):
    pass


async def attempt(catalog: str, user, options):
    name, groups, admin = user
    config = chart_config() if catalog == "eks" else chart_config(catalog_file="", profiles=CATALOGS[catalog])
    spawner = make_spawner(config, name=name, groups=groups, admin=admin)
    form = form_of(spawner.profile_list(spawner))  # what KubeSpawner's form renders for this user
    base_image = spawner.image
    reached = []

    async def watch(*args, **kwargs):  # the first Kubernetes call of KubeSpawner._start
        reached.append(True)
        raise Reached()

    spawner._start_watching_pods = watch
    spawner.user_options = options
    try:
        await spawner._start()
    except SpawnRefused:
        assert reached == []  # refused before anything reached Kubernetes
        return form, base_image, None
    except Reached:
        pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
        return form, base_image, pod
    raise AssertionError("start neither refused nor reached Kubernetes")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_only_what_the_user_may_start_reaches_pod_creation(case):
    catalog, user, options = case
    form, base_image, pod = asyncio.run(attempt(catalog, user, options))
    raw = CATALOGS[catalog]
    assert form == oracle_form(raw, user)  # the form offers exactly what the catalog grants this user
    want = expected(raw, user, options)
    event(f"{catalog}: {'refused' if want is None else 'started ' + want[0]['profile']}")  # --hypothesis-show-statistics
    if want is None:
        assert pod is None
        return
    assert pod is not None
    labels = pod["metadata"]["labels"]
    got = {k.split("/", 1)[1].removeprefix("option-"): v for k, v in labels.items()
           if k.startswith("jupyterhub-ext/")}
    assert got == want[0]
    assert pod["spec"]["containers"][0]["image"] == (want[1] or base_image)


def test_the_oracle_sees_each_kind_of_rule():
    """The rules catalog gives different users different lists, so the property above compares real choices."""
    def slugs(user):
        return [(p["raw"]["slug"], sorted(p["options"])) for p in offered(RULES, user)]

    assert slugs(("zoe", [], False)) == [("open", ["image"]), ("free-only", ["image"])]
    assert slugs(("ann", [], False)) == [("open", ["image"]), ("only-ann", []), ("free-only", ["image"])]
    assert slugs(("ben", ["Gpu Users"], False)) == [("open", ["image", "size"]), ("staff-gpu", []),
                                                    ("free-only", ["image"])]
    assert [p["raw"]["slug"] for p in offered(RULES, ("root", [], True))] == [p["slug"] for p in RULES]
    assert offered(CLOSED, ("zoe", ["x"], False)) == []
    assert expected(CLOSED, ("zoe", [], False), {}) is None
    assert expected(RULES, ("zoe", ["power"], False), {"image--unlisted-choice": "img/x:1"}) == (
        {"profile": "open", "image": "custom"}, "img/x:1")
