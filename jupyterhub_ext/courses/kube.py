"""Courses on Kubernetes: the delivery settings, their start-up checks, and the pod parts of each start.

Reads the storage settings of :class:`~jupyterhub_ext.storage.mixin.StorageMixin` (the home's mount, the shared
volume) and KubeSpawner's own traits (uid, gid, volume_mounts, lifecycle_hooks); the pure work is in
:mod:`.plan`.
"""

from __future__ import annotations

import asyncio
import copy
import posixpath
import shlex
from typing import Any, AsyncIterator, Callable, Mapping

from traitlets import Dict, Enum, Unicode

from ..catalog.access import Who
from ..catalog.quantities import QuantityError, parse_cpu, parse_memory
from ..errors import ConfigError, ShownError
from ..storage.plan import SHARED_VOLUME
from ..storage.settings import within
from ..traitvalues import items, mount_path_of, name_of, put, without
from .model import Course
from .plan import DELIVERIES, CoursePlan, Delivery, Home, Shared, plan_courses, post_start_command
from .traits import CourseListTraits
from .unavailable import left_out_notice, refusal, unpullable

# KubeSpawner orders a dict-form value by key: '~' sorts after letters and digits, so the course init containers
# run last, after the ownership fix and the chart's own (the home is ready and owned by the user by then).
LAST_KEY_PREFIX = "~"
DEFAULT_INIT_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
# what apply_courses changes, kept as it was before so that a start can be planned again without some courses
COURSE_TRAITS = ("init_containers", "volumes", "volume_mounts", "lifecycle_hooks")
WATCH_INTERVAL = 1.0  # seconds between looks at the reflectors' copy of the pod (memory, not the API)


class CourseUnavailable(ShownError):
    """A start that must not go on without a required course whose image cannot be pulled."""


