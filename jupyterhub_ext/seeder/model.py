"""Plain data shared by the pure planner and the applier.

Only the interpreter's core modules are used here: the seeder runs from a postStart hook in any user image
(Python 3.8+), and every import is paid again on each server start.
"""

from __future__ import annotations

import os

# What a path in the home currently is.
ABSENT = "absent"
FILE = "file"
DIR = "dir"
LINK = "link"  # a symlink: never followed, never replaced
OTHER = "other"  # fifo, socket, device...
BLOCKED = "blocked"  # an ancestor is not a plain directory (a file, a symlink, unreadable)

# How the seeder treats a course file the student deleted.
RESTORE = "restore"
RESPECT = "respect"
POLICY_CHOICES = (RESTORE, RESPECT)
DEFAULT_ON_DELETED = RESTORE  # like nbgitpuller: "delete it and restart" is how students get a fresh copy

# The optional index of course hashes, at the top of the source tree (see index.py); never seeded itself.
INDEX_NAME = ".course-seeder-index.json"

# Well under KubeSpawner's start_timeout (300 s), which also has to cover image pull and scheduling.
DEFAULT_TIME_BUDGET = 60.0


class SourceFile:
    """One regular file of the course tree (symlinks inside the tree are resolved to their target)."""

    __slots__ = ("path", "real", "size", "mtime_ns", "mode")

    def __init__(self, path: str, real: str, size: int, mtime_ns: int, mode: int) -> None:
        self.path = path  # relative, "/"-separated: the same relative path in the home
        self.real = real  # absolute path to read from, inside the source tree
        self.size = size
        self.mtime_ns = mtime_ns
        self.mode = mode & 0o777

    def __repr__(self) -> str:
        return "SourceFile(%r, size=%d, mode=%o)" % (self.path, self.size, self.mode)


class CourseTree:
    """The listing of the course material: files, directories, and what was left out, and why.

    ``dirs`` maps each directory's relative path to its real path; its mode is read only if the directory has
    to be created (a warm run stats files, not directories).
    """

    __slots__ = ("files", "dirs", "problems", "_modes")

    def __init__(
        self,
        files: dict[str, SourceFile] | None = None,
        dirs: dict[str, str] | None = None,
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        self.files = files if files is not None else {}
        self.dirs = dirs if dirs is not None else {}
        self.problems = problems if problems is not None else []
        self._modes: dict[str, int] = {}

    def dir_mode(self, rel: str) -> int:
        """The course directory's mode (0o755 for one we do not know), always with the owner's rwx."""
        mode = self._modes.get(rel)
        if mode is None:
            try:
                mode = os.stat(self.dirs[rel]).st_mode & 0o777
            except (KeyError, OSError):
                mode = 0o755
            mode = self._modes[rel] = mode | 0o700  # we must be able to fill it (and so must the student)
        return mode


class HomeEntry:
    """What ``lstat`` said about a path in the home (or why it could not be looked at)."""

    __slots__ = ("kind", "size", "mtime_ns", "ino", "mode")

    def __init__(self, kind: str, size: int = 0, mtime_ns: int = 0, ino: int = 0, mode: int = 0) -> None:
        self.kind = kind
        self.size = size
        self.mtime_ns = mtime_ns
        self.ino = ino
        self.mode = mode & 0o777

    def __repr__(self) -> str:
        return "HomeEntry(%s, size=%d, mtime_ns=%d, ino=%d, mode=%o)" % (
            self.kind, self.size, self.mtime_ns, self.ino, self.mode)


HOME_ABSENT = HomeEntry(ABSENT)
HOME_BLOCKED = HomeEntry(BLOCKED)


class Seeded:
    """What the seeder last put (or verified) at a path: content hash, and the stat that proves it untouched.

    ``mode`` is the course's mode we last applied; a file mode that differs from it is the student's choice.

    A file whose size, mtime and inode still match was not written since (the applier waits for the
    filesystem clock to tick past the newest recorded mtime before it finishes, so a later write always
    shows). Anything else is hashed before it is trusted.
    """

    __slots__ = ("sha", "size", "mode", "mtime_ns", "ino")

    def __init__(self, sha: str, size: int, mode: int, mtime_ns: int, ino: int) -> None:
        self.sha = sha
        self.size = size
        self.mode = mode & 0o777
        self.mtime_ns = mtime_ns
        self.ino = ino

    def untouched(self, home: HomeEntry) -> bool:
        return (
            home.kind == FILE
            and home.size == self.size
            and home.mtime_ns == self.mtime_ns
            and home.ino == self.ino
        )

    def to_json(self) -> list:
        return [self.sha, self.size, self.mode, self.mtime_ns, self.ino]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Seeded) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return "Seeded(%s, size=%d, mode=%o)" % (self.sha[:12], self.size, self.mode)


