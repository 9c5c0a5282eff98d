"""Filesystem access that never leaves its root, and the atomic-write primitives.

Every path below a :class:`Root` is reached one component at a time with ``O_NOFOLLOW`` relative to its parent's
descriptor, so a directory the student replaced with a symlink (to ``/etc``, to another home on the same EFS
volume...) is reported as blocked and never written through, even if swapped while the seeder runs.

Writes go to a temporary file in the destination directory, then either ``link()`` (new files: fails instead of
clobbering anything that appeared meanwhile) or ``rename()`` over a file re-checked just before (updates).
A killed run leaves at worst a temporary file, which the next run removes.

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
O_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC
CHUNK = 1 << 20
MAX_OPEN_DIRS = 256
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_NAMES = ("", ".", "..")
# link() is not offered everywhere (some FUSE and SMB mounts); then we fall back to check-then-rename.
_NO_LINK = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = current_umask()


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
        self._op("open", relpath)
        try:
            fd = os.open(name, O_READ_FLAGS | os.O_NONBLOCK, dir_fd=dfd)
        except OSError:
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
    if hook is not None:
        hook("open", name)
    try:
        fd = os.open(name, O_READ_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            return None
        return hash_fd(fd, hook, name)
    except OSError:
        return None
    finally:
        os.close(fd)


class WriteResult:
    __slots__ = ("sha", "size", "entry")

    def __init__(self, sha: str, size: int, entry: HomeEntry) -> None:
        self.sha = sha
        self.size = size
        self.entry = entry


def write_temp(
    src_path: str, dir_fd: int, tmp_name: str, mode: int, *, durable: bool = False, hook=None,
    should_stop=None, buf: bytearray | None = None, expect_size: int = -1,
) -> WriteResult:
    """Copy ``src_path`` into a new ``tmp_name`` in ``dir_fd``, hashing in the same read pass.

    ``expect_size`` (the listed size) saves the final empty read of a file that fits in one short read.

    On any failure (full disk, budget, kill signal) the temporary file is removed and the error re-raised,
    so no partial file is ever left behind by a run that is still alive.
    """
    import hashlib

    if buf is None:
        buf = bytearray(CHUNK)
    view = memoryview(buf)
    h = hashlib.sha256()
    if hook is not None:
        hook("open", src_path)
    src = os.open(src_path, os.O_RDONLY | O_CLOEXEC)
    out = -1
    try:
        if hook is not None:
            hook("create", tmp_name)
        out = os.open(tmp_name, O_TEMP_FLAGS, mode, dir_fd=dir_fd)
        size = 0
        while True:
            if should_stop is not None and should_stop():
                raise Stopped("stopped while copying")
            if hook is not None:
                hook("read", src_path)
            n = os.readv(src, [buf])
            if not n:
                break
            h.update(view[:n])
            done = 0
            while done < n:
                if hook is not None:
                    hook("write", tmp_name)
                done += os.write(out, view[done:n])
            size += n
            if size == expect_size and n < len(buf):
                break  # a short read that reached the listed size: the end (the image does not change)
        if mode & UMASK:  # the umask took bits the course file has (an executable bit for the group, say)
            if hook is not None:
                hook("chmod", tmp_name)
            os.fchmod(out, mode)
        if durable:
            if hook is not None:
                hook("fsync", tmp_name)
            os.fsync(out)
        entry = entry_from_stat(os.fstat(out))
        fd, out = out, -1
        if hook is not None:
            hook("close", tmp_name)
        os.close(fd)  # NFS reports a full disk here, at the latest
        return WriteResult(h.hexdigest(), size, entry)
    except BaseException:
        if out >= 0:
            os.close(out)
        try:
            if hook is not None:
                hook("unlink", tmp_name)
            os.unlink(tmp_name, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(src)


class SourceChanged(Exception):
    """The course file is not the size it was listed with: a hash known for it cannot be trusted."""


KERNEL_CHUNK = 8 << 20


def copy_temp(
    src_path: str, dir_fd: int, tmp_name: str, mode: int, size: int, sha: str, *, durable: bool = False,
    hook=None, should_stop=None,
) -> WriteResult:
    """Copy a course file whose sha256 is already known (index, manifest) without reading it into Python:
    ``copy_file_range`` (in-kernel, like cp), else ``sendfile``, else read/write. Same temporary-file
    discipline as :func:`write_temp`; raises :class:`SourceChanged` if the size is not the listed one."""
    if hook is not None:
        hook("open", src_path)
    src = os.open(src_path, os.O_RDONLY | O_CLOEXEC)
    out = -1
    try:
        if hook is not None:
            hook("create", tmp_name)
        out = os.open(tmp_name, O_TEMP_FLAGS, mode, dir_fd=dir_fd)
        copied, how = 0, "copy_file_range"
        while True:
            if should_stop is not None and should_stop():
                raise Stopped("stopped while copying")
            if hook is not None:
                hook("write", tmp_name)
            try:
                if how == "copy_file_range":
                    n = os.copy_file_range(src, out, KERNEL_CHUNK)
                elif how == "sendfile":
                    n = os.sendfile(out, src, None, KERNEL_CHUNK)
                else:
                    chunk = os.read(src, CHUNK)
                    n = len(chunk)
                    done = 0
                    while done < n:
                        done += os.write(out, chunk[done:])
            except OSError as e:
                # Across filesystems (image overlay -> NFS home) or where unsupported: step down, nothing
                # has been written by the failed call.
                if e.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF) \
                        and how != "read":
                    how = "sendfile" if how == "copy_file_range" else "read"
                    continue
                raise
            if not n:
                break
            copied += n
            if copied == size:
                break  # the listed size: no extra call just to meet the end (the image does not change)
        if copied != size:
            raise SourceChanged(src_path)
        if mode & UMASK:
            if hook is not None:
                hook("chmod", tmp_name)
            os.fchmod(out, mode)
        if durable:
            if hook is not None:
                hook("fsync", tmp_name)
            os.fsync(out)
        entry = entry_from_stat(os.fstat(out))
        fd, out = out, -1
        if hook is not None:
            hook("close", tmp_name)
        os.close(fd)
        return WriteResult(sha, size, entry)
    except BaseException:
        if out >= 0:
            os.close(out)
        try:
            if hook is not None:
                hook("unlink", tmp_name)
            os.unlink(tmp_name, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(src)


def place_new(dir_fd: int, tmp_name: str, name: str, hook=None) -> bool:
    """Give the temporary file its final name, only if that name is free. False if it is taken."""
    try:
        if hook is not None:
            hook("link", name)
        os.link(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        if hook is not None:
            hook("stat", name)
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            return False
        except FileNotFoundError:
            pass
        if hook is not None:
            hook("rename", name)
        os.rename(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    if hook is not None:
        hook("unlink", tmp_name)
    os.unlink(tmp_name, dir_fd=dir_fd)
    return True


def place_replace(dir_fd: int, tmp_name: str, name: str, expect: HomeEntry, hook=None) -> bool:
    """Rename the temporary file over ``name`` if that is still exactly the file we planned to replace."""
    if hook is not None:
        hook("stat", name)
    try:
        now = entry_from_stat(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except FileNotFoundError:
        return False
    if not same_file(now, expect):
        return False
    if hook is not None:
        hook("rename", name)
    os.rename(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True


def remove_if_same(dir_fd: int, name: str, expect: HomeEntry, hook=None) -> bool:
    if hook is not None:
        hook("stat", name)
    try:
        now = entry_from_stat(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except FileNotFoundError:
        return False
    if not same_file(now, expect):
        return False
    if hook is not None:
        hook("unlink", name)
    os.unlink(name, dir_fd=dir_fd)
    return True


def chmod_if_same(dir_fd: int, name: str, mode: int, expect: HomeEntry, hook=None) -> bool:
    if hook is not None:
        hook("open", name)
    try:
        fd = os.open(name, O_READ_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
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


def write_atomic(dir_fd: int, name: str, data: bytes, tmp_name: str, *, durable: bool = False, hook=None,
                 mode: int = 0o600) -> HomeEntry:
    """Replace ``name`` with ``data`` atomically (the manifest, the pending list). Returns the new file's stat."""
    if hook is not None:
        hook("create", tmp_name)
    fd = os.open(tmp_name, O_TEMP_FLAGS, mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        done = 0
        while done < len(data):
            if hook is not None:
                hook("write", tmp_name)
            done += os.write(fd, view[done:])
        if durable:
            if hook is not None:
                hook("fsync", tmp_name)
            os.fsync(fd)
        entry = entry_from_stat(os.fstat(fd))
        if hook is not None:
            hook("close", tmp_name)
        os.close(fd)
        fd = -1
        if hook is not None:
            hook("rename", name)
        os.rename(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return entry
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            if hook is not None:
                hook("unlink", tmp_name)
            os.unlink(tmp_name, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def fsync_dir(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data itself is already synced
