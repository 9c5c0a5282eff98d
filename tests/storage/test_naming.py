"""Home directory names: KubeSpawner 6 homes stay put, and no two users ever share a directory.

The batch test renders N random, hostile usernames (``names.py``; N = 100,000 by default, set
``JUPYTERHUB_EXT_NAME_EXAMPLES`` for more, and ``JUPYTERHUB_EXT_NAME_SEED`` for another sample) through
KubeSpawner's own ``_expand_user_properties`` and checks every directory name and pod name. It takes about ten
seconds; ``RUN_SLOW=1 pytest -m slow tests/storage`` adds a million names with a fresh seed.

'escape' (the default) is exactly injective. 'safe' is KubeSpawner 7's slug, whose hash suffix has 32 bits:
the million-name run finds pairs of users it gives one directory (and one pod name), e.g. two all-unicode names
that both become ``x---0c16aa3b``. The tests check that those are the only collisions it has.
"""

from __future__ import annotations

import asyncio
import os
import random
import re

import pytest
from hypothesis import given, settings, strategies as st

from jupyterhub_ext.storage import LEGACY_MAX, home_subpath, legacy_dir_name, user_fields

from . import kubespawner6 as ks6
from .names import usernames

N = int(os.environ.get("JUPYTERHUB_EXT_NAME_EXAMPLES", "100000"))
SEED = int(os.environ.get("JUPYTERHUB_EXT_NAME_SEED", "20241122"))
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


# KubeSpawner 7's fields for the two renderings of a name, and the user id: what user_fields must equal
FIELDS_TEMPLATE = "{escaped_username}/{safe_username}/{userid}"


def kubespawner6(name: str) -> str:
    """What ``{username}`` rendered to in KubeSpawner 6.x: its own code, from its wheel."""
    return ks6.username(name)


class Renderer:
    """One mock spawner whose user is renamed: KubeSpawner's real expansion, without a spawner per name."""

    def __init__(self):
        async def build():
            from jupyterhub_ext.spawner import ProfilesKubeSpawner

            return ProfilesKubeSpawner(_mock=True)

        self.spawner = asyncio.run(build())  # the API client needs a loop only while it is built

    def expand(self, name: str, template: str, slug_scheme: str | None = None) -> str:
        self.spawner.user.name = name
        return self.spawner._expand_user_properties(template, slug_scheme)

    def fields(self, name: str) -> tuple[str, str, str]:
        """KubeSpawner 7's own renderings (the product computes them with user_fields, without a spawner)."""
        escaped, safe, userid = self.expand(name, FIELDS_TEMPLATE).split("/")
        return escaped, safe, userid

    def home(self, name: str, scheme: str = "escape", template: str = "{username}") -> str:
        fields = user_fields(name, self.spawner.user.id)
        assert fields == self.fields(name), name
        return home_subpath(template, scheme, name, fields)


@pytest.fixture(scope="module")
def renderer(dummy_kubeconfig) -> Renderer:
    return Renderer()


def assert_safe_dir(path: str) -> None:
    assert path and "/" not in path and "\0" not in path and path not in (".", "..")
    assert len(path.encode()) <= 255


# -- compatibility -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("alice", "alice"),
    ("Alice.B", "-41lice-2e-42"),
    ("user@example.com", "user-40example-2ecom"),
    ("jean-luc", "jean-2dluc"),
    ("zoë", "zo-c3-ab"),
    ("_x", "-5fx"),
])
def test_escape_scheme_is_kubespawner6s_rendering(renderer, name, expected):
    assert kubespawner6(name) == expected
    assert renderer.home(name) == expected
    # and what KubeSpawner 7 itself renders '{username}' to with slug_scheme='escape'
    assert renderer.expand(name, "{username}", "escape") == expected


@pytest.mark.parametrize("name", ["alice", "Alice.B", "user@example.com", "jean-luc", "zoë", "a" * 70, "x---1"])
def test_safe_scheme_is_kubespawner7s_default_rendering(renderer, name):
    assert renderer.home(name, "safe") == renderer.expand(name, "{username}", "safe")


def test_every_6x_home_that_can_exist_keeps_its_name(renderer):
    # KubeSpawner 6 put the escaped name in a 63-character label: longer names never started a server there
    for name in usernames(5000, seed=SEED + 1):
        legacy = kubespawner6(name)
        if len(legacy) <= LEGACY_MAX:
            assert renderer.home(name) == legacy
            assert renderer.home(name, template="homes/{username}") == f"homes/{legacy}"
        else:
            short = renderer.home(name)
            assert "--" in short and len(short) <= LEGACY_MAX and short.startswith(legacy[:20])


