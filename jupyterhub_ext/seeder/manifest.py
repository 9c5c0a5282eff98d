"""The manifest: what was seeded, as a hidden JSON file in the home.

Format (``"format": 1``)::

    {"format": 1, "tool": "jupyterhub_ext.seeder", "source": "/opt/course", "updated": "2026-11-22T09:00:00Z",
     "dirs": ["week1"],
     "files": {"week1/lab.ipynb": {
         "src":     [size, mtime_ns, "sha256"],               # hash cache of the course file
         "seeded":  ["sha256", size, mode, mtime_ns, inode],   # what we put at this path, and its stat then
         "offered": ["sha256", "lab.course-2026-11-22.ipynb"], # last version written beside the student's
         "deleted": true}}}                                    # "respect" policy: the student deleted it

Lists rather than objects per file keep a 5,000-file manifest quick to parse on every start. A manifest that is
missing, unreadable or malformed (the student can edit it) is treated as empty: every file already in the home
is then compared by content, identical ones are adopted and the rest are the student's, so nothing is lost.
"""

from __future__ import annotations

import json
import time

from .model import Manifest, Record, Seeded

FORMAT = 1


def _record(raw: object) -> Record:
    # Inlined checks: this runs for every file on every start.
    if type(raw) is not dict:
        raise ValueError("not an object")
    rec = Record()
    src = raw.get("src")
    if src is not None:
        size, mtime_ns, sha = src
        if type(size) is not int or type(mtime_ns) is not int or type(sha) is not str or len(sha) != 64:
            raise ValueError("bad src")
        rec.src = (size, mtime_ns, sha)
    seeded = raw.get("seeded")
    if seeded is not None:
        sha, size, mode, mtime_ns, ino = seeded
        if (type(sha) is not str or len(sha) != 64 or type(size) is not int or type(mode) is not int
                or type(mtime_ns) is not int or type(ino) is not int):
            raise ValueError("bad seeded")
        rec.seeded = Seeded(sha, size, mode, mtime_ns, ino)
    offered = raw.get("offered")
    if offered is not None:
        sha, name = offered
        if type(sha) is not str or len(sha) != 64 or type(name) is not str or "/" in name or not name:
            raise ValueError("bad offered")
        rec.offered = (sha, name)
    rec.deleted = raw.get("deleted") is True
    return rec


def _valid_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and all(part not in ("", ".", "..") for part in parts)


def parse(data: bytes, written_ns: int | None) -> tuple[Manifest, list[str]]:
    """Manifest from file content; problems found are returned (and the bad entries dropped), never raised."""
    problems: list[str] = []
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("unknown format")
        files = raw.get("files", {})
        dirs = raw.get("dirs", [])
        if not isinstance(files, dict) or not isinstance(dirs, list):
            raise ValueError("bad layout")
    except (ValueError, UnicodeDecodeError) as e:
        return Manifest(), ["manifest unreadable (%s); starting afresh" % e]
    manifest = Manifest(written_ns=written_ns)
    for path, value in files.items():
        try:
            if not _valid_path(path):
                raise ValueError("bad path")
            manifest.records[path] = _record(value)
        except (ValueError, TypeError) as e:
            problems.append("manifest entry %r dropped (%s)" % (path, e))
    manifest.dirs = {d for d in dirs if isinstance(d, str) and _valid_path(d)}
    return manifest, problems


def dump(manifest: Manifest, source: str) -> bytes:
    doc = {
        "format": FORMAT,
        "tool": "jupyterhub_ext.seeder",
        "source": source,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dirs": sorted(manifest.dirs),
        "files": {p: r.to_json() for p, r in sorted(manifest.records.items()) if not r.is_empty()},
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii") + b"\n"


def same_content(a: Manifest, b: Manifest) -> bool:
    """Whether two manifests would be written the same (so an unchanged one is not rewritten)."""
    if a.dirs != b.dirs:
        return False
    ra = {p: r for p, r in a.records.items() if not r.is_empty()}
    rb = {p: r for p, r in b.records.items() if not r.is_empty()}
    return ra.keys() == rb.keys() and all(ra[p] is rb[p] or ra[p] == rb[p] for p in ra)
