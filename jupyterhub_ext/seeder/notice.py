"""The student's notice: a short file in the course folder saying what the seeder did that they should know.

A log line in ``.course-seeder/seeder.log`` is for whoever debugs; a student whose notebook got a newer version
beside it, or whose deleted file came back, should be told where they look: the folder itself. The notice is
``COURSE-UPDATES.md`` (``--notice NAME``; ``--notice ''`` for none), newest run first, the last
:data:`KEEP_RUNS` runs kept. It is written only when there is news, and only over a file the seeder wrote
itself (its first line is :data:`MARK`): a student's own file of that name, or a course file of that name, is
never touched (the run says so in its log instead).
"""

from __future__ import annotations

import os
import stat

from . import atomic, fsops
from .state import TEMP_PREFIX

NOTICE_NAME = "COURSE-UPDATES.md"
MARK = "<!-- written by the course seeder; yours to delete, it comes back only with news -->"
KEEP_RUNS = 10
MAX_ITEMS = 50  # per run; the log has the rest
_RUN_HEADING = "## "
TEMP_NAME = TEMP_PREFIX + "notice.tmp"  # in the state directory, cleared of such files at every run

HEADER = (
    "# Course updates\n\n"
    "What changed in this course folder at your recent starts. Your own work was never changed or removed.\n"
)


def item(kind: str, path: str, beside: str = "") -> str:
    """One line of news, in the student's words."""
    if kind == "offered":
        return (f"- `{path}`: you had changed your copy, so it was kept as it is; the course's new version is "
                f"beside it as `{beside}`.")
    if kind == "restored":
        return (f"- `{path}` was missing, so the course's copy was put back (deleting a course file and "
                "starting again is how to get a fresh copy).")
    raise ValueError(kind)


def compose(date: str, news: list[str], previous: str) -> str:
    """The notice's new text: this run's news first, then the runs kept from ``previous``."""
    shown = news[:MAX_ITEMS]
    if len(news) > MAX_ITEMS:
        shown.append(f"- ... and {len(news) - MAX_ITEMS} more (see `.course-seeder/seeder.log`).")
    runs = [f"{_RUN_HEADING}{date}\n\n" + "\n".join(shown) + "\n"]
    runs += _runs(previous)[: KEEP_RUNS - 1]
    return MARK + "\n" + HEADER + "\n" + "\n".join(runs)


def _runs(text: str) -> list[str]:
    """The per-run sections of an earlier notice."""
    sections: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith(_RUN_HEADING):
            sections.append(line)
        elif sections:
            sections[-1] += line
    return [s.rstrip("\n") + "\n" for s in sections]


def write(dest: fsops.Root, name: str, date: str, news: list[str], temp_dir_fd: int, hook=None) -> str:
    """Add this run's ``news`` to the notice in the root of ``dest``. Returns "" or why it was not written.

    The new text is written as :data:`TEMP_NAME` in ``temp_dir_fd`` (the state directory, which every run
    clears of temporary files, so a run killed here leaves nothing behind), then given its name. The old
    notice is replaced only if it is still the very file that was read: a student who saves over it in that
    instant keeps their save. Raises OSError for a write that failed (the caller logs it; the seeding itself
    is unaffected).
    """
    if not news or not name:
        return ""
    refused = f"notice not written: {name} is not a file the seeder wrote"
    previous, expect = "", None
    try:
        st = os.stat(name, dir_fd=dest.fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        fd = fsops.open_nofollow(dest.fd, name, hook) if stat.S_ISREG(st.st_mode) else -1
        if fd < 0:
            return refused
        try:
            expect = fsops.entry_from_stat(os.fstat(fd))
            previous = os.read(fd, 1 << 20).decode("utf-8", "replace")
        finally:
            os.close(fd)
        if not previous.startswith(MARK):
            return refused
    if temp_dir_fd == dest.fd:  # the state directory is elsewhere: a killed run's temporary file is ours to clear
        try:
            fsops.unlink(dest.fd, TEMP_NAME, hook)
        except FileNotFoundError:
            pass
    temp = atomic.TempFile(temp_dir_fd, TEMP_NAME, hook)
    temp.create(0o644)
    with temp:
        temp.write_all(memoryview(compose(date, news, previous).encode("utf-8")))
        temp.finish(False, 0o644)
        placed = (atomic.place_new(dest.fd, TEMP_NAME, name, hook, temp_dir_fd) if expect is None
                  else atomic.place_replace(dest.fd, TEMP_NAME, name, expect, hook, temp_dir_fd))
    if not placed:
        temp.discard()
        return f"notice not written: {name} changed while the seeder was writing it"
    return ""
