"""The README's command, for real: ``jupyterhub -f jupyterhub_config.py`` with a real proxy, logins with the
classroom passwords, servers started through the REST API and used through their own REST API."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys

import pytest

from jupyterhub_ext.local import accounts
from tests.support.hub_process import HubStartError

from .helpers import ROOT, is_root
from .localhub import start_local_hub

NOTEBOOK = "week1/01-weather-with-python.ipynb"
DEFAULT_NAMED = ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "jupyterhub-proxy.pid")


def put_text(hub, token, user, path, text):
    return hub.server(token, user, "PUT", f"api/contents/{path}",
                      json={"type": "file", "format": "text", "content": text})


def test_the_readme_command_runs_the_platform(data_dir, course):
    before = {name for name in DEFAULT_NAMED if (ROOT / name).exists()}
    with start_local_hub(data_dir, course=course, cwd=ROOT, config_arg="jupyterhub_config.py",
                         name="readme") as hub:
        banner = hub.banner()
        student_pw, instructor_pw = hub.password("student"), hub.password("instructor")
        assert f"data     {data_dir}" in banner
        assert student_pw in banner and instructor_pw in banner and "shown once" in banner
        assert len(student_pw) >= 16 and len(instructor_pw) >= 32

        with pytest.raises(AssertionError, match="403"):
            hub.login("student", instructor_pw)  # each password opens its own door only
        with pytest.raises(AssertionError, match="403"):
            hub.login("mallory", student_pw)  # not in the class
        student, instructor = hub.token("student"), hub.token("instructor")

        # refused before anything starts, with the reason
        r = hub.api(student, "POST", "users/student/server", json={"profile": "gpu"})
        assert r.status_code == 400 and "not one you may start" in r.json()["message"]
        r = hub.api(instructor, "POST", "users/instructor/server", json={"profile": "gpu-mig"})
        assert r.status_code == 400
        assert r.json()["message"].startswith("Data Science (GPU, MIG 1g.5gb) is not available on this machine")
        assert hub.api(instructor, "GET", "users/instructor").json()["servers"] == {}

        hub.start_server(student, "student", {"profile": "data-engineering", "image": "pyspark-3-4"})
        listing = hub.server(student, "student", "GET", "api/contents/week1").json()
        assert "01-weather-with-python.ipynb" in [c["name"] for c in listing["content"]]
        notebook = hub.server(student, "student", "GET", f"api/contents/{NOTEBOOK}").json()
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]

        # the shared folder: the instructor writes, the student reads but cannot write
        hub.start_server(instructor, "instructor", {"profile": "elyra"})
        r = put_text(hub, instructor, "instructor", "shared/announcement.md", "Exam on Friday\n")
        assert r.status_code == 201, r.text
        r = hub.server(student, "student", "GET", "api/contents/shared/announcement.md")
        assert r.json()["content"] == "Exam on Friday\n" and r.json()["writable"] is False
        r = put_text(hub, student, "student", "shared/announcement.md", "No exam\n")
        assert r.status_code == 403 and "read-only" in r.json()["message"]
        assert put_text(hub, student, "student", "shared/mine.md", "x").status_code == 403
        assert put_text(hub, student, "student", "mine.md", "x").status_code == 201
        assert (data_dir / "shared" / "announcement.md").read_text() == "Exam on Friday\n"

        # per-user accounts when the hub runs as root
        home = data_dir / "homes" / "student"
        uids = json.loads((data_dir / "hub" / "accounts.json").read_text())["users"] if is_root else {}
        assert home.stat().st_uid == (uids["student"] if is_root else os.getuid())
        assert stat.S_IMODE(home.stat().st_mode) == 0o700

        hub.stop_server(student, "student")
        hub.stop_server(instructor, "instructor")
        log = hub.log()
        assert "Course seeder for student" in log and "status=ok added=3" in log

    # everything it wrote is in the data directory
    assert {name for name in DEFAULT_NAMED if (ROOT / name).exists()} == before
    for name in ("hub/jupyterhub.sqlite", "hub/jupyterhub_cookie_secret", "hub/proxy-auth-token",
                 "hub/student-password", "hub/instructor-password", "logs/jupyterhub.log",
                 "logs/servers/student.log", "homes/student/" + NOTEBOOK, "shared/announcement.md"):
        assert (data_dir / name).exists(), name
    for secret in ("hub", "logs"):
        assert stat.S_IMODE((data_dir / secret).stat().st_mode) == 0o700
    hub_log = (data_dir / "logs" / "jupyterhub.log").read_text()
    assert "JupyterHub is now running" in hub_log
    assert student_pw not in hub_log and instructor_pw not in hub_log

    # a restart keeps the passwords and does not print them again
    with start_local_hub(data_dir, course=course, name="readme-restart") as again:
        assert student_pw not in again.banner() and "password in" in again.banner()
        assert again.password("student") == student_pw
        again.login("student", student_pw)
        again.login("instructor", instructor_pw)


@pytest.fixture
def normal_user(tmp_path):
    """A uid with no account and no privileges, as which the hub itself runs (when the tests run as root)."""
    if not is_root:
        return None
    uid = 61999
    return accounts.Identity(uid, uid, (), 0o022, False)


def test_a_normal_user_runs_it_with_passwords_from_the_environment(tmp_path, course, normal_user):
    data_dir = tmp_path / "data"
    env = {"JUPYTERHUB_SHARED_PASSWORD": "a-long-class-password",
           "JUPYTERHUB_SHARED_ADMIN_PASSWORD": "an-even-longer-instructor-password-of-40"}
    preexec = None
    if normal_user is not None:
        data_dir.mkdir()
        os.chown(data_dir, normal_user.uid, normal_user.gid)
        os.chmod(tmp_path, 0o755)
        view = accounts.runtime_view([sys.executable, sys.prefix, sys.base_prefix, str(ROOT), str(data_dir),
                                      shutil.which("node") or "/usr/bin/node"])
        preexec = normal_user.preexec_fn(view)
        env["HOME"] = str(data_dir)
    with start_local_hub(data_dir, course=course, env=env, preexec_fn=preexec, name="normal-user") as hub:
        banner = hub.banner()
        assert "password from $JUPYTERHUB_SHARED_PASSWORD" in banner
        assert "password from $JUPYTERHUB_SHARED_ADMIN_PASSWORD" in banner
        assert "runs as the account running the hub" in banner
        assert not (data_dir / "hub" / "student-password").exists()
        student, instructor = hub.token("student"), hub.token("instructor")
        hub.start_server(student, "student", {"profile": "elyra"})
        hub.start_server(instructor, "instructor", {"profile": "data-engineering", "size": "large"})
        assert put_text(hub, instructor, "instructor", "shared/solutions.md", "42\n").status_code == 201
        r = put_text(hub, student, "student", "shared/solutions.md", "41\n")
        assert r.status_code == 403, r.text  # refused by the student's contents manager
        assert hub.server(student, "student", "DELETE", "api/contents/shared/solutions.md").status_code == 403
        assert (data_dir / "shared" / "solutions.md").read_text() == "42\n"
        owner = normal_user.uid if normal_user else os.getuid()
        for path in (data_dir / "homes" / "student" / NOTEBOOK, data_dir / "shared" / "solutions.md",
                     data_dir / "hub" / "jupyterhub.sqlite"):
            assert path.stat().st_uid == owner, path


def test_scripts_run_is_the_readme_command(tmp_path, data_dir):
    """``./scripts/run`` with a ready environment: no install, straight to ``jupyterhub -f jupyterhub_config.py``."""
    os.chmod(tmp_path, 0o755)
    with start_local_hub(data_dir, command=[str(ROOT / "scripts" / "run")], env={"VENV": sys.prefix},
                         name="scripts-run") as hub:
        assert "jupyterhub_ext: the whole platform on this machine" in hub.banner()
        assert "installing" not in hub.log()
        hub.login("instructor")
        assert (data_dir / "hub" / "jupyterhub.sqlite").exists()


def test_a_catalog_mistake_given_on_the_command_line_stops_the_hub_at_start_up(tmp_path, data_dir):
    bad = tmp_path / "catalog.yaml"
    bad.write_text("profiles:\n  - slug: x\n    display_name: X\n    hardware: {kind: gpu, gpus: 0}\n")
    with pytest.raises(HubStartError) as info:
        start_local_hub(data_dir, extra_args=(f"--LocalProfilesSpawner.catalog_file={bad}",), name="bad-catalog")
    assert f"LocalProfilesSpawner.catalog_file({bad}).profiles[0].hardware.gpus" in info.value.log
    assert "Traceback" not in info.value.log
