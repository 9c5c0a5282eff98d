"""How one user's courses reach their home: init containers, image volumes, postStart commands. Pure.

- ``image`` course, ``init-container`` delivery (the default): the course image itself runs the seeder in an
  init container, as the user, with the home mounted where the notebook container has it. Works with any user
  image, even one without Python; the course image needs no more than ``images/course`` gives it.
- ``image`` course, ``image-volume`` delivery: the course image is mounted read-only into the notebook container
  (a Kubernetes image volume, where the cluster supports them) and the seeder runs from the postStart hook with
  the user image's ``python3``. No extra container, but the user image must have Python 3.8+.
- ``shared`` course: a folder of the shared volume (instructors publish by writing it), read-only in an init
  container running ``course_seeder_image``.
- ``path`` course: a directory inside the user image, seeded from the postStart hook (images that carry the
  course themselves, like images/singleuser).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..seeder import hook_command
from .model import IMAGE_COURSE_DIR, IMAGE_SEEDER_DIR, Course

DELIVERIES = ("init-container", "image-volume")
CONTAINER_PREFIX = "course-"
IMAGE_VOLUME_ROOT = "/opt/jupyterhub-ext/courses"
INIT_SOURCE = "/course"          # where an init container sees a shared course folder
EXTRA_SECONDS = 30               # past the seeder's own budget before its container is stopped

# The seeder imported from a known directory first, in isolated mode: neither the student's home (the working
# directory of a hook) nor PYTHONPATH can put another ``seeder`` in its place. No braces: KubeSpawner formats
# init containers with the user's fields.
_RUNNER = "import runpy, sys; sys.path.insert(0, %r); runpy.run_module('seeder', run_name='__main__', alter_sys=True)"

# An init container must never fail the pod: the seeder exits 0 by itself; this also bounds a hung one
# (a stalled file system) and says so in the container's log.
INIT_GUARD = """\
limit="$1"; shift
timeout -k 5 "$limit" "$@"
code=$?
if [ "$code" != 0 ]; then
  echo "course-seeder: stopped with status $code after at most $limit s; the server starts without the rest" >&2
fi
exit 0
"""


@dataclass(frozen=True)
class Home:
    """Where the notebook container has the home: the mount (volume name, subPath) and its path."""

    path: str
    mount: Mapping[str, Any] | None          # the home's volumeMount in the notebook container, if on a volume


@dataclass(frozen=True)
class Shared:
    """The shared volume, for courses published on it."""

    volume: str
    subpath: str = ""


@dataclass(frozen=True)
class Delivery:
    """Everything about delivery that is the same for all courses of a start."""

    mode: str = "init-container"               # for image courses: one of DELIVERIES
    uid: int = 1000
    gid: int = 100
    python: str = "python3"                    # the user image's, for postStart hooks
    seeder_image: str = ""                     # runs shared courses
    resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pulled:
    """An image a course's delivery needs pulled, and where the pod reports on it."""

    image: str
    container: str = ""                  # the init container that runs it
    volume: str = ""                     # or the image volume that mounts it
    required: bool = False


@dataclass
class CoursePlan:
    init_containers: dict[str, dict] = field(default_factory=dict)     # by name, in order
    volumes: dict[str, dict] = field(default_factory=dict)             # by name
    volume_mounts: dict[str, dict] = field(default_factory=dict)       # notebook container's, by path
    post_start: list[list[str]] = field(default_factory=list)          # seeder commands, in order
    delivered: dict[str, str] = field(default_factory=dict)            # course name -> how, for the log
    pulled: dict[str, Pulled] = field(default_factory=dict)            # course name -> the image it needs

    @property
    def empty(self) -> bool:
        return not (self.init_containers or self.volumes or self.post_start)


def container_name(course: Course) -> str:
    return CONTAINER_PREFIX + course.name


def dest_of(course: Course, home: Home) -> str:
    return posixpath.join(home.path, course.folder) if course.folder else home.path


def seeder_argv(course: Course, source: str, dest: str, python: str, seeder_dir: str | None) -> list[str]:
    """The seeder's command line. ``seeder_dir``: the directory holding the standalone ``seeder`` package (a
    course image's); None runs the one installed in the user image (``jupyterhub_ext.seeder``)."""
    argv = hook_command(source, dest, time_budget=course.time_budget, on_deleted=course.on_deleted, python=python,
                        fail_safe=False, excludes=course.exclude)
    if seeder_dir is None:
        return argv
    assert argv[1:3] == ["-m", "jupyterhub_ext.seeder"], argv
    return [python, "-I", "-c", _RUNNER % seeder_dir, *argv[3:]]


