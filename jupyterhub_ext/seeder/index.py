"""An optional index of the course's hashes, built into the image: `--source DIR --write-index`.

With it, the seeder knows each course file's sha256 without reading it (entries are trusted only while the
file's size and mtime still match, like the manifest's cache), so a copy can stay inside the kernel
(`copy_file_range`, as `cp` does) instead of passing through Python to be hashed, and a rebuilt image whose files
kept their bytes needs no reading at all. Without an index everything still works: files are hashed as they
are copied.

Format: ``{"format": 1, "files": {"week1/lab.ipynb": [size, mtime_ns, "sha256"], ...}}`` in
``<source>/.course-seeder-index.json``; the index itself is never seeded.
"""

from __future__ import annotations

import json
import os

from . import atomic, fsops
from .model import INDEX_NAME
from .scan import DEFAULT_EXCLUDES, scan_course

FORMAT = 1
__all__ = ["INDEX_NAME", "build_index", "write_index", "load_index"]


def build_index(source: str, excludes=DEFAULT_EXCLUDES) -> tuple[bytes, list[str]]:
    """The index of the course tree (as file content) and the problems met on the way."""
    tree = scan_course(source, excludes)
    files, problems = {}, ["%s: %s" % p for p in tree.problems]
    for path, f in sorted(tree.files.items()):
        sha = fsops.hash_path(f.real)
        if sha is None:
            problems.append("%s: unreadable" % path)
            continue
        files[path] = [f.size, f.mtime_ns, sha]
    doc = {"format": FORMAT, "tool": "jupyterhub_ext.seeder", "files": files}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("ascii") + b"\n", problems


def write_index(source: str, excludes=DEFAULT_EXCLUDES) -> list[str]:
    """Build the index and put it in the source directory, atomically. Returns the problems met."""
    data, problems = build_index(source, excludes)
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | fsops.O_CLOEXEC)
    try:
        atomic.write_atomic(fd, INDEX_NAME, data, ".~sd-index-%d.tmp" % os.getpid(), durable=True, mode=0o644)
    finally:
        os.close(fd)
    return problems


def load_index(source_real: str) -> dict[str, tuple[int, int, str]]:
    """The index's entries, or {} when there is none or it is unusable (then files are hashed as copied)."""
    try:
        with open(os.path.join(source_real, INDEX_NAME), "rb") as f:
            raw = json.loads(f.read().decode("ascii"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("files"), dict):
            return {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    out = {}
    for path, entry in raw["files"].items():
        if (isinstance(entry, list) and len(entry) == 3 and type(entry[0]) is int and type(entry[1]) is int
                and type(entry[2]) is str and len(entry[2]) == 64):
            out[path] = (entry[0], entry[1], entry[2])
    return out
