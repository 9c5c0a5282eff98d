"""Time to build the profile form for one user from a generated 50-profile catalog with group rules.

What is timed is what the hub awaits on ``GET /hub/spawn``: ``await spawner.get_options_form()`` (for
ProfilesKubeSpawner: this user's view of the catalog -> ``profile_list`` -> KubeSpawner's ``form.html``).

Three measurements, each ``--iterations`` times:

- ``cold-process``: the first form of a process: catalog parsed, view computed, template compiled. Emulated
  by clearing our caches (parsed catalog, per-user views, rendered forms) before each build.
- ``cold-user``: the first form of a user the hub has not seen yet (catalog already parsed at start-up by
  ``z2jh.setup``): a new user name (and so a new view) for each build. This is what the target applies to:
  at 9 a.m. every user's first form is a cold-user build.
- ``warm``: the same user again (reload of the spawn page).

For context, the same 50 profiles given to vanilla KubeSpawner as a static ``profile_list`` (built from the
same catalog for a user in every group, so it lists everything): KubeSpawner renders that form once when the
spawner is created and returns the string afterwards; its first build is shown as its cold time.

    python benchmarks/form.py [--iterations 300] [--profiles 50] [--json results/form.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from types import SimpleNamespace

from common import machine, machine_line, report, summary, table, write_json

GROUPS = ["students", "data-engineers", "ml-engineers", "gpu-users", "instructors", "math", "physics", "bio"]
DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: default}}]
current-context: none
"""
TARGET_P95_MS = 2.0


def generate_catalog(n: int = 50) -> list[dict]:
    """``n`` profiles: CPU and GPU kinds, two or three options each (image, size, some with free text), a third
    of the profiles restricted to groups, and group-restricted choices in every size option."""
    kinds = [
        {"kind": "cpu", "node_pool": "cpu"},
        {"kind": "gpu", "gpus": 1, "node_pool": "gpu"},
        {"kind": "gpu-timeslice", "node_pool": "gpu-ts"},
        {"kind": "mig", "mig_profile": "1g.5gb", "node_pool": "gpu-mig"},
        {"kind": "trainium", "devices": 1, "node_pool": "trainium"},
    ]
    profiles = []
    for i in range(n):
        hw = dict(kinds[i % len(kinds)])
        hw.update(cpu={"guarantee": 1 + i % 3, "limit": 4}, memory={"guarantee": "4G", "limit": "8G"})
        options = [
            {"slug": "image", "display_name": "Image", "choices": [
                {"slug": f"img-{j}", "display_name": f"Image {j} for profile {i}",
                 "image": f"quay.io/jupyter/scipy-notebook:2024-0{j + 1}-01", "default": j == 0}
                for j in range(4)]},
            {"slug": "size", "display_name": "Size", "choices": [
                {"slug": "small", "display_name": "Small", "default": True},
                {"slug": "medium", "display_name": "Medium", "cpu": {"guarantee": 4, "limit": 4},
                 "access": {"groups": [GROUPS[(i + 1) % len(GROUPS)], "instructors"]}},
                {"slug": "large", "display_name": "Large", "memory": {"guarantee": "16G", "limit": "16G"},
                 "access": {"groups": [GROUPS[(i + 2) % len(GROUPS)]]}},
            ]},
        ]
        if i % 4 == 0:
            options[0]["free_text"] = {"display_name": "Other image",
                                       "pattern": r"quay\.io/jupyter/[a-z0-9-]+:[A-Za-z0-9._-]+",
                                       "access": {"groups": ["instructors"]}}
        if i % 5 == 0:
            options.append({"slug": "timeout", "display_name": "Idle timeout", "choices": [
                {"slug": f"t{h}", "display_name": f"{h} hours", "default": h == 1} for h in (1, 2, 4, 8)]})
        profile = {
            "slug": f"profile-{i:02d}",
            "display_name": f"Profile {i} ({hw['kind']})",
            "description": f"Generated profile number {i}, hardware {hw['kind']}.",
            "default": i == 0,
            "image": "quay.io/jupyter/scipy-notebook:2024-01-01",
            "hardware": hw,
            "options": options,
        }
        if i % 3 == 1:
            profile["access"] = {"groups": [GROUPS[i % len(GROUPS)], "ml-engineers"]}
        profiles.append(profile)
    return profiles


def _kubeconfig() -> None:
    if os.environ.get("KUBECONFIG"):
        return
    import kubernetes_asyncio.config.kube_config as kube_config

    path = os.path.join(tempfile.mkdtemp(prefix="bench-form-"), "config")
    with open(path, "w") as f:
        f.write(DUMMY_KUBECONFIG)
    os.environ["KUBECONFIG"] = path
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path


