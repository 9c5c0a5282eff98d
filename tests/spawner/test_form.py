"""The profile form's caches (benchmarks/form.py): the same HTML KubeSpawner itself would render, shared only by
users who see the same thing, and a changed catalog file or template is picked up."""

import os

import pytest
from traitlets.config import Config

from jupyterhub_ext import profiles
from jupyterhub_ext.catalog import kubespawner as ks
from jupyterhub_ext.catalog.access import Who
from jupyterhub_ext.spawner import ProfilesKubeSpawner
from kubespawner import KubeSpawner

from .conftest import chart_config, make_spawner

ONE = [{"slug": "cpu", "display_name": "CPU", "hardware": {"kind": "cpu"},
        "options": [{"slug": "size", "display_name": "Size", "choices": [
            {"slug": "small", "display_name": "Small"},
            {"slug": "big", "display_name": "Big", "access": {"groups": ["big"]}},
            {"slug": "alices", "display_name": "Alice's", "access": {"users": ["alice"]}}]}]},
       {"slug": "gpu", "display_name": "GPU", "hardware": {"kind": "gpu", "gpus": 1},
        "access": {"groups": ["gpu-users"]}}]

USERS = [("alice", []), ("bob", []), ("carol", ["students"]), ("dave", ["big"]), ("erin", ["gpu-users", "big"]),
         ("frank", ["gpu-users", "big", "x"])]


async def upstream_form(spawner) -> str:
    """What KubeSpawner's own code renders for this user's profile_list (new Environment, deep copy and all)."""
    return KubeSpawner._render_options_form(spawner, ks.profile_list(spawner.user_view()))


@pytest.mark.parametrize("catalog", ["builtin", "inline"])
async def test_form_is_what_kubespawner_renders(catalog):
    config = chart_config() if catalog == "builtin" else chart_config(catalog_file="", profiles=ONE)
    for name, groups in USERS + [("ada", [])]:
        spawner = make_spawner(config, name, groups, admin=name == "ada")
        form = await spawner.get_options_form()
        assert form == await upstream_form(spawner), name
        assert await spawner.get_options_form() is form  # warm: the same string


@pytest.mark.parametrize("last", [{"profile": "gpu"}, {"profile": "cpu", "size": "big"}, {"profile": "nope"},
                                  {"profile": "cpu", "size": "alices"}])
async def test_returning_user_form_is_what_kubespawner_renders(last):
    """KubeSpawner 7.1+ pre-selects the last options while they are valid: forms differ by them, as upstream's.

    Last options this user may not start (any more) are not pre-selected: the defaults are, as for a new user.
    (KubeSpawner 7.1.0 means to do the same but passes the unvalidated options to its template, so no profile is
    selected at all; 7.0 does not pre-select.)"""
    config = chart_config(catalog_file="", profiles=ONE)
    for name, groups in USERS:
        spawner = make_spawner(config, name, groups)
        spawner.user_options = dict(last)
        form = await spawner.get_options_form()
        fresh = make_spawner(config, name, groups)
        fresh_form = await fresh.get_options_form()
        assert fresh_form == await upstream_form(fresh)
        try:
            spawner._validate_user_options(ks.profile_list(spawner.user_view()))
        except ValueError:
            assert form == fresh_form, (name, last)
        else:
            assert form == await upstream_form(spawner), (name, last)


async def test_profile_list_needs_no_initialisation_by_kubespawner():
    """The form skips KubeSpawner's _get_initialized_profile_list (a deep copy): it must change nothing."""
    for config in (chart_config(), chart_config(catalog_file="", profiles=ONE)):
        for name, groups in USERS:
            spawner = make_spawner(config, name, groups)
            plist = ks.profile_list(spawner.user_view())
            assert spawner._get_initialized_profile_list(plist) == plist


async def test_users_alike_share_a_form_and_others_do_not():
    config = chart_config(catalog_file="", profiles=ONE)
    forms = {name: await make_spawner(config, name, groups).get_options_form() for name, groups in USERS}
    assert forms["bob"] is forms["carol"]  # "students" is named by no rule: same view as no group
    assert forms["erin"] is forms["frank"]  # "x" neither
    assert 'value="alices"' in forms["alice"] and 'value="alices"' not in forms["bob"]
    assert 'value="big"' in forms["dave"] and 'value="big"' not in forms["bob"]
    assert 'value="gpu"' in forms["erin"] and 'value="gpu"' not in forms["dave"]
    assert len({id(f) for f in forms.values()}) == 4  # alice, bob=carol, dave, erin=frank


def test_view_key_keeps_what_rules_name():
    catalog = profiles._parse_cached(profiles.json.dumps(ONE, sort_keys=True), profiles.Settings(), "p")
    assert profiles.view_key(catalog, Who("alice", frozenset({"big", "x"}))) == Who("alice", frozenset({"big"}))
    assert profiles.view_key(catalog, Who("bob", frozenset({"x"}), True)) == Who("", frozenset(), True)


async def test_profile_form_template_is_used_and_changes_apply():
    config = chart_config(catalog_file="", profiles=ONE)
    config.KubeSpawner.profile_form_template = "A{% for p in profile_list %}[{{ p.slug }}]{% endfor %}"
    assert await make_spawner(config, "bob").get_options_form() == "A[cpu]"
    config.KubeSpawner.profile_form_template = "B{{ profile_list|length }}"
    assert await make_spawner(config, "bob").get_options_form() == "B1"


async def test_template_file_edit_is_picked_up(tmp_path):
    (tmp_path / "form.html").write_text("one {{ profile_list|length }}")
    config = chart_config(catalog_file="", profiles=ONE)
    config.KubeSpawner.additional_profile_form_template_paths = [str(tmp_path)]
    assert await make_spawner(config, "bob").get_options_form() == "one 1"
    (tmp_path / "form.html").write_text("two {{ profile_list|length }}!")
    st = os.stat(tmp_path / "form.html")
    os.utime(tmp_path / "form.html", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert await make_spawner(config, "bob").get_options_form() == "two 1!"


async def test_catalog_file_edit_is_picked_up(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("profiles:\n  - {slug: one, display_name: One, hardware: {kind: cpu}}\n")
    config = chart_config(catalog_file=str(path))
    assert [p.slug for p in make_spawner(config).catalog.profiles] == ["one"]
    path.write_text("profiles:\n  - {slug: two, display_name: Two, hardware: {kind: cpu}}\n")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    spawner = make_spawner(config)
    assert [p.slug for p in spawner.catalog.profiles] == ["two"]
    assert 'value="two"' in await spawner.get_options_form()


async def test_inline_catalog_replaced_on_a_spawner_is_used():
    spawner = make_spawner(chart_config(catalog_file="", profiles=ONE))
    assert len(spawner.catalog.profiles) == 2
    spawner.profiles = ONE[:1]
    assert [p.slug for p in spawner.catalog.profiles] == ["cpu"]
    other = ProfilesKubeSpawner(config=Config(chart_config(catalog_file="", profiles=ONE)), _mock=True)
    assert len(other.catalog.profiles) == 2
