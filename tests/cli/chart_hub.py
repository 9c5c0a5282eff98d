"""The command line and a real hub on the same values files.

* ``write_values`` puts a case's overlay in a values file; ``values_files`` gives the shipped files under it.
* ``run_cli`` runs ``jupyterhub-ext`` in this process (``main(argv)``, its stdout and exit status); ``run_cli_process``
  runs ``python -m jupyterhub_ext.cli`` as a subprocess, as an operator's CI would.
* ``prepare_chart_hub(...).start()`` starts a real ``jupyterhub`` on the configuration the
  z2jh chart makes for the values: the chart rendered by the real helm, its hub ConfigMap and Secret laid out as
  the hub pod mounts them (``jupyterhub_ext.cli.chart``'s own layout, under a temporary directory), the chart's
  ``jupyterhub_config.py`` run by ``jupyterhub -f`` with the hub container's environment (the Secrets the operator
  makes get the CLI's placeholders). ``hub.extraConfig``'s ``setup(c)`` runs inside, as in the pod, and stops the
  hub on a mistake. ``hub_problems`` reads what a hub that refused to start said.

What differs from the hub pod, and why:

* ``AsyncHTTPClient.configure("tornado.curl_httpclient...")``: the chart's file asks for the curl client, whose
  pycurl is the hub image's and is not installed here. A four-line file runs the chart's file with that one call
  made a no-op (the same as ``jupyterhub_ext.cli.chart`` does in process); nothing else in it is touched.
* the hub's own addresses: the ports it binds (free ones on 127.0.0.1, not 8081 on every interface) and, for a hub
  that must serve, a proxy it starts itself (the chart's proxy is another pod), and with PROXY its own address as
  hub_connect_url (the chart's is the hub Service's name). Given on the command line, so the chart's file is run as
  it is; none of them is a setting any check reads.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from jupyterhub_ext.cli import chart as chart_run
from jupyterhub_ext.cli import main
from jupyterhub_ext.errors import CONFIG_ERROR_PREFIX
from tests.support.hub_process import HubProcess, free_port, hub_path, spawn_hub_process

ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = ROOT / "helm"
CHART = Path(os.environ.get("SHARED", ROOT.parent / "shared")) / "z2jh" / "chart"

# Every shipped combination: the base alone and the base with each overlay.
COMBINATIONS = {
    "base": ("values.yaml",),
    "eks-cognito": ("values.yaml", "values-eks-cognito.yaml"),
    "eks-keycloak": ("values.yaml", "values-eks-keycloak.yaml"),
    "aks-classroom": ("values.yaml", "values-aks-classroom.yaml"),
}

# How a hub that refuses to start says why, in the order looked for: setup(c)'s lines (jupyterhub_ext.z2jh.fail); the
# authenticator's refusal from check_allow_config, which JupyterHub calls after loading the configuration
# (jupyterhub_ext.auth.checks.refuse_invalid_config logs it, then a traceback follows); traitlets' line for a value a
# trait refuses; the last line of a traceback (another package's refusal, oauthenticator's ValueError).
SETUP, AUTHENTICATOR, TRAITLETS, TRACEBACK = "setup", "authenticator", "traitlets", "traceback"
AUTH_REFUSAL = "Invalid configuration: "
TRAIT_REFUSAL = "Bad config encountered during initialization: "
EXCEPTION_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(?:\w+Error|\w+Exception): (.*)$")


WRAPPER = '''\
# The chart's own jupyterhub_config.py, run as the hub pod runs it, less its curl HTTP client (no pycurl here).
from tornado.httpclient import AsyncHTTPClient
AsyncHTTPClient.configure = classmethod(lambda cls, impl, **kw: None)
__file__ = {chart_file!r}
exec(compile(open(__file__).read(), __file__, "exec"))
'''


def values_files(shipped: Iterable[str], overlay: Path | None = None) -> list[str]:
    files = [str(HELM_DIR / name) for name in shipped]
    return files + ([str(overlay)] if overlay is not None else [])


def write_values(path: Path, overlay: Mapping) -> Path:
    path.write_text(yaml.safe_dump(dict(overlay), sort_keys=False))
    return path


@dataclass
class CliRun:
    code: int
    out: str
    err: str = ""

    @property
    def problems(self) -> list[str]:
        """check's problem lines: everything before the blank line of its closing sentence."""
        return self.out.split("\n\n", 1)[0].splitlines() if self.code == 1 else []


def run_cli(*argv: str) -> CliRun:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    return CliRun(code, out.getvalue(), err.getvalue())


