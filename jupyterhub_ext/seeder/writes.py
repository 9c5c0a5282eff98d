"""Writing a batch of course files on worker threads: temporary file, journal line, final name.

Kept apart from the bookkeeping in changes.py: here only bytes move. ``parallel`` runs on threads (the copy loop
spends its time in system calls and in hashlib, both of which release the GIL), or inline with one job, so
tests can count and interrupt operations deterministically.
"""

from __future__ import annotations

import threading

from . import atomic, fsops
from .model import COPY, OFFER, REPLACE, Action
from .plan import beside_name

NONE: set = set()


def parallel(tasks: list, jobs: int) -> None:
    """Run ``task(buffer)`` for each task on up to ``jobs`` threads (inline for one: tests count operations)."""
    if jobs <= 1 or len(tasks) <= 1:
        buf = bytearray(fsops.CHUNK)
        for task in tasks:
            task(buf)
        return
    it = iter(tasks)
    take = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        buf = bytearray(fsops.CHUNK)
        while True:
            with take:
                task = next(it, None)
            if task is None:
                return
            try:
                task(buf)
            except BaseException as e:  # handed to the main thread
                failures.append(e)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(jobs, len(tasks)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


class Write:
    """One copy to carry out: filled in by a worker, read by the main thread."""

    __slots__ = ("action", "dir_fd", "name", "tmp", "avoid", "known", "result", "placed", "error")

    def __init__(self, action: Action, dir_fd: int, name: str, tmp: str, avoid: set, known: str | None) -> None:
        self.action = action
        self.dir_fd = dir_fd
        self.name = name
        self.tmp = tmp
        self.avoid = avoid
        self.known = known  # the course file's sha256, when the index or the manifest already knows it
        self.result: atomic.WriteResult | None = None
        self.placed = ""
        self.error: OSError | fsops.Stopped | None = None


def copy_and_place(batch: list[Write], jobs: int, durable: bool, hook, stop, journal, date: str) -> None:
    """For each item, on the worker threads: copy to a temporary file (hashing as it goes), journal the intent
    (``journal(key, items)``), give the file its name. Results and errors land in the items."""
    def task(w: Write):
        def go(buf: bytearray) -> None:
            if stop():
                w.error = fsops.Stopped(stop.reason)
                return
            a = w.action
            assert a.source is not None
            mode = a.mode if a.mode is not None else a.source.mode
            try:
                if w.known is not None:
                    try:  # the bytes need not pass through Python: an in-kernel copy, as cp does
                        w.result = atomic.copy_temp(a.source.real, w.dir_fd, w.tmp, mode, a.source.size, w.known,
                                                   durable=durable, hook=hook, should_stop=stop)
                    except atomic.SourceChanged:
                        w.result = None
                if w.result is None:
                    w.result = atomic.write_temp(a.source.real, w.dir_fd, w.tmp, mode, durable=durable, hook=hook,
                                                should_stop=stop, buf=buf, expect_size=a.source.size)
                if a.op != OFFER:  # before the name: a killed run's file is recognised by this hash
                    journal("seeded", [[a.path, w.result.sha, a.source.mode, a.source.size, a.source.mtime_ns]])
                w.placed = place(w, date, hook)
            except (OSError, fsops.Stopped) as e:
                if isinstance(e, OSError) and e.errno in fsops.DISK_FULL:
                    stop.disk_full = True
                if w.result is not None and not w.placed:
                    drop_temp(w, hook)
                w.error = e
                return
            if a.op == OFFER and w.placed:
                try:
                    journal("offered", [[a.path, w.result.sha, w.placed]])
                except OSError:
                    pass  # the manifest will say it; if not, offering the same version again finds it there
        return go

    parallel([task(w) for w in batch], jobs)


def drop_temp(w: Write, hook) -> None:
    try:
        fsops.unlink(w.dir_fd, w.tmp, hook)
    except FileNotFoundError:
        pass


def place(w: Write, date: str, hook) -> str:
    """Give a written temporary file its name; the name used, or "" (temporary removed) if not possible."""
    a = w.action
    assert w.result is not None
    if a.op == COPY:
        if atomic.place_new(w.dir_fd, w.tmp, w.name, hook):
            return w.name
    elif a.op == REPLACE:
        assert a.expect is not None
        if atomic.place_replace(w.dir_fd, w.tmp, w.name, a.expect, hook):
            return w.name
    else:
        for n in range(1, 1000):
            candidate = beside_name(w.name, date, n)
            if candidate in w.avoid or candidate == w.name:
                continue  # never take a name the course itself uses
            if atomic.place_new(w.dir_fd, w.tmp, candidate, hook):
                return candidate
            if fsops.file_sha(w.dir_fd, candidate, hook) == w.result.sha:
                break  # this very version is already there (a run killed before it saved the manifest)
        else:
            candidate = ""
        if candidate:
            drop_temp(w, hook)
            return candidate
    drop_temp(w, hook)
    return ""
