"""``jupyterhub-ext check``: every broken values file of cases.py is refused with exactly its lines (exit 1), through
the real z2jh chart and from the values alone; every shipped combination passes with its summary (exit 0); what
the command cannot work with is a usage error (exit 2).

The command runs in this process (``main(argv)``) for the cases, and as ``python -m jupyterhub_ext.cli`` where the
exit status of the process itself is the point.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.z2jh_chart import user_values

from .cases import CASES, Case
from .chart_hub import CHART, COMBINATIONS, ROOT, chart_args, run_cli, run_cli_process, values_files, write_values
from .conftest import case_files

EKS_CATALOG = ROOT / "jupyterhub_ext" / "catalogs" / "eks.yaml"


def assert_lines(printed: list[str], case: Case) -> None:
    expected = "\n".join(f"  {line}" for line in case.lines)
    got = "\n".join(f"  {line}" for line in printed)
    assert len(printed) == len(case.lines) and all(e.matches(p) for e, p in zip(case.lines, printed)), \
        f"{case.id} ({case.what}):\nexpected\n{expected}\ngot\n{got}"


def closing(case: Case, source: str) -> str:
    n = len(case.lines)
    outcome = "the hub would start, without jupyterhub_ext's spawner and checks" if case.hub_starts else \
        "the hub would not start"
    return f"\n\n{n} problem{'s' if n != 1 else ''}: {outcome} (configuration from {source})\n"


# -- broken values: exit 1 and the lines ------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_through_the_chart_names_each_mistake(case, helm, chart, tmp_path):
    result = run_cli("check", *case_files(case, tmp_path), *chart_args(helm))
    assert result.code == 1, result.out + result.err
    assert_lines(result.problems, case)
    assert result.out.endswith(closing(case, f"the z2jh chart at {CHART}, rendered by {helm}")), result.out
    assert result.err == ""


VALUES_ONLY = [c for c in CASES if not c.chart_only]


@pytest.mark.parametrize("case", VALUES_ONLY, ids=[c.id for c in VALUES_ONLY])
def test_check_from_the_values_alone_names_the_same(case, tmp_path):
    result = run_cli("check", *case_files(case, tmp_path))
    assert result.code == 1, result.out + result.err
    assert_lines(result.problems, case)
    assert "(configuration from hub.config of the values files (no chart" in result.out.splitlines()[-1]


CHART_ONLY = [c for c in CASES if c.chart_only]


@pytest.mark.parametrize("case", CHART_ONLY, ids=[c.id for c in CHART_ONLY])
def test_a_mistake_outside_hub_config_needs_the_chart(case, tmp_path):
    # singleuser.* reaches the spawner through the chart's own jupyterhub_config.py: without it, nothing to see
    # (which is what the summary's "configuration from" says)
    result = run_cli("check", *case_files(case, tmp_path))
    assert result.code == 0, result.out
    assert "no chart: the chart's singleuser.* settings are not applied" in result.out.splitlines()[0]


def test_the_cases_are_the_mistakes_operators_make():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 25
    assert sum(c.several for c in CASES) >= 3  # several mistakes in one file, all named at once
    assert {c.shipped for c in CASES} == set(COMBINATIONS.values())  # on top of every shipped combination
    said = "\n".join(f"{line.path} {line.fragment}" for c in CASES for line in c.lines)
    for mistake in ("did you mean 'catalog_file'", "did you mean 'ProfilesKubeSpawner'", "hardware.gpus",
                    "expected a memory quantity", "above the limit", "duplicate profile slug", "unknown MIG profile",
                    "did you mean 'display_name'", "use 'node_pool'", "limits.caps[0].profile", "positive whole number",
                    "no start could ever be made", "no pool 'a100'", "usage_ledger", "home_mode", "home_pvc",
                    "courses[1].name", "courses[0].folder", "culling[0]", "client_id", "must include 'openid'",
                    "requires KeycloakAuthenticator.manage_groups", "at least 8 characters", "must differ from",
                    "did you mean 'mem_limit'", "two profiles are marked default", "needs a pattern"):
        assert mistake in said, mistake


# -- the shipped values: exit 0 and the summary -----------------------------------------------------------------

def expected_summary(combination: str) -> dict:
    """What the summary must say, read from the values files themselves."""
    values = user_values(list(COMBINATIONS[combination]))
    spawner = values["hub"]["config"]["ProfilesKubeSpawner"]
    profiles = spawner.get("profiles") or []
    if spawner.get("catalog_file") == "builtin:eks":
        profiles = yaml.safe_load(EKS_CATALOG.read_text())["profiles"]
    secrets = sorted(f"{e['valueFrom']['secretKeyRef']['name']}/{e['valueFrom']['secretKeyRef']['key']}"
                     for e in values["hub"]["extraEnv"].values() if "valueFrom" in e)
    return {"slugs": [p["slug"] for p in profiles], "default": next(p["slug"] for p in profiles if p.get("default")),
            "login": values["hub"]["config"]["JupyterHub"]["authenticator_class"], "secrets": secrets,
            "home": spawner["home_mode"], "courses": [c["name"] for c in spawner["courses"]]}


def summary_facts(out: str) -> dict:
    lines = out.splitlines()
    (count,) = [int(m.group(1)) for m in map(re.compile(r"^Profiles \((\d+)\):$").match, lines) if m]
    rows = [m for m in map(re.compile(r"^  ([a-z0-9-]+)( \(default\))?: ").match, lines) if m]
    (secrets,) = [line.split(": ", 1)[1] for line in lines if line.startswith("Not checked (Secrets")]
    assert count == len(rows), out
    return {"slugs": [m.group(1) for m in rows], "default": next(m.group(1) for m in rows if m.group(2)),
            "login": next(line.removeprefix("Login: ") for line in lines if line.startswith("Login: ")),
            "secrets": sorted(secrets.split(", ")),
            "home": next(line.removeprefix("Storage: home ") for line in lines if line.startswith("Storage: ")),
            "courses": next(line.removeprefix("Courses: ") for line in lines
                            if line.startswith("Courses: ")).split(", ")}


@pytest.mark.parametrize("combination", list(COMBINATIONS))
def test_every_shipped_combination_passes_with_its_summary(combination, helm, chart):
    files = values_files(COMBINATIONS[combination])
    through_chart = run_cli("check", *files, *chart_args(helm))
    assert through_chart.code == 0, through_chart.out + through_chart.err
    assert through_chart.out.startswith(f"OK: the hub would start (configuration from the z2jh chart at {CHART}, "
                                        f"rendered by {helm}).\n")
    assert summary_facts(through_chart.out) == expected_summary(combination)
    alone = run_cli("check", *files)
    assert alone.code == 0, alone.out + alone.err
    assert summary_facts(alone.out) == expected_summary(combination)


# -- as a process: the exit status itself ------------------------------------------------------------------------

def test_the_command_exits_0_1_and_2_as_a_process(helm, chart, dummy_kubeconfig, tmp_path):
    ok = run_cli_process("check", *values_files(COMBINATIONS["eks-cognito"]), *chart_args(helm),
                         kubeconfig=dummy_kubeconfig)
    assert ok.code == 0 and ok.out.startswith("OK: the hub would start"), ok.out + ok.err
    case = next(c for c in CASES if c.several)
    broken = run_cli_process("check", *case_files(case, tmp_path), *chart_args(helm), kubeconfig=dummy_kubeconfig)
    assert broken.code == 1, broken.out + broken.err
    assert_lines(broken.problems, case)
    missing = run_cli_process("check", str(tmp_path / "nope.yaml"), kubeconfig=dummy_kubeconfig)
    assert (missing.code, missing.out) == (2, "")
    assert missing.err == f"jupyterhub-ext check: {tmp_path / 'nope.yaml'}: No such file or directory\n"


# -- usage errors: exit 2, one line on stderr, nothing on stdout --------------------------------------------------

def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


USAGE = [
    ("missing-file", lambda t, h: ["check", str(t / "absent.yaml")], r"absent\.yaml: No such file or directory$"),
    ("not-yaml", lambda t, h: ["check", _file(t, "broken.yaml", "hub:\n  config: [\n")], r"broken\.yaml: not YAML: "),
    ("not-a-mapping", lambda t, h: ["check", _file(t, "list.yaml", "- hub\n")],
     r"list\.yaml: a values file is a mapping at the top, got list$"),
    ("helm-not-executable", lambda t, h: ["check", *values_files(COMBINATIONS["base"]), "--chart", str(CHART),
                                          "--helm", str(t / "no-helm")], r"--helm .*no-helm: not an executable file$"),
    ("chart-refuses-values", lambda t, h: ["check", *values_files(COMBINATIONS["base"]),
                                           _file(t, "schema.yaml", "singleuser:\n  uidd: 1000\n"), *chart_args(h)],
     r"helm template failed: .*singleuser: Additional property uidd is not allowed"),
    ("null-env-entry", lambda t, h: ["check", *values_files(COMBINATIONS["base"]),
                                     _file(t, "env.yaml", "hub:\n  extraEnv:\n    JUPYTERHUB_SHARED_PASSWORD: null\n")],
     r"hub\.extraEnv\.JUPYTERHUB_SHARED_PASSWORD: null is not an entry"),
    ("render-without-chart", lambda t, h: ["render", *values_files(COMBINATIONS["base"]), "--user", "ana",
                                           "--profile", "elyra"], r"render needs --chart DIR"),
    ("render-bad-option", lambda t, h: ["render", *values_files(COMBINATIONS["base"]), *chart_args(h), "--user", "ana",
                                        "--profile", "data-engineering", "--option", "image"],
     r"--option 'image': expected NAME=VALUE$"),
]


@pytest.mark.parametrize("argv, message", [u[1:] for u in USAGE], ids=[u[0] for u in USAGE])
def test_usage_errors_exit_2_saying_why(argv, message, helm, chart, tmp_path):
    args = argv(tmp_path, helm)
    result = run_cli(*args)
    assert (result.code, result.out) == (2, ""), result.out + result.err
    assert result.err.startswith(f"jupyterhub-ext {args[0]}: ")
    assert re.search(message, result.err.strip(), re.S), result.err
    assert "Traceback" not in result.err


def test_chart_without_helm_on_path_is_a_usage_error(chart, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # this Python's bin: no helm in it
    result = run_cli("check", *values_files(COMBINATIONS["base"]), "--chart", str(CHART))
    assert (result.code, result.out) == (2, "")
    assert result.err == "jupyterhub-ext check: --chart needs helm: put it on PATH or pass --helm PATH\n"


@pytest.mark.parametrize("argv", [["check"], ["lint", "helm/values.yaml"],
                                  ["check", "helm/values.yaml", "--chrat", "x"],
                                  ["render", "helm/values.yaml", "--chart", "x"]],
                         ids=["no-values", "unknown-command", "unknown-flag", "render-without-user-and-profile"])
def test_argument_mistakes_exit_2(argv):
    result = run_cli(*argv)
    assert (result.code, result.out) == (2, "")
    assert "usage: jupyterhub-ext" in result.err


def test_a_usage_error_is_not_taken_for_a_problem(tmp_path):
    # a values file with a real mistake beside one that cannot be read: the unreadable one decides (exit 2)
    broken = write_values(tmp_path / "broken.yaml", CASES[0].overlay)
    result = run_cli("check", *values_files(COMBINATIONS["base"], broken), str(tmp_path / "absent.yaml"))
    assert result.code == 2 and result.out == "", result.out
