"""The pure planner, without any filesystem: every combination of course, manifest and home state for a path."""

from __future__ import annotations

import itertools

import pytest

from jupyterhub_ext.seeder.model import (
    ABSENT, BLOCKED, CHMOD, COPY, DIR, FILE, LINK, MKDIR, NOTE, OFFER, RECORD, REMOVE, REPLACE, RMDIR,
    CourseTree, HomeEntry, Manifest, Policy, Record, Seeded, SourceFile,
)
from jupyterhub_ext.seeder.plan import beside_name, hashes_needed, plan

OLD, NEW, MINE = "a" * 64, "b" * 64, "c" * 64  # sha256 of the seeded version, the new version, the student's
WRITTEN = 10_000  # the manifest's own mtime; recorded mtimes are older


def source(sha_is_new: bool, mode: int = 0o644) -> SourceFile:
    return SourceFile("lab.ipynb", "/course/lab.ipynb", 5, 200 if sha_is_new else 100, mode)


def home_file(mtime: int = 1000, size: int = 5, ino: int = 7, mode: int = 0o644) -> HomeEntry:
    return HomeEntry(FILE, size, mtime, ino, mode)


SEEDED = Seeded(OLD, 5, 0o644, 1000, 7)

COURSE = {"absent": None, "unchanged": source(False), "changed": source(True)}
MANIFEST = {
    "none": None,
    "seeded": Record(src=(5, 100, OLD), seeded=SEEDED),
    "seeded, deleted": Record(src=(5, 100, OLD), seeded=SEEDED, deleted=True),
    "offered new": Record(src=(5, 100, OLD), seeded=SEEDED, offered=(NEW, "lab.course-x.ipynb")),
}
HOME = {  # entry, its hash if read
    "absent": (HomeEntry(ABSENT), None),
    "untouched": (home_file(), OLD),
    "touched, same bytes": (home_file(mtime=5000), OLD),
    "modified": (home_file(mtime=5000), MINE),
    "modified, same size+mtime, new inode": (home_file(ino=8), MINE),
    "equal to the new version": (home_file(mtime=5000), NEW),
    "unreadable": (home_file(mtime=5000), None),
    "a directory": (HomeEntry(DIR), None),
    "a symlink": (HomeEntry(LINK), None),
    "blocked": (HomeEntry(BLOCKED), None),
}


def run_plan(course_key, manifest_key, home_key, policy):
    src = COURSE[course_key]
    course = CourseTree({"lab.ipynb": src} if src else {})
    rec = MANIFEST[manifest_key]
    manifest = Manifest({"lab.ipynb": rec} if rec else {}, written_ns=WRITTEN)
    entry, home_sha = HOME[home_key]
    home = {"lab.ipynb": entry}
    pol = Policy(policy, date="2026-11-22")
    need_course, need_home = hashes_needed(course, home, manifest, pol)
    course_hashes = {p: (NEW if src.mtime_ns == 200 else OLD) for p in need_course}
    home_hashes = {p: home_sha for p in need_home}
    actions = plan(course, home, manifest, pol, course_hashes, home_hashes)
    return actions, need_course, need_home


ALL = list(itertools.product(COURSE, MANIFEST, HOME, ("restore", "respect")))


@pytest.mark.parametrize("course_key,manifest_key,home_key,policy", ALL)
def test_safety_in_every_state(course_key, manifest_key, home_key, policy):
    """Whatever the state: only what is provably ours is replaced or removed; nothing is ever deferred."""
    actions, _, _ = run_plan(course_key, manifest_key, home_key, policy)
    assert len(actions) <= 1
    ops = {a.op for a in actions}
    assert all(a.outcome != "deferred" for a in actions)  # hashes_needed asked for all that plan needs
    ours = manifest_key != "none" and home_key in ("untouched", "touched, same bytes")
    if ops & {REPLACE, REMOVE, CHMOD}:
        assert ours, (ops, manifest_key, home_key)
    if COPY in ops:
        assert home_key == "absent"
    if OFFER in ops:
        assert not ours and home_key not in ("absent", "blocked") and course_key != "absent"
    if home_key == "blocked":
        assert ops <= {NOTE, RECORD}  # reported (or forgotten, if withdrawn), never touched
    if home_key == "absent" and manifest_key != "none" and course_key != "absent":
        # A course file we had seeded and the student deleted: the policy decides.
        assert (COPY in ops) == (policy == "restore")


