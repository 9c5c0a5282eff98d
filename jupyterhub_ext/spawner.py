"""ProfilesKubeSpawner: KubeSpawner with a validated catalog, per-user profiles and server-side enforcement.

Where each concern lives (docs/architecture.md): the catalog and the user's view in :mod:`.profiles`, the form in
:mod:`.form`, storage in :mod:`.storage`, course delivery in :mod:`.courses`, retry-safe pod requests in
:mod:`.podrequests`. This module ties them to one start.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Callable

from jupyterhub import version_info as jupyterhub_version
from kubespawner import KubeSpawner
from traitlets import default
from traitlets.config import Config

from . import form
from .catalog import kubespawner as ks
from .configured import ConfiguredValues
from .courses.kube import KubeCourseMixin
from .errors import CONFIG_ERROR_PREFIX, ConfigError, ConfigUnusable, ShownError, SpawnRefused
from .pending import timeout_message
from .podrequests import START_ANNOTATION, PodDeleteFailed, PodRequestsMixin, api_error_text
from .fairuse.mixin import FairUseMixin
from .storage.mixin import STORAGE_TRAITS, StorageMixin
from .storage.security import check_catalog_commands

# JupyterHub 5 counts a refused start (a 400 we raise on purpose) towards consecutive_failure_limit, which z2jh sets
# to 5, and exits when it is reached; JupyterHub 6 counts only errors (handlers/base.py, _track_failure_count)
JUPYTERHUB_COUNTS_REFUSALS = jupyterhub_version < (6,)
# traits a start sets besides the storage plan's and a catalog's overrides
_HOOK_TRAITS = ("lifecycle_hooks",)

# (config, catalog) pairs whose checks passed in this process, compared by identity (ProfilesKubeSpawner.user_view)
_checked_configs: list[tuple[Config, Any]] = []

__all__ = ["ProfilesKubeSpawner", "PodDeleteFailed", "StartTimedOut", "START_ANNOTATION", "api_error_text"]


def _applied_by_load_user_options(spawner, user_options) -> None:
    """ProfilesKubeSpawner's ``apply_user_options``: the options were applied already (load_user_options)."""


class StartTimedOut(ShownError, TimeoutError):
    """A start that gave up, with what the pod was waiting for; JupyterHub logs and counts it as a timeout."""


