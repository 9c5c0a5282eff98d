"""``python -m jupyterhub_ext.seeder --source DIR --dest DIR [...]``: the postStart hook, and ``--check`` for humans.

Hook mode (the default) always exits 0: a failing postStart hook kills the container and shows the user
only ``FailedPostStartHook``. Trouble goes to the log line and to stderr instead. ``--check`` is a dry run
that prints the plan and exits 1 if anything needs an operator's attention.
"""

import os
import sys

# `python -m` puts the working directory first on sys.path. In a postStart hook that is the student's home,
# and a student's own json.py or random.py must not shadow the standard library we are about to import.
if __name__ == "__main__" and sys.path and (sys.path[0] in ("", ".")
                                          or os.path.abspath(sys.path[0]) == os.getcwd()):
    del sys.path[0]

import argparse  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from .apply import DEFAULT_LOCK_TIMEOUT, Options, run  # noqa: E402
from .index import INDEX_NAME, write_index  # noqa: E402
from .notice import NOTICE_NAME  # noqa: E402
from .model import DEFAULT_ON_DELETED, DEFAULT_TIME_BUDGET, POLICY_CHOICES, RECORD  # noqa: E402
from .scan import DEFAULT_EXCLUDES  # noqa: E402


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)  # hook mode must not exit 2 on a bad argument


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m jupyterhub_ext.seeder",
                description="Put course material in a home directory and keep it updated, never losing "
                            "the student's changes.")
    p.add_argument("--source", required=True, help="course tree (in the image, read-only)")
    p.add_argument("--dest", help="the student's home (or a folder in it); required unless --write-index")
    p.add_argument("--state", help="manifest file (default: DEST/.course-seeder/manifest.json); the lock "
                                   "and pending lists sit beside it")
    p.add_argument("--log", help="log file, one summary line per run (default: DEST/.course-seeder/seeder.log;"
                                 " '' for none)")
    p.add_argument("--notice", default=NOTICE_NAME, metavar="NAME",
                   help="file in DEST telling the student what changed (a newer version beside their copy, "
                        "a file put back), written only when there is news; '' for none (default: %(default)s)")
    p.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="SECONDS",
                   help="stop cleanly after this long; the next start carries on (default: %(default)g)")
    p.add_argument("--on-deleted", choices=POLICY_CHOICES, default=DEFAULT_ON_DELETED,
                   help="a course file the student deleted: restore it (like nbgitpuller) or respect the "
                        "deletion (default: %(default)s)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out names matching this glob (repeatable; added to the defaults: %s)"
                        % " ".join(DEFAULT_EXCLUDES))
    p.add_argument("--no-default-excludes", action="store_true", help="do not leave out the default names")
    p.add_argument("--fsync", action="store_true",
                   help="also survive power loss: fsync each file before it gets its name (slower)")
    p.add_argument("--jobs", type=int, default=0, help="parallel copies (default: min(4, CPUs))")
    p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                   help="wait this long for another run's lock (default: min(%g, budget))" % DEFAULT_LOCK_TIMEOUT)
    p.add_argument("--rehash", action="store_true",
                   help="ignore cached hashes of course files (a course edit that kept size and mtime)")
    p.add_argument("--check", action="store_true",
                   help="dry run: print the plan, change nothing, exit 1 if there are errors")
    p.add_argument("--write-index", action="store_true",
                   help="at image build time: record the course files' hashes in SOURCE/%s, so starts copy "
                        "in-kernel and never re-read unchanged files; exit 1 on problems" % INDEX_NAME)
    return p


class _Flag:
    def __init__(self) -> None:
        self._set = False

    def set(self, *_args: object) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def main(argv: "list[str] | None" = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    check = "--check" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.dest and not args.write_index:
            raise _UsageError("the following arguments are required: --dest")
    except _UsageError as e:
        parser.print_usage(sys.stderr)
        print("course-seeder: error: %s" % e, file=sys.stderr)
        return 2 if check or "--write-index" in argv else 0
    excludes = ([] if args.no_default_excludes else list(DEFAULT_EXCLUDES)) + args.exclude
    if args.write_index:  # a build step, not a hook: errors are errors
        try:
            problems = write_index(args.source, excludes)
        except OSError as e:
            print("course-seeder: cannot write the index: %s" % e, file=sys.stderr)
            return 1
        for problem in problems:
            print("problem: %s" % problem, file=sys.stderr)
        return 1 if problems else 0
    stop = _Flag()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop.set)  # finish the file in hand, record, and leave
    try:
        summary = run(Options(
            args.source, args.dest, state=args.state, log=args.log, time_budget=args.time_budget,
            on_deleted=args.on_deleted, excludes=excludes, durable=args.fsync, jobs=args.jobs or None,
            lock_timeout=args.lock_timeout, rehash=args.rehash, dry_run=args.check, stop_flag=stop, notice=args.notice,
        ))
    except Exception:  # a bug: report it, but never fail the container start
        import traceback

        traceback.print_exc()
        return 1 if check else 0
    if check:
        for action in summary.actions:
            if action.op != RECORD or action.outcome:
                print(action.describe())
    for problem in summary.problems:
        print("problem: %s" % problem, file=sys.stderr)
    for error in summary.errors:
        print("error: %s" % error, file=sys.stderr)
    print(summary.line(args.source))
    if check:
        return 1 if (summary.errors or summary.problems or summary.status == "error") else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
