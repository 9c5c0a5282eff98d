"""Writing files atomically: a complete temporary file in the destination directory first, then its name.

A new file gets its name with ``link()``, which fails instead of clobbering anything that appeared meanwhile;
an update gets it with ``rename()`` over a file re-checked just before. A killed run leaves at worst a
temporary file, which the next run removes; a run that is still alive removes its own on any failure (full
disk, budget, kill signal), so no partial file is ever left behind.

``hook(op, path)`` is called before each filesystem operation, as in :mod:`.fsops`.
"""

from __future__ import annotations

import errno
import os

from . import fsops  # fsops.CHUNK and fsops.UMASK are read at each use: tests and each run set them
from .fsops import O_CLOEXEC, Stopped, entry_from_stat, still_same, unlink
from .model import HomeEntry

O_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC
KERNEL_CHUNK = 8 << 20
# link() is not offered everywhere (some FUSE and SMB mounts); then we fall back to check-then-rename.
_NO_LINK = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV)
# An in-kernel copy across filesystems (image overlay -> NFS home) or where unsupported: the next way down.
_STEP_DOWN = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF)


class WriteResult:
    __slots__ = ("sha", "size", "entry")

    def __init__(self, sha: str, size: int, entry: HomeEntry) -> None:
        self.sha = sha
        self.size = size
        self.entry = entry


class SourceChanged(Exception):
    """The course file is not the size it was listed with: a hash known for it cannot be trusted."""