class ProfilesKubeSpawner(FairUseMixin, StorageMixin, KubeCourseMixin, PodRequestsMixin, ConfiguredValues,
                          KubeSpawner):
    """KubeSpawner whose ``profile_list`` comes from a validated catalog, filtered for each user.

    The same per-user list renders the form and checks every request (form or REST API) before anything
    reaches Kubernetes. Overrides are applied with KubeSpawner's own machinery on top of the configured
    (chart) values, which come back at the beginning of each start, before the operator's hooks run, so one
    start's profile never leaks into the next and the hooks change a start as they would a KubeSpawner's.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._restored_for_start = False
        self._options_applied = False
        self._replacing_pod = False
        self.selection = None
        if self._catalog_configured and not self.profile_list:
            # z2jh always sets profile_list (singleuser.profileList, [] by default), and a configured value beats
            # the default above: the form would be empty and every user silently get the default profile. An
            # empty list gives way to the catalog; a non-empty one is refused at start-up (check_catalog).
            self.profile_list = self._catalog_profile_list

    @property
    def _catalog_configured(self) -> bool:
        # from the settings alone: parsing (which can fail) waits for user_view, whose errors users can read
        return bool(self.profiles or self.catalog_file)

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # JupyterHub 5.3+ warns of "unhandled user_options" at every start unless a hook takes them: ours are
        # checked and applied by load_user_options (the catalog's selection), so the hook has nothing left to do
        return _applied_by_load_user_options

    @default("profile_list")
    def _profile_list_default(self):
        # Only offer the catalog when one is configured; otherwise behave exactly like KubeSpawner.
        if not self._catalog_configured:
            return []
        return self._catalog_profile_list

    def _catalog_profile_list(self, spawner: "ProfilesKubeSpawner") -> list[dict]:
        return ks.profile_list(spawner.user_view())

    # -- the form ------------------------------------------------------------------------------------

    async def _render_options_form_dynamically(self, current_spawner):
        if not self._catalog_configured or getattr(self.profile_list, "__func__", None) is not \
                ProfilesKubeSpawner._catalog_profile_list:
            return await super()._render_options_form_dynamically(current_spawner)
        # KubeSpawner's _render_options_form, minus what made it slow: the template is compiled once, not per
        # form, and the form is rendered once per (view, last options) and shared by the users alike.
        template = form.form_template(tuple(self.additional_profile_form_template_paths),
                                      self.profile_form_template)
        return form.render_catalog_form(current_spawner, template)

    def _options_from_form(self, formdata: dict) -> dict:
        user_options = super()._options_from_form(formdata)
        if self._catalog_configured:
            # checked here too, so a bad form submission is answered on the form itself
            self.selection_for(user_options)
        return user_options

    # -- the configured values, back at each start ---------------------------------------------------

    def _touched_traits(self) -> tuple[str, ...]:
        """Every trait a start may set: captured at the first start, before the operator's hook runs."""
        names = STORAGE_TRAITS + _HOOK_TRAITS
        if self._catalog_configured:
            try:
                names += ks.touched_traits(self.catalog)
            except ConfigError:
                pass  # the start reports it, in the user's words (user_view)
        return names

    def _restore_configured(self) -> None:
        """The configured values back, once per start: at its beginning (``clear_state``) or in start() itself."""
        if self._restored_for_start:
            self._restored_for_start = False
            return
        self.restore_configured(self._touched_traits())

    def clear_state(self):
        """KubeSpawner's, and the configured values back.

        JupyterHub calls this at the beginning of every start (and after every stop), before the authenticator's
        ``pre_spawn_start``, the ``auth_state_hook``, group overrides and the ``pre_spawn_hook`` change the
        spawner: what they set is kept for this start, as with KubeSpawner, and the profile applies over it.
        """
        self.restore_configured(self._touched_traits())  # first: KubeSpawner names the pod from the templates
        super().clear_state()
        self._restored_for_start = True  # start() keeps what the hooks set from here on

    # -- the request ---------------------------------------------------------------------------------

    async def load_user_options(self) -> None:
        if self._options_applied:
            self._options_applied = False  # start() applied this start's options already
            return
        self._restore_configured()
        if self._catalog_configured:
            self._apply_catalog_options()
            return
        before = self._before_profile()
        await super().load_user_options()  # KubeSpawner's own profile_list, if any
        self.selection = None
        self._apply_storage_and_hooks(before)

    def _apply_catalog_options(self) -> None:
        selection = self.selection_for(self.user_options)
        before = self._before_profile()
        overrides = ks.overrides(selection, before["tolerations"])
        self.log.info("Starting profile %r for %s with %s", selection.profile.slug, self._log_name,
                      selection.labels())
        self._apply_overrides(overrides)
        self.selection = selection
        self._apply_storage_and_hooks(before)

    def _before_profile(self) -> dict[str, Any]:
        """The storage plan's traits as the configuration and this start's hooks left them, before the profile:
        what a profile's list override replaced comes back from here."""
        return {name: copy.deepcopy(getattr(self, name)) for name in STORAGE_TRAITS}

    def _apply_storage_and_hooks(self, before: dict[str, Any]) -> None:
        # storage and the seeder apply to every start, merged over whatever the profile set
        who = self.who()
        self.apply_storage_plan(who, before)
        self.apply_courses(who)  # after the storage plan: course init containers mount its home

    # -- the start -----------------------------------------------------------------------------------

    def start(self):
        """KubeSpawner's start, ended just before JupyterHub's own ``start_timeout`` with the reason.

        JupyterHub times a start out with an empty error ("Spawn failed: "): the scheduler's reason was only in
        the progress events. Here the start gets a slightly shorter deadline and, when it passes, fails with
        what the pod is waiting for (``jupyterhub_ext.pending``). JupyterHub still stops the server as for any
        failed start, so nothing is left behind.
        """
        self._options_applied = False
        self.new_course_delivery()
        if self._catalog_configured:
            # The profile is applied here, not only in KubeSpawner's _start: JupyterHub reads start_timeout right
            # after start() returns, so a profile's own start_timeout (kubespawner_override) now bounds JupyterHub's
            # wait and ours, and such a start fails with the reason, not KubeSpawner's bare "did not start in".
            self._restore_configured()
            try:
                self._apply_catalog_options()
                self.take_place(self.selection.profile.slug)  # no await since the check: race-free
            except SpawnRefused:
                self._refusal_is_not_a_failure()
                raise
            self.open_run(dict(self.user_options or {}))
            self._options_applied = True
        self.new_start_token()
        # KubeSpawner's progress() waits on this attribute of its own (jupyterhub_ext.compat lists it)
        self._start_future = asyncio.ensure_future(self._start_explained())
        return self._start_future

    def _refusal_is_not_a_failure(self) -> None:
        """Take back the count JupyterHub 5 is about to add for this refused start.

        JupyterHub 5 counts every failed start towards ``consecutive_failure_limit`` (z2jh: 5) and exits when it
        is reached: five refused requests in a row (a script, a student retrying a bad image) would restart the
        hub for everyone. JupyterHub 6 counts errors only, not a client error like this one; this gives 5 the
        same rule. Only for a start that JupyterHub runs (it passes its request handler), which adds one back.
        """
        settings = self.handler.settings if self.handler is not None else None
        if JUPYTERHUB_COUNTS_REFUSALS and isinstance(settings, dict):
            settings["failure_count"] = settings.get("failure_count", 0) - 1

    def _start_deadline(self) -> float:
        timeout = float(self.start_timeout)
        return max(timeout - min(5.0, max(0.5, 0.1 * timeout)), 0.5 * timeout)

    async def _start_explained(self):
        try:
            result = await self._start_with_courses()
        except BaseException:  # failed, timed out or cancelled: the place is free again at once
            self.give_back_place()
            self.close_run("failed")
            raise
        self.run_ready()
        return result

    async def stop(self, now=False):
        try:
            return await super().stop(now=now)
        except Exception:  # JupyterHub 5 drops a stop's exception without a word: say it here
            self.log.exception("Stopping the server %r of %s failed", self.name or "", self.user.name)
            raise
        finally:
            if not self._replacing_pod:  # a pod replaced within a start keeps the start's place
                self.give_back_place()
                self.close_run(self.stop_reason())
                self._found_gone = False

    async def _start_with_courses(self):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_deadline()
        while True:
            task = asyncio.ensure_future(self._start())
            watch = asyncio.ensure_future(self.watch_course_images(self.made_by_this_start))
            try:
                done, _ = await asyncio.wait({task, watch}, timeout=max(0.0, deadline - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task.cancel()
                watch.cancel()
                raise
            if task in done:
                watch.cancel()
                return task.result()
            task.cancel()
            await asyncio.wait({task})
            if watch not in done:
                watch.cancel()
                break
            # a course image cannot be pulled: fail now (a required course) or start again without it
            self._replacing_pod = True
            try:
                await self.start_without_courses(watch.result())
            finally:
                self._replacing_pod = False
            self.new_start_token()
            self._options_applied = True  # this start's options, hooks and storage stay as they are
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
        try:
            events = list(self.events)
        except Exception:  # the events reflector is optional (events_enabled) and only informative here
            events = []
        message = timeout_message(self.start_timeout, pod, events)
        self.log.warning("Start of %s gave up: %s", self._log_name, message)
        raise StartTimedOut(message)

    # -- start-up check ------------------------------------------------------------------------------

    def user_view(self):
        """This user's view of the catalog, after the start-up checks have passed for this configuration.

        JupyterHub has no start-up hook for a spawner class: ``jupyterhub_ext.z2jh.setup(c)`` is what checks
        at start-up. A hub configured without it (``spawner_class = "profiles-kube"`` alone) makes the same
        checks at its first form or spawn, and refuses that and every later one with the start-up message.
        """
        try:
            self._check_config_once()
            return super().user_view()
        except ConfigError as e:
            self.log.error("%s%s", CONFIG_ERROR_PREFIX, e)
            raise ConfigUnusable(e) from None

    def _check_config_once(self) -> None:
        config, catalog = self.config, self.catalog
        if any(c is config and k is catalog for c, k in _checked_configs):
            return
        self.check_everything()
        _checked_configs.insert(0, (config, catalog))  # the objects are held, so `is` cannot meet a stranger
        del _checked_configs[16:]

    def startup_checks(self) -> list[tuple[str, Callable[[], None]]]:
        """Every start-up check of this configuration, by section: each raises ConfigError naming the key.
        The hub runs them in order and stops at the first; ``jupyterhub-ext check`` runs them all."""
        return [("catalog", self.check_catalog),
                ("storage", lambda: self.check_storage_config(self._raw_overrides())),
                ("courses", self.check_course_config),
                ("limits", self.check_limits_config)]

    def check_everything(self) -> None:
        """Every start-up check of this configuration; raise ConfigError naming the key."""
        for _, check in self.startup_checks():
            check()

    def _raw_overrides(self) -> list[tuple[str, Any]]:
        catalog = self.catalog
        if catalog is not None:
            return [(at, override) for at, override, _ in ks.raw_overrides(catalog, self.catalog_path)]
        if isinstance(self.profile_list, list):  # plain KubeSpawner profiles (no catalog)
            return list(ks.profile_list_overrides(self.profile_list, self.config_key("profile_list").split(" ")[0]))
        return []

    def check_catalog(self) -> None:
        """Validate the whole catalog against this configuration; raise ConfigError naming the key."""
        catalog = self.catalog
        if catalog is None:
            return
        if self.config.KubeSpawner.get("profile_list") or self.config.ProfilesKubeSpawner.get("profile_list"):
            raise ConfigError(f"{self.catalog_config_name}.profile_list",
                              "a catalog is configured; remove the raw profile_list (singleuser.profileList)")
        ks.check_catalog(catalog, self.catalog_path)
        check_catalog_commands(catalog, self.catalog_path)

    @classmethod
    def for_checks(cls, config: Config) -> "ProfilesKubeSpawner":
        """A spawner of ``config`` that touches no Kubernetes, for the start-up checks."""
        return cls(config=config, _mock=True)

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Build a spawner from ``config`` without touching Kubernetes and validate everything it holds."""
        cls.for_checks(config)._check_config_once()  # recorded: the first form or spawn does not redo it