EXPECTED = [
    # course,     manifest,  home,                   policy,    outcome
    ("unchanged", "none", "absent", "restore", "added"),
    ("changed", "seeded", "untouched", "restore", "updated"),
    ("changed", "seeded", "touched, same bytes", "restore", "updated"),
    ("changed", "seeded", "modified", "restore", "offered"),
    ("changed", "seeded", "modified, same size+mtime, new inode", "restore", "offered"),
    ("changed", "seeded", "unreadable", "restore", "offered"),
    ("changed", "none", "modified", "restore", "offered"),
    ("changed", "seeded", "a directory", "restore", "offered"),
    ("changed", "seeded", "a symlink", "restore", "offered"),
    ("changed", "offered new", "modified", "restore", None),  # offered once only
    ("unchanged", "seeded", "modified", "restore", None),  # the student's work, nothing new
    ("changed", "seeded", "equal to the new version", "restore", "adopted"),
    ("unchanged", "none", "untouched", "restore", "adopted"),
    ("unchanged", "seeded", "absent", "restore", "restored"),
    ("changed", "seeded", "absent", "restore", "restored"),
    ("unchanged", "seeded", "absent", "respect", "respected"),
    ("changed", "seeded, deleted", "absent", "respect", None),
    ("changed", "seeded, deleted", "absent", "restore", "restored"),
    ("absent", "seeded", "untouched", "restore", "removed"),
    ("absent", "seeded", "touched, same bytes", "restore", "removed"),
    ("absent", "seeded", "modified", "restore", "kept"),
    ("absent", "seeded", "unreadable", "restore", "kept"),
    ("absent", "seeded", "absent", "restore", None),
    ("changed", "seeded", "blocked", "restore", "blocked"),
]


@pytest.mark.parametrize("course_key,manifest_key,home_key,policy,outcome", EXPECTED)
def test_policy_table(course_key, manifest_key, home_key, policy, outcome):
    actions, _, _ = run_plan(course_key, manifest_key, home_key, policy)
    assert [a.outcome for a in actions if a.outcome] == ([outcome] if outcome else [])


def test_warm_state_needs_no_hash_and_no_action():
    actions, need_course, need_home = run_plan("unchanged", "seeded", "untouched", "restore")
    assert (actions, need_course, need_home) == ([], set(), set())


def test_new_image_same_bytes_reads_the_course_file_only():
    course = CourseTree({"lab.ipynb": SourceFile("lab.ipynb", "/c/lab.ipynb", 5, 999, 0o644)})
    manifest = Manifest({"lab.ipynb": MANIFEST["seeded"]}, written_ns=WRITTEN)
    home = {"lab.ipynb": home_file()}
    need = hashes_needed(course, home, manifest, Policy())
    assert need == ({"lab.ipynb"}, set())
    actions = plan(course, home, manifest, Policy(), {"lab.ipynb": OLD}, {})
    assert [(a.op, a.outcome) for a in actions] == [(RECORD, None)]  # the cache learns the new mtime
    assert actions[0].record.src == (5, 999, OLD)


def test_racy_entry_is_hashed():
    # Recorded in the same tick as the manifest was written: the stat alone cannot prove "untouched".
    course = CourseTree({"lab.ipynb": source(False)})
    racy = Record(src=(5, 100, OLD), seeded=Seeded(OLD, 5, 0o644, WRITTEN, 7))
    manifest = Manifest({"lab.ipynb": racy}, written_ns=WRITTEN)
    need = hashes_needed(course, {"lab.ipynb": home_file(mtime=WRITTEN)}, manifest, Policy())
    assert need == (set(), {"lab.ipynb"})


