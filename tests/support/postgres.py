"""A throwaway PostgreSQL server from Debian's ``postgresql`` package, started by the tests themselves.

``initdb`` into a temporary directory owned by the ``postgres`` system account (PostgreSQL refuses to run as
root), listening only on a Unix socket in that directory. Skips when the package is not installed, unless
``REQUIRE_POSTGRES=1`` (scripts/test sets it after installing the package), which fails instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def _as_postgres(argv: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database on a fresh server; stop and remove it afterwards."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL (Debian's postgresql package) is not installed")
        pytest.skip("PostgreSQL (Debian's postgresql package) is not installed")
    base = tempfile.mkdtemp(prefix="pg-")
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (base, sock):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    try:
        _as_postgres([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        _as_postgres([pg_ctl, "-D", data, "-w", "-t", "60", "-l", os.path.join(base, "server.log"), "-o",
                      f"-k {sock} -c listen_addresses='' -c fsync=off", "start"])
        deadline = time.monotonic() + 30
        while not glob.glob(os.path.join(sock, ".s.PGSQL.*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        _as_postgres(["psql", "-h", sock, "-U", "postgres", "-c", "CREATE DATABASE jupyterhub"])
        yield f"postgresql+psycopg2://postgres@/jupyterhub?host={sock}"
    finally:
        try:
            _as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"])
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
        shutil.rmtree(base, ignore_errors=True)
