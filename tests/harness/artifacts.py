"""Where failing end-to-end tests leave their evidence: artifacts/<TEST_ENV>/e2e/<name>/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def artifact_dir(name: str) -> Path:
    env = os.environ.get("TEST_ENV", "local")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]
    path = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "artifacts" / env / "e2e")) / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def module_failed(request) -> bool:
    """True when any test of the requesting fixture's module (or the test itself) failed."""
    items = [request.node] if hasattr(request.node, "rep_call") else [
        i for i in request.session.items if i.module is getattr(request, "module", None)]
    return any(getattr(i, f"rep_{w}", None) is not None and getattr(i, f"rep_{w}").failed
               for i in items for w in ("setup", "call"))


def save_file(src: str | os.PathLike, dest_dir: Path, name: str | None = None) -> None:
    try:
        shutil.copy(src, dest_dir / (name or os.path.basename(src)))
    except OSError:
        pass
