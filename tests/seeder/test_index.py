"""The course index built into the image: in-kernel copies, no re-reading of unchanged files, never trusted
beyond what size and mtime prove."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from jupyterhub_ext.seeder.__main__ import main
from jupyterhub_ext.seeder.index import INDEX_NAME, load_index, write_index

from .conftest import Counter, read, seed, write_tree

FILES = {"lab.ipynb": "v1" * 1000, "data/big.csv": "1,2\n" * 50_000, "bin/run.sh": ("#!/bin/sh\n", 0o755)}


def manifest_shas(home) -> dict:
    with open(os.path.join(str(home), ".course-seeder", "manifest.json")) as f:
        return {p: r["seeded"][0] for p, r in json.load(f)["files"].items() if "seeded" in r}


def true_shas(root, paths) -> dict:
    return {p: hashlib.sha256(read(root, p)).hexdigest() for p in paths}


def test_write_index_and_seed_without_reading_into_python(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, FILES)
    assert write_index(str(course)) == []
    assert set(load_index(str(course))) == set(FILES)
    counter = Counter()
    summary = seed(course, home, hook=counter)
    assert summary.counts["added"] == 3 and not os.path.exists(home / INDEX_NAME)  # the index is not seeded
    assert counter.count("read") == 0  # copied in the kernel: no byte of course content read by Python
    assert manifest_shas(home) == true_shas(home, FILES)  # ...and the recorded hashes are the real ones
    assert os.stat(home / "bin" / "run.sh").st_mode & 0o777 == 0o755


def test_stale_entries_are_not_trusted(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, FILES)
    write_index(str(course))
    write_tree(course, {"lab.ipynb": "v2" * 1000})  # edited after the index: same size, new mtime
    seed(course, home)
    assert read(home, "lab.ipynb") == b"v2" * 1000
    assert manifest_shas(home) == true_shas(home, FILES)


def test_rehash_ignores_the_index(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"a.txt": "aaaa"})
    write_index(str(course))
    st = os.stat(course / "a.txt")
    write_tree(course, {"a.txt": "bbbb"})  # same size, and the mtime put back: the index now lies
    os.utime(course / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    seed(course, home, rehash=True)
    assert manifest_shas(home) == true_shas(home, ["a.txt"])


def test_a_rebuilt_image_with_the_same_bytes_is_not_read(dirs):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, FILES)
    seed(course, home)
    for rel in FILES:
        os.utime(course / rel, ns=(10**18, 10**18))  # the image was rebuilt: new mtimes everywhere
    write_index(str(course))
    counter = Counter()
    summary = seed(course, home, hook=counter)
    assert counter.count("open", "read") == 0  # no course file (nor home file) read
    assert summary.bytes_written == 0 and summary.manifest_written  # only the cache learns the new mtimes


def test_copy_across_filesystems(fast_tmp, tmp_path):
    # The image (overlay) and the home (NFS, a disk) are different filesystems: copy_file_range may refuse
    # (EXDEV), sendfile takes over.
    course, home = os.path.join(fast_tmp, "course"), tmp_path / "home"
    write_tree(course, FILES)
    write_index(course)
    assert seed(course, home).status == "ok"
    assert manifest_shas(home) == true_shas(home, FILES)
    for rel, value in FILES.items():
        content = value[0] if isinstance(value, tuple) else value
        assert read(home, rel) == content.encode()


def test_cli_write_index(dirs, capsys):
    write_tree(dirs["course"], FILES)
    assert main(["--source", str(dirs["course"]), "--write-index"]) == 0
    assert os.stat(dirs["course"] / INDEX_NAME).st_mode & 0o777 == 0o644
    os.symlink("/etc/passwd", str(dirs["course"] / "passwd"))
    assert main(["--source", str(dirs["course"]), "--write-index"]) == 1
    assert "passwd" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not json", b'{"format": 99, "files": {}}',
                                     b'{"format": 1, "files": {"a.txt": [1, 2, "short"]}}'])
def test_a_broken_index_is_ignored(dirs, content):
    course, home = dirs["course"], dirs["home"]
    write_tree(course, {"a.txt": "a", INDEX_NAME: content})
    assert seed(course, home).status == "ok"
    assert manifest_shas(home) == true_shas(home, ["a.txt"])
