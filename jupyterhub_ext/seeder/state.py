"""The seeder's own files: manifest, lock, journal of a run in progress, log.

By default they live together in ``<dest>/.course-seeder/`` (``manifest.json``, ``manifest.json.lock``,
``manifest.json.pending``, ``seeder.log``). When that directory is inside the home it is reached through the
home's :class:`~.fsops.Root`, so a student who turns it into a symlink makes the seeder refuse, not write
elsewhere.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time

from . import atomic, fsops
from . import manifest as manifest_io
from .model import DIR, Manifest

STATE_DIR = ".course-seeder"
LOG_MAX_BYTES = 1 << 20  # then the log is rotated to <log>.1 (one generation kept)
TEMP_PREFIX = ".~sd"


def _intent(item: object, types: tuple) -> bool:
    return (isinstance(item, list) and len(item) == len(types)
            and all(type(v) is t for v, t in zip(item, types)))


def temp_name(run_id: str, n: int) -> str:
    return "%s%s-%d.tmp" % (TEMP_PREFIX, run_id, n)


def new_run_id() -> str:
    """A run's name in its temporary files and its journal."""
    return os.urandom(4).hex()


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class Place:
    """A file named ``name`` in directory ``reldir`` of ``root``."""

    def __init__(self, root: fsops.Root, reldir: str, name: str) -> None:
        self.root = root
        self.reldir = reldir
        self.name = name

    @property
    def relpath(self) -> str:
        return self.reldir + "/" + self.name if self.reldir else self.name

    def dir_fd(self, create: bool) -> int:
        if create:
            return self.root.ensure_dir(self.reldir, lambda _d: 0o700)
        kind, fd = self.root.probe(self.reldir)
        if kind != DIR:
            raise FileNotFoundError(errno.ENOENT, "no such directory", self.reldir)
        return fd

    def __str__(self) -> str:
        return os.path.join(self.root.path, self.relpath)


