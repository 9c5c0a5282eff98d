"""The command line, the hook the spawner builds, and the seeder running alone on Python 3.8."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from jupyterhub_ext.seeder import DEFAULT_TIME_BUDGET, POLICY_CHOICES, hook_command
from jupyterhub_ext.seeder.__main__ import main

from .conftest import read, write_tree

SEEDER_DIR = os.path.dirname(os.path.abspath(__import__("jupyterhub_ext.seeder").seeder.__file__))


def run_module(args, cwd=None, python=sys.executable, pythonpath=None, module="jupyterhub_ext.seeder"):
    env = dict(os.environ, PYTHONPATH=pythonpath or os.getcwd())
    return subprocess.run([python, "-m", module] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


# -- exit status ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--source", "/nonexistent/course", "--dest", "HOME"],  # no course material in the image
    ["--source", "COURSE"],  # a missing argument
    ["--source", "COURSE", "--dest", "HOME", "--on-deleted", "sometimes"],  # a bad value
    ["--source", "COURSE", "--dest", "HOME", "--time-budget", "soon"],
    ["--source", "COURSE", "--dest", "COURSE/inside"],  # destination inside the source
])
def test_hook_mode_always_exits_zero(dirs, args, capsys):
    args = [a.replace("COURSE", str(dirs["course"])).replace("HOME", str(dirs["home"])) for a in args]
    assert main(args) == 0
    assert main(args + ["--check"]) != 0  # ...while --check tells a human something is wrong
    assert capsys.readouterr().err


def test_a_missing_course_is_logged_in_the_home(dirs):
    assert main(["--source", "/nonexistent/course", "--dest", str(dirs["home"])]) == 0
    log = read(dirs["home"], ".course-seeder/seeder.log").decode()
    assert "status=error" in log and "/nonexistent/course is not a directory" in log


def test_hook_mode_exits_zero_even_on_a_read_only_home(dirs):
    write_tree(dirs["course"], {"a.txt": "a"})
    if os.geteuid() == 0:
        # root ignores permissions; a read-only bind mount is the honest way to make it fail.
        ro = dirs["home"] / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True).returncode:
            pytest.skip("cannot bind-mount read-only here")
        try:
            result = run_module(["--source", str(dirs["course"]), "--dest", str(ro)])
        finally:
            subprocess.run(["umount", str(ro)])
    else:
        os.chmod(dirs["home"], 0o500)
        result = run_module(["--source", str(dirs["course"]), "--dest", str(dirs["home"])])
    assert result.returncode == 0, result.stderr
    assert "status=error" in result.stdout


def test_check_prints_the_plan_and_changes_nothing(dirs, capsys):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"lab.ipynb": "v1", "gone.txt": "g"})
    assert main(["--source", str(course), "--dest", str(home)]) == 0
    write_tree(home, {"lab.ipynb": "mine"})
    write_tree(course, {"lab.ipynb": "v2", "new.txt": "n"})
    os.unlink(course / "gone.txt")
    capsys.readouterr()
    before = sorted(os.listdir(home)), read(home, ".course-seeder/manifest.json")
    assert main(["--source", str(course), "--dest", str(home), "--check"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^added\s+new\.txt", out, re.M)
    assert re.search(r"^offered\s+lab\.ipynb", out, re.M)
    assert re.search(r"^removed\s+gone\.txt", out, re.M)
    assert (sorted(os.listdir(home)), read(home, ".course-seeder/manifest.json")) == before


def test_check_fails_on_a_bad_course_symlink(dirs, capsys):
    write_tree(dirs["course"], {"a.txt": "a"})
    os.symlink("/etc/passwd", str(dirs["course"] / "passwd"))
    assert main(["--source", str(dirs["course"]), "--dest", str(dirs["home"]), "--check"]) == 1
    assert "passwd: symlink points outside" in capsys.readouterr().err


def test_options_reach_the_run(dirs):
    course, home, elsewhere = dirs["course"], dirs["home"], dirs["outside"]
    write_tree(course, {"a.txt": "a", "skip.me": "x", "__pycache__/m.pyc": "x"})
    state, log = elsewhere / "state" / "m.json", elsewhere / "logs" / "seed.log"
    base = ["--source", str(course), "--dest", str(home), "--state", str(state), "--log", str(log)]
    args = base + ["--exclude", "*.me", "--on-deleted", "respect", "--fsync", "--jobs", "3"]
    assert main(args) == 0
    assert sorted(os.listdir(home)) == ["a.txt"]  # no state in the home, excludes honoured
    assert state.exists() and (elsewhere / "state" / "m.json.lock").exists()
    assert "status=ok" in log.read_text()
    os.unlink(home / "a.txt")
    assert main(args) == 0
    assert not (home / "a.txt").exists()  # respected
    assert main(base + ["--log", ""]) == 0  # no log at all is fine too
    assert main(base + ["--no-default-excludes"]) == 0
    assert (home / "__pycache__" / "m.pyc").exists()


def test_student_modules_in_the_working_directory_do_not_shadow_the_stdlib(dirs):
    # A postStart hook runs in the student's home, where json.py or random.py are common homework names.
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"a.txt": "a"})
    for name in ("json", "hashlib", "fcntl", "argparse", "threading"):
        write_tree(home, {name + ".py": "raise SystemExit('shadowed %s')\n" % name})
    site = dirs["outside"] / "site"
    shutil.copytree(SEEDER_DIR, str(site / "seeder"), ignore=shutil.ignore_patterns("__pycache__"))
    result = run_module(["--source", str(course), "--dest", str(home)], cwd=str(home),
                        pythonpath=str(site), module="seeder")
    assert result.returncode == 0 and "status=ok" in result.stdout, result.stdout + result.stderr
    assert read(home, "a.txt") == b"a"


def python38_candidates(path: str | None = None) -> list[str]:
    """Where a Python 3.8 may be: $SEEDER_PYTHON38, python3.8 on PATH, pyenv's and uv's installs."""
    found = [os.environ.get("SEEDER_PYTHON38", ""), shutil.which("python3.8", path=path) or ""]
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in filter(None, roots):
        found += sorted(glob.glob(os.path.join(root, "versions", "3.8*", "bin", "python3.8")), reverse=True)
    found += sorted(glob.glob(os.path.expanduser("~/.local/share/uv/python/cpython-3.8*/bin/python3.8")),
                    reverse=True)
    found += ["/usr/local/bin/python3.8", "/usr/bin/python3.8"]
    return list(dict.fromkeys(p for p in found if p))


def is_python38(exe: str) -> bool:
    # Run it: a pyenv shim on PATH exists even when no 3.8 is selected, and then fails.
    try:
        out = subprocess.run([exe, "-I", "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == "(3, 8)"


@functools.lru_cache(maxsize=None)
def python38() -> str | None:
    return next((exe for exe in python38_candidates() if is_python38(exe)), None)


def test_python38_lookup_skips_what_is_not_a_working_38(tmp_path):
    """A shim that fails (pyenv's, with no 3.8 selected) or a python3.8 that is another version is passed over."""
    shim = tmp_path / "python3.8"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.8: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    assert str(shim) in python38_candidates(path=str(tmp_path))
    assert not is_python38(str(shim))
    shim.write_text("#!/bin/sh\nexec %s \"$@\"\n" % sys.executable)  # the running Python, not 3.8
    assert not is_python38(str(shim)) or sys.version_info[:2] == (3, 8)
    assert not is_python38(str(tmp_path / "missing"))


def test_the_package_alone_on_python38(dirs):
    """Copied alone into an image (no jupyterhub, no traitlets, no rest of jupyterhub_ext), on Python 3.8."""
    py38 = python38()
    if py38 is None:
        pytest.skip("no working Python 3.8 found (tried $SEEDER_PYTHON38, python3.8 on PATH, pyenv and uv "
                    "installs: %s); the seeder must run on 3.8, so install one to run this test"
                    % ", ".join(python38_candidates()))
    site = dirs["outside"] / "site"
    shutil.copytree(SEEDER_DIR, str(site / "seeder"), ignore=shutil.ignore_patterns("__pycache__"))
    course, home = dirs["course"], dirs["home"]
    many = {"unit%d/f%03d.txt" % (i % 5, i): "x" * i for i in range(300)}  # enough for parallel copies
    write_tree(course, dict(many, **{"lab.ipynb": "v1", "bin/run.sh": ("#!/bin/sh\n", 0o755)}))
    args = ["--source", str(course), "--dest", str(home), "--jobs", "2"]
    result = run_module(args, python=py38, pythonpath=str(site), module="seeder")
    assert result.returncode == 0 and "status=ok added=302" in result.stdout, result.stdout + result.stderr
    write_tree(home, {"lab.ipynb": "mine"})
    write_tree(course, {"lab.ipynb": "v2", "unit0/f000.txt": "changed"})
    result = run_module(args, python=py38, pythonpath=str(site), module="seeder")
    assert "updated=1 restored=0 offered=1" in result.stdout, result.stdout + result.stderr
    result = run_module(args + ["--fsync"], python=py38, pythonpath=str(site), module="seeder")
    assert "written=0" in result.stdout and read(home, "unit0/f000.txt") == b"changed"
    # Nothing outside the package and the standard library is imported.
    probe = ("import sys, seeder.__main__, seeder.apply; "
             "bad = [m for m in sys.modules if m.split('.')[0] in "
             "('jupyterhub', 'jupyterhub_ext', 'traitlets', 'tornado', 'yaml')]; print(bad)")
    out = subprocess.run([py38, "-c", probe], env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
    compiled = subprocess.run([py38, "-m", "compileall", "-q", str(site / "seeder")], capture_output=True)
    assert compiled.returncode == 0, compiled.stdout


def test_console_script_entry_point(dirs):
    exe = os.path.join(os.path.dirname(sys.executable), "jupyterhub-ext-seeder")
    if not os.path.exists(exe):
        pytest.skip("package not installed with its console scripts")
    write_tree(dirs["course"], {"a.txt": "a"})
    result = subprocess.run([exe, "--source", str(dirs["course"]), "--dest", str(dirs["home"])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and read(dirs["home"], "a.txt") == b"a"


# -- hook_command ---------------------------------------------------------------------------------------------

def test_hook_command_defaults():
    argv = hook_command("/opt/course", "/home/jovyan")
    assert argv[:4] == ["/bin/sh", "-c", '"$@" || true', "course-seeder"]
    assert argv[4:] == ["python3", "-m", "jupyterhub_ext.seeder", "--source", "/opt/course",
                        "--dest", "/home/jovyan", "--time-budget", "60", "--on-deleted", "restore"]
    assert DEFAULT_TIME_BUDGET == 60 and POLICY_CHOICES == ("restore", "respect")


def test_hook_command_options():
    argv = hook_command("/opt/course", "/home/jovyan/course", state="/home/jovyan/.seed.json", log="",
                        time_budget=90.5, on_deleted="respect", python="/opt/conda/bin/python",
                        fail_safe=False)
    assert argv == ["/opt/conda/bin/python", "-m", "jupyterhub_ext.seeder", "--source", "/opt/course",
                    "--dest", "/home/jovyan/course", "--time-budget", "90.5", "--on-deleted", "respect",
                    "--state", "/home/jovyan/.seed.json", "--log", ""]


@pytest.mark.parametrize("kwargs", [
    {"source": "course"}, {"dest": "~/"}, {"state": "rel/state.json"}, {"on_deleted": "sometimes"},
    {"time_budget": 0}, {"time_budget": float("inf")}, {"time_budget": True}, {"source": "/home/jovyan"},
])
def test_hook_command_refuses_settings_that_cannot_work(kwargs):
    args = {"source": "/opt/course", "dest": "/home/jovyan"}
    args.update(kwargs)
    with pytest.raises(ValueError):
        hook_command(args.pop("source"), args.pop("dest"), **args)


def test_the_hook_runs_as_kubernetes_would_run_it(dirs):
    """exec the argv as the kubelet does (no shell of ours), in the home, with odd characters in paths."""
    course, home = dirs["course"] / "my course $HOME; rm -rf x", dirs["home"]
    write_tree(course, {"a.txt": "a"})
    argv = hook_command(str(course), str(home), python=sys.executable)
    result = subprocess.run(argv, cwd=str(home), env=dict(os.environ, PYTHONPATH=os.getcwd()),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and read(home, "a.txt") == b"a", result.stderr
    broken = hook_command(str(course), str(home), python="/nonexistent/python3")
    assert subprocess.run(broken, capture_output=True).returncode == 0  # fail-safe: the pod still starts
    with pytest.raises(FileNotFoundError):  # without it, the exec itself fails: FailedPostStartHook
        subprocess.run(hook_command(str(course), str(home), python="/nonexistent/python3", fail_safe=False))
