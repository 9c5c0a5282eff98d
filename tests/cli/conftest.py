"""Fixtures for the command line's tests: a real helm, the z2jh chart, a kubeconfig for spawners built without a
cluster, and each case's values files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import helm  # noqa: F401 (fixture: a real helm v3.17.3)
from tests.support.kubeconfig import dummy_kubeconfig  # noqa: F401 (autouse: KubeSpawner loads a kubeconfig)

from .cases import Case
from .chart_hub import CHART, values_files, write_values


@pytest.fixture(scope="session")
def chart() -> Path:
    if not (CHART / "Chart.yaml").exists():
        pytest.fail(f"the z2jh 4.4.0 chart is not at {CHART} (../shared/z2jh/README.md)")
    return CHART


def case_files(case: Case, directory: Path) -> list[str]:
    """The shipped files of ``case`` and its overlay, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return values_files(case.shipped, write_values(directory / f"{case.id}.yaml", case.overlay))
