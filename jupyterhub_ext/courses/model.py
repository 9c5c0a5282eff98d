"""The course list: what an operator writes under ``courses``, read into typed, checked records. Pure.

One course is a name, a source and who gets it::

    courses:
      - name: cs101
        image: ghcr.io/uni/cs101-course:2026-12-01     # a course image (images/course): tree + seeder
        groups: [cs101]
      - name: stats200
        shared: courses/stats200                       # a folder of the shared volume, published by instructors
        groups: [stats200]
        on_deleted: respect

Each course goes to its own folder of the home (``folder``, by default its name). A course with no ``groups``
and no ``users`` is for everyone. Errors name the key as written (``ProfilesKubeSpawner.courses[1].image``).
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..catalog.access import Who, allowed
from ..catalog.model import Access
from ..catalog.reader import unknown_key_message
from ..errors import ConfigError
from ..seeder import DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, POLICY_CHOICES

# Where a course image (images/course/Dockerfile) keeps the course tree and the stdlib-only seeder package.
IMAGE_COURSE_DIR = "/course"
IMAGE_SEEDER_DIR = "/opt/course-seeder"

# How a course reaches the home, by the kind of its source.
SOURCE_KINDS = ("image", "path", "shared", "directory")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
FIELDS = frozenset({"name", "folder", *SOURCE_KINDS, "pull_policy", "groups", "users", "on_deleted",
                    "time_budget", "exclude", "required"})
PULLED_KINDS = ("image", "shared")  # sources whose delivery pulls an image (the course's, or the seeder's)
# A DNS label once prefixed (``course-<name>``, 63 characters at most), and a folder name with no surprises.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_FOLDER_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Course:
    name: str
    kind: str                      # one of SOURCE_KINDS
    source: str                    # the image reference, or the directory (in the image, shared volume, locally)
    folder: str                    # relative to the home; '' is the home itself
    access: Access = Access()
    on_deleted: str = DEFAULT_ON_DELETED
    time_budget: float = DEFAULT_TIME_BUDGET
    pull_policy: str = "IfNotPresent"
    exclude: tuple[str, ...] = ()
    required: bool = False         # a start whose course image cannot be pulled fails, instead of going without
    key: str = ""                  # where it was configured, for messages

    @property
    def source_key(self) -> str:
        """Where the source was configured: ``...courses[1].image``, or the ``course_source`` shorthand itself."""
        return self.key if self.key.endswith(".course_source") else f"{self.key}.{self.kind}"

    def is_for(self, who: Who) -> bool:
        """Members of a listed group and listed users get the course; a course listing neither is for all.
        Admins get the courses they are listed for, like anyone (an admin is not a student of every class)."""
        return allowed(self.access, who, admins_see_all=False)


def courses_for(courses: Iterable[Course], who: Who) -> list[Course]:
    """The courses this user gets, in configured order. A user who left a group no longer gets its updates;
    what the course put in their home stays (nothing here ever removes a folder)."""
    return [c for c in courses if c.is_for(who)]


def _str_list(value: Any, key: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, (list, tuple)) \
            or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(key, f"expected a list of names, got {value!r}")
    return frozenset(value)


def check_folder(folder: Any, key: str) -> str:
    """A relative folder of the home, without '..', hidden names or the seeder's own directory."""
    if not isinstance(folder, str):
        raise ConfigError(key, f"expected a folder name, got {folder!r}")
    norm = folder.strip("/")
    if norm in ("", "."):
        return ""
    if folder.startswith("/"):
        raise ConfigError(key, f"{folder!r} is absolute; give a folder of the home (e.g. 'cs101')")
    for part in norm.split("/"):
        if part in ("", ".", "..") or not _FOLDER_PART.match(part):
            raise ConfigError(key, f"{folder!r}: each part must be a plain name (letters, digits, '_', '.', '+', '-',"
                                   f" not starting with '.' or '-')")
    return norm


def _check_source(kind: str, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"expected a non-empty string, got {value!r}")
    if kind == "image":
        if any(ch.isspace() for ch in value) or value != value.strip():
            raise ConfigError(key, f"{value!r} is not an image reference")
        return value
    if kind == "path":
        if not value.startswith("/"):
            raise ConfigError(key, f"{value!r}: the course directory inside the user image must be absolute")
        return posixpath.normpath(value)
    if kind == "shared":
        norm = posixpath.normpath(value.strip("/"))
        if value.startswith("/") or norm.startswith("..") or norm == ".":
            raise ConfigError(key, f"{value!r}: give a folder of the shared volume, relative to it "
                                   f"(e.g. 'courses/cs101')")
        return norm
    return value  # directory: checked where it is read (the local run)


