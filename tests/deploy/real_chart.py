"""The hub's configuration as the real z2jh 4.4.0 chart makes it, with no emulation of the chart: the package's
own runner (jupyterhub_ext/cli/chart.py, what ``jupyterhub-ext --chart`` uses) on the chart in ../shared, with
the Secrets an operator creates (tests/deploy/hub.py SECRETS)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import yaml
from traitlets.config import Config

from jupyterhub_ext.cli import chart

from .z2jh_chart import HELM, SHARED

CHART = SHARED / "z2jh" / "chart"


def hub_config(helm: Path, root: Path, values: list[str], extra: dict | None = None,
               secrets: Mapping[str, Mapping[str, str]] | None = None) -> Config:
    """The Config the hub loads, from helm/``values`` files (and ``extra`` values on top, as one more -f)."""
    from .hub import SECRETS

    root.mkdir(parents=True, exist_ok=True)
    files = [str(HELM / name) for name in values]
    if extra:
        extra_file = root / "extra-values.yaml"
        extra_file.write_text(yaml.safe_dump(extra))
        files.append(str(extra_file))
    return chart.hub_config(str(helm), str(CHART), files, SECRETS if secrets is None else secrets).config
