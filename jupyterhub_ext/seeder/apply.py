"""Carry out a plan: lock, list, hash what must be hashed, plan, write atomically, remember, log.

The order of a run::

    lock -> read manifest -> clean a killed run's temporary files -> list course + home (one lstat each)
    -> hash what the planner needs (nothing on a warm run) -> plan -> removals -> writes (in batches,
    in parallel) -> empty directories -> manifest (only if changed) -> unlock -> one log line

Everything is bounded by the time budget: nothing new starts once it is spent, a copy in progress stops
between chunks and its temporary file is removed, and the next start carries on from what was recorded.
A full disk stops all writes the same way; nothing is removed because of it.
"""

from __future__ import annotations

import os
import posixpath
import time

from . import fsops, writes
from . import manifest as manifest_io
from .model import (
    ABSENT, CHMOD, DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, DIR, MKDIR, NOTE, OFFER, OUTCOMES, RECORD, REMOVE,
    RMDIR, WRITES,
    Action, CourseTree, HomeEntry, Manifest, Policy, Record, Seeded,
)
from .index import load_index
from .plan import hashes_needed, plan
from .scan import DEFAULT_EXCLUDES, scan_course
from .state import StateFiles, temp_name

DEFAULT_LOCK_TIMEOUT = 10.0
JOURNALED = (CHMOD, REMOVE, MKDIR, RMDIR)  # besides the writes
BATCH_FILES = 256
BATCH_BYTES = 64 << 20
MAX_DETAILS = 50


class Options:
    def __init__(
        self,
        source: str,
        dest: str,
        *,
        state: str | None = None,
        log: str | None = None,  # None: <dest>/.course-seeder/seeder.log; "": no log
        time_budget: float = DEFAULT_TIME_BUDGET,
        on_deleted: str = DEFAULT_ON_DELETED,
        excludes=DEFAULT_EXCLUDES,
        durable: bool = False,
        jobs: int | None = None,
        lock_timeout: float | None = None,
        rehash: bool = False,
        dry_run: bool = False,
        date: str | None = None,
        hook=None,
        stop_flag=None,
    ) -> None:
        self.source = source
        self.dest = dest
        self.state = state
        self.log = log
        self.time_budget = time_budget
        self.on_deleted = on_deleted
        self.excludes = tuple(excludes)
        self.durable = durable  # fsync each file before it gets its name, and the directories after
        self.jobs = jobs if jobs else min(4, os.cpu_count() or 1)
        self.lock_timeout = min(DEFAULT_LOCK_TIMEOUT, time_budget) if lock_timeout is None else lock_timeout
        self.rehash = rehash
        self.dry_run = dry_run
        self.date = date or time.strftime("%Y-%m-%d", time.gmtime())
        self.hook = hook  # tests: called before each filesystem operation
        self.stop_flag = stop_flag  # anything with is_set(): SIGTERM asks for a clean stop


