"""The student's notice (COURSE-UPDATES.md): written when there is news, never over a file the seeder did not
write, kept short, and never in the way of the policy."""

from __future__ import annotations

import os
import subprocess
import sys

from jupyterhub_ext.seeder import notice

from .conftest import DATE, edited_then_updated, read, seed, snapshot, temp_files, write_tree

NOTICE = notice.NOTICE_NAME
BESIDE = "lab.course-%s.ipynb" % DATE


def notice_text(home) -> str:
    return read(home, NOTICE).decode()


def test_a_first_seed_and_plain_updates_leave_no_notice(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1", "data.csv": "a"})
    seed(course, home)
    write_tree(course, {"lab.ipynb": "v2"})  # untouched by the student: updated in place, nothing to tell
    seed(course, home)
    assert not os.path.exists(home / NOTICE)


def test_an_update_offered_beside_the_students_copy_is_told(dirs):
    course, home = dirs["course"], dirs["home"]
    summary = edited_then_updated(course, home)
    text = notice_text(home)
    assert text.startswith(notice.MARK)
    assert "## %s" % DATE in text
    assert "`lab.ipynb`" in text and "`%s`" % BESIDE in text and "kept" in text
    assert any(d.startswith("notice") for d in summary.details)
    assert read(home, "lab.ipynb") == b"v1 + my answers"  # the policy itself is unchanged
    before = snapshot(home, skip_state=True)
    seed(course, home)  # nothing new: the notice is not rewritten
    assert snapshot(home, skip_state=True) == before


def test_a_restored_file_is_told_and_news_accumulates_newest_first(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1", "week2/hw.ipynb": "hw"})
    seed(course, home)
    os.unlink(home / "week2" / "hw.ipynb")
    seed(course, home, date="2026-11-23")
    first = notice_text(home)
    assert "`week2/hw.ipynb` was missing" in first
    os.unlink(home / "lab.ipynb")
    seed(course, home, date="2026-11-24")
    text = notice_text(home)
    assert text.index("## 2026-11-24") < text.index("## 2026-11-23")
    assert text.count(notice.MARK) == 1 and text.count("# Course updates") == 1


def test_only_the_last_runs_are_kept(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    for day in range(1, notice.KEEP_RUNS + 4):
        os.unlink(home / "lab.ipynb")
        seed(course, home, date="2026-12-%02d" % day)
    text = notice_text(home)
    assert text.count("\n## ") == notice.KEEP_RUNS
    assert "2026-12-%02d" % (notice.KEEP_RUNS + 3) in text and "## 2026-12-01" not in text


def test_a_students_own_file_of_that_name_is_never_touched(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    write_tree(home, {NOTICE: "my own notes"})
    os.unlink(home / "lab.ipynb")
    summary = seed(course, home)
    assert read(home, NOTICE) == b"my own notes"
    assert summary.counts["restored"] == 1
    assert any("notice not written" in d for d in summary.details)
    assert temp_files(home) == []


def test_a_symlink_at_that_name_is_not_followed(dirs):
    course, home, outside = dirs["course"], dirs["home"], dirs["outside"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    os.symlink(outside / "secret.txt", home / NOTICE)
    os.unlink(home / "lab.ipynb")
    seed(course, home)
    assert (outside / "secret.txt").read_text() == "do not touch\n"
    assert os.path.islink(home / NOTICE)


def test_a_course_file_of_that_name_wins(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1", NOTICE: "the instructor's own update notes"})
    seed(course, home)
    os.unlink(home / "lab.ipynb")
    seed(course, home)
    assert read(home, NOTICE) == b"the instructor's own update notes"


def test_a_student_who_deletes_the_notice_gets_one_again_only_with_news(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    seed(course, home)
    os.unlink(home / "lab.ipynb")
    seed(course, home)
    os.unlink(home / NOTICE)
    seed(course, home)
    assert not os.path.exists(home / NOTICE)
    os.unlink(home / "lab.ipynb")
    seed(course, home)
    assert os.path.exists(home / NOTICE)


def test_no_notice_when_turned_off_on_the_command_line(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1"})
    argv = [sys.executable, "-m", "jupyterhub_ext.seeder", "--source", str(course), "--dest", str(home)]
    subprocess.run(argv, check=True, capture_output=True)
    os.unlink(home / "lab.ipynb")
    subprocess.run(argv + ["--notice", ""], check=True, capture_output=True)
    assert (home / "lab.ipynb").exists() and not (home / NOTICE).exists()
    os.unlink(home / "lab.ipynb")
    subprocess.run(argv, check=True, capture_output=True)
    assert "was missing" in notice_text(home)
