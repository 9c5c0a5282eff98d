"""LocalProfilesSpawner: the catalog, access rules, home naming and seeder of ProfilesKubeSpawner, with each
user's JupyterLab as a local process instead of a pod (docs/local.md)."""

from __future__ import annotations

import asyncio
import copy
import functools
import os
import shutil
import sys
import time
from typing import Any, AsyncIterator

from jupyterhub.spawner import LocalProcessSpawner
from kubespawner import KubeSpawner
from traitlets import Dict, Enum, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Config

from ..catalog import kubespawner as ks
from ..catalog.access import ProfileView, View
from ..configured import ConfiguredValues
from ..courses.model import Course
from ..courses.traits import CourseListTraits
from ..errors import ConfigError, SpawnRefused
from ..profiles import CatalogMixin
from ..seeder import MODULE, hook_command
from ..storage.naming import home_subpath, user_fields
from ..storage.plan import writes_shared
from ..storage.traits import NamingTraits
from . import accounts, checks
from .checks import UID_RANGE
from .form import render_form
from .hardware import ACCELERATORS, detect_accelerators, unavailable_reason

DATA_ENV = "JUPYTERHUB_EXT_DATA"
CONTENTS_MANAGER = "jupyterhub_ext.local.contents.ReadOnlyDirsContentsManager"

# Spawner traits a catalog selection sets locally. The rest of a profile (image, command, node pool,
# accelerators, tolerations, KubeSpawner overrides) only means something on Kubernetes.
LOCAL_TRAITS = ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee", "environment", "start_timeout",
                "http_timeout", "default_url")

FORM_NOTE = ("Servers of this local hub run on this machine, as JupyterLab from this installation: a profile's "
             "image, size and node pool take effect on Kubernetes only.")


@functools.lru_cache(maxsize=16)
def _runtime_view(paths: tuple[str, ...]) -> accounts.RuntimeView:
    return accounts.runtime_view(list(paths))


@functools.lru_cache(maxsize=1)
def _detected_accelerators() -> tuple[str, ...]:
    return tuple(detect_accelerators())


