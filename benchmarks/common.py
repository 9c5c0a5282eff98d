"""Shared helpers of the benchmark scripts: statistics, the printed table, JSON output, the machine description.

Run the scripts from the repository root (``python benchmarks/form.py ...``): this module puts the root on
``sys.path`` so they can import ``jupyterhub_ext`` and the end-to-end harness (``tests.harness``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PACKAGES = ("jupyterhub", "jupyterhub-kubespawner", "jupyterhub-ext", "kubernetes_asyncio", "tornado", "jinja2",
            "traitlets", "sqlalchemy", "psutil")


# -- statistics -------------------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, min, p50, p95, max and mean of ``values`` (None where there are no values)."""
    vals = [float(v) for v in values]
    return {
        "n": len(vals),
        "min": min(vals) if vals else None,
        "p50": percentile(vals, 50),
        "p95": percentile(vals, 95),
        "max": max(vals) if vals else None,
        "mean": sum(vals) / len(vals) if vals else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- output -----------------------------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/benchmarks.md)."""
    cells = [[str(h) for h in headers]] + [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


# -- the machine --------------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "jupyterhub_ext", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy the machine was at the start."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_gib": _mem_total_gib(),
        "load_average_1_5_15": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git_commit(),
    }


def machine_line(m: dict[str, Any]) -> str:
    pk = m["packages"]
    return (f"{m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB, load {m['load_average_1_5_15']}, "
            f"Python {m['python']}, jupyterhub {pk.get('jupyterhub')}, kubespawner {pk.get('jupyterhub-kubespawner')}"
            f", commit {m['git_commit']}")


def report(name: str, args: Any, results: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
    """The JSON document every script writes: what ran, on what, and what came out."""
    return {
        "benchmark": name,
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "arguments": vars(args),
        "machine": m,
        "load_average_at_end": load_average(),
        "results": results,
    }


# -- processes ----------------------------------------------------------------------------------------------------

def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (not its children)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    except (OSError, IndexError, ValueError):
        return None


def process_peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM) in MiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def process_rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- vanilla KubeSpawner's equivalent of our catalog ------------------------------------------------------------------

def vanilla_profile_list(catalog_file: str = "builtin:eks", base_tolerations: Any = ()) -> list[dict]:
    """The catalog as a plain KubeSpawner ``profile_list`` that starts the same pods for the same selection.

    Built with our own translation, so nothing is re-typed by hand: the form structure is
    ``catalog.kubespawner.profile_list`` of an admin's view (every profile and choice; vanilla has no access
    rules), each profile's ``kubespawner_override`` is ``catalog.kubespawner.overrides`` of the profile with no
    choice applied, and each choice's override is what that choice changes on top (KubeSpawner merges dict
    overrides recursively, as ours are applied). A free-text option sets the image from ``{value}``.
    """
    from jupyterhub_ext.catalog import Settings
    from jupyterhub_ext.catalog import kubespawner as ks
    from jupyterhub_ext.catalog.access import Selection, Who, view_for
    from jupyterhub_ext.profiles import _parse_cached, load_catalog_file

    data = load_catalog_file(catalog_file, "catalog_file")
    catalog = _parse_cached(json.dumps(data, sort_keys=True), Settings(), "catalog")
    view = view_for(catalog, Who(name="", admin=True), admins_see_all=True)
    plist = ks.profile_list(view)
    for entry, pview in zip(plist, view.profiles):
        profile = pview.profile
        base = ks.overrides(Selection(profile), list(base_tolerations))
        entry["kubespawner_override"] = base
        for oview in pview.options:
            option_entry = entry["profile_options"][oview.option.slug]
            for choice in oview.choices:
                with_choice = ks.overrides(Selection(profile, ((oview.option, choice),)), list(base_tolerations))
                option_entry["choices"][choice.slug]["kubespawner_override"] = _diff(base, with_choice)
            if oview.free_text is not None:
                with_text = ks.overrides(Selection(profile, (), ((oview.option, "{value}"),)), list(base_tolerations))
                option_entry["unlisted_choice"]["kubespawner_override"] = _diff(base, with_text)
    return plist


def _diff(base: dict, new: dict) -> dict:
    out = {}
    for key, value in new.items():
        if key not in base:
            out[key] = value
        elif isinstance(value, dict) and isinstance(base[key], dict):
            sub = _diff(base[key], value)
            if sub:
                out[key] = sub
        elif value != base[key]:
            out[key] = value
    return out