def test_missing_hash_defers_instead_of_guessing():
    course = CourseTree({"lab.ipynb": source(True)})
    manifest = Manifest({"lab.ipynb": MANIFEST["seeded"]}, written_ns=WRITTEN)
    actions = plan(course, {"lab.ipynb": home_file(mtime=5000)}, manifest, Policy(), {}, {})
    assert [a.outcome for a in actions] == ["deferred"]


def test_student_mode_is_kept_on_update_and_course_mode_applied_otherwise():
    course = CourseTree({"lab.ipynb": source(True, mode=0o755)})
    manifest = Manifest({"lab.ipynb": MANIFEST["seeded"]}, written_ns=WRITTEN)
    mine = plan(course, {"lab.ipynb": home_file(mode=0o600)}, manifest, Policy(), {"lab.ipynb": NEW}, {})
    assert (mine[0].op, mine[0].mode) == (REPLACE, 0o600)
    theirs = plan(course, {"lab.ipynb": home_file()}, manifest, Policy(), {"lab.ipynb": NEW}, {})
    assert (theirs[0].op, theirs[0].mode) == (REPLACE, 0o755)
    only_mode = CourseTree({"lab.ipynb": SourceFile("lab.ipynb", "/c", 5, 100, 0o755)})
    chmod = plan(only_mode, {"lab.ipynb": home_file()}, manifest, Policy())
    assert (chmod[0].op, chmod[0].mode) == (CHMOD, 0o755)


def test_reserved_paths_are_never_planned():
    files = {p: SourceFile(p, "/c/" + p, 1, 1, 0o644) for p in (".course-seeder/manifest.json", "ok.txt")}
    actions = plan(CourseTree(files), {}, Manifest(), Policy(reserved=frozenset({".course-seeder"})))
    assert [(a.op, a.path, a.outcome) for a in actions] == [
        (NOTE, ".course-seeder/manifest.json", "skipped"), (COPY, "ok.txt", "added")]


def test_directories():
    course = CourseTree({"a/x.txt": SourceFile("a/x.txt", "/c/a/x.txt", 1, 1, 0o644)},
                        {"a": "/c/a", "empty": "/c/empty", "gone-too": "/c/gone-too"})
    manifest = Manifest(dirs={"old", "old/sub", "gone-too"})
    home = {"a": HomeEntry(ABSENT), "empty": HomeEntry(ABSENT), "gone-too": HomeEntry(ABSENT)}
    ops = [(a.op, a.path) for a in plan(course, home, manifest, Policy())]
    # only the empty directory needs its own mkdir; withdrawn ones go, deepest first, after everything else
    assert ops == [(COPY, "a/x.txt"), (MKDIR, "empty"), (MKDIR, "gone-too"), (RMDIR, "old/sub"), (RMDIR, "old")]
    respected = [(a.op, a.path) for a in plan(course, home, manifest, Policy("respect"))]
    assert (MKDIR, "gone-too") not in respected  # deleted by the student: respected


@pytest.mark.parametrize("name,expected", [
    ("lab.ipynb", "lab.course-2026-11-22.ipynb"),
    ("Makefile", "Makefile.course-2026-11-22"),
    (".bashrc", ".bashrc.course-2026-11-22"),
    ("data.tar.gz", "data.course-2026-11-22.tar.gz"),
    ("my.notes.md", "my.notes.course-2026-11-22.md"),
    ("odd.", "odd..course-2026-11-22"),
])
def test_beside_name(name, expected):
    assert beside_name(name, "2026-11-22") == expected
    counted = beside_name(name, "2026-11-22", 3)
    assert counted == expected.replace("2026-11-22", "2026-11-22-3")


def test_beside_name_fits_in_a_name():
    long = "é" * 120 + ".ipynb"  # 246 bytes in UTF-8
    out = beside_name(long, "2026-11-22", 12)
    assert len(out.encode()) <= 255 and out.endswith(".course-2026-11-22-12.ipynb")
    assert beside_name("x." + "e" * 300, "2026-11-22").startswith("x")
    assert len(beside_name("x." + "e" * 300, "2026-11-22").encode()) <= 255


def test_policy_rejects_unknown_choice():
    with pytest.raises(ValueError):
        Policy("sometimes")