class Summary:
    def __init__(self) -> None:
        self.status = "ok"
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.dirs_created = 0
        self.dirs_removed = 0
        self.bytes_written = 0
        self.files = 0
        self.errors: list[str] = []
        self.problems: list[str] = []  # course files left out (bad symlinks, unreadable...): for --check
        self.details: list[str] = []
        self.actions: list[Action] = []
        self.temp_cleaned = 0
        self.manifest_written = False
        self.took = 0.0

    def count(self, action: Action, detail: str | None = None) -> None:
        if action.outcome:
            self.counts[action.outcome] += 1
            if action.outcome not in ("added", "updated", "restored", "removed") or detail:
                self.details.append(detail or action.describe())

    def line(self, source: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        counts = " ".join("%s=%d" % (k, v) for k, v in self.counts.items())
        return "%s course-seeder status=%s %s errors=%d files=%d written=%d took=%.2fs source=%s" % (
            stamp, self.status, counts, len(self.errors), self.files, self.bytes_written, self.took, source)


class Stopper:
    """Why a run should stop early: time budget, a signal, a full disk."""

    def __init__(self, budget: float, flag) -> None:
        self.deadline = time.monotonic() + budget
        self.flag = flag
        self.disk_full = False
        self.reason = ""

    def __call__(self) -> bool:
        if self.reason:
            return True
        if self.disk_full:
            self.reason = "disk full"
        elif self.flag is not None and self.flag.is_set():
            self.reason = "asked to stop"
        elif time.monotonic() >= self.deadline:
            self.reason = "time budget spent"
        return bool(self.reason)


def run(opts: Options) -> Summary:
    """One seeding run. Never raises for expected trouble: it is all in the returned summary."""
    started = time.monotonic()
    fsops.UMASK = fsops.current_umask()  # files get the course's exact modes, whatever the umask
    summary = Summary()
    stop = Stopper(opts.time_budget, opts.stop_flag)
    source_real = os.path.realpath(opts.source)
    dest_real = os.path.realpath(opts.dest)
    problem = _check_roots(source_real, dest_real, opts)
    dest: fsops.Root | None = None
    state: StateFiles | None = None
    lock_fd = None
    try:
        if problem:
            summary.status = "error"
            summary.errors.append(problem)
            # Still log it in the home when there is a usable one (never inside the source).
            if opts.dry_run or not os.path.isdir(dest_real) or _inside(dest_real, source_real):
                return summary
        dest = fsops.Root(opts.dest, opts.hook)
        state = StateFiles(dest, dest_real, opts.state, opts.log, opts.durable, opts.hook)
        if problem:
            return summary
        if not opts.dry_run:
            lock_fd = state.acquire(opts.lock_timeout, stop)
            if lock_fd is None:
                summary.status = "locked"
                summary.errors.append("another run holds %s; nothing done" % state.lock)
                return summary
        _seed(opts, source_real, dest, state, stop, summary)
    except OSError as e:
        # The home or the state directory is unusable (read-only, a symlink where our directory goes...).
        summary.status = "error"
        summary.errors.append("%s: %s" % (getattr(e, "filename", None) or opts.dest, e.strerror or e))
    finally:
        summary.took = time.monotonic() - started
        try:
            if lock_fd is not None:
                os.close(lock_fd)  # releases the flock
            if state is not None and not opts.dry_run:
                try:
                    state.append_log([summary.line(opts.source)] + ["  " + d for d in _capped(summary.details)]
                                     + ["  error: " + e for e in summary.errors])
                except OSError:
                    pass  # a log we cannot write (full disk) must not turn a good run into a failed hook
        finally:
            if state is not None:
                state.close()
            if dest is not None:
                dest.close()
    return summary


def _capped(details: list[str]) -> list[str]:
    if len(details) <= MAX_DETAILS:
        return details
    return details[:MAX_DETAILS] + ["... and %d more" % (len(details) - MAX_DETAILS)]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_roots(source_real: str, dest_real: str, opts: Options) -> str:
    if _inside(dest_real, source_real):
        return "destination %s is inside the source %s" % (opts.dest, opts.source)
    if not os.path.isdir(source_real):
        return "source %s is not a directory" % opts.source
    if not os.path.isdir(dest_real):
        if opts.dry_run:
            return "destination %s does not exist" % opts.dest
        try:
            os.makedirs(dest_real, exist_ok=True)
        except OSError as e:
            return "cannot create destination %s: %s" % (opts.dest, e.strerror)
    return ""


def _seed(opts: Options, source_real: str, dest: fsops.Root, state: StateFiles, stop: Stopper,
          summary: Summary) -> None:
    old, problems = state.read_manifest()
    summary.errors.extend(problems)
    if not opts.dry_run:
        summary.temp_cleaned = state.clean_state_dir()
        if not _recover(opts, dest, state, old, summary):
            return
    course = scan_course(source_real, opts.excludes)
    summary.files = len(course.files)
    for path, why in course.problems:
        summary.problems.append("%s: %s" % (path, why))
        summary.details.append("skipped  %s  (%s)" % (path, why))
        summary.counts["skipped"] += 1
    policy = Policy(opts.on_deleted, opts.rehash, opts.date, state.reserved(dest))

    home: dict[str, HomeEntry] = {}
    dest.scan(set(course.files) | set(old.records), home)
    for d in course.dirs:
        kind, _ = dest.probe(d)
        home[d] = HomeEntry(kind)
    need_course, need_home = hashes_needed(course, home, old, policy)
    index = _Index(source_real, course, opts.rehash)
    known = {p: sha for p, sha in ((p, index.sha(p)) for p in need_course) if sha is not None}
    course_hashes, home_hashes = _hash(course, dest, home, need_course - set(known), need_home, opts.jobs,
                                      stop, opts.hook)
    course_hashes.update(known)
    actions = plan(course, home, old, policy, course_hashes, home_hashes)
    summary.actions = actions
    if opts.dry_run:
        for action in actions:
            summary.count(action)
        return

    new = Manifest(dict(old.records), set(old.dirs), old.written_ns)

    def known_sha(path: str) -> str | None:
        source = course.files[path]
        rec = old.records.get(path)
        if rec is not None and rec.src is not None and rec.src[:2] == (source.size, source.mtime_ns) \
                and not opts.rehash:
            return rec.src[2]
        return course_hashes.get(path) or index.sha(path)

    _carry_out(opts, course, dest, state, actions, new, stop, summary, known_sha)
    new.dirs.update(d for d in dest.created if d in course.dirs)
    if stop.reason:
        summary.status = "disk-full" if stop.disk_full else "partial"
        summary.errors.append("stopped early: %s; the next start carries on" % stop.reason)
    if not manifest_io.same_content(old, new) or old.written_ns is None and new.records:
        newest = max((r.seeded.mtime_ns for p, r in new.records.items()
                      if r.seeded is not None and old.records.get(p) != r), default=0)
        try:
            state.write_manifest(new, opts.source, _run_id(), newest)
            summary.manifest_written = True
            state.clear_pending()  # only now: until the manifest says it, the journal is the record
        except OSError as e:
            # The old manifest stays whole; what this run wrote is recognised next time by its content.
            summary.errors.append("manifest not saved: %s" % e.strerror)
            if e.errno in fsops.DISK_FULL:
                summary.status = "disk-full"
    elif state.pending_written:
        state.clear_pending()  # the writes came to nothing (raced, failed): nothing to remember


class _Index:
    """The image's index of course hashes, read only if something has to be hashed or copied (a warm run
    never opens it), and trusted per file only while size and mtime match."""

    def __init__(self, source_real: str, course: CourseTree, disabled: bool) -> None:
        self.source_real = source_real
        self.course = course
        self.entries: dict | None = {} if disabled else None

    def sha(self, path: str) -> str | None:
        if self.entries is None:
            self.entries = load_index(self.source_real)
        entry = self.entries.get(path)
        source = self.course.files.get(path)
        if entry is None or source is None or entry[0] != source.size or entry[1] != source.mtime_ns:
            return None
        return entry[2]


def _recover(opts: Options, dest: fsops.Root, state: StateFiles, manifest: Manifest, summary: Summary) -> bool:
    """Finish the bookkeeping of a run that was killed: remove its temporary files, and adopt the files its
    journal says it was placing, if they hold exactly those bytes. False if that could not be saved."""
    pending = state.read_pending()
    if pending is None:
        return True
    run_id, dirs, seeded, offered, chmods, removed, made, unmade = pending
    summary.temp_cleaned += state.remove_temps(dest, run_id, dirs)
    for path in removed:
        if dest.lstat(path).kind == ABSENT:
            manifest.records.pop(path, None)  # withdrawn and removed: not a deletion by the student
    for d in made:
        if dest.probe(d)[0] == DIR:
            manifest.dirs.add(d)
    for d in unmade:
        if dest.probe(d)[0] == ABSENT:
            manifest.dirs.discard(d)
    for path, sha, mode, src_size, src_mtime_ns in seeded:
        got, entry = dest.hash_file(path)
        if got == sha:
            rec = manifest.records.get(path) or Record()
            manifest.records[path] = rec.copy(src=(src_size, src_mtime_ns, sha), deleted=False,
                                              seeded=Seeded(sha, entry.size, mode, entry.mtime_ns, entry.ino))
    for path, mode in chmods:
        rec = manifest.records.get(path)
        if rec is not None and rec.seeded is not None:
            entry = dest.lstat(path)
            if rec.seeded.untouched(entry) and entry.mode == mode:  # a chmod leaves size, mtime, inode
                s = rec.seeded
                manifest.records[path] = rec.copy(seeded=Seeded(s.sha, s.size, mode, s.mtime_ns, s.ino))
    for path, sha, name in offered:
        if "/" not in name and dest.hash_file(posixpath.join(posixpath.dirname(path), name))[0] == sha:
            manifest.records[path] = (manifest.records.get(path) or Record()).copy(offered=(sha, name))
    try:
        newest = max((r.seeded.mtime_ns for r in manifest.records.values() if r.seeded is not None), default=0)
        manifest.written_ns = state.write_manifest(manifest, opts.source, _run_id(), newest)
        state.clear_pending()
    except OSError as e:
        summary.status = "disk-full" if e.errno in fsops.DISK_FULL else "error"
        summary.errors.append("cannot save what the interrupted run did (%s); nothing else done" % e.strerror)
        return False
    return True


def _run_id() -> str:
    return os.urandom(4).hex()


def _hash(course: CourseTree, dest: fsops.Root, home: dict[str, HomeEntry], need_course: set[str],
          need_home: set[str], jobs: int, stop: Stopper, hook=None):
    """Hash what the planner asked for; what the budget leaves unhashed, the planner defers."""
    course_hashes: dict[str, str | None] = {}
    home_hashes: dict[str, str | None] = {}

    def course_task(path: str):
        def task(_buf: bytearray) -> None:
            course_hashes[path] = fsops.hash_path(course.files[path].real, hook)
        return task

    course_paths = sorted(need_course)
    for at in range(0, len(course_paths), BATCH_FILES):
        if stop():
            break
        writes.parallel([course_task(p) for p in course_paths[at:at + BATCH_FILES]], jobs)
    # Home files one at a time: the Root's directory cache is not shared between threads.
    for path in sorted(need_home):
        if stop():
            break
        sha, entry = dest.hash_file(path)
        home[path] = entry  # the stat that goes with this hash
        home_hashes[path] = sha
    return course_hashes, home_hashes


def _carry_out(opts: Options, course: CourseTree, dest: fsops.Root, state: StateFiles, actions: list[Action],
               new: Manifest, stop: Stopper, summary: Summary, known_sha) -> None:
    hook = opts.hook
    to_write = [a for a in actions if a.op in WRITES]
    # Every change to the home is journaled first, so one the manifest could not record (a kill, a full disk)
    # is recognised next time; without a journal (a disk too full for even that), nothing is changed.
    journaled = bool(to_write) or any(a.op in JOURNALED for a in actions)
    run_id = _run_id()
    if journaled:
        try:
            state.write_pending(run_id, sorted({posixpath.dirname(a.path) for a in to_write}))
        except OSError as e:
            if e.errno in fsops.DISK_FULL:
                stop.disk_full = True
            summary.errors.append("cannot record pending writes (%s); no file written" % e.strerror)
            journaled = False
    siblings: dict[str, set[str]] = {}
    for p in list(course.files) + list(course.dirs):
        parent, _, name = p.rpartition("/")
        siblings.setdefault(parent, set()).add(name)

    dir_mode = course.dir_mode

    counter = [2]  # temp names 0 and 1 are the manifest's and the pending list's
    batch: list[writes.Write] = []
    batch_bytes = 0
    touched_dirs: set[str] = set()
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
            parent, _, name = action.path.rpartition("/")
            try:
                fd = dest.ensure_dir(parent, dir_mode)
            except OSError as e:
                _failed(action, e, stop, summary)
                continue
            touched_dirs.add(parent)
            counter[0] += 1
            batch.append(writes.Write(action, fd, name, temp_name(run_id, counter[0]),
                                      siblings.get(parent, writes.NONE), known_sha(action.path)))
            dest.pinned += 1
            batch_bytes += action.source.size if action.source else 0
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                _flush(batch, opts, state, new, stop, summary)
                dest.pinned -= len(batch)
                batch, batch_bytes = [], 0
            continue
        try:
            _simple(action, dest, state, new, hook, summary, dir_mode)
        except OSError as e:
            _failed(action, e, stop, summary)
    if batch:
        _flush(batch, opts, state, new, stop, summary)
        dest.pinned -= len(batch)
    created = [d for d in dest.created if d in course.dirs]
    if created and journaled:
        try:
            state.append_pending("mkdir", created)
        except OSError:
            pass  # only means an empty directory may stay behind if the course withdraws it
    if opts.durable:
        for reldir in touched_dirs:
            kind, fd = dest.probe(reldir)
            if kind == DIR:
                fsops.fsync_dir(fd)


def _failed(action: Action, error: BaseException, stop: Stopper, summary: Summary) -> None:
    if isinstance(error, fsops.Stopped):
        summary.counts["deferred"] += 1
        return
    if isinstance(error, fsops.Blocked):
        summary.counts["blocked"] += 1
        summary.details.append("blocked  %s  (a parent in the home is not a plain directory)" % action.path)
        return
    if isinstance(error, OSError) and error.errno in fsops.DISK_FULL:
        if not stop.disk_full:
            summary.errors.append("%s %s: %s" % (action.op, action.path, error.strerror))
        stop.disk_full = True
        summary.counts["deferred"] += 1  # retried at the next start
        return
    summary.counts["skipped"] += 1
    summary.errors.append("%s %s: %s" % (action.op, action.path, getattr(error, "strerror", None) or error))


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


def _flush(batch: list[writes.Write], opts: Options, state: StateFiles, new: Manifest, stop: Stopper,
           summary: Summary) -> None:
    """Copy a batch (in parallel: temporary file, journal line, name), then record what landed."""
    writes.copy_and_place(batch, opts.jobs, opts.durable, opts.hook, stop, state.append_pending, opts.date)
    for w in batch:
        a = w.action
        if w.error is not None:
            _failed(a, w.error, stop, summary)
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
            summary.count(a, "offered  %s -> %s  (%s)" % (a.path, shown, a.note))
        else:
            # The mode recorded is the course's: a different mode on the file is the student's choice.
            seeded = Seeded(r.sha, r.entry.size, a.source.mode, r.entry.mtime_ns, r.entry.ino)
            _set(new, a.path, a.record.copy(src=src, seeded=seeded, deleted=False))
            summary.count(a)
