"""The commands the course plan puts in a pod, run for real with /bin/sh and Debian's own python3.

A course image holds the seeder as a standalone package (images/course: ``/opt/course-seeder/seeder``): here a
copy of ``jupyterhub_ext/seeder`` in a temporary directory, run by /usr/bin/python3, which has no jupyterhub_ext,
exactly as a course image's Python would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import jupyterhub_ext.seeder as seeder_pkg
from jupyterhub_ext.courses.model import parse_course
from jupyterhub_ext.courses.plan import INIT_GUARD, post_start_command, seeder_argv

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
pytestmark = pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3")


@pytest.fixture
def course_image(tmp_path) -> Path:
    """The two directories a course image has: the course tree and the standalone seeder."""
    root = tmp_path / "image"
    (root / "course" / "week1").mkdir(parents=True)
    (root / "course" / "week1" / "intro.ipynb").write_text('{"cells": []}\n')
    (root / "course" / "README.md").write_text("Welcome\n")
    shutil.copytree(os.path.dirname(seeder_pkg.__file__), root / "opt" / "course-seeder" / "seeder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def course(**extra):
    return parse_course({"name": "cs101", "image": "ghcr.io/uni/cs101:1", **extra}, "courses[0]")


def run_init(argv: list[str], limit: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", INIT_GUARD, "course-cs101", str(limit), *argv], capture_output=True,
                          text=True, timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin"})


def test_the_init_container_runs_the_course_images_own_seeder(course_image, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    argv = seeder_argv(course(exclude=["*.md"]), str(course_image / "course"), str(home / "cs101"), SYSTEM_PYTHON,
                       str(course_image / "opt" / "course-seeder"))
    done = run_init(argv)
    assert done.returncode == 0, done.stderr
    assert (home / "cs101" / "week1" / "intro.ipynb").read_text() == '{"cells": []}\n'
    assert not (home / "cs101" / "README.md").exists()  # excluded
    log = (home / "cs101" / ".course-seeder" / "seeder.log").read_text()
    assert "status=ok" in log
    # a student's edit survives the next start; the course's update of an untouched file arrives
    (home / "cs101" / "week1" / "intro.ipynb").write_text("my work\n")
    (course_image / "course" / "week1" / "more.ipynb").write_text("{}\n")
    assert run_init(argv).returncode == 0
    assert (home / "cs101" / "week1" / "intro.ipynb").read_text() == "my work\n"
    assert (home / "cs101" / "week1" / "more.ipynb").exists()


def test_the_init_container_never_fails_the_pod_and_says_why(tmp_path):
    done = run_init(["/bin/sleep", "30"], limit=1)
    assert done.returncode == 0
    assert "course-seeder: stopped with status 124" in done.stderr
    done = run_init(["/nonexistent/python3", "-c", "pass"])
    assert done.returncode == 0 and "stopped with status 127" in done.stderr


def test_post_start_runs_every_course_and_logs_one_that_cannot_run(course_image, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    good = seeder_argv(course(), str(course_image / "course"), str(home / "cs101"), SYSTEM_PYTHON,
                       str(course_image / "opt" / "course-seeder"))
    bad = seeder_argv(parse_course({"name": "stats", "path": "/opt/course"}, "courses[1]"),
                      str(course_image / "course"), str(home / "stats"), "/nonexistent/python3", None)
    command = post_start_command([bad, good])
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0  # a failed postStart hook would kill the container
    assert (home / "cs101" / "README.md").exists()  # the second ran although the first could not
    line = (home / "stats" / ".course-seeder" / "seeder.log").read_text()
    assert "status=error could not run" in line and "/nonexistent/python3" in line


def test_post_start_quotes_arguments_it_does_not_expand(tmp_path):
    # a destination with spaces and shell characters reaches the seeder as one argument
    odd = tmp_path / "home" / "a b$(x)"
    argv = ["/bin/sh", "-c", 'printf "%s\\n" "$@" > "$0.args"', str(tmp_path / "out"), "--dest", str(odd)]
    command = post_start_command([argv, argv])
    assert subprocess.run(command, timeout=30).returncode == 0
    assert (tmp_path / "out.args").read_text().splitlines() == ["--dest", str(odd)]
