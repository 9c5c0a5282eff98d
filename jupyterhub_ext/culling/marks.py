"""The stops the idle culler asked for, so the usage ledger can say a run was culled.

The culler is a separate process that stops a server through the hub's REST API like anyone else. Its hook tells
the hub first (``POST /hub/api/jupyterhub-ext/culls``); the mark waits here until that server's stop reads it, or
expires (a cull the culler then did not make must not relabel a later stop). In memory: a mark is only ever
seconds old, and a hub that restarts in between records that stop as a plain one, which loses no hour.
"""

from __future__ import annotations

import time
from typing import Callable

REASONS = ("idle", "max_age")
MARK_SECONDS = 120.0  # the culler's DELETE follows its hook within one request's time


class CullMarks:
    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = MARK_SECONDS) -> None:
        self._clock, self._ttl = clock, ttl
        self._marks: dict[tuple[str, str], tuple[str, float]] = {}

    def mark(self, user: str, server: str, reason: str) -> None:
        if reason not in REASONS:
            raise ValueError(reason)
        self._expire()
        self._marks[(user, server)] = (reason, self._clock() + self._ttl)

    def pop(self, user: str, server: str) -> str | None:
        """The reason the culler gave for stopping this server, once; None if it did not ask."""
        self._expire()
        got = self._marks.pop((user, server), None)
        return got[0] if got else None

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, (_, until) in self._marks.items() if until <= now]:
            del self._marks[key]


MARKS = CullMarks()  # the hub process's one set
