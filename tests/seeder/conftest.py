"""Shared helpers for the seeder tests: building trees, snapshots, running the seeder, fault hooks."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile

import pytest

from jupyterhub_ext.seeder.apply import Options, Summary, run

DATE = "2026-11-22"
STATE_DIR = ".course-seeder"


@pytest.fixture(autouse=True)
def _slow_only_when_asked(request):
    # `slow` tests (the 10,000-scenario property run) are skipped unless RUN_SLOW=1; this applies to the
    # seeder's tests only (conftest scope), other suites decide for themselves.
    if request.node.get_closest_marker("slow") and os.environ.get("RUN_SLOW") != "1":
        pytest.skip("slow: set RUN_SLOW=1 to run")


def fast_tmp_root() -> str | None:
    """A tmpfs to work in when there is one: on ext4 mounted with `discard`, every replace costs ms."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


@pytest.fixture
def fast_tmp():
    path = tempfile.mkdtemp(prefix="seeder-", dir=fast_tmp_root())
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dirs(tmp_path):
    """course/, home/ and outside/ (a place nothing may ever write to) on the real disk."""
    out = {}
    for name in ("course", "home", "outside"):
        out[name] = tmp_path / name
        out[name].mkdir()
    (out["outside"] / "secret.txt").write_text("do not touch\n")
    return out


def write_tree(root, files: dict) -> None:
    """files: path -> bytes | str | (content, mode)."""
    for rel, value in files.items():
        mode = None
        if isinstance(value, tuple):
            value, mode = value
        if isinstance(value, str):
            value = value.encode()
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(value)
        if mode is not None:
            os.chmod(path, mode)


def read(root, rel) -> bytes:
    with open(os.path.join(str(root), rel), "rb") as f:
        return f.read()


def mode_of(root, rel) -> int:
    return stat.S_IMODE(os.lstat(os.path.join(str(root), rel)).st_mode)


def snapshot(root, *, skip_state: bool = False, with_stat: bool = False) -> dict:
    """Every entry under root: path -> (kind, content or link target, mode[, mtime_ns, ino])."""
    out = {}
    root = str(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if skip_state and rel_dir.split(os.sep)[0] == STATE_DIR:
            continue
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if skip_state and rel.split(os.sep)[0] == STATE_DIR:
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                value = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                value = ("dir", None)
            else:
                with open(full, "rb") as f:
                    value = ("file", f.read())
            extra = (st.st_mtime_ns, st.st_ino) if with_stat and not stat.S_ISDIR(st.st_mode) else ()
            out[rel] = value + (stat.S_IMODE(st.st_mode),) + extra
    return out


def temp_files(root) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(str(root)):
        found += [os.path.join(dirpath, f) for f in files if f.startswith(".~sd") and f.endswith(".tmp")]
    return found


def edited_then_updated(course, home, **kw) -> Summary:
    """Row 3's story: lab.ipynb seeded, the student edits it, the course publishes a new version; the run."""
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    write_tree(home, {"lab.ipynb": "v1 + my answers"})
    write_tree(course, {"lab.ipynb": "v2"})
    return seed(course, home, **kw)


def seed(course, home, **kw) -> Summary:
    kw.setdefault("date", DATE)
    kw.setdefault("jobs", 1)
    kw.setdefault("lock_timeout", 2.0)
    return run(Options(str(course), str(home), **kw))


class Kill(BaseException):
    """A simulated SIGKILL: not an Exception, so no handler of the seeder's catches it."""


class KillAt:
    """Kill the run at its n-th filesystem operation; every later operation fails too (the process is gone)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.fired = False

    def __call__(self, op: str, path: str) -> None:
        self.count += 1
        if self.fired or self.count >= self.n:
            self.fired = True
            raise Kill("killed at operation %d (%s %s)" % (self.count, op, path))


class Counter:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str]] = []

    def __call__(self, op: str, path: str) -> None:
        self.ops.append((op, path))

    def count(self, *names: str) -> int:
        return sum(1 for op, _ in self.ops if op in names)


class DiskFullAfter:
    """Every data write after the first n fails with ENOSPC, like a disk that has just filled up."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.writes = 0

    def __call__(self, op: str, path: str) -> None:
        if op == "write":
            self.writes += 1
            if self.writes > self.n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