def restricted_security(d: Delivery) -> dict[str, Any]:
    """Pod Security "restricted", as the user, with a read-only root: the seeder writes the home only."""
    return {"runAsUser": d.uid, "runAsGroup": d.gid, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def _init_container(course: Course, image: str, pull: str, argv: list[str], mounts: list[dict], d: Delivery) -> dict:
    limit = int(course.time_budget + EXTRA_SECONDS)
    container = {
        "name": container_name(course),
        "image": image,
        "imagePullPolicy": pull,
        "command": ["/bin/sh", "-c", INIT_GUARD, container_name(course), str(limit), *argv],
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "securityContext": restricted_security(d),
        "volumeMounts": mounts,
    }
    if d.resources:
        container["resources"] = {k: dict(v) for k, v in d.resources.items()}
    return container


def _home_mount(home: Home) -> dict:
    assert home.mount is not None
    mount = {k: v for k, v in home.mount.items() if k in ("name", "mountPath", "subPath")}
    return {**mount, "mountPath": home.path}


def plan_courses(courses: Sequence[Course], home: Home, d: Delivery, shared: Shared | None = None) -> CoursePlan:
    """The pod parts that seed each of ``courses`` (this user's, see model.courses_for) into the home.

    The caller has checked the combination at start-up (mixin.check_course_config): init containers need the
    home on a volume, shared courses a shared volume and a seeder image.
    """
    plan = CoursePlan()
    for course in courses:
        dest = dest_of(course, home)
        if course.kind == "path":
            plan.post_start.append(seeder_argv(course, course.source, dest, d.python, None))
            plan.delivered[course.name] = "postStart from the user image"
        elif course.kind == "image" and d.mode == "image-volume":
            volume = container_name(course)
            at = posixpath.join(IMAGE_VOLUME_ROOT, course.name)
            plan.volumes[volume] = {"name": volume, "image": {"reference": course.source,
                                                              "pullPolicy": course.pull_policy}}
            plan.volume_mounts[at] = {"name": volume, "mountPath": at, "readOnly": True}
            plan.post_start.append(seeder_argv(course, at + IMAGE_COURSE_DIR, dest, d.python,
                                               at + IMAGE_SEEDER_DIR))
            plan.delivered[course.name] = f"image volume {course.source}"
            plan.pulled[course.name] = Pulled(course.source, volume=volume, required=course.required)
        elif course.kind == "image":
            argv = seeder_argv(course, IMAGE_COURSE_DIR, dest, "python3", IMAGE_SEEDER_DIR)
            plan.init_containers[container_name(course)] = _init_container(
                course, course.source, course.pull_policy, argv, [_home_mount(home)], d)
            plan.delivered[course.name] = f"init container {course.source}"
            plan.pulled[course.name] = Pulled(course.source, container=container_name(course),
                                              required=course.required)
        elif course.kind == "shared":
            assert shared is not None
            sub = posixpath.join(shared.subpath, course.source) if shared.subpath else course.source
            mounts = [_home_mount(home), {"name": shared.volume, "mountPath": INIT_SOURCE, "subPath": sub,
                                          "readOnly": True}]
            argv = seeder_argv(course, INIT_SOURCE, dest, "python3", IMAGE_SEEDER_DIR)
            plan.init_containers[container_name(course)] = _init_container(
                course, d.seeder_image, "IfNotPresent", argv, mounts, d)
            plan.delivered[course.name] = f"init container from shared:{course.source}"
            plan.pulled[course.name] = Pulled(d.seeder_image, container=container_name(course),
                                              required=course.required)
        else:
            raise ValueError(f"course {course.name!r}: a {course.kind!r} source is for the local run only")
    return plan


def post_start_command(commands: Sequence[Sequence[str]]) -> list[str] | None:
    """One postStart exec for every seeder command (Kubernetes allows one handler), run one after another.

    It never fails the container (a failed postStart hook kills it and shows the user only
    ``FailedPostStartHook``): a command that cannot run at all (no ``python3`` in the image) is written to the
    seeder's log in the home instead, which the user can open, so the failure is never silent.
    """
    if not commands:
        return None
    if len(commands) == 1 and commands[0][:1] == ["/bin/sh"]:
        return list(commands[0])
    script = []
    args: list[str] = []
    for argv in commands:
        dest = argv[argv.index("--dest") + 1]
        start = len(args) + 1
        args += list(argv)
        end = len(args)
        quoted = " ".join(f'"${{{i}}}"' if i > 9 else f'"${i}"' for i in range(start, end + 1))
        log = f"{dest}/.course-seeder"
        script.append(f"{quoted} || {{ mkdir -p '{log}' && echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) course-seeder "
                      f"status=error could not run (exit $?): {argv[0]}\" >> '{log}/seeder.log'; }}")
    return ["/bin/sh", "-c", "\n".join(script) + "\nexit 0\n", "course-seeder", *args]
