"""``jupyterhub-ext``: an operator's checks of a values repository, with no cluster and no network.

    jupyterhub-ext check VALUES.yaml [MORE.yaml ...] [--chart DIR]
    jupyterhub-ext profiles VALUES... --user NAME [--groups G1,G2] [--admin]
    jupyterhub-ext render VALUES... --user NAME [--groups ...] --profile SLUG [--option image=...] --chart DIR

Exit status: 0 all well, 1 configuration problems (one line each, naming the key as written), 2 usage errors.
See docs/cli.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .values import ValuesError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="jupyterhub-ext", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("values", nargs="+", metavar="VALUES.yaml",
                       help="Helm values files, merged in order as `helm -f A -f B` merges them")
        p.add_argument("--chart", metavar="DIR", help="the z2jh chart (a `helm pull --untar` of it): run the "
                       "chart's own configuration over the values, as the hub pod does")
        p.add_argument("--helm", metavar="PATH", help="the helm binary (default: helm on PATH)")

    def who(p: argparse.ArgumentParser) -> None:
        p.add_argument("--user", required=True, help="the user's name")
        p.add_argument("--groups", default="", help="the user's groups, comma-separated")
        p.add_argument("--admin", action="store_true", help="the user is a JupyterHub admin")

    check = sub.add_parser("check", help="every problem the hub would stop on, all at once; a summary if none",
                           description="Every start-up problem of the configuration these values make, one line "
                                       "each; exit 1 if any. With none, a one-screen summary and exit 0.")
    common(check)
    profiles = sub.add_parser("profiles", help="what a user sees on the form and may start, with their limits",
                              description="The profiles, options and choices a user sees on the form (and may "
                                          "start through the REST API), with the caps and budgets on each.")
    common(profiles)
    who(profiles)
    render = sub.add_parser("render", help="the pod (and claim) manifests the hub would create for a start",
                            description="The exact pod and claim manifests the hub would create for this user's "
                                        "start, made by the spawner's own code path, as YAML.")
    common(render)
    who(render)
    render.add_argument("--profile", required=True, help="the profile's slug")
    render.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="an option's choice (or free text), as the form sends it; repeatable")
    render.add_argument("--no-validate", action="store_true",
                        help="skip kubernetes-validate (used when installed)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import commands
    from .hub import UsageError

    try:
        return getattr(commands, args.command)(args, sys.stdout)
    except (UsageError, ValuesError) as e:
        print(f"jupyterhub-ext {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
