"""Nothing ignored in silence: a misspelled setting or section of ours stops the hub at start-up, naming it with
did-you-mean, every one at once; a misspelled required catalog key reads as the typo, not as "is required"."""

from __future__ import annotations

import re

import pytest
from traitlets.config import Config

import jupyterhub_ext.z2jh as z2jh
from jupyterhub_ext.errors import CONFIG_ERROR_PREFIX, ConfigError
from jupyterhub_ext.sections import ConfigErrors, unknown_settings
from jupyterhub_ext.spawner import ProfilesKubeSpawner

from ..spawner.conftest import dummy_kubeconfig  # noqa: F401 (fixture)
from ..support.hub_process import expect_start_failure
from ..support.kubeconfig import write_dummy_kubeconfig

GOOD_PROFILE = {"slug": "cpu", "display_name": "CPU", "hardware": {"kind": "cpu"}}


def config(**sections) -> Config:
    c = Config()
    c.JupyterHub.spawner_class = ProfilesKubeSpawner
    for section, values in sections.items():
        for key, value in values.items():
            c[section][key] = value
    return c


def lines(c: Config) -> list[str]:
    with pytest.raises(SystemExit) as stopped:
        z2jh.setup(c)
    return str(stopped.value).splitlines()


def test_a_misspelled_setting_of_the_spawner_stops_the_hub(dummy_kubeconfig):  # noqa: F811
    c = config(ProfilesKubeSpawner={"catalog_flie": "builtin:eks"})
    assert lines(c) == [f"{CONFIG_ERROR_PREFIX}ProfilesKubeSpawner.catalog_flie: unknown setting 'catalog_flie': "
                        "did you mean 'catalog_file'?"]


def test_a_misspelled_section_of_ours_stops_the_hub(dummy_kubeconfig):  # noqa: F811
    c = config(ProfileKubeSpawner={"catalog_file": "builtin:eks"})
    [line] = lines(c)
    assert line == (f"{CONFIG_ERROR_PREFIX}ProfileKubeSpawner: no configurable class is called "
                    "'ProfileKubeSpawner': did you mean 'ProfilesKubeSpawner'? (its settings are ignored as written)")


def test_every_problem_at_once_in_the_order_written(dummy_kubeconfig):  # noqa: F811
    c = config(ProfilesKubeSpawner={"catalog_file": "builtin:eks", "home_mdoe": "efs", "limts": {}},
               KeycloakAuthenticator={"group_pth": "last"}, CognitoAuthentcator={"region": "eu-west-1"},
               CatalogMixin={"extra_mig_profile": []})
    got = lines(c)
    assert got == [CONFIG_ERROR_PREFIX + line for line in [
        "ProfilesKubeSpawner.home_mdoe: unknown setting 'home_mdoe': did you mean 'home_mode'?",
        "ProfilesKubeSpawner.limts: unknown setting 'limts': did you mean 'limits'?",
        "KeycloakAuthenticator.group_pth: unknown setting 'group_pth': did you mean 'group_path'?",
        "CognitoAuthentcator: no configurable class is called 'CognitoAuthentcator': did you mean "
        "'CognitoAuthenticator'? (its settings are ignored as written)",
        "CatalogMixin: CatalogMixin is not a configuration section, its settings are ignored as written: write "
        "them under ProfilesKubeSpawner or LocalProfilesSpawner",
    ]]


def test_the_sections_of_others_are_theirs_and_real_classes_are_never_typos():
    # KubeSpawner, JupyterHub and oauthenticator check their own sections (traitlets warns); a section named
    # like ours that is a real class (JupyterHub's SharedPasswordAuthenticator, LocalProcessSpawner) is no typo
    c = config(KubeSpawner={"not_ours": 1}, JupyterHub={"whatever": 2},
               SharedPasswordAuthenticator={"user_password": "x" * 32}, LocalProcessSpawner={"shell_cmd": []},
               GenericOAuthenticator={"client_id": "x"})
    assert unknown_settings(c) == []


def test_a_good_configuration_has_no_unknown_setting():
    c = config(ProfilesKubeSpawner={"catalog_file": "builtin:eks", "home_mode": "efs", "limits": {},
                                    "usage_ledger": True, "courses": []})
    assert unknown_settings(c) == []


@pytest.mark.parametrize("profile,path,message", [
    ({"slug": "a", "dispaly_name": "A", "hardware": {"kind": "cpu"}}, "profiles[0].dispaly_name",
     "unknown key 'dispaly_name': did you mean 'display_name'?"),
    ({"slug": "a", "displayName": "A", "hardware": {"kind": "cpu"}}, "profiles[0].displayName",
     "unknown key 'displayName': keys are snake_case here, use 'display_name'"),
    ({"slg": "a", "display_name": "A", "hardware": {"kind": "cpu"}}, "profiles[0].slg",
     "unknown key 'slg': did you mean 'slug'?"),
    ({"slug": "a", "display_name": "A"}, "profiles[0].hardware", "is required"),  # truly missing
])
def test_a_misspelled_required_key_reads_as_the_typo(dummy_kubeconfig, profile, path, message):  # noqa: F811
    c = config(ProfilesKubeSpawner={"profiles": [profile]})
    with pytest.raises(ConfigError) as raised:
        z2jh.check(c)
    assert not isinstance(raised.value, ConfigErrors)
    assert str(raised.value) == f"ProfilesKubeSpawner.{path}: {message}"


def test_a_real_hub_with_two_misspelled_settings_names_both_and_starts_nothing(tmp_path):
    hub_config = "\n".join([
        "c.ProfilesKubeSpawner.catalog_file = 'builtin:eks'",
        "c.ProfilesKubeSpawner.home_mdoe = 'efs'",
        "c.ProfilesKubeSpawner.limts = {'caps': []}",
        "import jupyterhub_ext.z2jh",
        "jupyterhub_ext.z2jh.setup(c)",
    ])
    log = expect_start_failure(hub_config, name="unknown-settings", workdir=tmp_path,
                               env={"KUBECONFIG": str(write_dummy_kubeconfig(tmp_path))},
                               match=re.escape(f"{CONFIG_ERROR_PREFIX}ProfilesKubeSpawner.home_mdoe: "), timeout=120)
    got = [line for line in log.splitlines() if line.startswith(CONFIG_ERROR_PREFIX)]
    assert got == [f"{CONFIG_ERROR_PREFIX}ProfilesKubeSpawner.home_mdoe: unknown setting 'home_mdoe': did you mean "
                   "'home_mode'?",
                   f"{CONFIG_ERROR_PREFIX}ProfilesKubeSpawner.limts: unknown setting 'limts': did you mean 'limits'?"]
    assert "Traceback" not in log
    assert not (tmp_path / "jupyterhub.sqlite").exists()


def test_the_local_configuration_is_checked_the_same_way(tmp_path):
    from jupyterhub_ext.local import LocalProfilesSpawner

    c = Config()
    c.JupyterHub.spawner_class = LocalProfilesSpawner
    c.LocalProfilesSpawner.catalog_flie = "builtin:eks"
    c.LocalProfilesSpawner.data_dir = str(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        z2jh.setup(c, spawner="local")
    assert str(stopped.value).splitlines()[0] == (
        f"{CONFIG_ERROR_PREFIX}LocalProfilesSpawner.catalog_flie: unknown setting 'catalog_flie': did you mean "
        "'catalog_file'?")
