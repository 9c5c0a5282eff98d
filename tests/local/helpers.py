"""Helpers for the local (embedded default) tests: spawners built in-process with a stand-in user and hub."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
COURSE = ROOT / "images" / "singleuser" / "course"

is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="per-user accounts need the tests to run as root")


def fake_user(name: str = "student", *, admin: bool = False, groups=(), uid: int = 1):
    return SimpleNamespace(name=name, id=uid, admin=admin, groups=[SimpleNamespace(name=g) for g in groups],
                           url=f"/user/{name}/", escaped_name=name, server=None)


def fake_hub():
    return SimpleNamespace(api_url="http://127.0.0.1:8081/hub/api", public_host="", base_url="/hub/",
                           url="http://127.0.0.1:8081/hub/")


def local_config(data_dir, **settings) -> Config:
    c = Config()
    c.LocalProfilesSpawner.catalog_file = "builtin:eks"
    c.LocalProfilesSpawner.data_dir = str(data_dir)
    c.LocalProfilesSpawner.accelerators = []  # this machine, as far as these tests know, has none
    for key, value in settings.items():
        setattr(c.LocalProfilesSpawner, key, value)
    return c


def make_spawner(config: Config, name: str = "student", *, admin: bool = False, groups=(), uid: int = 1):
    from jupyterhub_ext.local import LocalProfilesSpawner

    return LocalProfilesSpawner(config=config, user=fake_user(name, admin=admin, groups=groups, uid=uid),
                                hub=fake_hub())
