"""The three commands: what they print and the exit status. The work is the hub's own code (cli/hub.py)."""

from __future__ import annotations

import argparse
from typing import TextIO

import yaml

from ..catalog.access import Who
from ..errors import ConfigError, SpawnRefused
from . import EXIT_OK, EXIT_PROBLEMS
from .hub import Hub, UsageError, build, make_spawner, problems, run


def _hub(args: argparse.Namespace) -> Hub:
    return build(args.values, chart=args.chart, helm=args.helm)


def _said_problems(hub: Hub, out: TextIO) -> bool:
    """A configuration the hub would not start with: its problems said, and nothing shown for a user."""
    found = problems(hub)
    for line in found:
        print(line, file=out)
    return bool(found)


def _groups(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(g.strip() for g in args.groups.split(",") if g.strip())


def check(args: argparse.Namespace, out: TextIO) -> int:
    hub = _hub(args)
    found = problems(hub)
    for line in found:
        print(line, file=out)
    if found:
        outcome = "the hub would not start" if hub.setup_called else \
            "the hub would start, without jupyterhub_ext's spawner and checks"
        print(f"\n{len(found)} problem{'s' if len(found) != 1 else ''}: {outcome} (configuration from {hub.mode})",
              file=out)
        return EXIT_PROBLEMS
    print(summary(hub), file=out)
    return EXIT_OK


def _hardware(profile) -> str:
    hw = profile.hardware
    parts = [hw.kind]
    parts += [f"{count} {name}" for name, count in hw.extended]
    if hw.cpu.limit or hw.cpu.guarantee:
        parts.append(f"cpu {hw.cpu.guarantee or '-'}..{hw.cpu.limit or '-'}")
    if hw.memory.limit or hw.memory.guarantee:
        parts.append(f"memory {_bytes(hw.memory.guarantee)}..{_bytes(hw.memory.limit)}")
    if hw.node_pool:
        parts.append(f"pool {hw.node_pool}")
    return ", ".join(parts)


def _bytes(n) -> str:
    if not n:
        return "-"
    for unit, size in (("Gi", 2**30), ("Mi", 2**20)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return str(int(n))


def _access(access) -> str:
    if access.admin_only:
        return "admins"
    who = sorted(access.groups) + [f"user {u}" for u in sorted(access.users)]
    return ", ".join(who) if who else "everyone"


def summary(hub: Hub) -> str:
    c = hub.config
    lines = [f"OK: the hub would start (configuration from {hub.mode})."]

    def spawner_lines() -> None:
        spawner = make_spawner(c)
        catalog = spawner.catalog
        if catalog is None:
            lines.append("No catalog: KubeSpawner's own profile_list (or none).")
            return
        lines.append(f"\nProfiles ({len(catalog.profiles)}):")
        for p in catalog.profiles:
            mark = " (default)" if p.default else ""
            lines.append(f"  {p.slug}{mark}: {p.display_name} — {_hardware(p)}; for {_access(p.access)}")
            for option in p.options:
                choices = ", ".join(ch.slug for ch in option.choices) + (", free text" if option.free_text else "")
                lines.append(f"      {option.slug}: {choices}")
        limits = spawner.fair_use_limits()
        if not limits.empty or limits.culling:
            lines.append("\nLimits:")
            for cap in limits.caps:
                parts = [f"total {cap.total}" if cap.total else "", f"per user {cap.per_user}" if cap.per_user else ""]
                parts += [f"{g} {n}" for g, n in cap.groups.items()]
                if cap.others is not None:
                    parts.append(f"others {cap.others}")
                lines.append(f"  cap on {cap.name}: {', '.join(p for p in parts if p)}")
            for b in limits.budgets:
                lines.append(f"  budget on {b.name}: {b.hours:g} h per {b.period} per {b.per}"
                             + (f" ({', '.join(b.groups)})" if b.groups else "")
                             + (f", a start needs {b.minimum_hours:g} h left" if b.minimum_hours else ""))
            for rule in limits.culling:
                lines.append(f"  culling on {rule.name}: {_cull(rule)}")
            lines.append(f"  admins exempt: {'yes' if limits.admins_exempt else 'no'}")
        lines.append(f"\nStorage: home {spawner.home_mode}")
        courses = [course.name for course in spawner.course_list()]
        if courses:
            lines.append(f"Courses: {', '.join(courses)}")

    with hub.environment():
        run(spawner_lines)
    auth = c.JupyterHub.get("authenticator_class", "dummy")
    lines.append(f"Login: {auth if isinstance(auth, str) else auth.__name__}")
    if hub.placeholders:
        lines.append(f"Not checked (Secrets in your cluster, given placeholders here): {', '.join(hub.placeholders)}")
    return "\n".join(lines)


def _cull(rule) -> str:
    parts = []
    if rule.idle_minutes:
        parts.append(f"idle {rule.idle_minutes:g} min")
    if rule.max_age_hours:
        parts.append(f"max age {rule.max_age_hours:g} h")
    return ", ".join(parts)


def profiles(args: argparse.Namespace, out: TextIO) -> int:
    hub = _hub(args)
    if _said_problems(hub, out):
        return EXIT_PROBLEMS
    groups = _groups(args)

    def view() -> list[str]:
        spawner = make_spawner(hub.config, args.user, groups, args.admin)
        if spawner.catalog is None:
            return ["No catalog: the form is KubeSpawner's own profile_list."]
        limits = spawner.fair_use_limits()
        who = Who(args.user, frozenset(groups), args.admin)
        exempt = args.admin and limits.admins_exempt
        lines = [f"{args.user} ({', '.join(groups) or 'no groups'}{', admin' if args.admin else ''}) sees:"]
        shown = spawner.user_view().profiles
        for pv in shown:
            p = pv.profile
            lines.append(f"  {p.slug}{' (default)' if pv.default else ''}: {p.display_name} — {_hardware(p)}")
            for ov in pv.options:
                choices = [f"{ch.slug}{'*' if ov.default is ch else ''}" for ch in ov.choices]
                if ov.free_text is not None:
                    choices.append(f"free text ({ov.free_text.pattern.pattern})")
                lines.append(f"      {ov.option.slug}: {', '.join(choices)}")
            if not exempt:
                for cap in limits.caps_on(p.slug):
                    group = next((g for g in cap.groups if g in who.groups), None)
                    parts = [f"total {cap.total}" if cap.total else "",
                             f"per person {cap.per_user}" if cap.per_user else "",
                             f"group {group}: {cap.groups[group]}" if group else
                             (f"outside the listed groups: {cap.others}" if cap.others is not None else "")]
                    lines.append(f"      cap ({cap.name}): {', '.join(x for x in parts if x)}")
                for b in limits.budgets_on(p.slug):
                    if b.applies_to(who.groups):
                        lines.append(f"      budget ({b.name}): {b.hours:g} h per {b.period}"
                                     + (" for the group together" if b.per == "group" else ""))
        if not shown:
            lines.append("  nothing: no profile is open to this user")
        hidden = [p.slug for p in spawner.catalog.profiles if p.slug not in {pv.profile.slug for pv in shown}]
        if hidden:
            lines.append(f"Not shown to {args.user}: {', '.join(hidden)}")
        return lines

    with hub.environment():
        print("\n".join(run(view)), file=out)
    return EXIT_OK


def render(args: argparse.Namespace, out: TextIO) -> int:
    if not args.chart:
        raise UsageError("render needs --chart DIR: the pod is made from the chart's settings as well as yours")
    hub = _hub(args)
    if _said_problems(hub, out):
        return EXIT_PROBLEMS
    options = {"profile": args.profile}
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--option {item!r}: expected NAME=VALUE")
        options[name] = value

    async def manifests() -> list[dict]:
        spawner = make_spawner(hub.config, args.user, _groups(args), args.admin)
        spawner.user_options = options
        await spawner.load_user_options()
        docs = []
        serialize = spawner.api.api_client.sanitize_for_serialization
        if spawner.storage_pvc_ensure:
            docs.append(serialize(spawner.get_pvc_manifest()))
        docs.append(serialize(await spawner.get_pod_manifest()))
        return docs

    import asyncio

    try:
        with hub.environment():
            docs = asyncio.run(manifests())
    except SpawnRefused as e:
        print(f"refused: {e}", file=out)
        return EXIT_PROBLEMS
    except ConfigError as e:
        print(hub.key_as_written(e), file=out)
        return EXIT_PROBLEMS
    if not args.no_validate:
        _validate(docs)
    print(yaml.safe_dump_all(docs, sort_keys=False), end="", file=out)
    return EXIT_OK


def _validate(docs: list[dict]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        return
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
