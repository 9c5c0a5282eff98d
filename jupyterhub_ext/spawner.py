"""ProfilesKubeSpawner: KubeSpawner with a validated catalog, per-user profiles and server-side enforcement."""

from __future__ import annotations

import asyncio
import copy
import uuid
import functools
import json
from collections import OrderedDict
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader
from jupyterhub import version_info as jupyterhub_version
from kubespawner import KubeSpawner
from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions
from kubernetes_asyncio.client.rest import ApiException
from tornado import web
from traitlets import default
from traitlets.config import Config

from .catalog import kubespawner as ks
from .course import CourseMixin
from .errors import CONFIG_ERROR_PREFIX, ConfigError, ConfigUnusable
from .errors import SpawnRefused
from .pending import timeout_message
from .profiles import CatalogMixin
from .storage import StorageMixin

# answers to a delete that say "try again", not "no": retried within k8s_api_request_retry_timeout
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# on every pod: which start made it, so a retried create can recognise the pod its own lost request made
START_ANNOTATION = "jupyterhub-ext/start"
# JupyterHub 5 counts a refused start (a 400 we raise on purpose) towards consecutive_failure_limit, which z2jh sets
# to 5, and exits when it is reached; JupyterHub 6 counts only errors (handlers/base.py, _track_failure_count)
JUPYTERHUB_COUNTS_REFUSALS = jupyterhub_version < (6,)
# a pod a stop could not delete is retried in the background, this often at most (seconds)
LEFTOVER_RETRY_MAX = 30.0
# (namespace, name, uid) -> the task deleting that leftover pod; kept here so the task is not garbage-collected
_leftover_tasks: dict[tuple[str, str, str], asyncio.Task] = {}


class _ShownError(web.HTTPError):
    """A 500 whose message JupyterHub shows everywhere: in the REST answer (log_message), on the progress stream
    and on a reloaded spawn page, which shows nothing of an error but its ``jupyterhub_message``."""

    def __init__(self, message: str):
        web.HTTPError.__init__(self, 500, "%s", message)
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.jupyterhub_message


class PodDeleteFailed(_ShownError):
    """A pod the API would not delete; the message names the pod and the API's answer."""


class StartTimedOut(_ShownError, TimeoutError):
    """A start that gave up, with what the pod was waiting for; JupyterHub logs and counts it as a timeout."""


def api_error_text(e: ApiException) -> str:
    """``403 Forbidden: <the Status message>``: an ApiException's str() is a dump of headers and body."""
    try:
        message = json.loads(e.body or "{}").get("message") or ""
    except (TypeError, ValueError, AttributeError):
        message = str(e.body or "")
    return " ".join(str(part) for part in (e.status, e.reason) if part) + (f": {message}" if message else "")


async def delete_leftover_pod(api, namespace: str, name: str, uid: str, grace_seconds: int, request_timeout: float,
                              log) -> None:
    """Delete the pod ``uid`` once the API allows it, retrying with a growing pause.

    The uid precondition keeps this off the user's next pod: a new pod of that name has another uid, the API
    answers 409, and the retries end (that start replaced the leftover itself)."""
    pause = 1.0
    while True:
        await asyncio.sleep(pause)
        pause = min(pause * 2, LEFTOVER_RETRY_MAX)
        try:
            await asyncio.wait_for(api.delete_namespaced_pod(
                name=name, namespace=namespace, grace_period_seconds=grace_seconds,
                body=V1DeleteOptions(grace_period_seconds=grace_seconds, preconditions=V1Preconditions(uid=uid))),
                request_timeout)
        except asyncio.TimeoutError:
            continue
        except ApiException as e:
            if e.status in (404, 409):  # gone, or replaced by a newer pod of that name
                log.info("Pod %s/%s left by a failed delete is gone", namespace, name)
                return
            log.debug("Deleting leftover pod %s/%s: %s; retrying", namespace, name, api_error_text(e))
            continue
        log.info("Deleted pod %s/%s that a failed delete had left", namespace, name)
        return