def run_cli_process(*argv: str, kubeconfig: str, timeout: float = 120) -> CliRun:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    proc = subprocess.run([sys.executable, "-m", "jupyterhub_ext.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def chart_args(helm: Path | str) -> list[str]:
    return ["--chart", str(CHART), "--helm", str(helm)]


# -- a real hub on the chart's configuration ----------------------------------------------------------------------

def lay_out(helm: Path | str, files: list[str], workdir: Path) -> tuple[Path, dict[str, str]]:
    """The chart rendered for ``files``, laid out under ``workdir`` as the hub pod mounts it: the config file to
    give ``jupyterhub -f`` and the hub container's environment."""
    objects = chart_run.render(str(helm), str(CHART), files)
    chart_file = chart_run._lay_out(objects, workdir / "etc-jupyterhub")
    env = chart_run._container_env(objects, [])
    wrapper = workdir / "jupyterhub_config.py"
    wrapper.write_text(WRAPPER.format(chart_file=str(chart_file)))
    return wrapper, env


# How a hub that must answer is reached (prepare_chart_hub's ``serve``): PROXY, through a proxy it starts, its own
# address given for the chart's hub_connect_url; API, at its own port (REST API), the chart's hub_connect_url kept
# (the address a pod is given, http://hub:8081, as in the cluster) and a proxy started only for the hub to start.
PROXY, API = "proxy", "api"


@dataclass
class HubLaunch:
    """A hub ready to start: the chart laid out in ``workdir``, its command line and whole environment. Made in the
    main thread (it reads this process's environment, which the in-process command line changes while it runs);
    ``start`` only starts the process, so hubs may be started from other threads."""
    name: str
    workdir: Path
    argv: list[str]
    env: dict[str, str]
    serve: str | None

    def start(self) -> HubProcess:
        port, hub_port = free_port(), free_port()
        argv = [*self.argv, f"--JupyterHub.hub_bind_url=http://127.0.0.1:{hub_port}"]
        if self.serve:
            argv += [f"--JupyterHub.bind_url=http://127.0.0.1:{port}/", "--ConfigurableHTTPProxy.should_start=True",
                     f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}"]
        if self.serve == PROXY:
            argv.append(f"--JupyterHub.hub_connect_url=http://127.0.0.1:{hub_port}")
        base_url = f"http://127.0.0.1:{hub_port if self.serve == API else port}/"
        return spawn_hub_process(argv, name=self.name, workdir=self.workdir, base_url=base_url, env=self.env,
                                 owns_workdir=False)


def prepare_chart_hub(helm: Path | str, files: list[str], workdir: Path, *, kubeconfig: str, name: str,
                      serve: str | None = None, env: Mapping[str, str] | None = None) -> HubLaunch:
    """A jupyterhub on the chart's configuration for ``files``. ``serve`` (PROXY, API): it binds a public port and
    starts a proxy, for a hub that must answer; None: the chart's proxy settings stay (a hub that stops at start-up
    never reaches them). ``env`` is added last (a test's own settings)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config, container_env = lay_out(helm, files, workdir)
    child = {k: v for k, v in os.environ.items()
             if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_", "KUBERNETES_")) and k != "KUBECONFIG"}
    child.update(container_env)
    child.update({"PATH": hub_path(), "KUBECONFIG": kubeconfig, **(env or {})})
    return HubLaunch(name, workdir, [sys.executable, "-m", "jupyterhub", "-f", str(config)], child, serve)


@dataclass(frozen=True)
class HubProblem:
    form: str   # SETUP, AUTHENTICATOR, TRAITLETS or TRACEBACK
    text: str   # <key>: <message> (SETUP, AUTHENTICATOR), or the message alone


def hub_problems(log: str) -> list[HubProblem]:
    """What a hub that refused to start named, in the first form found (see SETUP...)."""
    lines = log.splitlines()
    setup = [line[len(CONFIG_ERROR_PREFIX):] for line in lines if line.startswith(CONFIG_ERROR_PREFIX)]
    if setup:
        return [HubProblem(SETUP, text) for text in setup]
    for form, marker in ((AUTHENTICATOR, AUTH_REFUSAL), (TRAITLETS, TRAIT_REFUSAL)):
        found = [line.split(marker, 1)[1] for line in lines if marker in line]
        if found:
            return [HubProblem(form, text) for text in found]
    last = [m.group(1) for m in map(EXCEPTION_LINE.match, lines) if m]
    return [HubProblem(TRACEBACK, last[-1])] if last else []


def as_hub_writes(line: str) -> str:
    """check's line as the hub writes it: the hub names the traitlets section, check the path in the values."""
    return line.removeprefix("hub.config.")
