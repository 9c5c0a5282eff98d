"""The private upstream names we depend on (jupyterhub_ext.compat) exist, as we use them, in this install.

Runs in both test installs (z2jh 4.4.0's pins and the newest releases): an upgrade that renames or reshapes one
fails here, naming our code that depends on it.
"""

from __future__ import annotations

from jupyterhub_ext import compat
from jupyterhub_ext.compat import KS, Private


def test_every_private_name_we_use_is_there_as_we_use_it():
    assert compat.problems() == []


def test_a_vanished_or_reshaped_name_is_reported():
    gone = Private(KS, "_no_such_method", ("x",), "called", "nowhere", "-")
    reshaped = Private(KS, "_make_create_pod_request", ("pod",), "overridden", "podrequests.py", "-")
    attribute = Private(KS, "_no_such_attribute", None, "read", "nowhere", "-")
    assert "is gone" in gone.problem()
    assert "is not ('pod',)" in reshaped.problem()
    assert "is gone" in attribute.problem()


def test_every_private_upstream_method_our_spawner_overrides_is_listed():
    import inspect

    from kubespawner import KubeSpawner

    from jupyterhub_ext.spawner import ProfilesKubeSpawner

    listed = {p.name for p in compat.PRIVATE}
    upstream = {name for base in KubeSpawner.__mro__ if base.__module__.startswith(("kubespawner", "jupyterhub"))
                for name, member in vars(base).items() if inspect.isfunction(member) or isinstance(member, property)}
    ours = {name for cls in ProfilesKubeSpawner.__mro__ if cls.__module__.startswith("jupyterhub_ext")
            for name, member in vars(cls).items()
            if name.startswith("_") and not name.startswith("__")
            and (inspect.isfunction(member) or isinstance(member, property))}
    assert ours & upstream <= listed, sorted(ours & upstream - listed)
