"""Making a plan's changes in the home, and recording in the new manifest what landed.

Every change is journaled first (see :mod:`.state`), so one the manifest could not record (a kill, a full disk)
is recognised next time; without a journal (a disk too full for even that), nothing is changed. Removals, mode
changes and directories are made one by one, each re-checking the file it was planned on; the writes are
gathered into batches that :mod:`.writes` copies in parallel.
"""

from __future__ import annotations

import posixpath

from . import fsops, writes
from .model import (
    CHMOD, DIR, MKDIR, NOTE, OFFER, RECORD, REMOVE, RMDIR, WRITES, Action, CourseTree, Manifest, Seeded,
)
from .report import Stopper, Summary
from .state import StateFiles, new_run_id, temp_name

JOURNALED = (CHMOD, REMOVE, MKDIR, RMDIR)  # besides the writes
BATCH_FILES = 256
BATCH_BYTES = 64 << 20


def carry_out(opts, course: CourseTree, dest: fsops.Root, state: StateFiles, actions: list[Action],
              new: Manifest, stop: Stopper, summary: Summary, known_sha) -> None:
    """Carry out ``actions`` (``opts``: the run's options; ``known_sha(path)``: a course file's sha256 when
    it is known without reading the file), until done or ``stop()``; what is left is counted deferred."""
    to_write = [a for a in actions if a.op in WRITES]
    journaled = bool(to_write) or any(a.op in JOURNALED for a in actions)
    batch = _Batch(course, dest, known_sha, lambda items: _flush(items, opts, state, new, stop, summary),
                   lambda action, error: summary.failed(action, error, stop))
    if journaled:
        try:
            state.write_pending(batch.run_id, sorted({posixpath.dirname(a.path) for a in to_write}))
        except OSError as e:
            if e.errno in fsops.DISK_FULL:
                stop.disk_full = True
            summary.errors.append("cannot record pending writes (%s); no file written" % e.strerror)
            journaled = False
    for action in actions:
        if stop():
            if action.op != RECORD and action.outcome:
                summary.counts["deferred"] += 1
            continue
        if action.op in WRITES or action.op in JOURNALED:
            if not journaled:
                summary.counts["deferred"] += 1
                continue
        if action.op in WRITES:
            batch.add(action)
            continue
        try:
            _simple(action, dest, state, new, opts.hook, summary, course.dir_mode)
        except OSError as e:
            summary.failed(action, e, stop)
    batch.flush()
    created = [d for d in dest.created if d in course.dirs]
    if created and journaled:
        try:
            state.append_pending("mkdir", created)
        except OSError:
            pass  # only means an empty directory may stay behind if the course withdraws it
    if opts.durable:
        for reldir in batch.touched_dirs:
            kind, fd = dest.probe(reldir)
            if kind == DIR:
                fsops.fsync_dir(fd)


class _Batch:
    """The writes gathered until there are :data:`BATCH_FILES` of them or :data:`BATCH_BYTES`, then handed to
    ``copy(items)`` together; their directories' descriptors stay open (pinned) until then."""

    def __init__(self, course: CourseTree, dest: fsops.Root, known_sha, copy, failed) -> None:
        self.dest = dest
        self.known_sha = known_sha
        self.copy = copy
        self.failed = failed  # failed(action, error): a directory for the file could not be made
        self.dir_mode = course.dir_mode
        self.run_id = new_run_id()
        self.counter = 2  # temp names 0 and 1 are the manifest's and the pending list's
        self.siblings: dict[str, set[str]] = {}  # names the course uses, per directory: never offered beside
        for p in list(course.files) + list(course.dirs):
            parent, _, name = p.rpartition("/")
            self.siblings.setdefault(parent, set()).add(name)
        self.items: list[writes.Write] = []
        self.bytes = 0
        self.touched_dirs: set[str] = set()

    def add(self, action: Action) -> None:
        parent, _, name = action.path.rpartition("/")
        try:
            fd = self.dest.ensure_dir(parent, self.dir_mode)
        except OSError as e:
            self.failed(action, e)
            return
        self.touched_dirs.add(parent)
        self.counter += 1
        self.items.append(writes.Write(action, fd, name, temp_name(self.run_id, self.counter),
                                       self.siblings.get(parent, writes.NONE), self.known_sha(action.path)))
        self.dest.pinned += 1
        self.bytes += action.source.size if action.source else 0
        if len(self.items) >= BATCH_FILES or self.bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.items:
            return
        self.copy(self.items)
        self.dest.pinned -= len(self.items)
        self.items, self.bytes = [], 0


