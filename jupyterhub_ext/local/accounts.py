"""Who a local server runs as, and the data directory it lives in.

Two modes (``LocalProfilesSpawner.run_servers_as``):

* ``per-user`` (the default when the hub runs as root): every JupyterHub user gets their own unprivileged
  uid, allocated once from ``uid_base + 1`` upwards and remembered in ``<data>/hub/accounts.json`` (no
  ``/etc/passwd`` entry is made, nothing outside the data directory changes). The primary gid is the same
  number. Homes are ``0700`` and owned by that uid, so users cannot read each other's files. The shared folder
  is owned by ``root:<uid_base>`` with mode ``2775``: only servers of admins and ``shared_write_groups``
  members get ``uid_base`` as a supplementary group, so for everyone else the kernel refuses writes there.
* ``hub-user`` (the default otherwise): every server runs as the account that runs the hub. The file system
  cannot tell the users apart; see docs/local.md for what that means.

Directory layout (everything the local run writes)::

    <data>/            0711 (root) / 0700
      hub/             0700  jupyterhub.sqlite, cookie secret, proxy token, passwords, accounts.json
      logs/            0700  jupyterhub.log, servers/<home name>.log
      homes/           0711 (root) / 0700
        <home name>/   0700, owned by the user's uid
      shared/          2775 root:<uid_base> (root) / 0755
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import fcntl
import json
import os
import pwd
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator

PER_USER = "per-user"
HUB_USER = "hub-user"
RUN_MODES = ("auto", PER_USER, HUB_USER)

SHARED_LINK = "shared"  # the shared folder's name in every home


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return PER_USER if os.geteuid() == 0 else HUB_USER
    return mode


@dataclass(frozen=True)
class Identity:
    """The process identity of one server. ``uid`` None: the hub's own account (no switch)."""

    uid: int | None
    gid: int | None
    groups: tuple[int, ...]
    umask: int
    writes_shared: bool

    def preexec_fn(self, view: "RuntimeView | None" = None):
        """Popen's ``preexec_fn`` starting a process as this identity (None: no switch). See :func:`runtime_view`."""
        if self.uid is None:
            return None
        return switch_account(self, view or RuntimeView(()))

    def popen_kwargs(self, view: "RuntimeView | None" = None) -> dict:
        return {"umask": self.umask, "preexec_fn": self.preexec_fn(view)}


# -- the data directory ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    root: str

    @property
    def hub(self) -> str:
        return os.path.join(self.root, "hub")

    @property
    def logs(self) -> str:
        return os.path.join(self.root, "logs")

    @property
    def server_logs(self) -> str:
        return os.path.join(self.logs, "servers")

    @property
    def homes(self) -> str:
        return os.path.join(self.root, "homes")

    @property
    def shared(self) -> str:
        return os.path.join(self.root, "shared")

    def prepare(self, mode: str, shared_gid: int | None) -> None:
        """Create the directories with their modes (and fix the modes of existing ones, never their contents)."""
        isolated = mode == PER_USER
        traverse = 0o711 if isolated else 0o700
        _ensure_dir(self.root, traverse)
        _ensure_dir(self.hub, 0o700)
        _ensure_dir(self.logs, 0o700)
        _ensure_dir(self.server_logs, 0o700)
        _ensure_dir(self.homes, traverse)
        if isolated:
            _ensure_dir(self.shared, 0o2775, uid=0, gid=shared_gid)
        else:
            _ensure_dir(self.shared, 0o755)


