"""The pure core: (course listing, home listing, last manifest, policy) -> actions.

No I/O here. The applier lists both trees, asks :func:`hashes_needed` which files must be read, hashes exactly
those, and calls :func:`plan`. A warm run (nothing changed) needs no hash at all, so it reads no file.

The policy, per course path (see docs/seeder.md for the table):

- nothing at the path: the file is added; if we had put it there before, the student deleted it and
  ``on_deleted`` decides (restore it, or respect the deletion);
- our copy, untouched (same size/mtime/inode as recorded, or same hash): updated when the course changed;
- the student's version (modified, or a file/directory/symlink they made): kept; the course version, when it
  differs from what they already had and was not already offered, is written beside it under a new name;
- withdrawn by the course: removed only if still byte-identical to what we seeded;
- under a path component that is not a plain directory in the home: blocked, nothing written.
"""

from __future__ import annotations

import posixpath

from .model import (
    ABSENT, BLOCKED, CHMOD, COPY, DIR, FILE, MKDIR, NOTE, OFFER, RECORD, REMOVE, REPLACE, RESPECT, RMDIR,
    Action, CourseTree, HomeEntry, HOME_ABSENT, Manifest, Policy, Record, Seeded, SourceFile,
)

_MULTI_SUFFIXES = (".tar",)  # archive.tar.gz -> archive.course-DATE.tar.gz


def beside_name(name: str, date: str, n: int = 1) -> str:
    """The name for the course's version written beside the student's copy: ``lab.course-2026-11-22.ipynb``.

    The extension stays last so the file still opens with the right application; ``n`` > 1 adds a counter
    (``lab.course-2026-11-22-2.ipynb``) when the first choice is taken. Never longer than 255 bytes.
    """
    stem, ext = posixpath.splitext(name)
    if ext == ".":
        stem, ext = name, ""
    for multi in _MULTI_SUFFIXES:
        if stem.endswith(multi) and len(stem) > len(multi):
            stem, ext = stem[: -len(multi)], multi + ext
    tag = ".course-" + date + ("" if n <= 1 else "-%d" % n)
    budget = 255 - len((tag + ext).encode("utf-8", "surrogateescape"))
    if budget < 1:  # an absurdly long extension: keep the tag, drop the extension
        ext, budget = "", 255 - len(tag.encode())
    raw = stem.encode("utf-8", "surrogateescape")
    if len(raw) > budget:
        stem = raw[:budget].decode("utf-8", "ignore")
    return stem + tag + ext


def _is_reserved(path: str, reserved: frozenset[str]) -> bool:
    for r in reserved:
        if path == r or path.startswith(r + "/") or r.startswith(path + "/"):
            return True
    return False


def _cached_source_sha(source: SourceFile, rec: Record | None, policy: Policy) -> str | None:
    if policy.rehash or rec is None or rec.src is None:
        return None
    size, mtime_ns, sha = rec.src
    return sha if size == source.size and mtime_ns == source.mtime_ns else None


def _racy(seeded: Seeded, manifest: Manifest) -> bool:
    # A recorded mtime not older than the manifest itself cannot prove "untouched": a write in the same
    # clock tick would not show. Hash those instead (rare: the applier waits for the tick to pass).
    return manifest.written_ns is None or seeded.mtime_ns >= manifest.written_ns


def _untouched(seeded: Seeded, home: HomeEntry, manifest: Manifest) -> bool:
    return seeded.untouched(home) and not _racy(seeded, manifest)


def hashes_needed(
    course: CourseTree, home: dict[str, HomeEntry], manifest: Manifest, policy: Policy
) -> tuple[set[str], set[str]]:
    """Which course files and which home files :func:`plan` will need hashed (course, home)."""
    need_course: set[str] = set()
    need_home: set[str] = set()
    for path, rec in manifest.records.items():
        if path in course.files or rec.seeded is None:
            continue
        h = home.get(path, HOME_ABSENT)
        if h.kind == FILE and not _untouched(rec.seeded, h, manifest):
            need_home.add(path)  # withdrawn by the course: removable only if still identical
    for path, source in course.files.items():
        if _is_reserved(path, policy.reserved):
            continue
        h = home.get(path, HOME_ABSENT)
        if h.kind in (ABSENT, BLOCKED):
            continue  # a copy hashes while it writes; a blocked path is not touched
        rec = manifest.records.get(path)
        if rec is not None and h.kind == FILE and _warm(source, rec, h, manifest, policy):
            continue
        if _cached_source_sha(source, rec, policy) is None:
            need_course.add(path)
        if h.kind != FILE:
            continue
        seeded = rec.seeded if rec is not None else None
        if seeded is not None:
            if not _untouched(seeded, h, manifest):
                need_home.add(path)
        elif h.size == source.size:
            need_home.add(path)  # maybe the same bytes (a home seeded by an older tool): adopt, do not offer
    return need_course, need_home