class TempFile:
    """A new temporary file ``name`` in ``dir_fd``: :meth:`create`, write, :meth:`finish`.

    Used as ``with TempFile(...) as temp:``: if the block raises, the file is discarded (closed, removed) and
    the error goes on.
    """

    __slots__ = ("dir_fd", "name", "hook", "fd")

    def __init__(self, dir_fd: int, name: str, hook=None) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.hook = hook
        self.fd = -1

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.discard()
        return False

    def create(self, mode: int) -> None:
        if self.hook is not None:
            self.hook("create", self.name)
        self.fd = os.open(self.name, O_TEMP_FLAGS, mode, dir_fd=self.dir_fd)

    def write_all(self, view: memoryview) -> None:
        """``write()`` until all of ``view`` is in the file."""
        done = 0
        while done < len(view):
            if self.hook is not None:
                self.hook("write", self.name)
            done += os.write(self.fd, view[done:])

    def finish(self, durable: bool, mode: int | None = None) -> HomeEntry:
        """The file complete: ``fchmod`` to ``mode`` if the umask took some of its bits (an executable bit for
        the group, say), ``fsync`` if ``durable``, then ``fstat`` and ``close``. Returns the file's stat."""
        hook, fd = self.hook, self.fd
        if mode is not None and mode & fsops.UMASK:
            if hook is not None:
                hook("chmod", self.name)
            os.fchmod(fd, mode)
        if durable:
            if hook is not None:
                hook("fsync", self.name)
            os.fsync(fd)
        entry = entry_from_stat(os.fstat(fd))
        if hook is not None:
            hook("close", self.name)
        self.fd = -1  # closed from here on, even if close() reports an error: never closed twice
        os.close(fd)  # NFS reports a full disk here, at the latest
        return entry

    def discard(self) -> None:
        """Close the file if it is still open and remove it (if that fails too, the next run removes it)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
        try:
            unlink(self.dir_fd, self.name, self.hook)
        except OSError:
            pass


def _into_temp(src_path: str, dir_fd: int, tmp_name: str, mode: int, durable: bool, hook, fill) -> WriteResult:
    """Open the course file and a new temporary file, ``fill(src_fd, temp)`` -> (sha256, size), finish it."""
    if hook is not None:
        hook("open", src_path)
    src = os.open(src_path, os.O_RDONLY | O_CLOEXEC)
    try:
        with TempFile(dir_fd, tmp_name, hook) as temp:
            temp.create(mode)
            sha, size = fill(src, temp)
            return WriteResult(sha, size, temp.finish(durable, mode))
    finally:
        os.close(src)


def _check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise Stopped("stopped while copying")


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
        buf = bytearray(fsops.CHUNK)
    view = memoryview(buf)
    h = hashlib.sha256()

    def fill(src: int, temp: TempFile) -> tuple[str, int]:
        size = 0
        while True:
            _check_stop(should_stop)
            if hook is not None:
                hook("read", src_path)
            n = os.readv(src, [buf])
            if not n:
                break
            h.update(view[:n])
            temp.write_all(view[:n])
            size += n
            if size == expect_size and n < len(buf):
                break  # a short read that reached the listed size: the end (the image does not change)
        return h.hexdigest(), size

    return _into_temp(src_path, dir_fd, tmp_name, mode, durable, hook, fill)


def copy_temp(
    src_path: str, dir_fd: int, tmp_name: str, mode: int, size: int, sha: str, *, durable: bool = False,
    hook=None, should_stop=None,
) -> WriteResult:
    """Copy a course file whose sha256 is already known (index, manifest) without reading it into Python:
    ``copy_file_range`` (in-kernel, like cp), else ``sendfile``, else read/write. Same temporary-file
    discipline as :func:`write_temp`; raises :class:`SourceChanged` if the size is not the listed one."""

    def fill(src: int, temp: TempFile) -> tuple[str, int]:
        copied, how = 0, "copy_file_range"
        while True:
            _check_stop(should_stop)
            if hook is not None:
                hook("write", tmp_name)
            try:
                n = _copy_chunk(how, src, temp.fd)
            except OSError as e:
                if e.errno in _STEP_DOWN and how != "read":
                    how = "sendfile" if how == "copy_file_range" else "read"
                    continue  # nothing has been written by the failed call
                raise
            if not n:
                break
            copied += n
            if copied == size:
                break  # the listed size: no extra call just to meet the end (the image does not change)
        if copied != size:
            raise SourceChanged(src_path)
        return sha, size

    return _into_temp(src_path, dir_fd, tmp_name, mode, durable, hook, fill)


def _copy_chunk(how: str, src: int, out: int) -> int:
    """Copy the next piece of ``src`` to ``out`` the ``how`` way; the number of bytes (0 at the end)."""
    if how == "copy_file_range":
        return os.copy_file_range(src, out, KERNEL_CHUNK)
    if how == "sendfile":
        return os.sendfile(out, src, None, KERNEL_CHUNK)
    chunk = os.read(src, fsops.CHUNK)
    done = 0
    while done < len(chunk):
        done += os.write(out, chunk[done:])
    return len(chunk)


def place_new(dir_fd: int, tmp_name: str, name: str, hook=None, tmp_dir_fd: int | None = None) -> bool:
    """Give the temporary file its final name, only if that name is free. False if it is taken.
    ``tmp_dir_fd``: the temporary file's directory, when not ``dir_fd`` (same filesystem)."""
    src_fd = dir_fd if tmp_dir_fd is None else tmp_dir_fd
    try:
        if hook is not None:
            hook("link", name)
        os.link(tmp_name, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
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
        _rename(dir_fd, tmp_name, name, hook, src_fd)
        return True
    unlink(src_fd, tmp_name, hook)
    return True


def place_replace(dir_fd: int, tmp_name: str, name: str, expect: HomeEntry, hook=None,
                  tmp_dir_fd: int | None = None) -> bool:
    """Rename the temporary file over ``name`` if that is still exactly the file we planned to replace."""
    if not still_same(dir_fd, name, expect, hook):
        return False
    _rename(dir_fd, tmp_name, name, hook, dir_fd if tmp_dir_fd is None else tmp_dir_fd)
    return True


def _rename(dir_fd: int, tmp_name: str, name: str, hook, src_dir_fd: int | None = None) -> None:
    if hook is not None:
        hook("rename", name)
    os.rename(tmp_name, name, src_dir_fd=dir_fd if src_dir_fd is None else src_dir_fd, dst_dir_fd=dir_fd)


def write_atomic(dir_fd: int, name: str, data: bytes, tmp_name: str, *, durable: bool = False, hook=None,
                 mode: int = 0o600) -> HomeEntry:
    """Replace ``name`` with ``data`` atomically (the manifest, the pending list). Returns the new file's stat."""
    temp = TempFile(dir_fd, tmp_name, hook)
    temp.create(mode)  # (a failed create leaves nothing to remove)
    with temp:
        temp.write_all(memoryview(data))
        entry = temp.finish(durable)
        _rename(dir_fd, tmp_name, name, hook)
        return entry
