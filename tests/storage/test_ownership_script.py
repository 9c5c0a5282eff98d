"""The init container's ownership fix, run for real: with only CHOWN, DAC_OVERRIDE and FOWNER (as in the pod),
it fixes the owner of the directories it is given, non-recursively, and does nothing when all is right."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jupyterhub_ext.storage import INIT_CONTAINER, OWNERSHIP_SCRIPT

CAPS = "-all,+chown,+dac_override,+fowner"  # the pod's securityContext: drop ALL, add these three

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and util-linux setpriv to run with exactly the pod's capabilities")


def run(dirs: list[Path], caps: str = CAPS, uid: int = 1000, gid: int = 100) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--bounding-set={caps}", "--inh-caps=-all", "--",
                           "sh", "-c", OWNERSHIP_SCRIPT, INIT_CONTAINER, str(uid), str(gid), *map(str, dirs)],
                          capture_output=True, text=True, timeout=30)


def owner(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_uid, st.st_gid


def test_fixes_a_root_owned_home_without_touching_its_files(tmp_path):
    home = tmp_path / "ann"
    home.mkdir(mode=0o500)          # what a kubelet-created subPath on plain NFS can look like
    (home / "notebook.ipynb").write_text("{}")
    os.chown(home, 0, 0)
    result = run([home])
    assert result.returncode == 0, result.stderr
    assert owner(home) == (1000, 100)
    assert home.stat().st_mode & 0o700 == 0o700
    assert owner(home / "notebook.ipynb") == (0, 0)  # never recursive
    assert "now owned by 1000:100" in result.stdout


def test_does_nothing_when_ownership_is_right(tmp_path):
    home = tmp_path / "ann"
    home.mkdir(mode=0o755)
    os.chown(home, 1000, 100)
    before = home.stat()
    result = run([home])
    assert result.returncode == 0 and result.stdout == ""
    assert home.stat().st_ctime_ns == before.st_ctime_ns  # no chown, no chmod: the inode is untouched


def test_fixes_every_directory_it_is_given(tmp_path):
    dirs = [tmp_path / "home", tmp_path / "shared-math"]
    for d in dirs:
        d.mkdir()
        os.chown(d, 0, 0)
    assert run(dirs, uid=1001, gid=1001).returncode == 0
    assert [owner(d) for d in dirs] == [(1001, 1001)] * 2


def test_fails_loudly_without_the_chown_capability(tmp_path):
    # the capability set is what makes it work: take CHOWN away and the pod's init container fails
    home = tmp_path / "ann"
    home.mkdir()
    os.chown(home, 0, 0)
    result = run([home], caps="-all,+dac_override,+fowner")
    assert result.returncode != 0 and owner(home) == (0, 0)