@functools.lru_cache(maxsize=8)
def _form_environment(template_paths: tuple[str, ...]) -> Environment:
    """KubeSpawner's form environment (its loaders and json policy), made once instead of at every render.

    KubeSpawner builds a new Environment, and so compiles ``form.html`` again, for each form it renders: with a
    per-user (callable) profile_list that was ~60% of the form's time (benchmarks/form.py). Jinja's own cache
    keeps the compiled template and still reloads a changed template file (``auto_reload``)."""
    env = Environment(loader=ChoiceLoader([FileSystemLoader(list(template_paths)),
                                           PackageLoader("kubespawner", "templates")]))
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # as KubeSpawner: keep the catalog's order
    return env


@functools.lru_cache(maxsize=8)
def _form_string_template(template_paths: tuple[str, ...], source: str):
    return _form_environment(template_paths).from_string(source)


# Rendered forms by (view, template). Views are cached per kind of user (profiles.view_key: the groups and
# users the catalog's rules name), so a class of 300 students in a few groups shares a few forms.
_RENDERED_FORMS_MAX = 128
_rendered_forms: OrderedDict[tuple[int, Any, str], tuple[Any, str]] = OrderedDict()


def _rendered_form(view, template, options_key: str, render) -> str:
    key = (id(view), template, options_key)
    entry = _rendered_forms.get(key)
    if entry is not None and entry[0] is view:  # the view itself is kept in the entry: its id is not reused
        _rendered_forms.move_to_end(key)
        return entry[1]
    html = render()
    _rendered_forms[key] = (view, html)
    while len(_rendered_forms) > _RENDERED_FORMS_MAX:
        _rendered_forms.popitem(last=False)
    return html


# (config, catalog) pairs whose checks passed in this process (ProfilesKubeSpawner.user_view)
_checked_configs: dict[tuple[int, int], tuple[Any, Any]] = {}


def _form_cache_clear() -> None:
    _rendered_forms.clear()
    _form_environment.cache_clear()
    _form_string_template.cache_clear()


