"""The course settings both spawners share: the course list, the single-course shorthand, the seeder's defaults.

Each spawner says which sources it can deliver (``course_kinds``) and what the shorthand ``course_source`` is
(``legacy_course``); the list is parsed once per distinct configuration and checked at start-up like the catalog.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

from traitlets import Enum, Float, HasTraits, List, Unicode

from ..catalog.access import Who
from ..errors import ConfigError
from ..seeder import DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, POLICY_CHOICES
from .model import Course, courses_for, parse_courses


class CourseListTraits(HasTraits):
    """The configured courses, as typed records. Subclasses set ``course_kinds`` and ``legacy_course``."""

    course_kinds: tuple[str, ...] = ()
    catalog_config_name: str  # the section errors name (CatalogMixin's)

    courses = List(
        config=True,
        help="""Courses, each seeded into its own folder of the home of the users it is for. Each entry has a
        ``name`` (lower case, also the folder unless ``folder`` is given), exactly one source (``image``: a course
        image built from images/course; ``shared``: a folder of the shared volume that instructors write;
        ``path``: a directory inside the user image; ``directory``: a directory of this machine, local run only),
        and optionally ``groups``/``users`` (who gets it; neither: everyone), ``on_deleted``, ``time_budget``,
        ``exclude`` (file name patterns left out), ``pull_policy`` and ``required`` (image and shared courses:
        a start whose course image cannot be pulled fails instead of going on without the course). A user who leaves a group
        stops getting updates; what the course put in their home stays. See docs/seeder.md.""",
    )
    course_source = Unicode(
        "",
        config=True,
        help="""Shorthand for one course for everyone, from a directory inside the user image (Kubernetes) or of
        this machine (local run), seeded into ``course_dest``. Empty: none. Use ``courses`` for anything else.""",
    )
    course_on_deleted = Enum(
        list(POLICY_CHOICES),
        default_value=DEFAULT_ON_DELETED,
        config=True,
        help="What the seeder does with a course file the user deleted, for courses that do not say (docs/seeder.md).",
    )
    course_time_budget = Float(
        DEFAULT_TIME_BUDGET,
        config=True,
        help="""Seconds the seeder may take for one course at one start before it stops cleanly (the next start
        finishes the job), for courses that do not say. Keep it well under ``start_timeout``.""",
    )
    course_python = Unicode(
        "python3",
        config=True,
        help="Python interpreter in the user image that runs the seeder from the postStart hook (3.8+, stdlib only).",
    )

    def legacy_course(self) -> dict[str, Any] | None:
        """``course_source`` as one entry of the course list, or None. None here: a spawner that offers the
        shorthand says what it means there (a directory of the user image, or of this machine)."""
        return None

    def course_list(self) -> tuple[Course, ...]:
        """Every configured course, checked; raises ConfigError naming the key as written."""
        section = self.catalog_config_name
        legacy = self.legacy_course()
        if legacy is not None and self.courses:
            raise ConfigError(f"{section}.course_source", "set either course_source or courses, not both (a "
                                                          "course_source is one entry of courses)")
        if legacy is not None:
            raw, key = [legacy], f"{section}.course_source"
        else:
            raw, key = list(self.courses), f"{section}.courses"
        try:
            text = json.dumps(raw, sort_keys=True)
        except TypeError:
            raise ConfigError(key, "must be plain data (lists, mappings, strings, numbers)") from None
        if legacy is None:
            return _parsed(text, key, self.course_kinds, self.course_on_deleted, self.course_time_budget)
        try:
            courses = _parsed(text, "", self.course_kinds, self.course_on_deleted, self.course_time_budget)
        except ConfigError as e:  # the shorthand's errors name the shorthand's keys
            trait = "course_dest" if e.path.startswith("[0].folder") else "course_source"
            raise ConfigError(f"{section}.{trait}", e.message) from None
        return tuple(replace(c, key=key) for c in courses)

    def courses_of(self, who: Who) -> list[Course]:
        """The courses this user gets, in configured order."""
        return courses_for(self.course_list(), who)


@lru_cache(maxsize=32)
def _parsed(text: str, key: str, kinds: tuple[str, ...], on_deleted: str, time_budget: float) -> tuple[Course, ...]:
    # every form and start asks; the list is the same JSON text for the life of a configuration
    return parse_courses(json.loads(text), key, kinds=kinds, on_deleted=on_deleted, time_budget=time_budget)

