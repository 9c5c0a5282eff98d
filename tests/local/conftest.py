"""Fixtures for the local (embedded default) tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .helpers import COURSE


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def course(tmp_path) -> Path:
    """A copy of the repository's course material that a test may change."""
    target = tmp_path / "course"
    shutil.copytree(COURSE, target)
    # the servers of per-user mode run as unprivileged uids: the copy must be readable for them
    os.chmod(tmp_path, 0o755)
    return target