class ProfilesKubeSpawner(CatalogMixin, StorageMixin, CourseMixin, KubeSpawner):
    """KubeSpawner whose ``profile_list`` comes from a validated catalog, filtered for each user.

    The same per-user list renders the form and checks every request (form or REST API) before anything
    reaches Kubernetes. Overrides are applied with KubeSpawner's own machinery on top of the configured
    (chart) values, which are restored before each start so one start's profile never leaks into the next.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._base_values: dict[str, Any] = {}
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

    @default("profile_list")
    def _profile_list_default(self):
        # Only offer the catalog when one is configured; otherwise behave exactly like KubeSpawner.
        if not self._catalog_configured:
            return []
        return self._catalog_profile_list

    def _catalog_profile_list(self, spawner: "ProfilesKubeSpawner") -> list[dict]:
        return ks.profile_list(spawner.user_view())

    # -- the form ------------------------------------------------------------------------------------

    def _form_template(self):
        paths = tuple(self.additional_profile_form_template_paths)
        if self.profile_form_template != "":
            return _form_string_template(paths, self.profile_form_template)
        return _form_environment(paths).get_template("form.html")  # a new object if the file changed

    async def _render_options_form_dynamically(self, current_spawner):
        if not self._catalog_configured or getattr(self.profile_list, "__func__", None) is not \
                ProfilesKubeSpawner._catalog_profile_list:
            return await super()._render_options_form_dynamically(current_spawner)
        # KubeSpawner's _render_options_form, minus what made it slow: the template is compiled once, not per
        # form, and the form is rendered once per (view, last options) and shared by the users alike.
        view = current_spawner.user_view()
        template = self._form_template()
        user_options = current_spawner.user_options or {}
        options_key = json.dumps(user_options, sort_keys=True, default=str) if user_options else ""

        def render() -> str:
            # ks.profile_list() is already what KubeSpawner's _get_initialized_profile_list makes of it (slugs,
            # one default each, unlisted_choice filled; tests/spawner/test_form.py), and fresh: no deep copy
            profile_list = ks.profile_list(view)
            options = user_options
            if options:
                # as KubeSpawner >= 7.1: the last options are pre-selected only while they are still valid
                try:
                    current_spawner._validate_user_options(profile_list)
                except ValueError:
                    options = {}
            return template.render(profile_list=profile_list, user_options=options)

        return _rendered_form(view, template, options_key, render)

    # -- the request ---------------------------------------------------------------------------------

    def _options_from_form(self, formdata: dict) -> dict:
        user_options = super()._options_from_form(formdata)
        if self._catalog_configured:
            # checked here too, so a bad form submission is answered on the form itself
            self.selection_for(user_options)
        return user_options

    async def load_user_options(self) -> None:
        if self._catalog_configured:
            if getattr(self, "_catalog_options_loaded", False):
                self._catalog_options_loaded = False  # start() did it already, for this start
            else:
                self._load_catalog_options()
            return
        self._restore_base_values()
        await super().load_user_options()  # KubeSpawner's own profile_list, if any
        self.selection = None
        self._apply_storage_and_hooks()

    def _load_catalog_options(self) -> None:
        self._restore_base_values()
        selection = self.selection_for(self.user_options)
        overrides = ks.overrides(selection, self._base_value("tolerations"))
        for key in overrides:
            self._base_value(key)
        self.log.info("Starting profile %r for %s with %s", selection.profile.slug, self._log_name,
                      selection.labels())
        self._apply_overrides(overrides)
        self.selection = selection
        self._apply_storage_and_hooks()

    def _apply_storage_and_hooks(self) -> None:
        # storage and the seeder apply to every start, merged over whatever the profile set; both capture the
        # configured values first (_base_value), so the next start begins from them again
        self.apply_storage_plan()
        self._base_value("lifecycle_hooks")
        self.lifecycle_hooks = self.combined_lifecycle_hooks(self.lifecycle_hooks)

    def _base_value(self, name: str) -> Any:
        """The configured value of a trait, captured before any profile touched it."""
        if name not in self._base_values:
            self._base_values[name] = copy.deepcopy(getattr(self, name))
        return self._base_values[name]

    def _restore_base_values(self) -> None:
        for name, value in self._base_values.items():
            setattr(self, name, copy.deepcopy(value))

    # -- the start -----------------------------------------------------------------------------------

    def start(self):
        """KubeSpawner's start, ended just before JupyterHub's own ``start_timeout`` with the reason.

        JupyterHub times a start out with an empty error ("Spawn failed: "): the scheduler's reason was only in
        the progress events. Here the start gets a slightly shorter deadline and, when it passes, fails with
        what the pod is waiting for (``jupyterhub_ext.pending``). JupyterHub still stops the server as for any
        failed start, so nothing is left behind.
        """
        self._catalog_options_loaded = False
        if self._catalog_configured:
            # The profile is applied here, not only in KubeSpawner's _start: JupyterHub reads start_timeout right
            # after start() returns, so a profile's own start_timeout (kubespawner_override) now bounds JupyterHub's
            # wait and ours, and such a start fails with the reason, not KubeSpawner's bare "did not start in".
            try:
                self._load_catalog_options()
            except SpawnRefused:
                self._refusal_is_not_a_failure()
                raise
            self._catalog_options_loaded = True
        self._start_token = uuid.uuid4().hex
        self._create_attempted = False
        self._start_future = asyncio.ensure_future(self._start_explained())
        return self._start_future

    def _refusal_is_not_a_failure(self) -> None:
        """Take back the count JupyterHub 5 is about to add for this refused start.

        JupyterHub 5 counts every failed start towards ``consecutive_failure_limit`` (z2jh: 5) and exits when it
        is reached: five refused requests in a row (a script, a student retrying a bad image) would restart the
        hub for everyone. JupyterHub 6 counts errors only, not a client error like this one; this gives 5 the
        same rule. Only for a start that JupyterHub runs (it passes its request handler), which adds one back.
        """
        settings = getattr(getattr(self, "handler", None), "settings", None)
        if JUPYTERHUB_COUNTS_REFUSALS and isinstance(settings, dict):
            settings["failure_count"] = settings.get("failure_count", 0) - 1

    def _start_deadline(self) -> float:
        timeout = float(self.start_timeout)
        return max(timeout - min(5.0, max(0.5, 0.1 * timeout)), 0.5 * timeout)

    async def _start_explained(self):
        task = asyncio.ensure_future(self._start())
        try:
            done, _ = await asyncio.wait({task}, timeout=self._start_deadline())
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.wait({task})
        reflector = getattr(self, "pod_reflector", None)
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
        try:
            events = list(self.events)
        except Exception:  # the events reflector is optional (events_enabled) and only informative here
            events = []
        message = timeout_message(self.start_timeout, pod, events)
        self.log.warning("Start of %s gave up: %s", self._log_name, message)
        raise StartTimedOut(message)

    # -- a create whose answer was lost --------------------------------------------------------------

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        token = getattr(self, "_start_token", None)
        if token:
            pod.metadata.annotations = {**(pod.metadata.annotations or {}), START_ANNOTATION: token}
        return pod

    async def _make_create_pod_request(self, pod, request_timeout):
        """KubeSpawner's pod create, made safe to retry.

        When a create times out on the hub's side the API server usually made the pod anyway; KubeSpawner's
        retry then meets 409, deletes that pod (waiting for it to go), and creates it again, and on a busy hub
        that cycle can eat the whole retry budget ("Could not create pod", seen with 300 users starting at
        once). Before a retry this looks for the pod first: if it carries this start's annotation, the lost
        create succeeded and the start goes on with it. A pod from anything else still gets KubeSpawner's
        treatment (409, delete, create again).
        """
        if self._create_attempted:
            mine = await self._pod_is_from_this_start(pod.metadata.name, request_timeout)
            if mine is None:
                return False  # could not tell: try again later
            if mine:
                self.log.info("Pod %s/%s from this start's earlier create exists; using it", self.namespace,
                              pod.metadata.name)
                return True
        self._create_attempted = True
        return await super()._make_create_pod_request(pod, request_timeout)

    async def _pod_is_from_this_start(self, pod_name: str, request_timeout: float) -> bool | None:
        token = getattr(self, "_start_token", None)
        if not token:
            return False
        reflector = getattr(self, "pod_reflector", None)
        seen = reflector.pods.get(f"{self.namespace}/{pod_name}") if reflector is not None else None
        meta = (seen or {}).get("metadata") or {}
        if (meta.get("annotations") or {}).get(START_ANNOTATION) == token and not meta.get("deletionTimestamp"):
            return True
        try:
            existing = await asyncio.wait_for(self.api.read_namespaced_pod(pod_name, self.namespace),
                                              request_timeout)
        except asyncio.TimeoutError:
            return None
        except ApiException as e:
            if e.status == 404:
                return False
            if e.status in TRANSIENT_STATUSES:
                return None
            raise
        return ((existing.metadata.annotations or {}).get(START_ANNOTATION) == token
                and existing.metadata.deletion_timestamp is None)

    # -- deletes that survive a hiccup --------------------------------------------------------------

    async def stop(self, now=False):
        """KubeSpawner's stop; a pod the API would not delete is deleted in the background later.

        JupyterHub (5 and 6) records the server as stopped whatever ``stop`` does, and drops the error without a
        word: a refused delete (403, or 5xx past the retries) would leave the pod running, holding its node and
        GPU, with nothing in the log. Here the refusal is logged with the API's answer, the pod (by uid, so never
        the user's next one) is deleted as soon as the API allows it, and the error is raised as
        ``PodDeleteFailed``, which a start that met the leftover shows the user. The user's next start replaces
        the leftover too (KubeSpawner deletes a pod in its way).
        """
        self._pod_delete_accepted = False
        try:
            return await super().stop(now=now)
        except Exception as e:
            if self._pod_delete_accepted:
                raise  # the delete was taken (the pod is terminating); only the wait for it to go ended
            leftover = self._schedule_leftover_delete(0 if now else self.delete_grace_period)
            cause = api_error_text(e) if isinstance(e, ApiException) else str(e) or type(e).__name__
            message = (f"the pod {self.namespace}/{self.pod_name} could not be deleted ({cause}); "
                       + ("it is deleted as soon as the Kubernetes API allows it" if leftover else
                          "it is replaced at the next start"))
            self.log.error("Stopping %s: %s", self._log_name, message)
            raise PodDeleteFailed(message) from e

    def _schedule_leftover_delete(self, grace_seconds: int) -> bool:
        reflector = getattr(self, "pod_reflector", None)
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
        uid = ((pod or {}).get("metadata") or {}).get("uid")
        if not uid:
            return False  # unknown to the watch: the next start deals with whatever is there
        key = (self.namespace, self.pod_name, uid)
        if key not in _leftover_tasks:
            task = asyncio.ensure_future(delete_leftover_pod(self.api, self.namespace, self.pod_name, uid,
                                                             grace_seconds, self.k8s_api_request_timeout, self.log))
            _leftover_tasks[key] = task
            task.add_done_callback(lambda _: _leftover_tasks.pop(key, None))
        return True

    async def _make_delete_pod_request(self, pod_name, delete_options, grace_seconds, request_timeout):
        """KubeSpawner's pod delete, with a transient API error retried instead of raised.

        KubeSpawner retries a delete that times out but raises on any error status, so one 500 while a server
        stops ends the stop, JupyterHub records the server as stopped, and the pod keeps running (and holding
        its GPU) until the user's next start. Here 429 and 5xx answers are retried like a timeout, within
        ``k8s_api_request_retry_timeout``; other errors (403, ...) end the stop at once (see ``stop``).
        """
        try:
            accepted = await super()._make_delete_pod_request(pod_name, delete_options, grace_seconds,
                                                              request_timeout)
        except ApiException as e:
            if e.status not in TRANSIENT_STATUSES:
                raise
            self.log.warning("Deleting pod %s/%s answered %s %s; retrying", self.namespace, pod_name, e.status,
                             e.reason)
            return False
        if accepted:
            self._pod_delete_accepted = True
        return accepted

    async def _make_delete_pvc_request(self, pvc_name, request_timeout):
        """KubeSpawner's claim delete (when a user is deleted), with 429 and 5xx answers retried as above.

        JupyterHub deletes the user even when ``delete_forever`` fails, so a claim whose delete was refused once
        would stay behind, owned by nobody.
        """
        try:
            return await super()._make_delete_pvc_request(pvc_name, request_timeout)
        except ApiException as e:
            if e.status not in TRANSIENT_STATUSES:
                raise
            self.log.warning("Deleting claim %s/%s answered %s %s; retrying", self.namespace, pvc_name, e.status,
                             e.reason)
            return False

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
        catalog = self.catalog
        key = (id(self.config), id(catalog))
        entry = _checked_configs.get(key)
        if entry is not None and entry[0] is self.config and entry[1] is catalog:
            return
        self.check_catalog()
        self.check_storage_config()
        self.check_course_config()
        _checked_configs[key] = (self.config, catalog)  # kept: their ids are not reused while listed
        while len(_checked_configs) > 16:
            _checked_configs.pop(next(iter(_checked_configs)))

    def check_catalog(self) -> None:
        """Validate the whole catalog against this configuration; raise ConfigError naming the key."""
        catalog = self.catalog
        if catalog is None:
            return
        path = f"{self.catalog_config_name}.profiles"
        if self.config.KubeSpawner.get("profile_list") or self.config.ProfilesKubeSpawner.get("profile_list"):
            raise ConfigError(f"{self.catalog_config_name}.profile_list",
                              "a catalog is configured; remove the raw profile_list (singleuser.profileList)")
        traits = self.traits()

        def validate(key: str, value: Any) -> None:
            traits[key]._validate(self, copy.deepcopy(value))

        ks.check_catalog(catalog, path, validate)

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Build a spawner from ``config`` without touching Kubernetes and validate everything it holds."""
        spawner = cls(config=config, _mock=True)
        spawner.check_catalog()
        spawner.check_storage_config()
        spawner.check_course_config()
