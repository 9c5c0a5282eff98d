"""Courses on Kubernetes: the delivery settings, their start-up checks, and the pod parts of each start.

Reads the storage settings of :class:`~jupyterhub_ext.storage.mixin.StorageMixin` (the home's mount, the shared
volume) and KubeSpawner's own traits (uid, gid, volume_mounts, lifecycle_hooks); the pure work is in
:mod:`.plan`.
"""

from __future__ import annotations

import copy
import posixpath
import shlex
from typing import Any, Mapping

from traitlets import Dict, Enum, Unicode

from ..catalog.access import Who
from ..catalog.quantities import QuantityError, parse_cpu, parse_memory
from ..errors import ConfigError
from ..storage.plan import SHARED_VOLUME
from ..storage.settings import within
from ..traitvalues import items, mount_path_of, name_of, put, without
from .model import Course
from .plan import DELIVERIES, CoursePlan, Delivery, Home, Shared, plan_courses, post_start_command
from .traits import CourseListTraits

# KubeSpawner orders a dict-form value by key: '~' sorts after letters and digits, so the course init containers
# run last, after the ownership fix and the chart's own (the home is ready and owned by the user by then).
LAST_KEY_PREFIX = "~"
DEFAULT_INIT_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}


class KubeCourseMixin(CourseListTraits):
    course_kinds = ("image", "shared", "path")

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

    def apply_courses(self, who: Who) -> CoursePlan:
        """Add this user's courses to the pod: run after the storage plan, whose home mount they use."""
        courses = self.courses_of(who)
        if not courses:
            return CoursePlan()
        home_mount = next((m for m in items(self.volume_mounts) if mount_path_of(m) == self.home_mount_path), None)
        home = Home(path=self.home_mount_path, mount=_as_dict(home_mount) if home_mount is not None else None)
        delivery = Delivery(mode=self.course_delivery, uid=self.uid, gid=self.gid, python=self.course_python,
                            seeder_image=self.course_seeder_image, resources=self.course_init_resources)
        shared = Shared(SHARED_VOLUME, self.shared_subpath) if self.shared_pvc else None
        plan = plan_courses(courses, home, delivery, shared)
        self.volumes = put(self.volumes, plan.volumes.values(), name_of, key=name_of)
        self.volume_mounts = put(self.volume_mounts, plan.volume_mounts.values(), mount_path_of, key=mount_path_of)
        current = without(self.init_containers, plan.init_containers, name_of)
        self.init_containers = put(current, plan.init_containers.values(), name_of,
                                   key=lambda c: LAST_KEY_PREFIX + name_of(c))
        self.lifecycle_hooks = self.combined_lifecycle_hooks(self.lifecycle_hooks, plan.post_start)
        self.log.info("Courses for %s: %s", who.name,
                      ", ".join(f"{name} ({how})" for name, how in plan.delivered.items()))
        return plan

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
