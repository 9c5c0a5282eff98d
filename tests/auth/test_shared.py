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


# ---- JupyterHub's own `shared-password`, through jupyterhub_ext.z2jh.setup(c) ----------------------------


def z2jh_config(*lines: str) -> str:
    """A hub config ending as the chart's hub.extraConfig does: ``jupyterhub_ext.z2jh.setup(c)`` (with the
    local spawner, which needs no cluster)."""
    data = tempfile.mkdtemp(prefix="shared-z2jh-")
    return "\n".join(
        [
            *lines,
            'c.LocalProfilesSpawner.catalog_file = "builtin:eks"',
            f"c.LocalProfilesSpawner.data_dir = {data!r}",
            "c.LocalProfilesSpawner.accelerators = []",
            "import jupyterhub_ext.z2jh",
            'jupyterhub_ext.z2jh.setup(c, spawner="local")',
        ]
    )


@hub_factory("upstream_named")
def start_upstream_named(provider):
    """Configured as JupyterHub documents its SharedPasswordAuthenticator, the password from a secret."""
    secret_dir = Path(tempfile.mkdtemp(prefix="shared-password-secret-"))
    (secret_dir / "admin").write_text(ADMIN_PASSWORD + "\n")
    config = z2jh_config(
        'c.JupyterHub.authenticator_class = "shared-password"',
        "c.SharedPasswordAuthenticator.allowed_users = {'alice', 'bob'}",
        "c.SharedPasswordAuthenticator.admin_users = {'teacher'}",
        f"c.SharedPasswordAuthenticator.admin_password_file = {str(secret_dir / 'admin')!r}",
    )
    return start_hub(
        config, env={"JUPYTERHUB_SHARED_PASSWORD": STUDENT_PASSWORD}, debug=True, name="shared-password-upstream"
    )


def test_shared_password_entry_point_gets_the_classroom_checks(upstream_named):
    upstream_named.wait_for_log(r"Using Authenticator: jupyterhub_ext\.auth\.shared\.ClassroomSharedPassword")
    session, r = form_login(upstream_named, "Alice", STUDENT_PASSWORD)
    assert r.status_code == 302
    me = current(upstream_named, session)
    assert me["name"] == "alice" and me["admin"] is False
    session, r = form_login(upstream_named, "teacher", ADMIN_PASSWORD)
    assert r.status_code == 302 and current(upstream_named, session)["admin"] is True
    # What JupyterHub's own class would let in: an unlisted name, an admin's name with the students' password.
    for username in ("mallory", "TEACHER"):
        session, r = form_login(upstream_named, username, STUDENT_PASSWORD)
        assert r.status_code == 403 and current(upstream_named, session) is None, username
    log = upstream_named.log_text()
    assert STUDENT_PASSWORD not in log and ADMIN_PASSWORD not in log


UPSTREAM_SHORT = refusal_case(
    "shared/upstream-name-short-password",
    lambda: z2jh_config(
        'c.JupyterHub.authenticator_class = "shared-password"',
        "c.SharedPasswordAuthenticator.allowed_users = {'alice'}",
        "c.SharedPasswordAuthenticator.user_password = 'short12'",
    ),
    # The key as written (not the subclass's name), the length, never the value.
    match=r"(?<!Classroom)SharedPasswordAuthenticator\.user_password: must be at least 8 characters long, got 7",
)

UPSTREAM_CLASS_NO_PASSWORD = refusal_case(
    "shared/upstream-class-no-password",
    lambda: z2jh_config(
        "from jupyterhub.authenticators.shared import SharedPasswordAuthenticator",
        "c.JupyterHub.authenticator_class = SharedPasswordAuthenticator",
        "c.Authenticator.allowed_users = {'alice'}",
    ),
    match=r"ClassroomSharedPasswordAuthenticator\.user_password: no shared password is set",
)

UPSTREAM_ALLOW_ALL = refusal_case(
    "shared/upstream-name-allow-all",
    lambda: z2jh_config(
        "c.JupyterHub.authenticator_class = 'shared-password'",
        f"c.SharedPasswordAuthenticator.user_password = {STUDENT_PASSWORD!r}",
        "c.Authenticator.allow_all = True",
    ),
    match=r"Authenticator\.allow_all: would let anyone who knows the shared password create any number of accounts",
)


@pytest.mark.parametrize("refusal", [UPSTREAM_SHORT, UPSTREAM_CLASS_NO_PASSWORD, UPSTREAM_ALLOW_ALL])
def test_shared_password_entry_point_refuses_to_start_like_ours(background, refusal):
    log = background.refusal(refusal)
    assert "short12" not in log and STUDENT_PASSWORD not in log
