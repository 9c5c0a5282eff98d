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

from . import fsops, notice, writes
from . import manifest as manifest_io
from .changes import BATCH_FILES, carry_out
from .index import load_index
from .model import (
    ABSENT, DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, DIR, CourseTree, HomeEntry, Manifest, Policy, Record, Seeded,
)
from .notice import NOTICE_NAME
from .plan import hashes_needed, plan
from .report import Stopper, Summary
from .scan import DEFAULT_EXCLUDES, scan_course
from .state import StateFiles, new_run_id

DEFAULT_LOCK_TIMEOUT = 10.0


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
        notice: str = NOTICE_NAME,  # "": none
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
        self.notice = notice  # the student's notice in the root of dest (.notice)
        self.hook = hook  # tests: called before each filesystem operation
        self.stop_flag = stop_flag  # anything with is_set(): SIGTERM asks for a clean stop


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
        if not opts.dry_run:
            _tell_the_student(opts, dest, state, summary)
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
                    state.append_log(summary.log_lines(opts.source))
                except OSError:
                    pass  # a log we cannot write (full disk) must not turn a good run into a failed hook
        finally:
            if state is not None:
                state.close()
            if dest is not None:
                dest.close()
    return summary


def _tell_the_student(opts: Options, dest: fsops.Root, state: StateFiles, summary: Summary) -> None:
    """The notice in the course folder (:mod:`.notice`); trouble with it is logged, never fails the run."""
    if not summary.news or not opts.notice:
        return
    try:
        # its temporary file in the state directory when that is in the home (cleared at every run)
        temp_dir_fd = state.manifest.dir_fd(create=True) if state.manifest.root is dest else dest.fd
        why = notice.write(dest, opts.notice, opts.date, summary.news, temp_dir_fd, opts.hook)
    except OSError as e:
        why = "notice not written: %s" % (e.strerror or e)
        if e.errno in fsops.DISK_FULL:  # the seeding is done; the home is still full, which the status says
            summary.status = "disk-full"
            summary.errors.append(why)
    if why:
        summary.details.append(why)
    else:
        summary.details.append("notice   %s  (%d for the student)" % (opts.notice, len(summary.news)))


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
    index = _Index(source_real, course, opts.rehash)
    actions, course_hashes = _plan(opts, course, dest, old, policy, index, stop)
    summary.actions = actions
    if opts.dry_run:
        for action in actions:
            summary.count(action)
        return

    new = Manifest(dict(old.records), set(old.dirs), old.written_ns)
    carry_out(opts, course, dest, state, actions, new, stop, summary,
              _known_sha(course, old, course_hashes, index, opts.rehash))
    new.dirs.update(d for d in dest.created if d in course.dirs)
    if stop.reason:
        summary.status = "disk-full" if stop.disk_full else "partial"
        summary.errors.append("stopped early: %s; the next start carries on" % stop.reason)
    _save(opts, state, old, new, summary)


def _plan(opts: Options, course: CourseTree, dest: fsops.Root, old: Manifest, policy: Policy, index: _Index,
          stop: Stopper) -> tuple[list, dict[str, str | None]]:
    """List the home, hash what the planner needs (from the index when it knows), plan: the actions, and the
    course hashes that are known now."""
    home: dict[str, HomeEntry] = {}
    dest.scan(set(course.files) | set(old.records), home)
    for d in course.dirs:
        kind, _ = dest.probe(d)
        home[d] = HomeEntry(kind)
    need_course, need_home = hashes_needed(course, home, old, policy)
    known = {p: sha for p, sha in ((p, index.sha(p)) for p in need_course) if sha is not None}
    course_hashes, home_hashes = _hash(course, dest, home, need_course - set(known), need_home, opts.jobs,
                                      stop, opts.hook)
    course_hashes.update(known)
    return plan(course, home, old, policy, course_hashes, home_hashes), course_hashes


def _known_sha(course: CourseTree, old: Manifest, course_hashes: dict[str, str | None], index: _Index,
               rehash: bool):
    """``known_sha(path)``: a course file's sha256 without reading it (the manifest's, while size and mtime
    match; this run's; the index's), or None."""
    def known_sha(path: str) -> str | None:
        source = course.files[path]
        rec = old.records.get(path)
        if rec is not None and rec.src is not None and rec.src[:2] == (source.size, source.mtime_ns) \
                and not rehash:
            return rec.src[2]
        return course_hashes.get(path) or index.sha(path)
    return known_sha


def _save(opts: Options, state: StateFiles, old: Manifest, new: Manifest, summary: Summary) -> None:
    """Save the new manifest if it says something the old one does not; then the journal goes."""
    if not manifest_io.same_content(old, new) or old.written_ns is None and new.records:
        newest = max((r.seeded.mtime_ns for p, r in new.records.items()
                      if r.seeded is not None and old.records.get(p) != r), default=0)
        try:
            state.write_manifest(new, opts.source, new_run_id(), newest)
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
        manifest.written_ns = state.write_manifest(manifest, opts.source, new_run_id(), newest)
        state.clear_pending()
    except OSError as e:
        summary.status = "disk-full" if e.errno in fsops.DISK_FULL else "error"
        summary.errors.append("cannot save what the interrupted run did (%s); nothing else done" % e.strerror)
        return False
    return True


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
