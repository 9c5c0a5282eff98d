"""The spawner side of fair use: the ``limits`` setting, its start-up check, a place taken at each start and
given back when the start fails or the server stops, the charges kept in the spawner's state."""

from __future__ import annotations

import functools
import json
from typing import Any

from jupyterhub import orm
from sqlalchemy.orm import object_session
from traitlets import Bool, Dict, Unicode

from ..catalog.access import Who
from ..errors import ConfigError, SpawnRefused
from ..profiles import CatalogMixin
from .budgets import charged_to, period_start
from .budgets import refusal as budget_refusal
from .ledger import Ledger, Run, migrate, utcnow
from .model import NO_LIMITS, Limits, parse_limits
from .places import Places
from .rules import Charge, Refusal, charge_anyway, decide, label_of, refusal_text

# in the spawner's state: {"profile": slug, "charges": [[cap, user, group]], "run": ledger row id}
STATE_KEY = "jupyterhub_ext_place"

# one set of places per limits configuration in this process (a hub has one; tests may run several)
_PLACES: dict[str, Places] = {}
# databases whose ledger tables were created or checked by this process (by URL)
_MIGRATED: set[str] = set()


@functools.lru_cache(maxsize=16)
def _parsed(text: str, key: str, slugs: frozenset[str]) -> Limits:
    return parse_limits(json.loads(text), key, slugs)


class FairUseMixin(CatalogMixin):
    """Caps on running servers per profile or pool, per group and per user, over the catalog's profiles
    (docs/fair-use.md)."""

    limits = Dict(
        config=True,
        help="""Caps on servers running at once: ``pools`` (named lists of profile slugs that share hardware),
        ``caps`` (each on a ``pool`` or a ``profile``: ``total``, ``per_user``, ``groups`` {group: n}, ``others``),
        ``culling`` (per ``pool`` or ``profile``: ``idle_minutes``, ``max_age_hours``, for the chart's culler), and
        ``admins_exempt`` (default true). Checked at start-up against the catalog; enforced on the server for
        the form and the REST API alike, before anything reaches Kubernetes. See docs/fair-use.md.""",
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

    # -- configuration -------------------------------------------------------------------------------

    def fair_use_limits(self) -> Limits:
        key = f"{self.catalog_config_name}.limits"
        if not self.limits:
            return NO_LIMITS
        catalog = self.catalog
        if catalog is None:
            raise ConfigError(key, "limits apply to the profiles of a catalog: set profiles or catalog_file")
        try:
            text = json.dumps(self.limits, sort_keys=True)
        except TypeError:
            raise ConfigError(key, "must be plain data (lists, mappings, strings, numbers)") from None
        return _parsed(text, key, frozenset(p.slug for p in catalog.profiles))

    def check_limits_config(self) -> None:
        limits = self.fair_use_limits()
        if limits.budgets and not self.usage_ledger:
            raise ConfigError(f"{self.catalog_config_name}.usage_ledger",
                              "hour budgets are counted from the usage ledger: it cannot be turned off with budgets")

    def _places(self, limits: Limits) -> Places:
        text = json.dumps(self.limits, sort_keys=True)
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
        budgets = limits.budgets_on(profile)
        if not budgets or (who.admin and limits.admins_exempt):
            return None
        ledger = self._ledger()
        if ledger is None:
            return None
        now = utcnow()
        for budget in budgets:
            whose = charged_to(budget, who)
            if whose is None:
                continue
            since = period_start(budget.period, now)
            used = ledger.hours(whose if budget.per == "user" else None, budget.profiles, since, now,
                                group=whose if budget.per == "group" else None)
            refused = budget_refusal(budget, who, used, now, label_of(budget, labels))
            if refused is not None:
                return refused
        return None

    # -- the ledger ----------------------------------------------------------------------------------

    def _ledger(self) -> Ledger | None:
        """The ledger on JupyterHub's own session (None without one: a spawner built outside a hub)."""
        if not self.usage_ledger or self.orm_spawner is None:
            return None
        session = object_session(self.orm_spawner)
        if session is None:
            return None
        url = str(session.get_bind().url)
        if url not in _MIGRATED:
            migrate(session.get_bind())
            _MIGRATED.add(url)
            self._close_runs_gone(Ledger(session))
        return Ledger(session)

    def open_run(self, choices: dict) -> None:
        """A row for this start, once it is admitted. Trouble is logged: the start goes on."""
        selection = self.selection
        try:
            ledger = self._ledger()
            if ledger is None:
                return
            who = self.who()
            self._run_id = ledger.open(Run(
                user=who.name, server=self.name or "", groups=tuple(sorted(who.groups)),
                charges=tuple((c.cap, c.user, c.group) for c in self._charges or ()),
                profile=selection.profile.slug if selection else None, choices=choices,
                hardware=selection.profile.hardware.kind if selection else None,
                node_pool=selection.profile.hardware.node_pool if selection else None))
        except Exception:
            self.log.exception("Usage ledger: could not record the start of %s", self.user.name)

    def run_ready(self) -> None:
        self._ledger_write(lambda ledger: ledger.ready(self._run_id))

    def close_run(self, ended: str) -> None:
        self._ledger_write(lambda ledger: ledger.close(self._run_id, ended))
        self._run_id = None

    def _ledger_write(self, write) -> None:
        if self._run_id is None:
            return
        try:
            ledger = self._ledger()
            if ledger is not None:
                write(ledger)
        except Exception:
            self.log.exception("Usage ledger: could not record run %s of %s", self._run_id, self.user.name)

    def _close_runs_gone(self, ledger: Ledger) -> None:
        """Runs left open by a hub that died, whose server is no longer in the hub's database: closed now (the
        hub's first look after the restart), so their hours count up to here and no further."""
        alive = {(row.user.name, row.name or "") for row in ledger.session.query(orm.Spawner)
                 .filter(orm.Spawner.server_id.isnot(None)) if row.user is not None}
        for run in ledger.open_runs():
            if (run["user"], run["server"]) not in alive and run["id"] != self._run_id:
                ledger.close(run["id"], "gone")

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