class Record:
    """The manifest's memory of one course path."""

    __slots__ = ("src", "seeded", "offered", "deleted")

    def __init__(
        self,
        src: tuple[int, int, str] | None = None,
        seeded: Seeded | None = None,
        offered: tuple[str, str] | None = None,
        deleted: bool = False,
    ) -> None:
        self.src = src  # (size, mtime_ns, sha256) of the source file: the hash cache
        self.seeded = seeded  # what we put at this path, if it is ours
        self.offered = offered  # (sha256, file name) of the last version written beside the student's copy
        self.deleted = deleted  # "respect" policy: the student deleted our copy; do not bring it back

    def copy(self, **changes: object) -> "Record":
        new = Record(self.src, self.seeded, self.offered, self.deleted)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    def is_empty(self) -> bool:
        return self.src is None and self.seeded is None and self.offered is None and not self.deleted

    def to_json(self) -> dict:
        out: dict = {}
        if self.src is not None:
            out["src"] = list(self.src)
        if self.seeded is not None:
            out["seeded"] = self.seeded.to_json()
        if self.offered is not None:
            out["offered"] = list(self.offered)
        if self.deleted:
            out["deleted"] = True
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return "Record(%r)" % (self.to_json(),)


class Manifest:
    """Everything remembered between runs. ``written_ns`` is the manifest file's own mtime when loaded."""

    __slots__ = ("records", "dirs", "written_ns")

    def __init__(
        self,
        records: dict[str, Record] | None = None,
        dirs: set[str] | None = None,
        written_ns: int | None = None,
    ) -> None:
        self.records = records if records is not None else {}
        self.dirs = dirs if dirs is not None else set()
        self.written_ns = written_ns


class Policy:
    """The settings that change decisions (not how they are carried out)."""

    __slots__ = ("on_deleted", "rehash", "date", "reserved")

    def __init__(
        self,
        on_deleted: str = RESTORE,
        rehash: bool = False,
        date: str = "1970-01-01",
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        if on_deleted not in POLICY_CHOICES:
            raise ValueError("on_deleted must be one of %s, not %r" % (", ".join(POLICY_CHOICES), on_deleted))
        self.on_deleted = on_deleted
        self.rehash = rehash  # ignore the cached source hashes (a course edit that kept size and mtime)
        self.date = date  # YYYY-MM-DD, for the names of versions written beside a student's copy
        self.reserved = reserved  # relative paths in the home that are the seeder's own (manifest, log...)


# Action operations. Each action touches exactly one path.
COPY = "copy"  # create a new file where nothing is (never clobbers)
REPLACE = "replace"  # replace our untouched copy, only if it still matches ``expect``
OFFER = "offer"  # write the course version beside the student's object under a new name
CHMOD = "chmod"  # the course changed a file's mode and the student had not
REMOVE = "remove"  # the course withdrew a file; ours and untouched, so it goes
MKDIR = "mkdir"  # an empty course directory
RMDIR = "rmdir"  # a directory we created and the course withdrew (only if empty)
RECORD = "record"  # only the manifest changes
NOTE = "note"  # nothing to do, but worth reporting

WRITES = (COPY, REPLACE, OFFER)

# Outcomes, as counted in the log line.
OUTCOMES = (
    "added", "updated", "restored", "offered", "removed", "adopted", "kept",
    "respected", "blocked", "skipped", "deferred",
)


class Action:
    __slots__ = ("op", "path", "outcome", "source", "expect", "mode", "record", "note")

    def __init__(
        self,
        op: str,
        path: str,
        outcome: str | None = None,
        source: SourceFile | None = None,
        expect: HomeEntry | None = None,
        mode: int | None = None,
        record: Record | None = None,
        note: str = "",
    ) -> None:
        self.op = op
        self.path = path
        self.outcome = outcome  # None: routine bookkeeping, not reported
        self.source = source
        self.expect = expect  # the home entry this decision was made on; re-checked before acting
        self.mode = mode
        self.record = record  # the manifest record to keep for ``path`` once done (None: forget the path)
        self.note = note

    def describe(self) -> str:
        text = "%-8s %s" % (self.outcome or self.op, self.path)
        return text + ("  (%s)" % self.note if self.note else "")

    def __repr__(self) -> str:
        return "Action(%s, %r, outcome=%s)" % (self.op, self.path, self.outcome)
