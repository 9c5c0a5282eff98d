"""Course-material seeder: puts course files in a student's home and keeps them updated, never losing their work.

Runs inside the user image from a postStart hook (standard library only, Python 3.8+)::

    python3 -m jupyterhub_ext.seeder --source /opt/course --dest /home/jovyan

The hub side only needs :func:`hook_command`, which builds that hook. See docs/seeder.md.
This module imports nothing heavier than the model's constants, so the hub can import it freely.
"""

from __future__ import annotations

import math

from .model import DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, POLICY_CHOICES

__all__ = ["hook_command", "POLICY_CHOICES", "DEFAULT_ON_DELETED", "DEFAULT_TIME_BUDGET", "MODULE"]

MODULE = "jupyterhub_ext.seeder"


def hook_command(
    source: str,
    dest: str,
    *,
    state: str | None = None,
    log: str | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
    on_deleted: str = DEFAULT_ON_DELETED,
    python: str = "python3",
    module: str = MODULE,
    fail_safe: bool = True,
    excludes: "tuple[str, ...] | list[str]" = (),
) -> list[str]:
    """The argv for a Kubernetes ``lifecycle.postStart.exec.command`` that seeds ``dest`` from ``source``.

    ``state``/``log``: manifest and log file paths (default ``<dest>/.course-seeder/``; ``log=""`` disables
    the log). ``time_budget``: seconds before the seeder stops cleanly (the next start finishes the job).
    ``on_deleted``: one of :data:`POLICY_CHOICES`. ``module``: where the seeder is importable in the image. ``excludes``: name patterns left out (``--exclude``).

    The seeder itself always exits 0 in hook mode, but a hook that cannot even start Python (no ``python3``
    in the image, the package not installed) would fail the pod with ``FailedPostStartHook``. With
    ``fail_safe`` (the default) the command is wrapped as ``/bin/sh -c '"$@" || true' ...``, which keeps the
    arguments unquoted and unexpanded, so such an image still starts, only without the course material.

    Raises ValueError for settings that could never work, so a bad configuration stops the hub at start-up.
    """
    for name, value in (("source", source), ("dest", dest), ("state", state), ("log", log)):
        if value is None or (name == "log" and value == ""):
            continue
        if not isinstance(value, str) or not value.startswith("/"):
            raise ValueError("seeder %s must be an absolute path inside the user image, not %r" % (name, value))
    if source.rstrip("/") == dest.rstrip("/"):
        raise ValueError("seeder source and dest are the same directory: %r" % source)
    if on_deleted not in POLICY_CHOICES:
        raise ValueError("seeder on_deleted must be one of %s, not %r" % (", ".join(POLICY_CHOICES), on_deleted))
    if isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) \
            or not math.isfinite(time_budget) or time_budget <= 0:
        raise ValueError("seeder time_budget must be a positive number of seconds, not %r" % (time_budget,))
    argv = [python, "-m", module, "--source", source, "--dest", dest,
            "--time-budget", "%g" % time_budget, "--on-deleted", on_deleted]
    if state is not None:
        argv += ["--state", state]
    if log is not None:
        argv += ["--log", log]
    for pattern in excludes:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("seeder exclude patterns must be non-empty strings, not %r" % (pattern,))
        argv += ["--exclude", pattern]
    if fail_safe:
        return ["/bin/sh", "-c", '"$@" || true', "course-seeder"] + argv
    return argv
