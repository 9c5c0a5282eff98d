"""The local run's start-up check: the catalog as the cluster's hub checks it, and every path and account the
servers need, so a problem stops the hub naming the key instead of failing a user's start."""

from __future__ import annotations

import grp
import os
import shutil

from ..catalog import kubespawner as ks
from ..errors import ConfigError
from ..storage.naming import check_home_template
from . import accounts

UID_RANGE = 10000  # uids uid_base+1 .. uid_base+UID_RANGE-1


def check_local_spawner(spawner) -> None:
    """Everything the local run needs, checked before the hub starts; raise ConfigError naming the key."""
    section = spawner.catalog_config_name
    catalog = spawner.catalog  # parses and validates, naming the key
    if catalog is not None:
        # the same checks the cluster's hub makes, so a catalog tried here deploys as it is
        ks.check_catalog(catalog, spawner.catalog_path)
    check_home_template(spawner.home_subpath_template, f"{section}.home_subpath_template")
    if not spawner.data_dir:
        raise ConfigError(f"{section}.data_dir", "must be set")
    if not os.path.isabs(spawner.data_dir):
        spawner.data_dir = os.path.abspath(spawner.data_dir)
    for course in spawner.course_list():  # parsed and checked, naming the key
        if not os.path.isdir(course.source):
            raise ConfigError(course.source_key, f"{course.source!r} is not a directory")
        spawner.seed_command(os.path.join(spawner.data_dir, "homes", "user"), course)  # the seeder's own checks
    command = shutil.which(spawner.cmd[0]) if spawner.cmd else None
    if command is None:
        raise ConfigError(f"{section}.cmd", f"{spawner.cmd[:1]} is not an installed command")
    mode = spawner.mode
    if mode == accounts.PER_USER:
        if os.geteuid() != 0:
            raise ConfigError(f"{section}.run_servers_as", "'per-user' needs the hub to run as root")
        if not (0 < spawner.uid_base and spawner.uid_base + UID_RANGE < 2**31 - 1):
            raise ConfigError(f"{section}.uid_base", f"{spawner.uid_base} is out of range")
        try:
            grp.getgrgid(spawner.uid_base)
        except KeyError:
            pass
        else:
            raise ConfigError(f"{section}.uid_base", f"gid {spawner.uid_base} is an existing group; its members "
                                                      f"could write the shared folder. Choose a free number")
    spawner.layout.prepare(mode, spawner.uid_base if mode == accounts.PER_USER else None)
    _check_reachable(spawner, command, mode)

def _check_reachable(spawner, command: str, mode: str) -> None:
    """The servers' account must be able to run the server and the seeder and reach the data directory."""
    checks = [("x", command), ("rx", spawner.course_python)]
    checks += [("rx", os.path.abspath(course.source)) for course in spawner.course_list()]
    layout = spawner.layout
    checks += [("x", layout.root), ("x", layout.homes), ("rx", layout.shared)]
    if mode == accounts.PER_USER:
        uid = spawner.uid_base  # never a user's uid: a stand-in for any of them
        stand_in = accounts.Identity(uid, uid, (), 0o022, False)
        problems = accounts.probe_access(spawner.course_python, checks, stand_in, spawner.runtime_view())
        who = f"servers run as unprivileged uids (e.g. {uid}), which cannot use"
        hint = ("make these readable for all (e.g. keep the repository and its Python outside /root), or "
                "run the hub as a normal user")
    else:
        problems = accounts.probe_access(spawner.course_python, checks)
        who = "the servers cannot use"
        hint = "install the package with its server requirements (pip install -e . jupyterlab)"
    if problems:
        raise ConfigError(f"{spawner.catalog_config_name}.run_servers_as",
                          f"{who}: {'; '.join(problems)}. {hint}")
