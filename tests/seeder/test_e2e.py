"""The seeder as a postStart hook, end to end, wired by the spawner itself: a real hub running
ProfilesKubeSpawner configured as the z2jh chart configures it for the AKS classroom (helm/values.yaml +
helm/values-aks-classroom.yaml: a per-user claim as the home), with the course settings (source in the image,
destination, policy) and an operator's own postStart hook. The emulated cluster's kubelet runs the one postStart
exec hook the spawner builds from both, inside the user's container, as the user (uid 1000), on the claim.

The course is in the image at ``/opt/course``. The harness does not build images (a container's root is this
machine's root filesystem), so the image's course directory is a read-only hostPath volume mounted at that path:
what the container sees is the same, a read-only directory at the configured source, and the test changes its
content between starts the way a new image would.
"""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from tests.e2e.conftest import NAMESPACE, chart_spawner_config, cluster, username  # noqa: F401  (fixtures)
from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.hub import start_kube_hub
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND

from .conftest import write_tree

pytestmark = pytest.mark.e2e

# What is under test is the hook, not the notebook server: the stdlib stand-in starts in milliseconds.
CLUSTER_OPTIONS = {"command_map": {**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}}

COURSE_IN_IMAGE = "/opt/course"
COURSE_HOST_PATH = "/seeder-e2e/course"  # the hostPath volume's path (a directory of the emulated node)
# The operator's own hook: it records that it ran, as whom, that it saw the container's mounts (the image's
# course exists only in the container, the home is the claim), and whether the seeder had run yet (it runs first).
OPERATOR_HOOK = ["/bin/sh", "-c", "echo \"operator hook ran: uid=$(id -u) "
                 "image=$(test -r /opt/course/README.md && echo yes || echo no) "
                 "home=$(test -e /home/jovyan/README.md && echo seeded || echo empty)\" "
                 ">> /home/jovyan/.operator-hook.log"]


@pytest.fixture(scope="module")
def course(cluster):  # noqa: F811
    path = cluster.volumes.dirs.host_path(COURSE_HOST_PATH)
    os.makedirs(path)
    os.chmod(path, 0o755)  # the image's files are readable by the user the container runs as
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def seeded_hub(request, cluster, course):  # noqa: F811
    config = "\n".join([
        chart_spawner_config(cluster.kubeconfig, "aks-classroom"),
        "c.KubeSpawner.start_timeout = 60",
        "c.ProfilesKubeSpawner.courses = []",  # the values' course image is replaced by the shorthand here
        f"c.ProfilesKubeSpawner.course_source = {COURSE_IN_IMAGE!r}",
        "c.ProfilesKubeSpawner.course_dest = '/home/jovyan'",
        "c.ProfilesKubeSpawner.course_on_deleted = 'respect'",  # not the default: the setting must reach the pod
        "c.ProfilesKubeSpawner.course_time_budget = 30.0",
        f"c.KubeSpawner.lifecycle_hooks = {{'postStart': {{'exec': {{'command': {OPERATOR_HOOK!r}}}}}}}",
        "c.KubeSpawner.volumes = {'course-image': {'name': 'course-image', "
        f"'hostPath': {{'path': {COURSE_HOST_PATH!r}, 'type': 'Directory'}}}}}}",
        "c.KubeSpawner.volume_mounts = {'course-image': {'name': 'course-image', "
        f"'mountPath': {COURSE_IN_IMAGE!r}, 'readOnly': True}}}}",
    ])
    hub = start_kube_hub(cluster.kubeconfig, namespace=NAMESPACE, config=config, name="e2e-seeder",
                         storage="none")  # the home is the spawner's own (home_mode pvc, from the chart)
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


def publish(course: str, files: dict) -> None:
    """A new image: its course files, readable by everyone as an image's are."""
    write_tree(course, files)
    for dirpath, dirnames, _ in os.walk(course):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)


