"""The places taken on this hub: one record per running or starting server, kept as servers start and stop.

JupyterHub runs every request on one event loop, and :meth:`Places.take` checks and records with no ``await``
in between, so requests that arrive together are admitted one at a time: 300 starts for 4 places admit exactly
4. A start that fails or is cancelled, and every stop, gives its place back (:meth:`Places.give_back`, which may
be called more than once). After a restart the places are rebuilt from the hub's database (:meth:`Places.adopt`,
once per process), so a crash loses nothing: the servers that are still there are counted again, each with the
charges it had when it started.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..catalog.access import Who
from .model import Limits
from .rules import Charge, Counts, Refusal, decide

ServerKey = tuple[str, str]  # (user name, server name: "" for the default server)


class Places:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.counts = Counts()
        self.held: dict[ServerKey, tuple[str, tuple[Charge, ...]]] = {}  # key -> (profile, charges)
        self.adopted = False

    def take(self, key: ServerKey, who: Who, profile: str,
             labels: Mapping[str, str] | None = None) -> tuple[Charge, ...] | Refusal:
        """Record ``key`` as holding a place of ``profile``, or say why it may not. A server that already holds
        one (a start while JupyterHub still thinks it is running) gives it back first."""
        self.give_back(key)
        got = decide(self.limits, self.counts, who, profile, labels)
        if isinstance(got, Refusal):
            return got
        self.held[key] = (profile, got)
        self.counts.add(got)
        return got

    def give_back(self, key: ServerKey) -> bool:
        held = self.held.pop(key, None)
        if held is None:
            return False
        self.counts.remove(held[1])
        return True

    def adopt(self, servers: Iterable[tuple[ServerKey, str, tuple[Charge, ...]]]) -> int:
        """Count servers that were running before this process began (key, profile, charges). Servers this
        process already knows are left as they are. Returns how many were adopted."""
        n = 0
        for key, profile, charges in servers:
            if key in self.held:
                continue
            known = {c.name for c in self.limits.caps}
            charges = tuple(c for c in charges if c.cap in known)  # caps removed since are not counted
            self.held[key] = (profile, charges)
            self.counts.add(charges)
            n += 1
        self.adopted = True
        return n

    def in_use(self, cap: str) -> int:
        return self.counts.total[cap]
