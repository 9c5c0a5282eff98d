"""``jupyterhub-ext check`` and the hub's own start-up agree, on every case of cases.py and every shipped combination.

Each runs a real ``jupyterhub`` on the configuration the z2jh chart makes for the same values files (chart_hub.py:
helm-rendered, laid out as the hub pod mounts it, the chart's own jupyterhub_config.py with the hub container's
environment and our setup(c) inside). The hub stops at its first failing section, ``check`` runs every section:
so the hub's lines must be the first of check's lines, in order (check adds ``hub.config.`` to name the key as the
values file writes it), the first always among them. Where check finds nothing, the hub must start and answer.

Every hub is its own process, four at a time (~3 CPU-seconds of imports each; tests/catalog/test_startup.py):
started by a module fixture as soon as the module runs, each test waiting for its own.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from jupyterhub_ext.errors import CONFIG_ERROR_PREFIX
from tests.support.hub_process import HubStartError, wait_until_healthy

from .cases import CASES
from .chart_hub import (AUTHENTICATOR, COMBINATIONS, PROXY, SETUP, TRAITLETS, HubLaunch, HubProblem,
                        as_hub_writes, chart_args, hub_problems, prepare_chart_hub, run_cli, values_files)
from .conftest import case_files

PARALLEL = 4
HUB_TIMEOUT = 150  # a hang guard only: four hubs share two busy cores
REFUSED = [c for c in CASES if not c.hub_starts]
STARTS_ANYWAY = [c for c in CASES if c.hub_starts]


@dataclass
class HubRun:
    files: list[str]
    workdir: Path
    code: int | None    # None: still running after HUB_TIMEOUT (then stopped)
    log: str
    version: str = ""   # of a hub that answered: its REST API's

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-n:])


def _refusal(launch: HubLaunch, files: list[str]) -> HubRun:
    hub = launch.start()
    try:
        hub.proc.wait(HUB_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    code, log = hub.proc.poll(), hub.log_text()
    hub.stop(timeout=5, exit_expected=True)
    return HubRun(files, launch.workdir, code, log)


def _serving(launch: HubLaunch, files: list[str]) -> HubRun:
    hub = launch.start()
    try:
        wait_until_healthy(hub, HUB_TIMEOUT)
        version = requests.get(hub.url("hub/api"), timeout=10).json()["version"]
        return HubRun(files, launch.workdir, None, hub.log_text(), version)
    except HubStartError as e:  # stopped by wait_until_healthy, its log saved under artifacts/
        return HubRun(files, launch.workdir, hub.proc.poll(), e.log)
    finally:
        hub.stop()


def _selected(request, name: str) -> set[str]:
    return {item.callspec.params[name] if name != "case" else item.callspec.params[name].id
            for item in request.session.items
            if item.module is request.module and hasattr(item, "callspec") and name in item.callspec.params}


@pytest.fixture(scope="module")
def hubs(request, helm, chart, dummy_kubeconfig, tmp_path_factory) -> dict[str, Future]:
    """{case id or combination: the future HubRun}, PARALLEL at a time. Launches are prepared here, in the main
    thread (rendering reads this process's environment, which the in-process command line changes while it
    runs); the threads only start the processes and wait."""
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="cli-agreement-hub")
    runs: dict[str, Future] = {}
    cases = _selected(request, "case")
    for case in CASES:
        if case.id not in cases:
            continue
        root = tmp_path_factory.mktemp(f"hub-{case.id}")
        files = case_files(case, root)
        launch = prepare_chart_hub(helm, files, root / "hub", kubeconfig=dummy_kubeconfig, name=f"cli-{case.id}",
                                   serve=PROXY if case.hub_starts else None)
        runs[case.id] = pool.submit(_serving if case.hub_starts else _refusal, launch, files)
    for combination in sorted(_selected(request, "combination")):
        root = tmp_path_factory.mktemp(f"hub-{combination}")
        files = values_files(COMBINATIONS[combination])
        launch = prepare_chart_hub(helm, files, root / "hub", kubeconfig=dummy_kubeconfig, name=f"cli-{combination}",
                                   serve=PROXY)
        runs[combination] = pool.submit(_serving, launch, files)
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


def agrees(problem: HubProblem, line: str) -> bool:
    """Whether the hub's problem is check's ``line``."""
    if problem.form in (SETUP, AUTHENTICATOR):  # <key>: <message>, the key as the traitlets section
        return problem.text == as_hub_writes(line)
    if problem.form == TRAITLETS:               # traitlets' message; check names the key before it
        return line.endswith(f": {problem.text}")
    return problem.text == line                 # TRACEBACK: another package's message, check prints it as it is


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_the_hub_stops_on_what_check_names_first(case, hubs, helm):
    run = hubs[case.id].result()
    check = run_cli("check", *run.files, *chart_args(helm))
    assert check.code == 1 and check.problems, check.out
    assert run.code is not None, f"the hub still ran after {HUB_TIMEOUT}s:\n{run.tail()}"
    assert run.code != 0, run.tail()
    said = hub_problems(run.log)
    assert said, f"the hub exited {run.code} naming no problem:\n{run.tail()}"
    assert agrees(said[0], check.problems[0]), (said[0], check.problems[0])
    # the hub stops at its first failing section: what it says is the start of what check says, in order
    assert len(said) <= len(check.problems), (said, check.problems)
    disagreements = [(hub, line) for hub, line in zip(said, check.problems) if not agrees(hub, line)]
    assert not disagreements, disagreements
    if said[0].form in (SETUP, TRAITLETS):  # refused while loading its configuration: before its database
        assert not (run.workdir / "jupyterhub.sqlite").exists()


# Every refusal is said as `jupyterhub_ext: configuration error: <key>: <message>` lines, as README.md and
# z2jh.fail() promise: values traitlets refuses, our authenticators' checks and oauthenticator's own refusals
# included (they were tracebacks until z2jh.problems ran them at start-up; these cases found it).
@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_the_hub_says_each_problem_as_one_configuration_error_line(case, hubs):
    run = hubs[case.id].result()
    said = hub_problems(run.log)
    assert said and all(p.form == SETUP for p in said), [p.form for p in said]
    assert "Traceback" not in run.log, run.tail()


@pytest.mark.parametrize("combination", list(COMBINATIONS))
def test_where_check_finds_nothing_the_hub_starts(combination, hubs, helm):
    run = hubs[combination].result()
    assert run.version, f"the hub did not answer:\n{run.tail()}"
    assert "Using Spawner: jupyterhub_ext.spawner.ProfilesKubeSpawner" in run.log
    assert CONFIG_ERROR_PREFIX not in run.log
    assert run_cli("check", *run.files, *chart_args(helm)).code == 0


@pytest.mark.parametrize("case", STARTS_ANYWAY, ids=[c.id for c in STARTS_ANYWAY])
def test_what_only_check_can_say_the_hub_starts_with(case, hubs, helm):
    # no setup(c): the hub starts, on KubeSpawner, with none of the checks and none of our settings
    run = hubs[case.id].result()
    assert run.version, f"the hub did not answer:\n{run.tail()}"
    assert "Using Spawner: kubespawner.spawner.KubeSpawner" in run.log
    assert CONFIG_ERROR_PREFIX not in run.log
    check = run_cli("check", *run.files, *chart_args(helm))
    assert check.code == 1 and [line.split(":")[0] for line in check.problems] == ["hub.extraConfig"]