def _under(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ("/"-separated, "" for the root itself), or None if not under it."""
    if path == root:
        return ""
    if path.startswith(root.rstrip(os.sep) + os.sep):
        return path[len(root.rstrip(os.sep)) + 1:].replace(os.sep, "/")
    return None


def _place(path: str, dest_root: fsops.Root, dest_real: str, extra_roots: dict, hook) -> Place:
    """Where ``path`` lives: through the home's root if it is inside the home, else through its own.

    Inside the home, the path is split lexically (never resolved), so a symlink a student planted on the
    way is met by O_NOFOLLOW instead of being followed.
    """
    path = os.path.abspath(path)
    parent, name = os.path.dirname(path), os.path.basename(path)
    rel = _under(parent, os.path.abspath(dest_root.path))
    if rel is None:
        rel = _under(os.path.realpath(parent), dest_real)
    if rel is not None:
        return Place(dest_root, rel, name)
    real_parent = os.path.realpath(parent)
    root = extra_roots.get(real_parent)
    if root is None:
        os.makedirs(real_parent, mode=0o700, exist_ok=True)
        root = extra_roots[real_parent] = fsops.Root(real_parent, hook)
    return Place(root, "", name)


class StateFiles:
    def __init__(self, dest_root: fsops.Root, dest_real: str, state: str | None, log: str | None,
                 durable: bool, hook=None) -> None:
        dest = dest_root.path
        state = state or os.path.join(dest, STATE_DIR, "manifest.json")
        if log is None:
            log = os.path.join(dest, STATE_DIR, "seeder.log")
        self.durable = durable
        self.hook = hook
        self.extra_roots: dict[str, fsops.Root] = {}
        self.manifest = _place(state, dest_root, dest_real, self.extra_roots, hook)
        self.lock = Place(self.manifest.root, self.manifest.reldir, self.manifest.name + ".lock")
        self.pending = Place(self.manifest.root, self.manifest.reldir, self.manifest.name + ".pending")
        self.log = _place(log, dest_root, dest_real, self.extra_roots, hook) if log else None
        self.pending_written = False
        self._pending_fd = -1
        self._pending_lock = threading.Lock()

    def reserved(self, dest_root: fsops.Root) -> frozenset[str]:
        """Relative paths in the home that course files must never take."""
        out = set()
        for place in (self.manifest, self.lock, self.pending, self.log):
            if place is not None and place.root is dest_root:
                if place.reldir.split("/")[-1] == STATE_DIR:
                    out.add(place.reldir)
                else:
                    out.update((place.relpath, place.relpath + ".1"))
        return frozenset(out)

    def close(self) -> None:
        self.close_pending()
        for root in self.extra_roots.values():
            root.close()

    # -- lock --------------------------------------------------------------------------------------------

    def acquire(self, timeout: float, should_stop) -> int | None:
        """An exclusive ``flock`` on the lock file, waiting at most ``timeout`` seconds; None if not had.

        The kernel drops a flock when its holder dies (SIGKILL included), so a killed run never leaves a
        stale lock; the timeout covers a live holder (a run still going in a pod being replaced).
        """
        dfd = self.lock.dir_fd(create=True)
        give_up = time.monotonic() + timeout
        while True:
            fd = os.open(self.lock.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | fsops.O_CLOEXEC, 0o600,
                         dir_fd=dfd)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= give_up or should_stop():
                        os.close(fd)
                        return None
                    time.sleep(0.05)
                except OSError as e:
                    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        return fd  # no locking on this filesystem: run unlocked rather than never
                    raise
            # The file we locked must still be the lock file (not unlinked and recreated while we waited).
            try:
                if os.stat(self.lock.name, dir_fd=dfd, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    # -- manifest -----------------------------------------------------------------------------------------

    def read_manifest(self) -> tuple[Manifest, list[str]]:
        try:
            dfd = self.manifest.dir_fd(create=False)
            fd = os.open(self.manifest.name, fsops.O_READ_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return Manifest(), []
        except OSError as e:
            return Manifest(), ["manifest unreadable (%s); starting afresh" % e.strerror]
        try:
            st = os.fstat(fd)
            data = _read_all(fd)
        finally:
            os.close(fd)
        return manifest_io.parse(data, st.st_mtime_ns)

    def write_manifest(self, manifest: Manifest, source: str, run_id: str, newest_ns: int) -> int:
        """Save the manifest atomically; returns its mtime (later than ``newest_ns`` whenever possible)."""
        dfd = self.manifest.dir_fd(create=True)
        data = manifest_io.dump(manifest, source)
        entry = atomic.write_atomic(dfd, self.manifest.name, data, temp_name(run_id, 0), durable=self.durable,
                                   hook=self.hook)
        # Before we finish, the filesystem clock must be past every mtime we recorded: a student's write in
        # the same tick as ours would otherwise look "untouched". One tick is a few milliseconds.
        give_up = time.monotonic() + 2.0
        while entry.mtime_ns <= newest_ns and time.monotonic() < give_up:
            time.sleep(0.002)
            os.utime(self.manifest.name, dir_fd=dfd, follow_symlinks=False)
            entry = fsops.entry_from_stat(os.stat(self.manifest.name, dir_fd=dfd, follow_symlinks=False))
        if self.durable:
            fsops.fsync_dir(dfd)
        return entry.mtime_ns

    # -- the pending journal ---------------------------------------------------------------------------------
    #
    # Written before a run's first write and removed once its manifest is saved, as JSON lines:
    #   {"run": "3fa9c1d2", "dirs": ["week1", ...]}              where temporary files may be left
    #   {"seeded": [[path, sha256, mode, src_size, src_mtime_ns], ...]}   before these files get their names
    #   {"offered": [[path, sha256, beside_name], ...]}                     after these were placed
    #   {"chmod": [[path, mode], ...]}                                       before these modes change
    #   {"removed": [path, ...]}, {"mkdir": [dir, ...]}, {"rmdir": [dir, ...]}   before each such change
    # After a kill, the next run removes the temporary files and, for each intent, adopts the file only if
    # its content hashes to the recorded sha256: what the killed run placed is then known to be ours.

    def write_pending(self, run_id: str, dirs: list[str]) -> None:
        data = json.dumps({"run": run_id, "dirs": dirs}).encode("ascii") + b"\n"
        atomic.write_atomic(self.pending.dir_fd(create=True), self.pending.name, data, temp_name(run_id, 1),
                           durable=self.durable, hook=self.hook)
        self.pending_written = True

    def append_pending(self, key: str, items: list) -> None:
        """Add one line to the journal. Safe from several threads: each line is a single ``write()`` on an
        ``O_APPEND`` descriptor, which the kernel does not interleave with another."""
        data = json.dumps({key: items}, separators=(",", ":")).encode("ascii") + b"\n"
        with self._pending_lock:
            if self._pending_fd < 0:
                dfd = self.pending.dir_fd(create=False)
                if self.hook is not None:
                    self.hook("open", self.pending.name)
                self._pending_fd = os.open(self.pending.name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
                                           | fsops.O_CLOEXEC, dir_fd=dfd)
            fd = self._pending_fd
        view, done = memoryview(data), 0
        while done < len(data):
            if self.hook is not None:
                self.hook("write", self.pending.name)
            done += os.write(fd, view[done:])
        # Not fsynced even with --fsync: a line lost to a crash only makes a file look like the student's.

    def close_pending(self) -> None:
        if self._pending_fd >= 0:
            os.close(self._pending_fd)
            self._pending_fd = -1

    def read_pending(self) -> tuple | None:
        """(run id, directories, and the seeded, offered, chmod, removed, mkdir, rmdir intents) of a run that
        did not finish, or None."""
        try:
            dfd = self.pending.dir_fd(create=False)
            fd = os.open(self.pending.name, fsops.O_READ_FLAGS, dir_fd=dfd)
        except OSError:
            return None
        try:
            data = _read_all(fd)
        finally:
            os.close(fd)
        run_id, dirs, seeded, offered, chmods, removed, made, unmade = "", [], [], [], [], [], [], []
        for number, line in enumerate(data.splitlines()):
            try:
                item = json.loads(line.decode("ascii"))
                if number == 0:
                    run_id, dirs = str(item["run"]), [d for d in item["dirs"] if isinstance(d, str)]
                else:
                    seeded += [i for i in item.get("seeded", []) if _intent(i, (str, str, int, int, int))]
                    offered += [i for i in item.get("offered", []) if _intent(i, (str, str, str))]
                    chmods += [i for i in item.get("chmod", []) if _intent(i, (str, int))]
                    removed += [i for i in item.get("removed", []) if isinstance(i, str)]
                    made += [i for i in item.get("mkdir", []) if isinstance(i, str)]
                    unmade += [i for i in item.get("rmdir", []) if isinstance(i, str)]
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                continue  # a line cut short by the kill
        return run_id, dirs, seeded, offered, chmods, removed, made, unmade

    def clear_pending(self) -> None:
        self.close_pending()
        try:
            dfd = self.pending.dir_fd(create=False)
            fsops.unlink(dfd, self.pending.name, self.hook)
        except FileNotFoundError:
            pass

    def remove_temps(self, dest_root: fsops.Root, run_id: str, dirs: list[str]) -> int:
        """Remove the temporary files a killed run left in the directories its journal lists."""
        removed = 0
        if not run_id:
            return 0
        for reldir in dirs:
            kind, dirfd = dest_root.probe(reldir)
            if kind == DIR:
                removed += self._remove_temps(dirfd, TEMP_PREFIX + run_id + "-")
        return removed

    def clean_state_dir(self) -> int:
        """Remove temporary files of ours in the manifest's directory (a manifest write that was killed)."""
        try:
            return self._remove_temps(self.manifest.dir_fd(create=False), TEMP_PREFIX)
        except OSError:
            return 0

    def _remove_temps(self, dirfd: int, prefix: str) -> int:
        with os.scandir(dirfd) as entries:
            names = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(".tmp")
                     and e.is_file(follow_symlinks=False)]
        for name in names:
            if self.hook is not None:
                self.hook("unlink", name)
            try:
                os.unlink(name, dir_fd=dirfd)
            except FileNotFoundError:
                pass
        return len(names)

    # -- log --------------------------------------------------------------------------------------------------

    def append_log(self, lines: list[str]) -> None:
        if self.log is None:
            return
        dfd = self.log.dir_fd(create=True)
        try:
            if os.stat(self.log.name, dir_fd=dfd, follow_symlinks=False).st_size > LOG_MAX_BYTES:
                os.rename(self.log.name, self.log.name + ".1", src_dir_fd=dfd, dst_dir_fd=dfd)
        except FileNotFoundError:
            pass
        if self.hook is not None:
            self.hook("append", self.log.name)
        fd = os.open(self.log.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | fsops.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode("utf-8", "backslashreplace"))
        finally:
            os.close(fd)
