"""The spawner side of fair use: the ``limits`` setting, its start-up check, a place taken at each start and
given back when the start fails or the server stops, the charges kept in the spawner's state."""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import weakref
from typing import Any

from jupyterhub import orm
from sqlalchemy.orm import object_session
from traitlets import Bool, Dict, Unicode

from ..catalog.access import Who
from ..culling.marks import MARKS
from ..errors import ConfigError, SpawnRefused
from ..profiles import CatalogMixin
from . import budgets
from .ledger import Ledger, Run, migrate, utcnow
from .model import NO_LIMITS, Limits, parse_limits
from .notices import NOTICES
from .places import Places
from .rules import Charge, Refusal, charge_anyway, decide, label_of, refusal_text
from .usage import UsageBook

# in the spawner's state: {"profile": slug, "charges": [[cap, user, group]], "run": ledger row id}
STATE_KEY = "jupyterhub_ext_place"

# one set of places per limits configuration in this process (a hub has one; tests may run several)
_PLACES: dict[str, Places] = {}
# the usage book of each hub database (engine) whose ledger tables this process created or checked
_BOOKS: "weakref.WeakKeyDictionary[Any, UsageBook]" = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=16)
def _parsed(text: str, key: str, slugs: frozenset[str]) -> Limits:
    return parse_limits(json.loads(text), key, slugs)