def _ensure_dir(path: str, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    os.makedirs(path, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"{path} must be a directory, not a symlink or a file")
    if uid is not None and (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, -1 if gid is None else gid, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


# -- uids ----------------------------------------------------------------------------------------------

class UidRegistry:
    """username -> uid, allocated once and kept in a JSON file (with a lock, written atomically)."""

    def __init__(self, path: str, first: int, last: int):
        self.path, self.first, self.last = path, first, last

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(self.path, encoding="utf-8") as f:
                    data = json.load(f)
            except FileNotFoundError:
                data = {"users": {}}
            yield data

    def _write(self, data: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".accounts-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def get(self, username: str) -> int | None:
        with self._locked() as data:
            return data["users"].get(username)

    def uid_for(self, username: str) -> int:
        with self._locked() as data:
            users: dict[str, int] = data["users"]
            if username in users:
                return users[username]
            taken = set(users.values())
            uid = max(taken | {self.first - 1}) + 1
            # skip numbers a real account on this machine has: its files must never become a user's
            while uid in taken or _uid_exists(uid):
                uid += 1
            if uid > self.last:
                raise RuntimeError(f"no free uid left in {self.first}-{self.last} for {username!r}")
            users[username] = uid
            self._write(data)
            return uid


def _uid_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


# -- homes ---------------------------------------------------------------------------------------------

def prepare_home(layout: Layout, subpath: str, ident: Identity) -> tuple[str, list[str]]:
    """Create or fix the user's home and its ``shared`` link; return (home path, warnings).

    Runs in the hub (as root in per-user mode) on a directory the user controls, so nothing here follows a
    symlink the user may have made: the home is opened with O_NOFOLLOW and everything inside it is handled
    relative to that descriptor.
    """
    warnings = []
    home = os.path.join(layout.homes, subpath)
    parent = os.path.dirname(home)
    if parent != layout.homes:
        os.makedirs(parent, mode=0o711 if ident.uid is not None else 0o700, exist_ok=True)
    try:
        os.mkdir(home, 0o700)
        created = True
    except FileExistsError:
        created = False
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if ident.uid is not None and created:
            os.fchown(fd, ident.uid, -1 if ident.gid is None else ident.gid)
        elif ident.uid is not None and st.st_uid != ident.uid:
            # The home was made for another uid (a run as the hub's user, or a lost accounts.json): it is this
            # user's by name (homes/ is the hub's own directory), so it becomes theirs, contents included.
            warnings.append(f"{home} was owned by uid {st.st_uid}; giving it (and its contents) to uid {ident.uid}")
            _chown_tree(fd, ident.uid, ident.gid)
        elif ident.uid is None and st.st_uid != os.geteuid():
            raise RuntimeError(f"{home} is owned by uid {st.st_uid}, made by a run as root; run the hub as root "
                               f"again, or give the directory to this account (chown -R)")
        os.fchmod(fd, 0o700)
        warning = _link_shared(fd, layout.shared, ident)
        if warning:
            warnings.append(warning)
    finally:
        os.close(fd)
    return home, warnings


def _chown_tree(top_fd: int, uid: int, gid: int | None) -> None:
    os.fchown(top_fd, uid, -1 if gid is None else gid)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
        for name in dirnames + filenames:
            os.chown(name, uid, -1 if gid is None else gid, dir_fd=dirfd, follow_symlinks=False)


def _link_shared(home_fd: int, target: str, ident: Identity) -> str | None:
    try:
        st = os.stat(SHARED_LINK, dir_fd=home_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISLNK(st.st_mode):
            kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
            return (f"'{SHARED_LINK}' in the home is the user's own {kind}; the shared folder is not linked "
                    f"(rename it to get the link back)")
        if os.readlink(SHARED_LINK, dir_fd=home_fd) == target:
            return None
        os.unlink(SHARED_LINK, dir_fd=home_fd)
    os.symlink(target, SHARED_LINK, dir_fd=home_fd)
    if ident.uid is not None:
        os.chown(SHARED_LINK, ident.uid, -1 if ident.gid is None else ident.gid, dir_fd=home_fd,
                 follow_symlinks=False)
    return None


# -- switching to the user's account, with the runtime in reach -------------------------------------

@dataclass(frozen=True)
class RuntimeView:
    """Directories an unprivileged uid cannot enter (``/root``, mode 0700) on the way to what its server needs
    (a Python installed by pyenv under ``/root``, a repository under ``/root``).

    ``covers``: (private directory, names in it to expose). In the server's own mount namespace each private
    directory is covered by an empty tmpfs (mode 0711) with only those names bind-mounted back, so the server
    reaches the runtime and sees nothing else of, say, root's home. No change to the host's file system.
    """

    covers: tuple[tuple[str, tuple[str, ...]], ...]


def runtime_view(paths: list[str]) -> RuntimeView:
    """The covers that make every path in ``paths`` reachable for a uid that owns none of their directories.

    Only "other" permission bits count: the servers' uids own nothing outside the data directory and belong
    to no group of the host. A directory on the way that others may not enter gets covered, exposing the
    next name on the way. Paths are taken both as given and with symlinks resolved.
    """
    covers: dict[str, set[str]] = {}
    for path in paths:
        for candidate in {os.path.abspath(path), os.path.realpath(path)}:
            current = "/"
            for name in candidate.strip("/").split("/"):
                if not name:
                    break
                try:
                    st = os.stat(current)
                except OSError:
                    break
                if current != "/" and not st.st_mode & 0o001:
                    covers.setdefault(current, set()).add(name)
                current = os.path.join(current, name)
    # outer covers first: a cover inside an exposed name is mounted over the bind mount that exposes it
    ordered = sorted(covers.items(), key=lambda item: item[0].count("/"))
    return RuntimeView(tuple((d, tuple(sorted(names))) for d, names in ordered))


_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_PR_SET_NO_NEW_PRIVS = 38


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name and sys.platform.startswith("linux") else None


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = (lambda v: v.encode() if v is not None else None)
    _check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _apply_view(view: RuntimeView) -> None:
    libc = _libc()
    if libc is None:
        raise OSError("mount namespaces need Linux")
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(libc, "none", "/", None, _MS_REC | _MS_PRIVATE, None)  # nothing below leaks back to the host
    for directory, names in view.covers:
        keep = []
        for name in names:
            path = os.path.join(directory, name)
            if os.path.lexists(path):
                keep.append((name, os.path.isdir(path), os.open(path, os.O_PATH | os.O_CLOEXEC)))
        _mount(libc, "tmpfs", directory, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0711,size=64k")
        for name, is_dir, fd in keep:
            target = os.path.join(directory, name)
            if is_dir:
                os.mkdir(target, 0o711)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o444))
            _mount(libc, f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC, None)
            os.close(fd)


def switch_account(ident: Identity, view: RuntimeView):
    """A Popen ``preexec_fn``: mount the runtime view (as root), then become the user for good."""
    uid, gid, groups = ident.uid, ident.gid, list(ident.groups)
    libc = _libc()  # loaded before the fork

    def preexec() -> None:
        if view.covers:
            _apply_view(view)
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid or set(os.getgroups()) - set(groups) - {gid}:
            raise PermissionError("could not drop privileges")
        if libc is not None:  # no setuid program (sudo, su) can raise the server's privileges again
            libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    return preexec


# -- can the servers' account use what they need? ------------------------------------------------------

_PROBE = r"""
import os, sys
bad = []
for spec in sys.argv[1:]:
    mode, path = spec.split(":", 1)
    want = (os.R_OK if "r" in mode else 0) | (os.X_OK if "x" in mode else 0)
    if not os.access(path, want):
        bad.append(f"{path} (needs {'read and ' if 'r' in mode else ''}{'enter' if os.path.isdir(path) else 'run'})")
try:
    import jupyter_server, jupyterhub_ext.seeder  # noqa: F401
except Exception as e:
    bad.append(f"{sys.executable} cannot import what the servers need: {e}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
"""


def probe_access(python: str, checks: list[tuple[str, str]], ident: Identity | None = None,
                 view: RuntimeView | None = None) -> list[str]:
    """What the servers' account cannot use among ``checks`` [(mode 'r'/'x'/'rx', path)], and whether
    ``python`` imports what a server needs: a probe process started exactly as a server would be."""
    args = [f"{mode}:{path}" for mode, path in checks]
    kwargs = ident.popen_kwargs(view) if ident is not None else {}
    try:
        proc = subprocess.run([python, "-c", _PROBE, *args], cwd="/", capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, timeout=120, check=False,
                              **kwargs)
    except PermissionError:
        return [f"{python} (cannot be run)"]
    except subprocess.SubprocessError as e:  # the preexec_fn failed: no mount namespace here
        return [f"could not start a process as uid {ident.uid if ident else '?'} with the runtime in reach ({e}); "
                f"mount namespaces (CAP_SYS_ADMIN) are needed when the runtime is under a private directory"]
    if proc.returncode == 0:
        return []
    return [line for line in proc.stdout.splitlines() if line.strip()] or [proc.stderr.strip()[-500:]]
