"""Property: through ProfilesKubeSpawner itself, random ``user_options`` from random users are accepted only
when they name something in that user's list, and nothing else reaches pod creation."""

import asyncio

from hypothesis import HealthCheck, given, settings, strategies as st

from jupyterhub_ext.errors import SpawnRefused
from jupyterhub_ext.spawner import ProfilesKubeSpawner

from ..catalog.test_access import oracle
from .conftest import chart_config, make_spawner

SLUGS = ["data-engineering", "elyra", "trainium", "inferentia", "gpu-timeslice", "gpu-mig", "gpu"]
CHOICES = ["pyspark-3-5", "pyspark-3-4", "standard", "large", "pytorch-neuronx", "tensorflow-neuronx"]
IMAGES = ["quay.io/jupyter/base-notebook:2024-12-09", "quay.io/jupyter/x:1 ", "evil/miner:1",
          "quay.io/jupyter/base-notebook:1@evil/x"]
VALUES = st.one_of(st.sampled_from(SLUGS + CHOICES + IMAGES + ["", "nope"]), st.none(), st.integers(),
                   st.booleans(), st.text(max_size=6))
KEYS = st.sampled_from(["profile", "image", "size", "image--unlisted-choice", "size--unlisted-choice",
                        "mem_limit", "image_pull_policy"])
USERS = st.tuples(st.sampled_from(["ann", "ben"]),
                  st.lists(st.sampled_from(["gpu-users", "ml-engineers", "data-engineers", "x"]), unique=True),
                  st.booleans())


class Reached(Exception):
    pass


async def attempt(user, options):
    name, groups, admin = user
    spawner = make_spawner(chart_config(), name=name, groups=groups, admin=admin)
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
        return spawner, None
    except Reached:
        pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
        return spawner, pod
    raise AssertionError("start neither refused nor reached Kubernetes")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USERS, options=st.dictionaries(KEYS, VALUES, max_size=4))
def test_only_what_the_user_may_start_reaches_pod_creation(user, options):
    spawner, pod = asyncio.run(attempt(user, options))
    expected = oracle(spawner.user_view(), options)
    if expected is None:
        assert pod is None
        return
    assert pod is not None
    labels = pod["metadata"]["labels"]
    got = {k.split("/", 1)[1].removeprefix("option-"): v for k, v in labels.items()
           if k.startswith("jupyterhub-ext/")}
    assert got == expected
    profile = spawner.catalog.profile(expected["profile"])
    assert profile.slug in spawner.user_view().by_slug
    image = pod["spec"]["containers"][0]["image"]
    if expected.get("image") == "custom":
        assert image == options["image--unlisted-choice"]
    else:
        allowed = {profile.image} | {c.image for o in profile.options for c in o.choices}
        assert image in allowed
