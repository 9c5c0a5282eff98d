"""Course material: the seeder wired as the user container's postStart hook.

The course is baked into the user image (``course_source``); on every start the seeder reconciles it with the
student's home, never overwriting or deleting their work (docs/seeder.md). A postStart hook the operator already
set keeps running: it runs first, then the seeder, in one hook (Kubernetes allows one postStart handler).
"""

from __future__ import annotations

import copy
import shlex
from typing import Any

from traitlets import Enum, Float, HasTraits, Unicode

from .errors import ConfigError
from .seeder import DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, MODULE, POLICY_CHOICES, hook_command


class CourseMixin(HasTraits):
    course_source = Unicode(
        "",
        config=True,
        help="""Directory of course material inside the user image (e.g. ``/opt/course``). Empty: no seeding.

        When set, the seeder runs from the container's postStart hook on every start and puts the course files
        in the user's home, updating untouched files and never overwriting or deleting the user's work.""",
    )
    course_dest = Unicode(
        "/home/jovyan",
        config=True,
        help="Directory inside the user container the course files go to (the home, or a sub-directory of it).",
    )
    course_on_deleted = Enum(
        list(POLICY_CHOICES),
        default_value=DEFAULT_ON_DELETED,
        config=True,
        help="What the seeder does with a course file the user deleted (see docs/seeder.md for the choices).",
    )
    course_time_budget = Float(
        DEFAULT_TIME_BUDGET,
        config=True,
        help="""Seconds the seeder may take at one start before it stops cleanly (the next start finishes the job).
        Keep it well under ``start_timeout``.""",
    )
    course_python = Unicode(
        "python3",
        config=True,
        help="Python interpreter in the user image that runs the seeder (standard library only, 3.8+).",
    )

    def course_hook(self) -> list[str] | None:
        """The seeder's argv, or None when no course is configured. Raises ConfigError for impossible settings."""
        if not self.course_source:
            return None
        try:
            return hook_command(self.course_source, self.course_dest, time_budget=self.course_time_budget,
                                on_deleted=self.course_on_deleted, python=self.course_python, module=MODULE)
        except ValueError as e:
            raise ConfigError(f"{type(self).__name__}.course_source", str(e)) from None

    def combined_lifecycle_hooks(self, hooks: dict[str, Any]) -> dict[str, Any]:
        """``hooks`` (the configured lifecycle_hooks) with the seeder added to postStart."""
        seeder = self.course_hook()
        if seeder is None:
            return hooks
        hooks = copy.deepcopy(hooks or {})
        existing = hooks.get("postStart")
        if existing is None:
            hooks["postStart"] = {"exec": {"command": seeder}}
            return hooks
        command = (existing.get("exec") or {}).get("command")
        if not command or set(existing) != {"exec"}:
            raise ConfigError(f"{type(self).__name__}.lifecycle_hooks.postStart",
                              "only an exec postStart hook can run together with the course seeder")
        # the operator's hook first (its failure still fails the start, as before), then the seeder
        hooks["postStart"] = {"exec": {"command": ["/bin/sh", "-c",
                                                   f"{shlex.join(command)} && {shlex.join(seeder)}"]}}
        return hooks

    def check_course_config(self) -> None:
        self.combined_lifecycle_hooks(getattr(self, "lifecycle_hooks", {}) or {})