def test_long_names_are_shortened_with_a_hash_of_the_whole_name():
    a, b = "a" * 100, "a" * 99 + "b"
    ea, eb = kubespawner6(a), kubespawner6(b)
    assert legacy_dir_name(a, ea) != legacy_dir_name(b, eb)
    assert legacy_dir_name(a, ea) == legacy_dir_name(a, ea)  # stable
    # a cut never leaves half an escape sequence behind
    emoji = "😀" * 30
    short = legacy_dir_name(emoji, kubespawner6(emoji))
    assert re.fullmatch(r"(-[0-9a-f]{2})+--[0-9a-f]{32}", short), short


def test_the_empty_name_has_no_home(renderer):
    with pytest.raises(ValueError):
        home_subpath("{username}", "escape", "", ("", "x---e3b0c442", "1"))


def test_templates_place_homes_in_a_directory(renderer):
    assert renderer.home("Ann", template="homes/{username}") == "homes/-41nn"
    assert renderer.home("Ann", "safe", template="homes/{username}") == "homes/" + renderer.expand(
        "Ann", "{username}", "safe")
    assert renderer.home("ann", template="u-{userid}") == f"u-{renderer.spawner.user.id}"


# -- the batch property --------------------------------------------------------------------------------

HASHED = re.compile(r"---[0-9a-f]{8}$")


def check_names(renderer: Renderer, names: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Every name: safe directory names under both schemes and a valid pod name. Returns, per scheme, the
    pairs of names that share a directory (and the directory)."""
    pod_template = renderer.spawner.pod_name_template
    seen: dict[str, dict[str, str]] = {"escape": {}, "safe": {}}
    shared: dict[str, list[tuple[str, str, str]]] = {"escape": [], "safe": []}
    for name in names:
        # one expansion per name: the home fields and the pod name (KubeSpawner's default 'safe' slugs)
        rendered = renderer.expand(name, f"{FIELDS_TEMPLATE}/{pod_template}")
        escaped, safe, userid, pod = rendered.split("/", 3)
        assert len(pod) <= 63 and DNS_LABEL.fullmatch(pod), (name, pod)
        # the product's fields are KubeSpawner 7's, and its escaped name KubeSpawner 6's (its own code)
        assert user_fields(name, renderer.spawner.user.id) == (escaped, safe, userid), name
        assert escaped == kubespawner6(name), name
        for scheme, owners in seen.items():
            home = home_subpath("{username}", scheme, name, (escaped, safe, userid))
            assert_safe_dir(home)
            other = owners.setdefault(home, name)
            if other != name:
                shared[scheme].append((other, name, home))
    return shared


def test_100k_random_usernames_get_distinct_safe_homes_and_valid_pod_names(renderer):
    names = usernames(N, seed=SEED)
    assert len(set(names)) == N
    # the sample holds what the scheme must survive
    assert sum(len(n) > 255 for n in names) > 100
    assert any(n != n.lower() and n.lower() in names for n in names)
    assert any(".." in n for n in names) and any("/" in n for n in names) and any("\0" in n for n in names)
    assert sum(any(ord(c) > 0xFFFF for c in n) for n in names) > 1000
    shared = check_names(renderer, names)
    assert shared["escape"] == []
    # 'safe' can only ever merge two names through KubeSpawner's 32-bit hash
    assert all(HASHED.search(home) for _, _, home in shared["safe"]), shared["safe"]


@pytest.mark.slow
def test_a_million_more_usernames(renderer):
    names = usernames(1_000_000, seed=random.SystemRandom().randrange(2**32))
    shared = check_names(renderer, names)
    assert shared["escape"] == []
    assert all(HASHED.search(home) for _, _, home in shared["safe"]), shared["safe"]


# -- shrinking property (hypothesis finds structured counterexamples a random sample misses) -------------

NAMES = st.text(min_size=1, max_size=80, alphabet=st.characters(exclude_categories=["Cs"]))


@settings(max_examples=400, deadline=None)
@given(a=NAMES, b=NAMES)
def test_two_different_names_never_share_a_home(renderer, a, b):
    if a == b:
        return
    for scheme in ("escape", "safe"):
        ha, hb = renderer.home(a, scheme), renderer.home(b, scheme)
        assert_safe_dir(ha)
        assert ha != hb


@settings(max_examples=200, deadline=None)
@given(NAMES)
def test_case_variants_never_share_a_home(renderer, name):
    variants = {name, name.lower(), name.upper(), name.swapcase(), name.casefold()}
    assert len({renderer.home(v) for v in variants}) == len(variants)
