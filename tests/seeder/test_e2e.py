"""The seeder as a postStart hook, end to end: a real hub with KubeSpawner, the emulated cluster's kubelet
running the exec hook that ``hook_command`` builds, inside the user's container, as the user (uid 1000), with the
home on its PVC. A spawned user finds the course files; a later course update reaches an untouched file and
spares an edited one.

The course directory lives on this machine's root filesystem, which the emulated containers see as their image.
(The spawner's own wiring of the hook, ``ProfilesKubeSpawner.course_*``, is tested in tests/spawner.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from jupyterhub_ext.seeder import hook_command
from tests.e2e.conftest import NAMESPACE, cluster, username  # noqa: F401  (fixtures)
from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.hub import start_kube_hub

from .conftest import write_tree

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def course():
    path = tempfile.mkdtemp(prefix="seeder-e2e-course-", dir="/var/tmp")
    os.chmod(path, 0o755)  # the image's files are readable by the user the container runs as
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def seeded_hub(request, cluster, course):  # noqa: F811
    hooks = {"postStart": {"exec": {"command": hook_command(course, "/home/jovyan")}}}
    config = f"c.KubeSpawner.lifecycle_hooks = {hooks!r}\n"
    hub = start_kube_hub(cluster.kubeconfig, namespace=NAMESPACE, config=config, name="e2e-seeder")
    yield hub
    if module_failed(request):
        save_file(hub.process.log_path, artifact_dir("test_seeder_e2e"), "hub.log")
    hub.process.stop()


def home_of(cluster, user: str) -> str:  # noqa: F811
    path = cluster.claim_dir(NAMESPACE, f"claim-{user}")
    assert path, "the user's PVC is not bound"
    return path


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_post_start_seeds_then_updates_and_spares_the_students_edit(cluster, seeded_hub, course,  # noqa: F811
                                                                   username):  # noqa: F811
    write_tree(course, {"README.md": "# Course\n", "week1/lab.ipynb": '{"cells": [], "v": 1}\n',
                        "week1/data.csv": "a,b\n1,2\n", "bin/check.sh": ("#!/bin/sh\necho ok\n", 0o755)})
    for dirpath, dirnames, _ in os.walk(course):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    seeded_hub.start(username, timeout=90)
    pod = f"jupyter-{username}"
    home = home_of(cluster, username)
    assert read(os.path.join(home, "week1", "lab.ipynb")) == '{"cells": [], "v": 1}\n'
    st = os.stat(os.path.join(home, "bin", "check.sh"))
    assert (st.st_uid, st.st_mode & 0o777) == (1000, 0o755)  # the user's file, executable bit kept
    assert "status=ok added=4" in read(os.path.join(home, ".course-seeder", "seeder.log"))

    # The student edits the lab, from inside their container, as themselves.
    code, out = cluster.exec(NAMESPACE, pod, ["sh", "-c", "echo 'my answers' >> week1/lab.ipynb && id -u"])
    assert code == 0 and out.strip() == "1000", out
    seeded_hub.stop_server(username)
    cluster.wait_gone("pods", pod, NAMESPACE, timeout=60)

    # A new image: the lab and the data changed, a new week appeared.
    write_tree(course, {"week1/lab.ipynb": '{"cells": [], "v": 2}\n', "week1/data.csv": "a,b\n1,2\n3,4\n",
                        "week2/new.md": "# Week 2\n"})
    os.chmod(os.path.join(course, "week2"), 0o755)
    seeded_hub.start(username, timeout=90)
    home = home_of(cluster, username)
    assert read(os.path.join(home, "week1", "data.csv")) == "a,b\n1,2\n3,4\n"  # untouched: updated
    assert read(os.path.join(home, "week1", "lab.ipynb")) == '{"cells": [], "v": 1}\nmy answers\n'  # spared
    beside = os.path.join(home, "week1", "lab.course-%s.ipynb" % time.strftime("%Y-%m-%d", time.gmtime()))
    assert read(beside) == '{"cells": [], "v": 2}\n'  # the new version, beside it
    assert read(os.path.join(home, "week2", "new.md")) == "# Week 2\n"
    log = read(os.path.join(home, ".course-seeder", "seeder.log")).splitlines()
    assert "added=1 updated=1 restored=0 offered=1" in [l for l in log if "course-seeder" in l][-1]
    seeded_hub.stop_server(username)

