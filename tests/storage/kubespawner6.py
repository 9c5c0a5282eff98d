"""KubeSpawner 6.2.0's own ``_expand_user_properties``, run from its released wheel, as the naming oracle.

KubeSpawner 6 cannot be installed beside 7, so its method is compiled on its own from the wheel that
scripts/test downloads from PyPI into .cache/reference (it needs only ``escapism`` and ``string``).
"""

from __future__ import annotations

import ast
import functools
import glob
import os
import string
import zipfile
from types import SimpleNamespace

import escapism

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WHEELS = os.path.join(ROOT, ".cache", "reference")


@functools.lru_cache(maxsize=1)
def _expand_user_properties():
    found = sorted(glob.glob(os.path.join(WHEELS, "jupyterhub_kubespawner-6.2.0-*.whl")))
    if not found:
        raise RuntimeError(f"KubeSpawner 6.2.0's wheel is not in {WHEELS}: run scripts/test once (it downloads it)")
    with zipfile.ZipFile(found[0]) as wheel:
        source = wheel.read("kubespawner/spawner.py").decode()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KubeSpawner")
    method = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "_expand_user_properties")
    namespace = {"escapism": escapism, "string": string}
    exec(compile(ast.Module(body=[method], type_ignores=[]), found[0], "exec"), namespace)
    return namespace["_expand_user_properties"]


def render(template: str, username: str, userid: int = 1, servername: str = "") -> str:
    """What KubeSpawner 6.2.0 rendered ``template`` to for this user (and server)."""
    spawner = SimpleNamespace(name=servername, user=SimpleNamespace(name=username, id=userid),
                              _namespace_default=lambda: "jhub")
    return _expand_user_properties()(spawner, template)


def username(name: str) -> str:
    """What ``{username}`` rendered to in KubeSpawner 6.x."""
    return render("{username}", name)
