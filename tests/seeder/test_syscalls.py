"""What a warm run really asks of the kernel, seen by strace: one lstat per file and tree, no content read,
no byte written but the log line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import write_tree

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace not installed")

SYSCALL = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
STATS = {"newfstatat", "statx", "stat", "lstat", "fstatat64"}
CHANGES = {"rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "mkdir", "mkdirat",
           "fchmod", "fchmodat", "truncate", "ftruncate"}


def trace(args: list[str], out: str) -> list[tuple[str, str, int]]:
    cmd = [STRACE, "-f", "-qq", "-s", "256", "-o", out, sys.executable, "-m", "jupyterhub_ext.seeder"] + args
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    calls = []
    with open(out) as f:
        for line in f:
            m = SYSCALL.match(line)
            if m:
                calls.append((m.group(1), m.group(2), int(m.group(3))))
    return calls


def test_warm_run_syscalls(fast_tmp):
    course, home = os.path.join(fast_tmp, "course"), os.path.join(fast_tmp, "home")
    names = {"f%03d.ipynb" % i for i in range(300)}
    write_tree(course, {"week%d/%s" % (i % 6, n): "x" * i for i, n in enumerate(sorted(names))})
    args = ["--source", course, "--dest", home]
    subprocess.run([sys.executable, "-m", "jupyterhub_ext.seeder"] + args, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=os.getcwd()))
    calls = trace(args, os.path.join(fast_tmp, "trace"))

    def file_arg(arg: str) -> str:
        m = re.search(r'"([^"]*)"', arg)
        return os.path.basename(m.group(1)) if m else ""

    stats = [c for c in calls if c[0] in STATS and file_arg(c[1]) in names]
    assert len(stats) == 2 * len(names)  # one in the course, one in the home, per file
    opened = [c for c in calls if c[0] in ("open", "openat") and file_arg(c[1]) in names]
    assert opened == []  # no content read, on either side
    assert [c for c in calls if c[0] in CHANGES] == []
    fds = {1: "stdout", 2: "stderr"}
    for name, arg, result in calls:
        if name in ("open", "openat") and result >= 0:
            fds[result] = file_arg(arg)
    written = {}
    for name, arg, result in calls:
        if name in ("write", "writev", "pwrite64", "sendfile", "copy_file_range") and result > 0:
            target = fds.get(int(arg.split(",")[0]), "?")
            written[target] = written.get(target, 0) + result
    assert set(written) <= {"stdout", "stderr", "seeder.log"}, written
    assert written.get("seeder.log", 0) < 400  # the one summary line