def seeder_lines(home: str) -> list[str]:
    return [line for line in read(os.path.join(home, ".course-seeder", "seeder.log")).splitlines()
            if "course-seeder status=" in line]


def test_post_start_runs_the_operators_hook_and_seeds_then_updates_across_a_restart(  # noqa: F811
        cluster, seeded_hub, course, username):  # noqa: F811
    assert "Using Spawner: jupyterhub_ext.spawner.ProfilesKubeSpawner" in seeded_hub.process.log_text()
    publish(course, {"README.md": "# Course\n", "week1/lab.ipynb": '{"cells": [], "v": 1}\n',
                     "week1/data.csv": "a,b\n1,2\n", "week1/extra.md": "extra v1\n",
                     "bin/check.sh": ("#!/bin/sh\necho ok\n", 0o755)})
    seeded_hub.start(username, timeout=90)
    pod = f"jupyter-{username}"
    hooks = cluster.get("pods", pod, NAMESPACE)["spec"]["containers"][0]["lifecycle"]
    command = hooks["postStart"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-c"] and "--on-deleted respect" in command[2], command  # one hook, both
    home = home_of(cluster, username)

    # Both ran in the pod: the operator's hook first (the course was not there yet), as the user, then the seeder.
    assert read(os.path.join(home, ".operator-hook.log")) == "operator hook ran: uid=1000 image=yes home=empty\n"
    assert read(os.path.join(home, "week1", "lab.ipynb")) == '{"cells": [], "v": 1}\n'
    assert read(os.path.join(home, "README.md")) == "# Course\n"
    st = os.stat(os.path.join(home, "bin", "check.sh"))
    assert (st.st_uid, st.st_mode & 0o777) == (1000, 0o755)  # the user's file, executable bit kept
    [line] = seeder_lines(home)
    assert "status=ok added=5" in line and f"source={COURSE_IN_IMAGE}" in line, line

    # The student edits the lab and deletes a file, from inside their container, as themselves.
    code, out = cluster.exec(NAMESPACE, pod, ["sh", "-c", "echo 'my answers' >> week1/lab.ipynb && "
                                              "rm week1/extra.md && id -u"])
    assert code == 0 and out.strip() == "1000", out
    seeded_hub.stop_server(username)
    cluster.wait_gone("pods", pod, NAMESPACE, timeout=60)

    # A new image: the lab, the data and the deleted file changed, a new week appeared.
    publish(course, {"week1/lab.ipynb": '{"cells": [], "v": 2}\n', "week1/data.csv": "a,b\n1,2\n3,4\n",
                     "week1/extra.md": "extra v2\n", "week2/new.md": "# Week 2\n"})
    seeded_hub.start(username, timeout=90)
    assert home_of(cluster, username) == home  # the same claim: the home survived the restart
    assert read(os.path.join(home, ".operator-hook.log")).splitlines() == [
        "operator hook ran: uid=1000 image=yes home=empty",
        "operator hook ran: uid=1000 image=yes home=seeded",  # it ran again, at the restart
    ]
    assert read(os.path.join(home, "week1", "data.csv")) == "a,b\n1,2\n3,4\n"  # untouched: updated
    assert read(os.path.join(home, "week1", "lab.ipynb")) == '{"cells": [], "v": 1}\nmy answers\n'  # spared
    [beside] = glob.glob(os.path.join(home, "week1", "lab.course-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].ipynb"))
    assert read(beside) == '{"cells": [], "v": 2}\n'  # the new version, beside it, named with the run's date
    assert not os.path.exists(os.path.join(home, "week1", "extra.md"))  # deleted by the student: respected
    assert read(os.path.join(home, "week2", "new.md")) == "# Week 2\n"
    assert read(os.path.join(home, "README.md")) == "# Course\n"
    line = seeder_lines(home)[-1]
    assert "added=1 updated=1 restored=0 offered=1" in line and "respected=1" in line, line
    seeded_hub.stop_server(username)