class FairUseMixin(CatalogMixin):
    """Caps on running servers per profile or pool, per group and per user, over the catalog's profiles
    (docs/fair-use.md)."""

    limits = Dict(
        config=True,
        help="""Fair use of the catalog's profiles: ``pools`` (named lists of profile slugs that share hardware);
        ``caps`` on servers running at once (each on a ``pool`` or a ``profile``: ``total``, ``per_user``,
        ``groups`` {group: n}, ``others``); hour ``budgets`` per week or month (``pool`` or ``profile``, ``hours``,
        ``period``, ``per`` user or group, ``groups``, ``minimum_hours`` a start needs left, ``grace_minutes`` of
        warning before a running server is stopped for its budget, default 15); ``culling`` (per ``pool`` or
        ``profile``: ``idle_minutes``, ``max_age_hours``, for the chart's culler); and ``admins_exempt`` (default
        true). Checked at start-up against the catalog; enforced on the server for the form and the REST API
        alike, before anything reaches Kubernetes. See docs/fair-use.md.""",
    )

    usage_ledger = Bool(
        True,
        config=True,
        help="""Record every server run (user, groups, profile, choices, hardware, node pool, times, how it ended) in
        the ``jupyterhub_ext_usage`` table of the hub's database, beside JupyterHub's own tables. A ledger that
        cannot be written is logged and never stops a start. See docs/fair-use.md.""",
    )

    culler_python = Unicode(
        "/opt/jupyterhub-idle-culler/bin/python",
        config=True,
        help="""The Python that runs the chart's culler service (``cull.*``) when ``limits.culling`` has rules: one
        with jupyterhub-idle-culler 2.x and this package installed ``--no-deps`` (the hub image's second virtual
        environment; the hub's own Python keeps the chart's culler 1.4). Missing, or with an older culler: the culler
        runs as the chart configures it and the hub log says at start-up that per-profile culling is off. See
        docs/fair-use.md.""",
    )

    _charges: tuple[Charge, ...] | None = None  # this server's, while it holds a place
    _charged_profile: str | None = None
    _run_id: int | None = None  # this server's row of the ledger, while it runs
    _found_gone = False  # poll() found the server gone: JupyterHub stops it next
    _budget_warned_at: datetime.datetime | None = None  # when this run was first told its budget runs out
    _stopping_for_budget = False

    # -- configuration -------------------------------------------------------------------------------

    _limits_memo: tuple[Any, Any, Limits, str] | None = None  # (the setting, the catalog, parsed, as JSON)

    def fair_use_limits(self) -> Limits:
        key = f"{self.catalog_config_name}.limits"
        if not self.limits:
            return NO_LIMITS
        catalog = self.catalog
        if catalog is None:
            raise ConfigError(key, "limits apply to the profiles of a catalog: set profiles or catalog_file")
        memo = self._limits_memo  # asked several times a start: traits are replaced, not edited in place
        if memo is not None and memo[0] is self.limits and memo[1] is catalog:
            return memo[2]
        try:
            text = json.dumps(self.limits, sort_keys=True)
        except TypeError:
            raise ConfigError(key, "must be plain data (lists, mappings, strings, numbers)") from None
        limits = _parsed(text, key, frozenset(p.slug for p in catalog.profiles))
        self._limits_memo = (self.limits, catalog, limits, text)
        return limits

    def check_limits_config(self) -> None:
        limits = self.fair_use_limits()
        if limits.budgets and not self.usage_ledger:
            raise ConfigError(f"{self.catalog_config_name}.usage_ledger",
                              "hour budgets are counted from the usage ledger: it cannot be turned off with budgets")

    def _places(self, limits: Limits) -> Places:
        self.fair_use_limits()
        text = self._limits_memo[3]  # the one JSON rendering of the setting: the key of its places
        places = _PLACES.get(text)
        if places is None:
            places = _PLACES[text] = Places(limits)
        if not places.adopted:
            servers = self._servers_in_database(limits)
            n = places.adopt(servers)
            self.log.info("Caps: %d servers found running in the hub database, %d counted (%s)", len(servers), n,
                          ", ".join(f"{cap.name}: {places.in_use(cap.name)}" for cap in limits.caps))
        return places

    # -- each start and stop -------------------------------------------------------------------------

    @property
    def _place_key(self) -> tuple[str, str]:
        return (self.user.name, self.name or "")

    def take_place(self, profile: str) -> None:
        """Hold a place for this start of ``profile``, or refuse it (SpawnRefused, in the user's words)."""
        limits = self.fair_use_limits()
        if limits.empty:
            return
        who = self.who()
        labels = {p.slug: p.display_name for p in self.catalog.profiles}
        over = self._over_budget(limits, who, profile, labels)
        if over is not None:
            self.log.info("Refused %s a start of %r: %s", self.user.name, profile, over.text)
            raise SpawnRefused(over.text)
        places = self._places(limits)
        got = places.take(self._place_key, who, profile, labels)
        if isinstance(got, Refusal):
            others = [pv.profile for pv in self.user_view().profiles if pv.profile.slug != profile]
            fits = [p.display_name for p in others
                    if not isinstance(decide(limits, places.counts, who, p.slug, labels), Refusal)]
            message = refusal_text(got, fits)
            self.log.info("Refused %s a start of %r: %s", self.user.name, profile, got.text)
            raise SpawnRefused(message)
        self._charges, self._charged_profile = got, profile

    def _over_budget(self, limits: Limits, who: Who, profile: str, labels) -> Refusal | None:
        """The first budget on ``profile`` this start would overrun, as a refusal; None if none.
        Budgets need the ledger: without one (``usage_ledger: false``) the start-up check refuses budgets."""
        on = limits.budgets_on(profile)
        if not on or (who.admin and limits.admins_exempt):
            return None
        usage = self._usage()
        if usage is None:
            return None
        ledger, book = usage
        now = utcnow()
        for budget in on:
            whose = budgets.charged_to(budget, who)
            if whose is None:
                continue
            refused = budgets.refusal(budget, who, book.hours(ledger, budget, whose, now), now,
                                      label_of(budget, labels))
            if refused is not None:
                return refused
        return None

    # -- the ledger ----------------------------------------------------------------------------------

    def _usage(self) -> tuple[Ledger, UsageBook] | None:
        """The ledger on JupyterHub's own session and its book (None without one: a spawner built outside a
        hub). The first look at a database creates or checks our tables and reads the runs left open."""
        if not self.usage_ledger or self.orm_spawner is None:
            return None
        session = object_session(self.orm_spawner)
        if session is None:
            return None
        engine = session.get_bind()
        ledger = Ledger(session)
        book = _BOOKS.get(engine)
        if book is None:
            migrate(engine)
            book = _BOOKS[engine] = UsageBook()
            book.follow(ledger.open_runs())
            self._close_runs_gone(ledger, book)
        return ledger, book

    def open_run(self, choices: dict) -> None:
        """A row for this start, once it is admitted. Trouble is logged: the start goes on."""
        selection = self.selection
        NOTICES.clear(self.user.name, self.name or "")  # a notice about this server's last run is done with
        self._budget_warned_at, self._stopping_for_budget = None, False
        try:
            usage = self._usage()
            if usage is None:
                return
            ledger, book = usage
            who = self.who()
            self._run_id = book.open(ledger, Run(
                user=who.name, server=self.name or "", groups=tuple(sorted(who.groups)),
                charges=tuple((c.cap, c.user, c.group) for c in self._charges or ()),
                profile=selection.profile.slug if selection else None, choices=choices,
                hardware=selection.profile.hardware.kind if selection else None,
                node_pool=selection.profile.hardware.node_pool if selection else None), utcnow())
        except Exception:
            self.log.exception("Usage ledger: could not record the start of %s", self.user.name)

    def run_ready(self) -> None:
        self._ledger_write(lambda ledger, book: book.ready(ledger, self._run_id, utcnow()))

    def close_run(self, ended: str) -> None:
        self._ledger_write(lambda ledger, book: book.close(ledger, self._run_id, ended, utcnow()))
        self._run_id = None
        if ended != "budget":
            NOTICES.clear(self.user.name, self.name or "")

    def stop_reason(self) -> str:
        """How the run that stops now ended, for the ledger."""
        culled = MARKS.pop(self.user.name, self.name or "")  # always taken: a mark is about this stop only
        if self._stopping_for_budget:
            return "budget"
        if self._found_gone:
            return "gone"
        return "culled" if culled else "stopped"

    def _ledger_write(self, write) -> None:
        if self._run_id is None:
            return
        try:
            usage = self._usage()
            if usage is not None:
                write(*usage)
        except Exception:
            self.log.exception("Usage ledger: could not record run %s of %s", self._run_id, self.user.name)

    def _close_runs_gone(self, ledger: Ledger, book: UsageBook) -> None:
        """Runs left open by a hub that died, whose server is no longer in the hub's database: closed now (the
        hub's first look after the restart), so their hours count up to here and no further."""
        alive = {(row.user.name, row.name or "") for row in ledger.session.query(orm.Spawner)
                 .filter(orm.Spawner.server_id.isnot(None)) if row.user is not None}
        for run in ledger.open_runs():
            if (run["user"], run["server"]) not in alive and run["id"] != self._run_id:
                book.close(ledger, run["id"], "gone", utcnow())

    # -- a running server and its budget ------------------------------------------------------------

    async def poll(self):
        status = await super().poll()
        if status is not None and self._run_id is not None:
            self._found_gone = True  # JupyterHub stops it next: the run ended by itself
        elif status is None and self._run_id is not None and not self.pending and not self._stopping_for_budget:
            try:
                self._ready_if_unrecorded()
                self.watch_budget()
            except Exception:  # a budget that cannot be read never stops a server
                self.log.exception("Budgets: could not check the running server of %s", self.user.name)
        return status

    def _ready_if_unrecorded(self) -> None:
        """A server running whose run says it never became ready: the hub died between the two (start() had
        returned, the ledger not yet written). Charged from this poll on rather than never."""
        usage = self._usage()
        if usage is not None:
            run = usage[1].run(self._run_id)
            if run is not None and run.ready is None:
                usage[1].ready(usage[0], self._run_id, utcnow())

    def watch_budget(self, now: datetime.datetime | None = None) -> None:
        """At each poll (JupyterHub's, every ``poll_interval``): warn the user on the hub's pages a grace period
        before this server's budget runs out, and stop the server a grace period after, never sooner than a whole
        grace period after the first warning. Reads only memory (the usage book)."""
        limits = self.fair_use_limits()
        usage = self._usage() if self._charged_profile and limits.budgets else None
        if usage is None:
            return
        ledger, book = usage
        run = book.run(self._run_id)
        if run is None or run.ready is None:
            return
        who = Who(self.user.name, run.groups, bool(self.user.admin))
        if who.admin and limits.admins_exempt:
            return
        now = now or utcnow()
        ways = []
        for budget in limits.budgets_on(self._charged_profile):
            whose = budgets.charged_to(budget, who)
            if whose is not None:
                used = book.hours(ledger, budget, whose, now)
                ways.append(budgets.runway(budget, whose, used, book.running(budget, whose), now))
        if not ways:
            return
        way = min(ways, key=lambda w: w.stop_at)
        if now < way.warn_from():
            if self._budget_warned_at is not None:  # the rate went down (another server stopped): all clear
                self._budget_warned_at = None
                NOTICES.clear(self.user.name, self.name or "")
            return
        first = self._budget_warned_at is None
        if first:
            self._budget_warned_at = now
        stop_at = budgets.stop_time(way, self._budget_warned_at)
        label = label_of(way.budget, {p.slug: p.display_name for p in self.catalog.profiles})
        if now < stop_at:
            text = budgets.warning(way, self.name or "", stop_at, now, label)  # the minutes left change
            NOTICES.tell(self.user.name, self.name or "", text)
            if first:
                self.log.info("Budgets: %s warned: %s", self.user.name, text)
            return
        self._stopping_for_budget = True
        NOTICES.tell(self.user.name, self.name or "", budgets.stopped(way, self.name or "", now, label))
        self.log.info("Budgets: stopping the server %r of %s: %s used up", self.name or "", self.user.name,
                      way.budget.key)
        asyncio.ensure_future(self._stop_for_budget())

    async def _stop_for_budget(self) -> None:
        """Stop the server as the hub's REST API would: its route first, then JupyterHub's own stop."""
        try:
            proxy = self.user.settings.get("proxy")
            if proxy is not None:
                await proxy.delete_user(self.user, self.name or "")
            await self.user.stop(self.name or "")
        except Exception:
            self._stopping_for_budget = False  # the next poll tries again
            self.log.exception("Budgets: could not stop the server %r of %s", self.name or "", self.user.name)

    def give_back_place(self) -> None:
        limits = self.fair_use_limits()
        if not limits.empty:
            self._places(limits).give_back(self._place_key)
        self._charges = self._charged_profile = None

    def get_state(self):
        state = super().get_state()
        if self._charges is not None or self._run_id is not None:
            state[STATE_KEY] = {"profile": self._charged_profile,
                                "charges": [[c.cap, c.user, c.group] for c in self._charges or ()],
                                "run": self._run_id}
        return state

    def load_state(self, state):
        super().load_state(state)
        place = (state or {}).get(STATE_KEY)
        if isinstance(place, dict):
            self._charged_profile = place.get("profile")
            self._charges = tuple(Charge(*c) for c in place.get("charges") or [])
            self._run_id = place.get("run")

    def clear_state(self):
        super().clear_state()
        self._charges = self._charged_profile = self._run_id = None

    # -- after a restart -----------------------------------------------------------------------------

    def _servers_in_database(self, limits: Limits):
        """(key, profile, charges) of every server the hub's database says is running or starting."""
        # JupyterHub's own session, through the spawner's row (Spawner.db is deprecated)
        db = object_session(self.orm_spawner) if self.orm_spawner is not None else None
        if db is None:
            return []
        out = []
        for row in db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None)):
            user = row.user
            if user is None:
                continue
            place = (row.state or {}).get(STATE_KEY)
            if isinstance(place, dict) and place.get("profile"):
                profile = place["profile"]
                charges = tuple(Charge(*c) for c in place.get("charges") or [])
            else:
                profile = (row.user_options or {}).get("profile")
                if not profile:
                    continue
                who = Who(user.name, frozenset(g.name for g in user.groups), bool(user.admin))
                charges = charge_anyway(limits, who, profile)
            out.append(((user.name, row.name or ""), profile, charges))
        return out
