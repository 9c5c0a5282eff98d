"""The policy table of docs/seeder.md, one test per row, on real directories (the disk, not tmpfs)."""

from __future__ import annotations

import os

from .conftest import DATE, edited_then_updated, mode_of, read, seed, snapshot, temp_files, write_tree

BESIDE = "lab.course-%s.ipynb" % DATE


def converged(course, home, **kw):
    """A further run changes nothing at all (same bytes, modes, mtimes, inodes; manifest not rewritten)."""
    before = snapshot(home, with_stat=True)
    summary = seed(course, home, **kw)
    after = snapshot(home, with_stat=True)
    log = os.path.join(".course-seeder", "seeder.log")
    before.pop(log), after.pop(log)
    assert after == before
    assert summary.bytes_written == 0 and not summary.manifest_written
    return summary


# -- row 1: new course file, nothing at that path -> added ------------------------------------------------

def test_new_file_is_added(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1", "week1/data.csv": "a,b\n", "week1/run.sh": ("#!/bin/sh\n", 0o755)})
    summary = seed(course, home)
    assert summary.status == "ok" and summary.counts["added"] == 3
    assert read(home, "lab.ipynb") == b"v1" and read(home, "week1/data.csv") == b"a,b\n"
    assert mode_of(home, "week1/run.sh") == 0o755  # the executable bit survives
    assert temp_files(home) == []
    converged(course, home)


# -- row 2: course file changed, student never touched their copy -> updated ---------------------------

def test_changed_untouched_file_is_updated(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    write_tree(course, {"lab.ipynb": "v2 with more"})
    summary = seed(course, home)
    assert summary.counts["updated"] == 1 and summary.counts["offered"] == 0
    assert read(home, "lab.ipynb") == b"v2 with more"
    assert not os.path.exists(home / BESIDE)
    converged(course, home)


def test_touched_but_identical_copy_is_still_ours(dirs):
    # Opened and saved without a change (or restored from a backup): new mtime, same bytes.
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    os.utime(home / "lab.ipynb", ns=(1, 1))
    write_tree(course, {"lab.ipynb": "v2"})
    assert seed(course, home).counts["updated"] == 1
    assert read(home, "lab.ipynb") == b"v2"


# -- row 3: course file changed, student modified their copy -> kept, new version beside, reported -----

def test_changed_course_file_beside_modified_copy(dirs):
    course, home = dirs["course"], dirs["home"]
    summary = edited_then_updated(course, home)
    assert summary.counts["offered"] == 1
    assert read(home, "lab.ipynb") == b"v1 + my answers"
    assert read(home, BESIDE) == b"v2"
    assert any("offered" in d and BESIDE in d for d in summary.details)  # reported
    with open(home / ".course-seeder" / "seeder.log") as f:
        assert BESIDE in f.read()
    converged(course, home)  # offered once, not at every start
    # A further course version gets its own name, never clobbering the first one.
    write_tree(course, {"lab.ipynb": "v3"})
    assert seed(course, home).counts["offered"] == 1
    assert read(home, BESIDE) == b"v2"
    assert read(home, "lab.course-%s-2.ipynb" % DATE) == b"v3"
    assert read(home, "lab.ipynb") == b"v1 + my answers"


def test_modified_copy_and_unchanged_course_is_left_alone(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    write_tree(home, {"lab.ipynb": "mine"})
    summary = seed(course, home)
    assert summary.counts["offered"] == 0 and read(home, "lab.ipynb") == b"mine"
    assert sorted(os.listdir(home)) == [".course-seeder", "lab.ipynb"]


def test_student_who_copies_the_new_version_in_is_in_sync_again(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    write_tree(home, {"lab.ipynb": "mine"})
    write_tree(course, {"lab.ipynb": "v2"})
    seed(course, home)
    write_tree(home, {"lab.ipynb": read(home, BESIDE)})  # the student takes the new version
    assert seed(course, home).counts["adopted"] == 1
    write_tree(course, {"lab.ipynb": "v3"})
    assert seed(course, home).counts["updated"] == 1  # updates flow again
    assert read(home, "lab.ipynb") == b"v3"


# -- row 4: student created a file where a new course file lands -> kept, course file beside ----------

def test_student_file_where_new_course_file_lands(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(home, {"lab.ipynb": "my own lab"})
    write_tree(course, {"lab.ipynb": "course lab"})
    summary = seed(course, home)
    assert summary.counts["offered"] == 1 and summary.counts["added"] == 0
    assert read(home, "lab.ipynb") == b"my own lab"
    assert read(home, BESIDE) == b"course lab"
    converged(course, home)


def test_identical_file_already_there_is_adopted(dirs):
    # A home seeded by an older tool (cp -r): same bytes, so no needless copy beside it.
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "same"})
    write_tree(home, {"lab.ipynb": "same"})
    summary = seed(course, home)
    assert summary.counts["adopted"] == 1 and summary.bytes_written == 0
    write_tree(course, {"lab.ipynb": "v2"})
    assert seed(course, home).counts["updated"] == 1


def test_student_directory_or_symlink_where_course_file_lands(dirs):
    course, home, outside = dirs["course"], dirs["home"], dirs["outside"]
    (home / "lab.ipynb").mkdir()
    os.symlink(str(outside / "secret.txt"), str(home / "notes.md"))
    write_tree(course, {"lab.ipynb": "course lab", "notes.md": "course notes"})
    summary = seed(course, home)
    assert summary.counts["offered"] == 2
    assert os.path.isdir(home / "lab.ipynb") and os.path.islink(home / "notes.md")
    assert read(home, BESIDE) == b"course lab"
    assert read(home, "notes.course-%s.md" % DATE) == b"course notes"
    assert read(outside, "secret.txt") == b"do not touch\n"


def test_beside_name_never_clobbers(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(home, {"lab.ipynb": "mine", BESIDE: "also mine"})
    write_tree(course, {"lab.ipynb": "course"})
    seed(course, home)
    assert read(home, BESIDE) == b"also mine"
    assert read(home, "lab.course-%s-2.ipynb" % DATE) == b"course"


def test_beside_name_avoids_course_paths(dirs):
    # The course itself ships a file with the first candidate name: that name is the course's, not ours.
    course, home = dirs["course"], dirs["home"]
    write_tree(home, {"lab.ipynb": "mine"})
    write_tree(course, {"lab.ipynb": "course", BESIDE: "a course file"})
    seed(course, home)
    assert read(home, BESIDE) == b"a course file"
    assert read(home, "lab.course-%s-2.ipynb" % DATE) == b"course"


# -- row 5: student deleted a course file -> restore (default) or respect --------------------------------

def test_deleted_file_is_restored_by_default(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    os.unlink(home / "lab.ipynb")
    summary = seed(course, home)
    assert summary.counts["restored"] == 1 and read(home, "lab.ipynb") == b"v1"
    converged(course, home)


def test_deleted_file_stays_deleted_when_respected(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1", "week1/a.txt": "a"})
    seed(course, home, on_deleted="respect")
    os.unlink(home / "lab.ipynb")
    os.unlink(home / "week1" / "a.txt")
    os.rmdir(home / "week1")
    summary = seed(course, home, on_deleted="respect")
    assert summary.counts["respected"] == 2
    assert not os.path.exists(home / "lab.ipynb") and not os.path.exists(home / "week1")
    converged(course, home, on_deleted="respect")
    write_tree(course, {"lab.ipynb": "v2"})  # still respected after a course update
    assert seed(course, home, on_deleted="respect").bytes_written == 0
    assert not os.path.exists(home / "lab.ipynb")
    # Switching the setting back brings the current version.
    assert seed(course, home, on_deleted="restore").counts["restored"] == 2
    assert read(home, "lab.ipynb") == b"v2"


def test_renamed_file_is_restored_beside_the_renamed_one(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    os.rename(home / "lab.ipynb", home / "my-lab.ipynb")
    seed(course, home)
    assert read(home, "my-lab.ipynb") == b"v1" and read(home, "lab.ipynb") == b"v1"


# -- row 6: course file removed from the material -> removed only if byte-identical to what was seeded --

def test_withdrawn_file_removed_only_if_identical(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"a.txt": "a", "b.txt": "b", "c.txt": "c", "gone/d.txt": "d", "kept/e.txt": "e"})
    seed(course, home)
    write_tree(home, {"b.txt": "b, edited", "kept/mine.txt": "my notes"})
    os.utime(home / "c.txt", ns=(5, 5))  # touched, same bytes: still removable
    for rel in ("a.txt", "b.txt", "c.txt", "gone/d.txt", "kept/e.txt"):
        os.unlink(course / rel)
    os.rmdir(course / "gone")
    os.rmdir(course / "kept")
    summary = seed(course, home)
    assert summary.counts["removed"] == 4 and summary.counts["kept"] == 1
    assert sorted(os.listdir(home)) == [".course-seeder", "b.txt", "kept"]
    assert read(home, "b.txt") == b"b, edited" and read(home, "kept/mine.txt") == b"my notes"
    # Forgotten, not re-examined: a later course file at that path meets the student's file.
    write_tree(course, {"b.txt": "b again"})
    assert seed(course, home).counts["offered"] == 1
    assert read(home, "b.txt") == b"b, edited"


# -- row 7: symlinks never followed outside the source; nothing written outside dest ---------------------

def test_course_symlinks(dirs):
    course, home, outside = dirs["course"], dirs["home"], dirs["outside"]
    write_tree(course, {"notes.md": "notes", "data/table.csv": "1,2\n"})
    os.symlink("notes.md", str(course / "alias.md"))  # inside: seeded as a regular file
    os.symlink("data", str(course / "data-link"))  # a directory inside: descended
    os.symlink(str(outside / "secret.txt"), str(course / "secret.txt"))  # outside: left out
    os.symlink(str(outside), str(course / "outside-dir"))  # outside: left out
    os.symlink("nowhere", str(course / "dangling"))
    os.symlink(".", str(course / "data" / "loop"))  # a loop: cut
    summary = seed(course, home)
    assert read(home, "alias.md") == b"notes" and not os.path.islink(home / "alias.md")
    assert read(home, "data-link/table.csv") == b"1,2\n"
    for left_out in ("secret.txt", "outside-dir", "dangling", "data/loop"):
        assert not os.path.lexists(home / left_out)
    # data/loop is met twice: also through data-link/.
    assert {p.split(":")[0] for p in summary.problems} == {
        "secret.txt", "outside-dir", "dangling", "data/loop", "data-link/loop"}
    assert summary.counts["skipped"] == 5


def test_never_writes_through_a_student_symlink(dirs):
    course, home, outside = dirs["course"], dirs["home"], dirs["outside"]
    write_tree(course, {"week1/lab.ipynb": "v1", "week1/new.txt": "n", "week2/x.txt": "x"})
    seed(course, home)
    # The student replaces a course directory by a symlink to somewhere else entirely.
    for rel in ("week1/lab.ipynb", "week1/new.txt"):
        os.unlink(home / rel)
    os.rmdir(home / "week1")
    os.symlink(str(outside), str(home / "week1"))
    write_tree(course, {"week1/lab.ipynb": "v2", "week1/more.txt": "m", "week2/x.txt": "x2"})
    before = snapshot(outside)
    summary = seed(course, home)
    assert snapshot(outside) == before
    assert summary.counts["blocked"] >= 3
    assert read(home, "week2/x.txt") == b"x2"  # the rest of the course still flows
    converged(course, home)


def test_state_directory_replaced_by_symlink_refuses(dirs):
    course, home, outside = dirs["course"], dirs["home"], dirs["outside"]
    write_tree(course, {"a.txt": "a"})
    os.symlink(str(outside), str(home / ".course-seeder"))
    summary = seed(course, home)
    assert summary.status == "error"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert not os.path.exists(home / "a.txt")


# -- modes, directories -----------------------------------------------------------------------------------

def test_modes_follow_the_course_unless_the_student_chose(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"run.sh": ("echo 1\n", 0o755), "tool.sh": ("echo 1\n", 0o755), "ro.txt": ("r", 0o444)})
    old = os.umask(0o077)  # a strict umask must not strip the course's modes
    try:
        seed(course, home)
    finally:
        os.umask(old)
    assert (mode_of(home, "run.sh"), mode_of(home, "ro.txt")) == (0o755, 0o444)
    os.chmod(home / "tool.sh", 0o700)  # the student's choice
    write_tree(course, {"run.sh": ("echo 2\n", 0o755), "tool.sh": ("echo 2\n", 0o755)})
    seed(course, home)
    assert read(home, "tool.sh") == b"echo 2\n" and mode_of(home, "tool.sh") == 0o700
    assert mode_of(home, "run.sh") == 0o755
    os.chmod(course / "run.sh", 0o750)  # a mode-only course change reaches an untouched copy
    seed(course, home)
    assert mode_of(home, "run.sh") == 0o750


def test_directories(dirs):
    course, home = dirs["course"], dirs["home"]
    (course / "empty").mkdir()
    write_tree(course, {"a/b/c.txt": "c"})
    os.chmod(course / "a", 0o750)
    seed(course, home)
    assert os.path.isdir(home / "empty") and mode_of(home, "a") == 0o750
    os.rmdir(course / "empty")
    os.unlink(course / "a" / "b" / "c.txt")
    os.rmdir(course / "a" / "b")
    seed(course, home)
    assert not os.path.exists(home / "empty") and not os.path.exists(home / "a" / "b")
    assert os.path.isdir(home / "a")  # still a course directory (empty now, but ours to keep)


def test_file_where_a_course_directory_goes_blocks_only_that_directory(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(home, {"week1": "a file the student made"})
    write_tree(course, {"week1/lab.ipynb": "lab", "week2/lab.ipynb": "lab2"})
    summary = seed(course, home)
    assert summary.counts["blocked"] == 1
    assert read(home, "week1") == b"a file the student made"
    assert read(home, "week2/lab.ipynb") == b"lab2"

