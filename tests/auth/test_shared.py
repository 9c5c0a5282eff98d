"""ClassroomSharedPasswordAuthenticator in a real hub: the class list, two passwords, nothing leaked."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import requests

from tests.support.hub_process import start_hub

from .conftest import hub_factory, refusal_case

SHARED_CLASS = "classroom-password"  # the entry point (docs/auth.md)
STUDENT_PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "teacher-only " + "x" * 24  # 37 characters


@hub_factory("classroom")
def start_classroom(provider):
    secret_dir = Path(tempfile.mkdtemp(prefix="classroom-secret-"))
    password_file = secret_dir / "user-password"
    password_file.write_text(STUDENT_PASSWORD + "\n")  # as `kubectl create secret --from-file` leaves it
    config = {
        "JupyterHub": {"authenticator_class": SHARED_CLASS},
        "ClassroomSharedPasswordAuthenticator": {
            "allowed_users": {"alice", "bob"},
            "admin_users": {"teacher"},
            "user_password_file": str(password_file),
        },
    }
    return start_hub(
        config,
        env={"JUPYTERHUB_SHARED_ADMIN_PASSWORD": ADMIN_PASSWORD},
        debug=True,  # the password must not appear even in debug logs
        name="shared-password",
    )


def form_login(hub, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    page = session.get(hub.url("hub/login"), timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = session.post(
        hub.url("hub/login"),
        data={"username": username, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=30,
    )
    return session, r


def current(hub, session) -> dict | None:
    r = session.get(hub.url("hub/api/user"), timeout=30)
    return r.json() if r.status_code == 200 else None


def test_listed_student_logs_in_with_the_shared_password(classroom):
    session, r = form_login(classroom, "alice", STUDENT_PASSWORD)
    assert r.status_code == 302
    me = current(classroom, session)
    assert me["name"] == "alice" and me["admin"] is False


def test_teacher_logs_in_with_the_admin_password(classroom):
    session, r = form_login(classroom, "teacher", ADMIN_PASSWORD)
    assert r.status_code == 302
    assert current(classroom, session)["admin"] is True


@pytest.mark.parametrize(
    "username,password",
    [
        ("alice", "wrong password"),
        ("alice", STUDENT_PASSWORD + "\n"),  # the file's newline is not part of the password
        ("mallory", STUDENT_PASSWORD),  # not in the class list
        ("teacher", STUDENT_PASSWORD),  # admins need the admin password
        ("TEACHER", STUDENT_PASSWORD),  # JupyterHub 5.x would let this in as 'teacher' (non-admin)
        ("bob", ADMIN_PASSWORD),  # the admin password is for admin_users only
        ("", STUDENT_PASSWORD),
    ],
    ids=[
        "wrong",
        "with-newline",
        "unlisted",
        "admin-with-student-password",
        "admin-case-trick",
        "student-with-admin-password",
        "empty-name",
    ],
)
def test_refused(classroom, username, password):
    session, r = form_login(classroom, username, password)
    assert r.status_code == 403
    assert current(classroom, session) is None


def test_names_are_normalised_before_checking(classroom):
    session, r = form_login(classroom, "Bob", STUDENT_PASSWORD)
    assert r.status_code == 302
    assert current(classroom, session)["name"] == "bob"


def test_passwords_never_reach_the_log(classroom):
    form_login(classroom, "alice", STUDENT_PASSWORD)
    form_login(classroom, "teacher", ADMIN_PASSWORD)
    form_login(classroom, "mallory", STUDENT_PASSWORD)
    log = classroom.log_text()
    assert "User logged in: alice" in log  # the log is the hub's, at debug level
    assert STUDENT_PASSWORD not in log
    assert ADMIN_PASSWORD not in log


NO_PASSWORD = refusal_case(
    "shared/no-password",
    {
        "JupyterHub": {"authenticator_class": SHARED_CLASS},
        "ClassroomSharedPasswordAuthenticator": {"allowed_users": {"alice"}},
    },
    match=r"ClassroomSharedPasswordAuthenticator\.user_password: no shared password is set",
)


def short_password_config():
    secret_dir = Path(tempfile.mkdtemp(prefix="classroom-short-"))
    (secret_dir / "pw").write_text("short12\n")
    return {
        "JupyterHub": {"authenticator_class": SHARED_CLASS},
        "ClassroomSharedPasswordAuthenticator": {
            "allowed_users": {"alice"},
            "user_password_file": str(secret_dir / "pw"),
        },
    }


SHORT_PASSWORD = refusal_case(
    "shared/short-password-file",
    short_password_config,
    match=r"ClassroomSharedPasswordAuthenticator\.user_password_file: must be at least 8 characters long, got 7",
)


@pytest.mark.parametrize("refusal", [NO_PASSWORD])
def test_no_password_refuses_to_start(background, refusal):
    background.refusal(refusal)


@pytest.mark.parametrize("refusal", [SHORT_PASSWORD])
def test_short_password_from_a_file_refuses_to_start(background, refusal):
    assert "short12" not in background.refusal(refusal)