def plan(
    course: CourseTree,
    home: dict[str, HomeEntry],
    manifest: Manifest,
    policy: Policy,
    course_hashes: dict[str, str | None] | None = None,
    home_hashes: dict[str, str | None] | None = None,
) -> list[Action]:
    """Decide what to do. Hashes map path -> sha256 hex, or None when the file could not be read.

    A hash that was needed but not supplied defers the path to the next run (the time budget ran out while
    hashing): nothing is done to it now. Actions come out in path order: removals, writes, then directories.
    """
    course_hashes = course_hashes or {}
    home_hashes = home_hashes or {}
    actions: list[Action] = []
    for path in sorted(set(course.files) | set(manifest.records)):
        source = course.files.get(path)
        rec = manifest.records.get(path)
        h = home.get(path, HOME_ABSENT)
        if source is None:
            assert rec is not None
            actions.extend(_withdrawn(path, rec, h, manifest, home_hashes))
        elif _is_reserved(path, policy.reserved):
            actions.append(Action(NOTE, path, "skipped", note="the seeder's own file; course file ignored"))
        else:
            actions.extend(_course_file(path, source, rec, h, manifest, policy, course_hashes, home_hashes))
    actions.extend(_directories(course, home, manifest, policy))
    # Removals first (they free space on a full disk), directories last and deepest first.
    actions.sort(key=_action_order)
    return actions


def _action_order(action: Action) -> tuple:
    if action.op == REMOVE:
        return (0, 0, action.path)
    if action.op == RMDIR:
        return (2, -action.path.count("/"), action.path)
    return (1, 0, action.path)


def _withdrawn(
    path: str, rec: Record, h: HomeEntry, manifest: Manifest, home_hashes: dict[str, str | None]
) -> list[Action]:
    seeded = rec.seeded
    if seeded is None or h.kind != FILE:
        return [Action(RECORD, path, record=None)]
    if _untouched(seeded, h, manifest):
        return [Action(REMOVE, path, "removed", expect=h, record=None)]
    if path not in home_hashes:
        return [Action(NOTE, path, "deferred", note="not hashed within the time budget")]
    if home_hashes[path] == seeded.sha:
        return [Action(REMOVE, path, "removed", expect=h, record=None)]
    return [Action(RECORD, path, "kept", record=None, note="withdrawn from the course; the student's copy stays")]


def _course_file(
    path: str,
    source: SourceFile,
    rec: Record | None,
    h: HomeEntry,
    manifest: Manifest,
    policy: Policy,
    course_hashes: dict[str, str | None],
    home_hashes: dict[str, str | None],
) -> list[Action]:
    if rec is not None and h.kind == FILE and _warm(source, rec, h, manifest, policy):
        return []  # the common case on every start: nothing changed on either side
    base = rec if rec is not None else Record()
    seeded = base.seeded
    if h.kind == BLOCKED:
        return [Action(NOTE, path, "blocked", note="a parent in the home is not a plain directory")]
    if h.kind == ABSENT:
        return _absent(path, source, base, policy)

    # Something is there: we need the course file's hash to compare.
    csha = _cached_source_sha(source, rec, policy)
    if csha is None:
        if path not in course_hashes:
            return [Action(NOTE, path, "deferred", note="not hashed within the time budget")]
        csha = course_hashes[path]
        if csha is None:
            return [Action(NOTE, path, "skipped", note="course file unreadable")]
    base = base.copy(src=(source.size, source.mtime_ns, csha))
    offered_sha = base.offered[0] if base.offered is not None else None

    if h.kind == FILE:
        hsha = _home_sha(path, source, seeded, h, manifest, home_hashes)
        if hsha is _NOT_HASHED:
            return [Action(NOTE, path, "deferred", note="not hashed within the time budget")]
        if seeded is not None and hsha == seeded.sha:
            return _our_copy(path, source, rec, base, seeded, h, csha)
        if hsha is not None and hsha == csha:
            # The student's file holds exactly the course's bytes: it is ours from now on.
            # Recorded with the course's mode: if the file's differs, that is the student's choice.
            adopted = base.copy(seeded=Seeded(csha, h.size, source.mode, h.mtime_ns, h.ino), deleted=False)
            return [Action(RECORD, path, "adopted", record=adopted, note="identical to the course version")]
    # The student's own file, directory, symlink or special file.
    if (seeded is not None and csha == seeded.sha) or csha == offered_sha:
        return _record_if_changed(path, rec, base)  # nothing new to offer
    return [Action(OFFER, path, "offered", source=source, mode=source.mode, record=base,
                   note="the student's %s is kept" % ("copy" if h.kind == FILE else h.kind))]