def _clear_caches() -> None:
    from jupyterhub_ext import profiles, spawner

    profiles._parse_cached.cache_clear()
    profiles._view_cached.cache_clear()
    for name in ("_form_cache_clear",):  # rendered-form/template caches, when the spawner has them
        clear = getattr(spawner, name, None)
        if clear:
            clear()


def _user(spawner, name: str, groups: list[str]) -> None:
    spawner.user.name = name
    spawner.user.groups = [SimpleNamespace(name=g) for g in groups]
    spawner.user.admin = False


async def _time_build(spawner) -> tuple[float, str]:
    t0 = time.perf_counter()
    html = await spawner.get_options_form()
    return (time.perf_counter() - t0) * 1000, html


async def run(iterations: int, n_profiles: int) -> dict:
    from traitlets.config import Config

    from jupyterhub_ext.catalog import kubespawner as ks
    from jupyterhub_ext.catalog.access import Who
    from jupyterhub_ext.profiles import _view_cached
    from jupyterhub_ext.spawner import ProfilesKubeSpawner
    from kubespawner import KubeSpawner

    catalog = generate_catalog(n_profiles)
    groups = ["students", "data-engineers", "math"]
    c = Config()
    c.ProfilesKubeSpawner.profiles = catalog
    ProfilesKubeSpawner.check_config(c)  # what z2jh.setup does at start-up: parses (and caches) the catalog

    results: dict[str, dict] = {}
    gc.collect()

    # ours, cold process
    samples, html = [], ""
    for i in range(iterations):
        _clear_caches()
        spawner = ProfilesKubeSpawner(config=c, _mock=True)
        _user(spawner, f"cold-process-{i}", groups)
        ms, html = await _time_build(spawner)
        samples.append(ms)
    view = spawner.user_view()
    results["ours/cold-process"] = summary(samples)

    # ours, cold user (catalog parsed at start-up; each build for a user not seen before)
    ProfilesKubeSpawner.check_config(c)
    spawner = ProfilesKubeSpawner(config=c, _mock=True)
    samples = []
    for i in range(iterations):
        _user(spawner, f"cold-user-{i}", groups)
        ms, html = await _time_build(spawner)
        samples.append(ms)
    results["ours/cold-user"] = summary(samples)

    # ours, warm (same user, form built before)
    _user(spawner, "warm-user", groups)
    await spawner.get_options_form()
    samples = [(await _time_build(spawner))[0] for _ in range(iterations)]
    results["ours/warm"] = summary(samples)

    # vanilla KubeSpawner: the whole catalog as a static profile_list (no per-user filtering)
    everyone = Who(name="vanilla", groups=frozenset(GROUPS), admin=False)
    from jupyterhub_ext.profiles import _parse_cached  # noqa: F401  (parsed above)
    full_view = _view_cached(ProfilesKubeSpawner(config=c, _mock=True).catalog, everyone, True)
    static_list = ks.profile_list(full_view)
    vc = Config()
    vc.KubeSpawner.profile_list = static_list
    samples_cold = []
    for i in range(max(1, min(iterations, 50))):
        t0 = time.perf_counter()
        vspawner = KubeSpawner(config=vc, _mock=True)  # renders the static form when options_form is first read
        _user(vspawner, f"vanilla-{i}", groups)
        await vspawner.get_options_form()
        samples_cold.append((time.perf_counter() - t0) * 1000)
    results["vanilla/first (spawner creation + form)"] = summary(samples_cold)
    samples = [(await _time_build(vspawner))[0] for _ in range(iterations)]
    results["vanilla/warm"] = summary(samples)

    sizes = {"profiles_in_catalog": n_profiles, "profiles_seen_by_user": len(view.profiles),
             "form_bytes": len(html), "vanilla_profiles": len(static_list)}
    return {"measurements": results, "sizes": sizes, "user_groups": groups, "target_p95_ms": TARGET_P95_MS,
            "target_applies_to": "ours/cold-user",
            "target_met": (results["ours/cold-user"]["p95"] or 0) <= TARGET_P95_MS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--profiles", type=int, default=50)
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    args = ap.parse_args()

    _kubeconfig()
    m = machine()
    results = asyncio.run(run(args.iterations, args.profiles))
    print(f"# form build, {args.profiles}-profile catalog, {args.iterations} iterations")
    print(machine_line(m))
    print(f"user sees {results['sizes']['profiles_seen_by_user']} of {args.profiles} profiles; "
          f"form {results['sizes']['form_bytes']} bytes\n")
    rows = [(name, s["n"], s["p50"], s["p95"], s["max"]) for name, s in results["measurements"].items()]
    print(table(["build", "n", "p50 ms", "p95 ms", "max ms"], rows))
    print(f"\ntarget: ours/cold-user p95 <= {TARGET_P95_MS} ms: {'met' if results['target_met'] else 'MISSED'}")
    write_json(args.json, report("form", args, results, m))


if __name__ == "__main__":
    main()