class KubeCourseMixin(CourseListTraits):
    course_kinds = ("image", "shared", "path")

    # this start's: the plan applied, the traits before it, the courses left out, the notes for the progress page
    _course_plan: CoursePlan | None = None
    _course_who: Who | None = None
    _before_courses: dict[str, Any] | None = None
    _courses_left_out: frozenset[str] = frozenset()
    _course_notes: tuple[str, ...] = ()
    _course_noted: asyncio.Event = asyncio.Event()  # replaced at each start (new_course_delivery)

    course_dest = Unicode(
        "/home/jovyan",
        config=True,
        help="With ``course_source``: where in the user container the course goes (the home or a folder in it).",
    )
    course_delivery = Enum(
        list(DELIVERIES),
        default_value="init-container",
        config=True,
        help="""How an ``image`` course reaches the home.

        - ``init-container`` (default): the course image runs the seeder as the user, with the home mounted,
          before the notebook server starts. Works with any user image (no Python or seeder needed in it).
        - ``image-volume``: the course image is mounted read-only (a Kubernetes image volume: the cluster must
          have them, ImageVolume) and the seeder runs from the postStart hook with the user image's
          ``course_python``. No extra container; the user image must have Python 3.8+.""",
    )
    course_seeder_image = Unicode(
        "",
        config=True,
        help="""Image that runs the seeder for ``shared`` courses (any image built from images/course). Needed
        only when a course is published on the shared volume.""",
    )
    course_init_resources = Dict(
        default_value=DEFAULT_INIT_RESOURCES,
        config=True,
        help="""Resources of each course init container (``requests``/``limits`` of cpu and memory). The
        seeder is light: copying and hashing files, at most a few hundred MB of memory.""",
    )

    def legacy_course(self) -> dict[str, Any] | None:
        if not self.course_source:
            return None
        home = self.home_mount_path
        dest = posixpath.normpath(self.course_dest or home)
        if not within(dest, home):
            raise ConfigError(self.config_key("course_dest"), f"{self.course_dest!r} must be the home "
                                                              f"({home!r}) or a folder in it")
        return {"name": "course", "path": self.course_source, "folder": posixpath.relpath(dest, home)}

    # -- start-up ------------------------------------------------------------------------------------

    def check_course_config(self) -> None:
        """Refuse, naming the key, a course list or delivery that could not work for some user."""
        courses = self.course_list()
        self._check_init_resources()
        for course in courses:
            self._check_deliverable(course)
        if any(self._in_post_start(c) for c in courses):
            self._operator_post_start(self.lifecycle_hooks)  # it can run together with the seeder

    def _in_post_start(self, course: Course) -> bool:
        return course.kind == "path" or (course.kind == "image" and self.course_delivery == "image-volume")

    def _check_deliverable(self, course: Course) -> None:
        in_init = course.kind == "shared" or (course.kind == "image" and self.course_delivery == "init-container")
        if in_init and self.home_mode == "none" and not any(
                mount_path_of(m) == self.home_mount_path for m in items(self.volume_mounts)):
            raise ConfigError(course.source_key, f"course {course.name!r} is seeded by an init "
                              "container, which needs the home on a volume: set home_mode to efs or pvc, or "
                              f"mount a volume at home_mount_path ({self.home_mount_path!r})")
        if course.kind == "shared":
            if not self.shared_pvc:
                raise ConfigError(f"{course.key}.shared", f"course {course.name!r} is published on the shared "
                                                          "volume, and none is configured: set shared_pvc")
            if not self.course_seeder_image:
                raise ConfigError(self.config_key("course_seeder_image"),
                                  f"course {course.name!r} is published on the shared volume; set "
                                  "course_seeder_image to a course image (images/course) to run the seeder")

    def _check_init_resources(self) -> None:
        key = self.config_key("course_init_resources")
        for kind, values in self.course_init_resources.items():
            if kind not in ("requests", "limits") or not isinstance(values, Mapping):
                raise ConfigError(f"{key}.{kind}", "expected requests or limits, each a mapping of cpu and memory")
            for resource, value in values.items():
                parse = {"cpu": parse_cpu, "memory": parse_memory}.get(resource)
                if parse is None:
                    raise ConfigError(f"{key}.{kind}.{resource}", "only cpu and memory are set for the seeder")
                try:
                    parse(value)
                except QuantityError as e:
                    raise ConfigError(f"{key}.{kind}.{resource}", str(e)) from None

    # -- each start ----------------------------------------------------------------------------------

    def new_course_delivery(self) -> None:
        """At the beginning of a start: every course of the user is tried again."""
        self._course_plan = None
        self._course_who = None
        self._before_courses = None
        self._courses_left_out = frozenset()
        self._course_notes = ()
        self._course_noted = asyncio.Event()

    def apply_courses(self, who: Who) -> CoursePlan:
        """Add this user's courses to the pod: run after the storage plan, whose home mount they use."""
        self._before_courses = {name: copy.deepcopy(getattr(self, name)) for name in COURSE_TRAITS}
        self._course_who = who
        courses = [c for c in self.courses_of(who) if c.name not in self._courses_left_out]
        self._course_plan = CoursePlan()
        if not courses:
            return self._course_plan
        home_mount = next((m for m in items(self.volume_mounts) if mount_path_of(m) == self.home_mount_path), None)
        home = Home(path=self.home_mount_path, mount=_as_dict(home_mount) if home_mount is not None else None)
        delivery = Delivery(mode=self.course_delivery, uid=self.uid, gid=self.gid, python=self.course_python,
                            seeder_image=self.course_seeder_image, resources=self.course_init_resources)
        shared = Shared(SHARED_VOLUME, self.shared_subpath) if self.shared_pvc else None
        plan = self._course_plan = plan_courses(courses, home, delivery, shared)
        self.volumes = put(self.volumes, plan.volumes.values(), name_of, key=name_of)
        self.volume_mounts = put(self.volume_mounts, plan.volume_mounts.values(), mount_path_of, key=mount_path_of)
        current = without(self.init_containers, plan.init_containers, name_of)
        self.init_containers = put(current, plan.init_containers.values(), name_of,
                                   key=lambda c: LAST_KEY_PREFIX + name_of(c))
        self.lifecycle_hooks = self.combined_lifecycle_hooks(self.lifecycle_hooks, plan.post_start)
        self.log.info("Courses for %s: %s", who.name,
                      ", ".join(f"{name} ({how})" for name, how in plan.delivered.items()))
        return plan

    # -- a course image that cannot be pulled -------------------------------------------------------------

    async def watch_course_images(self, is_this_start: Callable[[dict], bool]) -> dict[str, str]:
        """Return, once some appear, the courses of this start whose image cannot be pulled (name -> why).

        Reads the pod and its events as KubeSpawner's reflectors hold them (``is_this_start`` tells this start's
        pod from an earlier one of the same name); runs beside the start and is cancelled when the start ends."""
        while True:
            plan = self._course_plan
            if plan is not None and plan.pulled:
                reflector = self.pod_reflector
                pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
                if pod is not None and is_this_start(pod):
                    failed = unpullable(pod, self._pod_events(), plan.pulled)
                    if failed:
                        return failed
            await asyncio.sleep(WATCH_INTERVAL)

    def _pod_events(self) -> list[dict]:
        if not any(p.volume for p in (self._course_plan.pulled.values() if self._course_plan else ())):
            return []  # an init container's pull shows in the pod's status; only image volumes need events
        try:
            return list(self.events)
        except Exception:  # the events reflector is optional (events_enabled)
            return []

    async def start_without_courses(self, failed: Mapping[str, str]) -> None:
        """This start's pod cannot start: some course images cannot be pulled. Fail at once if one of them is
        ``required``; otherwise delete the pod and plan the start again without them, telling the user why.
        The caller creates the pod again."""
        plan = self._course_plan
        assert plan is not None
        names = sorted(failed)
        required = [n for n in names if plan.pulled[n].required]
        if required:
            message = refusal(required, failed, plan.pulled)
            self.log.warning("Start of %s: %s", self._log_name, message)
            raise CourseUnavailable(message)
        note = left_out_notice(names, failed, plan.pulled)
        self.log.warning("Start of %s without courses %s: %s", self._log_name, ", ".join(names),
                         "; ".join(f"{n}: {failed[n]}" for n in names))
        self._course_notes += (note,)
        self._course_noted.set()
        await self.stop(now=True)
        before = self._before_courses or {}
        for name, value in before.items():
            setattr(self, name, value)
        self._courses_left_out |= frozenset(names)
        assert self._course_who is not None
        self.apply_courses(self._course_who)

    async def progress(self) -> AsyncIterator[dict]:
        """KubeSpawner's progress events, with this start's course notes (a course left out, and why) as soon as
        they are made, not only with KubeSpawner's next event (which follows one pod: not the one made again)."""
        upstream = super().progress().__aiter__()
        told, percent = 0, 0
        next_event = asyncio.ensure_future(upstream.__anext__())
        try:
            while True:
                noted = asyncio.ensure_future(self._course_noted.wait())
                done, _ = await asyncio.wait({next_event, noted}, return_when=asyncio.FIRST_COMPLETED)
                noted.cancel()
                self._course_noted.clear()
                while told < len(self._course_notes):
                    yield {"progress": percent, "message": self._course_notes[told]}
                    told += 1
                if next_event in done:
                    try:
                        event = next_event.result()
                    except StopAsyncIteration:
                        return
                    percent = event.get("progress", percent)
                    yield event
                    next_event = asyncio.ensure_future(upstream.__anext__())
        finally:
            next_event.cancel()

    def combined_lifecycle_hooks(self, hooks: Any, commands: list[list[str]]) -> Any:
        """``hooks`` with the seeder ``commands`` added to postStart, after the operator's own exec hook."""
        seeder = post_start_command(commands)
        if seeder is None:
            return hooks
        command = self._operator_post_start(hooks)
        hooks = copy.deepcopy(hooks or {})
        if command is None:
            hooks["postStart"] = {"exec": {"command": seeder}}
        else:  # the operator's hook first (its failure still fails the start, as before), then the seeder
            hooks["postStart"] = {"exec": {"command": ["/bin/sh", "-c",
                                                       f"{shlex.join(command)} && {shlex.join(seeder)}"]}}
        return hooks

    def _operator_post_start(self, hooks: Any) -> list[str] | None:
        """The configured postStart exec command, or None; another kind of hook cannot share postStart."""
        existing = (hooks or {}).get("postStart")
        if existing is None:
            return None
        command = (existing.get("exec") or {}).get("command")
        if not command or set(existing) != {"exec"}:
            raise ConfigError(f"{self.config_key('lifecycle_hooks')}.postStart",
                              "only an exec postStart hook can run together with the course seeder")
        return list(command)


def _as_dict(mount: Any) -> dict:
    if isinstance(mount, Mapping):
        return dict(mount)
    return {"name": name_of(mount), "mountPath": mount_path_of(mount),
            **({"subPath": mount.sub_path} if getattr(mount, "sub_path", None) else {})}