def _absent(path: str, source: SourceFile, base: Record, policy: Policy) -> list[Action]:
    """Nothing at the path in the home: added, or (if we had put it there) deleted by the student."""
    if base.seeded is None:
        return [Action(COPY, path, "added", source=source, mode=source.mode, record=base)]
    if policy.on_deleted == RESPECT:
        if base.deleted:
            return []
        return [Action(RECORD, path, "respected", record=base.copy(deleted=True),
                       note="deleted by the student; not restored")]
    return [Action(COPY, path, "restored", source=source, mode=source.mode, record=base.copy(deleted=False))]


_NOT_HASHED = object()  # from _home_sha: the home file's hash is needed but was not made within the budget


def _home_sha(path: str, source: SourceFile, seeded: Seeded | None, h: HomeEntry, manifest: Manifest,
              home_hashes: dict[str, str | None]):
    """The sha256 of the file in the home, as far as the planner needs it: None if unreadable (so treated as the
    student's) or certainly not the course's; :data:`_NOT_HASHED` if it is needed but not known."""
    if seeded is not None and _untouched(seeded, h, manifest):
        return seeded.sha
    if path in home_hashes:
        return home_hashes[path]
    if seeded is None and h.size != source.size:
        return None  # cannot be identical
    return _NOT_HASHED


def _our_copy(path: str, source: SourceFile, rec: Record | None, base: Record, seeded: Seeded, h: HomeEntry,
              csha: str) -> list[Action]:
    """Our copy, as we left it (possibly re-stamped by a touch or a restore from backup)."""
    current = Seeded(seeded.sha, h.size, seeded.mode, h.mtime_ns, h.ino)
    base = base.copy(seeded=current, deleted=False)
    if csha != seeded.sha:
        # Keep a mode the student chose; otherwise take the course's.
        mode = source.mode if h.mode == seeded.mode else h.mode
        return [Action(REPLACE, path, "updated", source=source, expect=h, mode=mode, record=base)]
    if source.mode != seeded.mode:
        # ``seeded.mode`` is the course's mode we last accounted for: a home mode that differs from
        # it is the student's choice and stays; otherwise the course's new mode is applied.
        new = base.copy(seeded=Seeded(seeded.sha, h.size, source.mode, h.mtime_ns, h.ino))
        if h.mode == seeded.mode:
            return [Action(CHMOD, path, "updated", expect=h, mode=source.mode, record=new,
                           note="mode %o -> %o" % (seeded.mode, source.mode))]
        return [Action(RECORD, path, record=new)]
    return _record_if_changed(path, rec, base)


def _warm(source: SourceFile, rec: Record, h: HomeEntry, manifest: Manifest, policy: Policy) -> bool:
    seeded, src = rec.seeded, rec.src
    return (
        seeded is not None and src is not None and not rec.deleted and not policy.rehash
        and src[0] == source.size and src[1] == source.mtime_ns and src[2] == seeded.sha
        and source.mode == seeded.mode and _untouched(seeded, h, manifest)
    )


def _record_if_changed(path: str, rec: Record | None, new: Record) -> list[Action]:
    if rec is not None and rec == new:
        return []
    return [Action(RECORD, path, record=new)]


def _directories(course: CourseTree, home: dict[str, HomeEntry], manifest: Manifest, policy: Policy) -> list[Action]:
    actions: list[Action] = []
    # Directories that hold something are made on demand by the writes; only empty ones need a mkdir.
    parents = {posixpath.dirname(p) for p in course.files} | {posixpath.dirname(d) for d in course.dirs}
    for d in course.dirs:
        if _is_reserved(d, policy.reserved):
            continue
        h = home.get(d, HOME_ABSENT)
        if h.kind == ABSENT:
            if d in parents or (policy.on_deleted == RESPECT and d in manifest.dirs):
                continue
            actions.append(Action(MKDIR, d))
        elif h.kind not in (DIR, BLOCKED) and d not in parents:  # (files below it are reported one by one)
            actions.append(Action(NOTE, d, "blocked", note="a %s is where a course directory goes" % h.kind))
    for d in manifest.dirs:
        if d not in course.dirs:
            actions.append(Action(RMDIR, d, note="withdrawn directory, if empty"))
    return actions