class LocalProfilesSpawner(CatalogMixin, NamingTraits, CourseListTraits, ConfiguredValues, LocalProcessSpawner):
    """JupyterHub's LocalProcessSpawner offering the server-profile catalog, one home per user under a data
    directory, a shared folder, and the course seeder run before each start.

    Profiles that need hardware this machine lacks are shown on the form as unavailable, with the reason, and
    refused if requested anyway.
    """

    catalog_config_name = "LocalProfilesSpawner"
    course_kinds = ("directory",)

    settings_written_as = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""Settings this section holds that the operator wrote elsewhere, and the section errors about them
        name instead of LocalProfilesSpawner: {setting: section}. The repository's jupyterhub_config.py copies the
        catalog settings of helm/values.yaml's ``hub.config.ProfilesKubeSpawner`` and records them here as
        ``ProfilesKubeSpawner``, so a mistake there reads as it is written there. A setting given on the command
        line is named as written there (``LocalProfilesSpawner``).""",
    )

    def section_of(self, trait: str) -> str:
        return self.settings_written_as.get(trait, self.catalog_config_name)

    data_dir = Unicode(
        config=True,
        help=f"""Directory for everything the local run writes: homes, the shared folder, server logs (and, with
        the repository's jupyterhub_config.py, the hub's database, secrets and log). Default: ``${DATA_ENV}``, or
        ``.local-data`` in the working directory.""",
    )
    run_servers_as = Enum(
        list(accounts.RUN_MODES),
        default_value="auto",
        config=True,
        help="""Whose account each server runs as.

        - ``per-user``: every user their own unprivileged uid (``uid_base`` + n, no system account is made);
          homes are private and the shared folder is read-only for students, enforced by the kernel. Needs root.
        - ``hub-user``: every server runs as the hub's own account; the shared folder is read-only for students
          only through Jupyter (file browser, contents API), not for code they run.
        - ``auto`` (default): ``per-user`` when the hub runs as root, else ``hub-user``.
        """,
    )
    uid_base = Integer(
        50000,
        config=True,
        help=f"""``per-user`` mode: users get uids from ``uid_base + 1`` (remembered in
        ``<data_dir>/hub/accounts.json``, skipping uids of existing accounts), up to ``uid_base + {UID_RANGE - 1}``. ``uid_base`` itself is the group that
        may write the shared folder; it must not be an existing group.""",
    )
    accelerators = List(
        Unicode(),
        config=True,
        help=f"""Accelerators this machine has, from {', '.join(ACCELERATORS)}. Detected by default (``nvidia-smi``,
        ``/dev/nvidia*``, MIG devices in ``nvidia-smi -L``, ``/dev/neuron*``); set it to override the detection.""",
    )
    course_dest = Unicode(
        "",
        config=True,
        help="Folder of the home the course material goes to, relative to the home ('' for the home itself).",
    )

    def legacy_course(self) -> dict | None:
        if not self.course_source:
            return None
        return {"name": "course", "directory": self.course_source, "folder": self.course_dest or "."}

    @default("data_dir")
    def _data_dir_default(self) -> str:
        return os.path.abspath(os.environ.get(DATA_ENV) or ".local-data")

    @default("accelerators")
    def _accelerators_default(self) -> list[str]:
        return list(_detected_accelerators())

    @validate("accelerators")
    def _check_accelerators(self, proposal):
        unknown = [a for a in proposal.value if a not in ACCELERATORS]
        if unknown:
            raise TraitError(f"unknown accelerators {unknown}; expected some of {', '.join(ACCELERATORS)}")
        return proposal.value

    @default("course_python")
    def _course_python_default(self) -> str:
        return sys.executable

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        # the single-user server of the hub's own environment, whatever PATH the hub was started with
        own = os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")
        return [own if os.access(own, os.X_OK) else "jupyterhub-singleuser"]

    @default("default_url")
    def _default_url_default(self) -> str:
        return "/lab"

    @default("ip")
    def _ip_default(self) -> str:
        return "127.0.0.1"

    @default("start_timeout")
    def _start_timeout_default(self) -> int:
        return int(60 + self.course_time_budget)  # the seeder runs before the server, within this time

    @default("options_form")
    def _options_form_default(self):
        return self._render_form if self.catalog is not None else ""

    @default("options_from_form")
    def _options_from_form_default(self):
        return self._options_from_form

    @default("apply_user_options")  # JupyterHub >= 5.3 calls it before start(); refusals become HTTP 400
    def _apply_user_options_default(self):
        return self._apply_user_options if self.catalog is not None else None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._events: list[dict] = []
        self._starting = False
        self.selection = None
        self.home = ""

    # -- names and places ------------------------------------------------------------------------------

    @property
    def layout(self) -> accounts.Layout:
        return accounts.Layout(os.path.abspath(self.data_dir))

    @property
    def mode(self) -> str:
        return accounts.resolve_mode(self.run_servers_as)

    def home_subpath(self) -> str:
        """This user's directory under ``<data_dir>/homes``, named exactly as ProfilesKubeSpawner names it."""
        return home_subpath(self.home_subpath_template, self.home_dir_scheme, self.user.name,
                            user_fields(self.user.name, self.user.id))

    def writes_shared(self) -> bool:
        return writes_shared(self.who(), self.shared_write_groups)

    def identity(self) -> accounts.Identity:
        writes = self.writes_shared()
        if self.mode == accounts.HUB_USER:
            return accounts.Identity(None, None, (), 0o022, writes)
        registry = accounts.UidRegistry(os.path.join(self.layout.hub, "accounts.json"), self.uid_base + 1,
                                        self.uid_base + UID_RANGE - 1)
        uid = registry.uid_for(self.user.name)
        # instructors: the shared folder's group, and group-writable files so other instructors can edit them
        return accounts.Identity(uid, uid, (self.uid_base,) if writes else (), 0o002 if writes else 0o022, writes)

    # -- what this user may start here ---------------------------------------------------------------

    def local_profiles(self, view: View) -> tuple[list[ProfileView], list[tuple[ProfileView, str]]]:
        """(profiles this machine can run, [(profile, why not)]) among the ones this user may see."""
        available, unavailable = [], []
        for pview in view.profiles:
            reason = unavailable_reason(pview.profile, self.accelerators)
            if reason is None:
                available.append(pview)
            else:
                unavailable.append((pview, reason))
        return available, unavailable

    def _render_form(self, spawner: "LocalProfilesSpawner") -> str:
        view = spawner.user_view()
        available, unavailable = spawner.local_profiles(view)
        listed = {e["slug"]: e for e in ks.profile_list(view)}
        entries = [listed[p.profile.slug] for p in available]
        if entries and not any(e["default"] for e in entries):
            entries = copy.deepcopy(entries)
            entries[0]["default"] = True  # the catalog's default needs hardware this machine lacks
        user_options = spawner.user_options if isinstance(spawner.user_options, dict) else {}
        try:
            spawner.selection_for(user_options)
        except SpawnRefused:
            user_options = {}  # stale or refused options are not pre-selected
        return render_form(entries, [(listed[p.profile.slug], reason) for p, reason in unavailable],
                           user_options=user_options, note=FORM_NOTE)

    def _options_from_form(self, formdata: dict) -> dict:
        # KubeSpawner's own parsing of its form (profile + profile-option-<slug>--<option>), then our check, so
        # a bad submission is answered on the form itself
        user_options = KubeSpawner._options_from_form(self, formdata)
        if self.catalog is not None:
            self.selection_for(user_options)
        return user_options

    def selection_for(self, user_options: Any):
        """As ProfilesKubeSpawner's, and also refuse a profile this machine cannot run, saying why."""
        if not isinstance(user_options, dict):
            return super().selection_for(user_options)
        view = self.user_view()
        available, unavailable = self.local_profiles(view)
        slug = user_options.get("profile")
        if slug in (None, ""):
            if view.profiles and not available:
                reasons = "; ".join(f"{p.profile.display_name}: {why}" for p, why in unavailable)
                raise SpawnRefused(f"None of your profiles can run on this machine ({reasons}).")
            if view.default is not None and view.default not in available:
                user_options = {**user_options, "profile": available[0].profile.slug}
        elif isinstance(slug, str):
            why = next((why for p, why in unavailable if p.profile.slug == slug), None)
            if why is not None:
                self.log.warning("Refused spawn request for %s: %s is unavailable here", self.user.name, slug)
                raise SpawnRefused(f"{view.by_slug[slug].profile.display_name} is not available on this "
                                   f"machine: it {why}.")
        return super().selection_for(user_options)

    # -- one start -------------------------------------------------------------------------------------

    def _apply_user_options(self, spawner: "LocalProfilesSpawner", user_options: Any) -> None:
        spawner.selection = spawner.selection_for(user_options)
        spawner._apply_selection(spawner.selection)

    def _apply_selection(self, selection) -> None:
        self.restore_configured(LOCAL_TRAITS + ("popen_kwargs",))
        overrides = ks.overrides(selection, {})
        for name in LOCAL_TRAITS:
            if name not in overrides:
                continue
            value = overrides[name]
            if name == "environment":
                value = {**self.configured("environment"), **value}
            setattr(self, name, value)
        self._k8s_only = sorted(k for k in overrides if k not in LOCAL_TRAITS and k != "extra_labels")
        self.environment = {**self.environment, "JUPYTERHUB_EXT_PROFILE": selection.profile.slug}

    def _event(self, progress: int, message: str) -> None:
        self._events.append({"progress": progress, "message": message})

    async def progress(self) -> AsyncIterator[dict]:
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if not self._starting:
                return
            await asyncio.sleep(0.2)

    async def start(self):
        self._events, self._starting = [], True
        try:
            if self.catalog is not None:
                # again, for JupyterHub < 5.3 (no apply_user_options) and for hub restarts; it is idempotent
                self._apply_user_options(self, self.user_options)
                self.log.info("Starting profile %r for %s with %s (Kubernetes-only settings not used here: %s)",
                              self.selection.profile.slug, self.user.name, self.selection.labels(),
                              ", ".join(self._k8s_only) or "none")
            ident = self.identity()
            self._event(10, "Preparing your home directory")
            layout = self.layout
            layout.prepare(self.mode, self.uid_base if self.mode == accounts.PER_USER else None)
            home, warnings = accounts.prepare_home(layout, self.home_subpath(), ident)
            for warning in warnings:
                self.log.warning("%s: %s", self.user.name, warning)
            self.home, self._identity = home, ident
            courses = self.courses_of(self.who())
            if courses:
                self._event(30, "Copying course material")
            for course in courses:
                await self._seed(home, ident, course)
            self._event(60, "Starting JupyterLab")
            log_path = os.path.join(layout.server_logs, os.path.basename(home) + ".log")
            log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - the child keeps its own copy
            try:
                log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start of {self.user.name}'s server\n".encode())
                self.popen_kwargs = {**self.configured("popen_kwargs"), "umask": ident.umask, "cwd": home,
                                     "stdout": log, "stderr": log, "stdin": open(os.devnull, "rb")}
                self.log.info("Server of %s: home %s, %s, shared folder %s, log %s", self.user.name, home,
                              f"uid {ident.uid}" if ident.uid is not None else "the hub's own account",
                              "read-write" if ident.writes_shared else "read-only", log_path)
                return await super().start()
            finally:
                log.close()
                stdin = self.popen_kwargs.get("stdin")
                if stdin is not None:
                    stdin.close()
        finally:
            self._starting = False

    def seed_command(self, home: str, course: Course) -> list[str]:
        dest = os.path.normpath(os.path.join(home, course.folder)) if course.folder else home
        try:
            return hook_command(os.path.abspath(course.source), dest, time_budget=course.time_budget,
                                on_deleted=course.on_deleted, python=self.course_python, module=MODULE,
                                fail_safe=False, excludes=course.exclude)
        except ValueError as e:
            raise ConfigError(course.source_key, str(e)) from None

    async def _seed(self, home: str, ident: accounts.Identity, course: Course) -> None:
        """Run the seeder as the user, in their home, before their server starts. Never fails the start."""
        argv = self.seed_command(home, course)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "USER": self.user.name,
               "LANG": os.environ.get("LANG", "C.UTF-8")}
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=home, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, **ident.popen_kwargs(self.runtime_view()))
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), course.time_budget + 30)
            except asyncio.TimeoutError:
                proc.kill()
                out, _ = await proc.communicate()
                self.log.warning("Course seeder for %s did not stop within its budget; killed", self.user.name)
        except OSError as e:
            self.log.warning("Course seeder for %s could not run (%s); starting without course material",
                             self.user.name, e)
            return
        text = out.decode("utf-8", "replace").strip()
        troubled = proc.returncode != 0 or "Traceback" in text or "\nerror: " in f"\n{text}"
        level = self.log.warning if troubled else self.log.info
        level("Course seeder for %s (%.1fs, exit %s): %s", self.user.name, time.monotonic() - started,
              proc.returncode, text.splitlines()[-1] if text else "no output")
        for line in text.splitlines()[:-1]:
            self.log.warning("Course seeder for %s: %s", self.user.name, line)

    # -- the process -----------------------------------------------------------------------------------

    def make_preexec_fn(self, name: str):
        # JupyterHub's own looks the user up in /etc/passwd; ours switches to the uid of identity()
        ident = getattr(self, "_identity", None)
        return ident.preexec_fn(self.runtime_view()) if ident is not None else None

    def runtime_view(self) -> accounts.RuntimeView:
        """What a per-user server needs but cannot reach by itself (see accounts.runtime_view)."""
        if self.mode != accounts.PER_USER:
            return accounts.RuntimeView(())
        return _runtime_view(tuple(self._needed_paths()))

    def _needed_paths(self) -> list[str]:
        import jupyterhub_ext

        paths = [sys.executable, sys.prefix, sys.base_prefix, self.course_python,
                 os.path.dirname(os.path.dirname(os.path.abspath(jupyterhub_ext.__file__))),
                 os.path.abspath(self.data_dir)]
        command = shutil.which(self.cmd[0]) if self.cmd else None
        if command:
            paths.append(command)
        paths += [os.path.abspath(c.source) for c in self.course_list()]
        return paths

    def user_env(self, env: dict) -> dict:
        env["USER"] = self.user.name
        env["HOME"] = self.home
        env["SHELL"] = shutil.which("bash") or "/bin/sh"
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        ident = getattr(self, "_identity", None)
        if ident is not None and not ident.writes_shared:
            # the file browser and contents API refuse writes under the shared folder (and mark it read-only)
            args += [f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}",
                     f"--ReadOnlyDirsContentsManager.read_only_dirs={self.layout.shared}"]
        return args

    # -- start-up check --------------------------------------------------------------------------------

    @classmethod
    def for_checks(cls, config: Config) -> "LocalProfilesSpawner":
        return cls(config=config)

    def startup_checks(self) -> list[tuple[str, Any]]:
        """The start-up checks (jupyterhub_ext.z2jh.problems runs them): one, everything the local run needs."""
        return [("local", self.check_local_config)]

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Validate everything in ``config`` without starting anything; raise ConfigError naming the key."""
        try:
            spawner = cls.for_checks(config)
        except TraitError as e:  # a value of the wrong type or outside its choices
            raise ConfigError(cls.catalog_config_name, str(e)) from None
        spawner.check_local_config()

    def check_local_config(self) -> None:
        checks.check_local_spawner(self)
