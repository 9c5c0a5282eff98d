"""The two culler releases the per-profile culling tests run: 2.x in an environment of its own (as the hub image's
/opt/jupyterhub-idle-culler), and 1.4, the hub image's own, from its wheel.

scripts/test makes both (scripts/lib.sh: ensure_culler sets CULLER_PYTHON, ensure_reference_wheels downloads the
wheel). Under scripts/test a missing one fails the test; a bare ``pytest`` without them skips, saying so.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CULLER_VENV_PYTHON = ROOT / ".venv-culler" / "bin" / "python"
REFERENCE = ROOT / ".cache" / "reference"


def _missing(what: str, how: str):
    if os.environ.get("TEST_ENV"):  # scripts/test: it makes them, so missing is a failure
        pytest.fail(f"{what} is missing: scripts/test makes it ({how})", pytrace=False)
    pytest.skip(f"{what} is missing: run the tests through scripts/test, which makes it ({how})")


def culler_python() -> str:
    """A Python with jupyterhub-idle-culler 2.x and this package (``--no-deps``): CULLER_PYTHON, or .venv-culler."""
    given = os.environ.get("CULLER_PYTHON")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"CULLER_PYTHON={given} is not an executable Python", pytrace=False)
        return given
    if os.access(CULLER_VENV_PYTHON, os.X_OK):
        return str(CULLER_VENV_PYTHON)
    _missing("CULLER_PYTHON (jupyterhub-idle-culler 2.x with jupyterhub_ext)", "scripts/lib.sh ensure_culler")
    raise AssertionError("unreachable")


def culler_14_wheel() -> str:
    """jupyterhub-idle-culler 1.4.0's wheel: on PYTHONPATH, the hub's own Python has the chart's culler."""
    found = sorted(glob.glob(str(REFERENCE / "jupyterhub_idle_culler-1.4.0-*.whl")))
    if not found:
        _missing(f"jupyterhub-idle-culler 1.4.0's wheel in {REFERENCE}", "scripts/lib.sh ensure_reference_wheels")
    return found[0]
