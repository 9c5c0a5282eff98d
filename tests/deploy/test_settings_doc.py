"""docs/settings.md is generated from the traits' help text and must match the code; values only set real traits."""

from __future__ import annotations

import importlib.machinery
import importlib.util

import pytest

from .z2jh_chart import COMBINATIONS, ROOT, merged_values


def _script():
    path = ROOT / "scripts" / "gen-settings-doc"
    loader = importlib.machinery.SourceFileLoader("jupyterhub_ext_gen_settings_doc", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _script()


def test_settings_doc_is_up_to_date(script):
    assert script.DOC.read_text() == script.render(), "docs/settings.md is out of date: run scripts/gen-settings-doc"


def test_every_setting_of_ours_is_documented_with_real_help(script):
    for group, short, target in script.entry_points():
        cls = script.load(target)
        if cls is None:
            continue
        for name, trait in cls.class_traits(config=True).items():
            owner = script._owner(cls, name)
            if owner.__module__.startswith("jupyterhub_ext"):
                assert len((trait.help or "").split()) >= 4, f"{cls.__name__}.{name} has no real help text"
                assert f"### `{cls.__name__}.{name}`" in script.DOC.read_text()


def _config_classes():
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import Authenticator
    from kubespawner import KubeSpawner

    script = _script()
    classes = {"JupyterHub": JupyterHub, "Authenticator": Authenticator, "KubeSpawner": KubeSpawner}
    for _, _, target in script.entry_points():
        cls = script.load(target)
        if cls is not None:
            classes[cls.__name__] = cls
    return classes


def unknown_settings(values: dict) -> list[str]:
    classes = _config_classes()
    unknown = []
    for section, settings in values["hub"]["config"].items():
        if section not in classes:
            unknown.append(f"hub.config.{section}")
            continue
        traits = classes[section].class_traits(config=True)
        unknown += [f"hub.config.{section}.{key}" for key in settings if key not in traits]
    return unknown


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_values_only_set_settings_that_exist(name):
    """traitlets ignores an unknown hub.config key with a log line; a typo there would silently do nothing."""
    assert unknown_settings(merged_values(COMBINATIONS[name])) == []


def test_a_misspelled_setting_is_found():
    values = merged_values(COMBINATIONS["base"])
    values["hub"]["config"]["ProfilesKubeSpawner"]["shared_pcv"] = "efs-shared"
    values["hub"]["config"]["CognitoAuthenticatr"] = {}
    assert unknown_settings(values) == ["hub.config.ProfilesKubeSpawner.shared_pcv", "hub.config.CognitoAuthenticatr"]
