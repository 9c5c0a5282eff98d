"""What a run tells: its :class:`Summary` (counts, details, errors, the log line), how a failed action counts,
and the :class:`Stopper` that says why a run ended early."""

from __future__ import annotations

import time

from . import fsops, notice
from .model import OUTCOMES, Action

MAX_DETAILS = 50


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
        self.news: list[str] = []  # for the student's notice (offered beside their copy, restored)
        self.actions: list[Action] = []
        self.temp_cleaned = 0
        self.manifest_written = False
        self.took = 0.0

    def count(self, action: Action, detail: str | None = None, beside: str = "") -> None:
        """Count what ``action`` did; ``beside``: where an offered version was written."""
        if action.outcome:
            self.counts[action.outcome] += 1
            if action.outcome == "restored" or (action.outcome == "offered" and beside):
                self.news.append(notice.item(action.outcome, action.path, beside))
            if action.outcome not in ("added", "updated", "restored", "removed") or detail:
                self.details.append(detail or action.describe())

    def failed(self, action: Action, error: BaseException, stop: Stopper) -> None:
        """Count an action that raised: deferred (budget, full disk: retried at the next start), blocked, or
        skipped with an error."""
        if isinstance(error, fsops.Stopped):
            self.counts["deferred"] += 1
            return
        if isinstance(error, fsops.Blocked):
            self.counts["blocked"] += 1
            self.details.append("blocked  %s  (a parent in the home is not a plain directory)" % action.path)
            return
        if isinstance(error, OSError) and error.errno in fsops.DISK_FULL:
            if not stop.disk_full:
                self.errors.append("%s %s: %s" % (action.op, action.path, error.strerror))
            stop.disk_full = True
            self.counts["deferred"] += 1  # retried at the next start
            return
        self.counts["skipped"] += 1
        self.errors.append("%s %s: %s" % (action.op, action.path, getattr(error, "strerror", None) or error))

    def line(self, source: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        counts = " ".join("%s=%d" % (k, v) for k, v in self.counts.items())
        return "%s course-seeder status=%s %s errors=%d files=%d written=%d took=%.2fs source=%s" % (
            stamp, self.status, counts, len(self.errors), self.files, self.bytes_written, self.took, source)

    def log_lines(self, source: str) -> list[str]:
        """The summary line, then the details (at most :data:`MAX_DETAILS`) and the errors, indented."""
        details = self.details
        if len(details) > MAX_DETAILS:
            details = details[:MAX_DETAILS] + ["... and %d more" % (len(details) - MAX_DETAILS)]
        return [self.line(source)] + ["  " + d for d in details] + ["  error: " + e for e in self.errors]