def _simple(action: Action, dest: fsops.Root, state: StateFiles, new: Manifest, hook, summary: Summary,
            dir_mode) -> None:
    """Everything but the writes: each one re-checks the file it was planned on before touching it."""
    op = action.op
    if op == RECORD:
        _set(new, action.path, action.record)
        summary.count(action)
    elif op == NOTE:
        summary.count(action)
    elif op in (REMOVE, CHMOD):
        parent, _, name = action.path.rpartition("/")
        kind, fd = dest.probe(parent)
        assert action.expect is not None
        if op == CHMOD:  # journaled before: a kill or a full disk must not hide it
            state.append_pending("chmod", [[action.path, action.mode]])
        else:
            state.append_pending("removed", [action.path])
        if kind == DIR and op == REMOVE and fsops.remove_if_same(fd, name, action.expect, hook):
            _set(new, action.path, None)
            summary.count(action)
        elif kind == DIR and op == CHMOD and fsops.chmod_if_same(fd, name, action.mode or 0, action.expect, hook):
            _set(new, action.path, action.record)
            summary.count(action)
        else:
            summary.counts["kept"] += 1
            summary.details.append("kept     %s  (changed while the seeder ran)" % action.path)
    elif op == MKDIR:
        state.append_pending("mkdir", [action.path])
        dest.ensure_dir(action.path, dir_mode)
        new.dirs.add(action.path)
        summary.dirs_created += 1
    elif op == RMDIR:
        state.append_pending("rmdir", [action.path])
        if dest.rmdir(action.path):
            summary.dirs_removed += 1
        new.dirs.discard(action.path)


def _set(manifest: Manifest, path: str, record) -> None:
    if record is None:
        manifest.records.pop(path, None)
    else:
        manifest.records[path] = record


def _flush(batch: list[writes.Write], opts, state: StateFiles, new: Manifest, stop: Stopper,
           summary: Summary) -> None:
    """Copy a batch (in parallel: temporary file, journal line, name), then record what landed."""
    writes.copy_and_place(batch, opts.jobs, opts.durable, opts.hook, stop, state.append_pending, opts.date)
    for w in batch:
        a = w.action
        if w.error is not None:
            summary.failed(a, w.error, stop)
            continue
        assert w.result is not None and a.source is not None and a.record is not None
        if not w.placed:
            summary.counts["kept"] += 1
            summary.details.append("kept     %s  (appeared or changed while the seeder ran)" % a.path)
            continue
        r = w.result
        summary.bytes_written += r.size
        src = (a.source.size, a.source.mtime_ns, r.sha) if r.size == a.source.size else a.record.src
        if a.op == OFFER:
            _set(new, a.path, a.record.copy(src=src, offered=(r.sha, w.placed)))
            shown = posixpath.join(posixpath.dirname(a.path), w.placed)
            summary.count(a, "offered  %s -> %s  (%s)" % (a.path, shown, a.note), beside=shown)
        else:
            # The mode recorded is the course's: a different mode on the file is the student's choice.
            seeded = Seeded(r.sha, r.entry.size, a.source.mode, r.entry.mtime_ns, r.entry.ino)
            _set(new, a.path, a.record.copy(src=src, seeded=seeded, deleted=False))
            summary.count(a)
