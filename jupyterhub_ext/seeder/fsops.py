"""Filesystem access that never leaves its root: directories, stats, hashes, and checked changes.

Every path below a :class:`Root` is reached one component at a time with ``O_NOFOLLOW`` relative to its parent's
descriptor, so a directory the student replaced with a symlink (to ``/etc``, to another home on the same EFS
volume...) is reported as blocked and never written through, even if swapped while the seeder runs.

A file is only removed or re-moded if it is still exactly the one the plan was made on (:func:`still_same`).
Writing files (temporary file, then its name) is :mod:`.atomic`'s job.

``hook(op, path)`` is called before each filesystem operation; tests use it to kill a run at its N-th
operation or to make writes fail with ENOSPC.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from .model import ABSENT, BLOCKED, DIR, FILE, HOME_ABSENT, HOME_BLOCKED, LINK, OTHER, HomeEntry

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | O_CLOEXEC
O_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | O_CLOEXEC
CHUNK = 1 << 20  # read at each use (here and in atomic, writes): tests make it small
MAX_OPEN_DIRS = 256
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_NAMES = ("", ".", "..")


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = current_umask()  # re-read by each run; atomic reads it as fsops.UMASK


class Blocked(OSError):
    """A component of the path is not a plain directory we may use."""


class Stopped(Exception):
    """The run was asked to stop (time budget, SIGTERM, full disk) in the middle of a copy."""


def entry_from_stat(st: os.stat_result) -> HomeEntry:
    fmt = stat_mod.S_IFMT(st.st_mode)
    if fmt == stat_mod.S_IFREG:
        kind = FILE
    elif fmt == stat_mod.S_IFDIR:
        kind = DIR
    elif fmt == stat_mod.S_IFLNK:
        kind = LINK
    else:
        kind = OTHER
    return HomeEntry(kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)


def same_file(a: HomeEntry, b: HomeEntry) -> bool:
    return a.kind == b.kind == FILE and a.size == b.size and a.mtime_ns == b.mtime_ns and a.ino == b.ino


class Root:
    """A directory tree we may write into, with cached descriptors for the directories below it."""

    def __init__(self, path: str, hook=None) -> None:
        self.path = path
        self.hook = hook
        # The root itself may be a symlink: that is the operator's configuration, not the student's doing.
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
        self._fds: dict[str, int] = {}
        self._kind: dict[str, str] = {"": DIR}
        self.pinned = 0  # while > 0 (descriptors lent to copy workers), nothing is closed
        self.created: list[str] = []

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self.fd)

    def _op(self, op: str, path: str) -> None:
        if self.hook is not None:
            self.hook(op, path)

    # -- directories ------------------------------------------------------------------------------------

    def probe(self, reldir: str) -> tuple[str, int]:
        """(kind, fd) of a directory below the root: DIR with a descriptor, or ABSENT/OTHER/BLOCKED with -1."""
        if not reldir:
            return DIR, self.fd
        fd = self._fds.get(reldir)
        if fd is not None:
            return DIR, fd
        kind = self._kind.get(reldir)
        if kind is not None and kind != DIR:
            return kind, -1
        parent, _, name = reldir.rpartition("/")
        if name in _NOT_NAMES:
            return BLOCKED, -1  # "..", "." or "": never a way out of the root (paths can come from a manifest)
        pkind, pfd = self.probe(parent)
        if pkind != DIR:
            kind = ABSENT if pkind == ABSENT else BLOCKED
            self._kind[reldir] = kind
            return kind, -1
        self._op("opendir", reldir)
        try:
            fd = os.open(name, O_DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            kind = ABSENT
        except OSError as e:
            # ENOTDIR/ELOOP: a file or a symlink sits here. EACCES: a directory we cannot use.
            kind = BLOCKED if e.errno == errno.EACCES else OTHER
        else:
            self._remember(reldir, fd)
            return DIR, fd
        self._kind[reldir] = kind
        return kind, -1

    def _remember(self, reldir: str, fd: int) -> None:
        self._kind[reldir] = DIR
        self._fds[reldir] = fd
        if len(self._fds) > MAX_OPEN_DIRS and not self.pinned:
            # Forget the oldest half; they are reopened (safely, component by component) if needed again.
            for old in list(self._fds)[: MAX_OPEN_DIRS // 2]:
                os.close(self._fds.pop(old))

    def ensure_dir(self, reldir: str, mode_for) -> int:
        """The descriptor of ``reldir``, creating missing directories (mode from ``mode_for(reldir)``)."""
        kind, fd = self.probe(reldir)
        if kind == DIR:
            return fd
        if kind != ABSENT:
            raise Blocked(errno.ENOTDIR, "not a plain directory in the home", reldir)
        parent, _, name = reldir.rpartition("/")
        pfd = self.ensure_dir(parent, mode_for)
        mode = mode_for(reldir)
        self._op("mkdir", reldir)
        try:
            os.mkdir(name, mode, dir_fd=pfd)
        except FileExistsError:
            pass  # someone else made it: use it only if it is a plain directory
        else:
            self.created.append(reldir)
        self._op("opendir", reldir)
        try:
            fd = os.open(name, O_DIR_FLAGS, dir_fd=pfd)
        except OSError as e:
            self._kind[reldir] = OTHER
            raise Blocked(e.errno, "not a plain directory in the home", reldir)
        if mode & UMASK and reldir in self.created:
            self._op("chmod", reldir)
            os.fchmod(fd, mode)
        self._remember(reldir, fd)
        return fd

    def rmdir(self, reldir: str) -> bool:
        """Remove an empty directory; False if it is not empty, absent, or not a plain directory."""
        parent, _, name = reldir.rpartition("/")
        pkind, pfd = self.probe(parent)
        kind, _ = self.probe(reldir)
        if pkind != DIR or kind != DIR:
            return False
        fd = self._fds.pop(reldir, None)
        if fd is not None:
            os.close(fd)
        self._op("rmdir", reldir)
        try:
            os.rmdir(name, dir_fd=pfd)
        except OSError:
            self._kind.pop(reldir, None)
            return False
        self._kind[reldir] = ABSENT
        return True

    # -- looking -----------------------------------------------------------------------------------------

    def lstat(self, relpath: str) -> HomeEntry:
        parent, _, name = relpath.rpartition("/")
        kind, fd = self.probe(parent)
        if name in _NOT_NAMES:
            return HOME_BLOCKED
        if kind != DIR:
            return HOME_ABSENT if kind == ABSENT else HOME_BLOCKED
        self._op("stat", relpath)
        try:
            return entry_from_stat(os.stat(name, dir_fd=fd, follow_symlinks=False))
        except FileNotFoundError:
            return HOME_ABSENT
        except OSError:
            return HOME_BLOCKED

    def scan(self, paths, out: dict[str, HomeEntry]) -> None:
        """lstat each path (exactly one system call per file, none for an absent or blocked parent)."""
        by_parent: dict[str, list[tuple[str, str]]] = {}
        for p in paths:
            parent, _, name = p.rpartition("/")
            if name in _NOT_NAMES:
                out[p] = HOME_BLOCKED
                continue
            by_parent.setdefault(parent, []).append((p, name))
        hook, stat = self.hook, os.stat
        for parent in sorted(by_parent):
            kind, fd = self.probe(parent)
            items = by_parent[parent]
            if kind != DIR:
                entry = HOME_ABSENT if kind == ABSENT else HOME_BLOCKED
                for p, _ in items:
                    out[p] = entry
                continue
            for p, name in items:
                if hook is not None:
                    hook("stat", p)
                try:
                    st = stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    out[p] = HOME_ABSENT
                except OSError:
                    out[p] = HOME_BLOCKED
                else:
                    out[p] = entry_from_stat(st)

    def hash_file(self, relpath: str) -> tuple[str | None, HomeEntry]:
        """sha256 of a regular file below the root, and its stat as read (None if it cannot be read)."""
        parent, _, name = relpath.rpartition("/")
        kind, dfd = self.probe(parent)
        if name in _NOT_NAMES:
            return None, HOME_BLOCKED
        if kind != DIR:
            return None, HOME_ABSENT if kind == ABSENT else HOME_BLOCKED
        fd = open_nofollow(dfd, name, self.hook, relpath)
        if fd < 0:
            return None, self.lstat(relpath)
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                return None, entry_from_stat(st)
            return hash_fd(fd, self.hook, relpath), entry_from_stat(st)
        except OSError:
            return None, self.lstat(relpath)
        finally:
            os.close(fd)


def open_nofollow(dir_fd: int, name: str, hook=None, label: str = "") -> int:
    """A descriptor for reading ``name`` in ``dir_fd``, never through a symlink (nor blocking on a FIFO); -1
    if it cannot be opened. ``label``: the path the hook is told (default ``name``)."""
    if hook is not None:
        hook("open", label or name)
    try:
        return os.open(name, O_READ_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return -1


def hash_fd(fd: int, hook=None, label: str = "") -> str:
    import hashlib  # here, not at the top: a warm start hashes nothing and need not pay for the import

    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        if hook is not None:
            hook("read", label)
        n = os.readv(fd, [buf])
        if not n:
            return h.hexdigest()
        h.update(view[:n])


def hash_path(path: str, hook=None) -> str | None:
    """sha256 of a course file (the source tree is the image's: read-only, ours to trust)."""
    if hook is not None:
        hook("open", path)
    try:
        fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
    except OSError:
        return None
    try:
        return hash_fd(fd, hook, path)
    except OSError:
        return None
    finally:
        os.close(fd)


def file_sha(dir_fd: int, name: str, hook=None) -> str | None:
    """sha256 of a regular file in ``dir_fd`` (not following a symlink), or None."""
    fd = open_nofollow(dir_fd, name, hook)
    if fd < 0:
        return None
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            return None
        return hash_fd(fd, hook, name)
    except OSError:
        return None
    finally:
        os.close(fd)


def still_same(dir_fd: int, name: str, expect: HomeEntry, hook=None) -> bool:
    """Whether ``name`` in ``dir_fd`` is still exactly the file ``expect`` describes (one lstat)."""
    if hook is not None:
        hook("stat", name)
    try:
        now = entry_from_stat(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except FileNotFoundError:
        return False
    return same_file(now, expect)


def unlink(dir_fd: int, name: str, hook=None) -> None:
    if hook is not None:
        hook("unlink", name)
    os.unlink(name, dir_fd=dir_fd)


def remove_if_same(dir_fd: int, name: str, expect: HomeEntry, hook=None) -> bool:
    if not still_same(dir_fd, name, expect, hook):
        return False
    unlink(dir_fd, name, hook)
    return True


def chmod_if_same(dir_fd: int, name: str, mode: int, expect: HomeEntry, hook=None) -> bool:
    fd = open_nofollow(dir_fd, name, hook)
    if fd < 0:
        return False
    try:
        if not same_file(entry_from_stat(os.fstat(fd)), expect):
            return False
        if hook is not None:
            hook("chmod", name)
        os.fchmod(fd, mode)
        return True
    finally:
        os.close(fd)


def fsync_dir(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data itself is already synced