def parse_course(raw: Any, key: str, *, kinds: Sequence[str] = SOURCE_KINDS, on_deleted: str = DEFAULT_ON_DELETED,
                 time_budget: float = DEFAULT_TIME_BUDGET) -> Course:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping with a name and a source, got {raw!r}")
    for field in raw:
        if field not in FIELDS:
            raise ConfigError(f"{key}.{field}", unknown_key_message(field, FIELDS))
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{key}.name", f"expected a short lower-case name (letters, digits, '-', at most 40), "
                                         f"got {name!r}")
    given = [k for k in SOURCE_KINDS if k in raw]
    if len(given) != 1:
        raise ConfigError(key, f"course {name!r} needs exactly one source ({', '.join(kinds)}), "
                               f"got {', '.join(given) or 'none'}")
    kind = given[0]
    if kind not in kinds:
        raise ConfigError(f"{key}.{kind}", f"this hub cannot deliver a course from '{kind}'; "
                                           f"use one of: {', '.join(kinds)}")
    source = _check_source(kind, raw[kind], f"{key}.{kind}")
    folder = check_folder(raw.get("folder", name), f"{key}.folder")
    policy = raw.get("on_deleted", on_deleted)
    if policy not in POLICY_CHOICES:
        raise ConfigError(f"{key}.on_deleted", f"expected one of {', '.join(POLICY_CHOICES)}, got {policy!r}")
    budget = raw.get("time_budget", time_budget)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise ConfigError(f"{key}.time_budget", f"expected a positive number of seconds, got {budget!r}")
    pull = raw.get("pull_policy", "IfNotPresent")
    if pull not in PULL_POLICIES:
        raise ConfigError(f"{key}.pull_policy", f"expected one of {', '.join(PULL_POLICIES)}, got {pull!r}")
    if "pull_policy" in raw and kind != "image":
        raise ConfigError(f"{key}.pull_policy", "only a course image is pulled")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError(f"{key}.required", f"expected true or false, got {required!r}")
    if "required" in raw and kind not in PULLED_KINDS:
        raise ConfigError(f"{key}.required", "only a course delivered from an image can be missing at a start; "
                                             f"this one is a '{kind}' course")
    exclude = raw.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, str) and e for e in exclude):
        raise ConfigError(f"{key}.exclude", f"expected a list of file name patterns, got {exclude!r}")
    if any("{" in e or "}" in e for e in exclude):  # KubeSpawner formats init containers with the user's fields
        raise ConfigError(f"{key}.exclude", "patterns may not contain braces (use '*' and '?')")
    return Course(name=name, kind=kind, source=source, folder=folder,
                  access=Access(groups=_str_list(raw.get("groups"), f"{key}.groups"),
                                users=_str_list(raw.get("users"), f"{key}.users")),
                  on_deleted=policy, time_budget=float(budget),
                  pull_policy=pull, exclude=tuple(exclude), required=required, key=key)


def parse_courses(raw: Any, key: str, **kwargs: Any) -> tuple[Course, ...]:
    """Every course of the list, checked, and the list as a whole: names unique, folders apart."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(key, f"expected a list of courses, got {raw!r}")
    courses = tuple(parse_course(item, f"{key}[{i}]", **kwargs) for i, item in enumerate(raw))
    seen: dict[str, Course] = {}
    for c in courses:
        if c.name in seen:
            raise ConfigError(f"{c.key}.name", f"course {c.name!r} is also {seen[c.name].key}")
        seen[c.name] = c
    check_folders_apart(courses)
    return courses


def check_folders_apart(courses: Sequence[Course]) -> None:
    """Two courses in one folder, or one inside another's, would share (and fight over) one manifest."""
    for i, a in enumerate(courses):
        for b in courses[:i]:
            if a.folder == b.folder or _inside(a.folder, b.folder) or _inside(b.folder, a.folder):
                where = "the home itself" if "" in (a.folder, b.folder) else f"{a.folder!r} and {b.folder!r}"
                raise ConfigError(f"{a.key}.folder", f"courses {b.name!r} and {a.name!r} would share a folder "
                                                     f"({where}); give each its own")


def _inside(inner: str, outer: str) -> bool:
    return outer == "" or inner.startswith(outer + "/")
