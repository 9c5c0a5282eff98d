"""Courses end to end: a real hub running ProfilesKubeSpawner as the z2jh chart configures it for EKS
(helm/values.yaml: the shipped catalog, EFS homes), on the emulated cluster whose kubelet really runs the init
containers and hooks, as the user, on the home.

The user images are stand-ins for the catalog's third-party images (PySpark, Elyra, gpu-jupyter): they lack this
package altogether, so the seeder can only come from the course image. Course images are what images/course
builds: the course tree at /course and the stdlib seeder at /opt/course-seeder/seeder (here: this repository's
seeder directory, seen read-only), and they lack the package too. A new course version is a new image tag.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest

import jupyterhub_ext
from tests.e2e.conftest import NAMESPACE, chart_spawner_config
from tests.harness import EmulatedCluster
from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.hub import SpawnFailed, start_kube_hub
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND, ImageConfig
from tests.harness.platform import efs_objects, pools_from_platform

from ..seeder.conftest import write_tree

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# every copy of the package this machine's Python could import (the checkout, an install in site-packages)
PACKAGE_DIRS = sorted({str(ROOT / "jupyterhub_ext"), os.path.dirname(os.path.abspath(jupyterhub_ext.__file__)),
                       *(os.path.join(p, "jupyterhub_ext") for p in sys.path
                         if p and os.path.isdir(os.path.join(p, "jupyterhub_ext"))),
                       *subprocess.run([sys.executable, "-I", "-c", "import importlib.util as u; "
                                        "print(*u.find_spec('jupyterhub_ext').submodule_search_locations)"],
                                       cwd="/", capture_output=True, text=True).stdout.split()})
SEEDER_DIR = str(ROOT / "jupyterhub_ext" / "seeder")
EVERYONE = ["gpu-users", "ml-engineers", "data-engineers"]
# three profiles of the shipped catalog, three different third-party images
PROFILES = {"data-engineering": "quay.io/jupyter/pyspark-notebook", "elyra": "elyra/elyra",
            "gpu": "cschranz/gpu-jupyter"}
CS101 = "ghcr.io/uni/cs101-course"
STATS = "ghcr.io/uni/stats200-course"
MISSING = "ghcr.io/uni/missing-course:*"
K8S_VERSION = "1.33.0"


def courses_config(cs101_tag: str, delivery: str = "init-container") -> str:
    courses = [
        {"name": "cs101", "image": f"{CS101}:{cs101_tag}", "groups": ["cs101"]},
        {"name": "stats200", "image": f"{STATS}:1", "groups": ["stats200"], "on_deleted": "respect"},
        {"name": "optional-extra", "image": "ghcr.io/uni/missing-course:1", "groups": ["broken"]},
        {"name": "exam", "image": "ghcr.io/uni/missing-course:exam", "groups": ["exam"], "required": True},
    ]
    return "\n".join([f"c.ProfilesKubeSpawner.courses = {courses!r}",
                      f"c.ProfilesKubeSpawner.course_delivery = {delivery!r}"])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    base = tmp_path_factory.mktemp("course-images")
    trees = {}
    for name, files in {
        "cs101-v1": {"README.md": "# CS101\n", "week1/lab.ipynb": '{"v": 1}\n', "week1/data.csv": "a\n1\n"},
        "cs101-v2": {"README.md": "# CS101\n", "week1/lab.ipynb": '{"v": 2}\n', "week1/data.csv": "a\n1\n2\n",
                     "week2/hw.ipynb": '{"hw": 2}\n'},
        "stats200": {"intro.md": "# Stats 200\n", "sets/one.ipynb": "{}\n"},
    }.items():
        trees[name] = str(base / name)
        write_tree(trees[name], files)
    for dirpath, dirnames, filenames in os.walk(base):  # an image's files are readable by every user
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return trees


def course_image(tree: str) -> ImageConfig:
    return ImageConfig(content={"/course": tree, "/opt/course-seeder/seeder": SEEDER_DIR}, lacks=PACKAGE_DIRS)


@pytest.fixture(scope="module")
def cluster(request, images):
    third_party = ImageConfig(lacks=PACKAGE_DIRS)  # no jupyterhub_ext, no seeder, no course in these images
    c = EmulatedCluster(
        pools=pools_from_platform(delay=0.2), namespaces=(NAMESPACE,), backoff_max=2.0,
        command_map={**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND},
        images={f"{CS101}:v1": course_image(images["cs101-v1"]), f"{CS101}:v2": course_image(images["cs101-v2"]),
                f"{STATS}:1": course_image(images["stats200"]),
                **{f"{image}:*": third_party for image in PROFILES.values()}},
        missing_images=[MISSING], feature_gates=("ImageVolume",)).start()
    for plural, body in efs_objects(NAMESPACE):
        c.create(plural, body, body["metadata"].get("namespace"))
    yield c
    try:
        if module_failed(request):
            c.dump(str(artifact_dir("test_courses_e2e/cluster")))
    finally:
        c.stop()


class Hubs:
    """One hub at a time on the cluster, restarted with another configuration as an operator's upgrade does."""

    def __init__(self, request, cluster):
        self.request, self.cluster, self.hub, self.n = request, cluster, None, 0

    def start(self, extra: str):
        self.stop()
        self.n += 1
        config = "\n".join([chart_spawner_config(self.cluster.kubeconfig, "base"), "c.KubeSpawner.start_timeout = 60",
                            "c.KubeSpawner.http_timeout = 60", extra])
        self.hub = start_kube_hub(self.cluster.kubeconfig, namespace=NAMESPACE, config=config,
                                  name=f"e2e-courses-{self.n}", storage="none",
                                  spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner")
        for group in EVERYONE + ["cs101", "stats200", "broken", "exam"]:
            self.hub.api("POST", f"/groups/{group}")
        return self.hub

    def stop(self):
        if self.hub is not None:
            if module_failed(self.request):
                save_file(self.hub.process.log_path, artifact_dir("test_courses_e2e"), f"hub-{self.n}.log")
            self.hub.process.stop()
            self.hub = None


@pytest.fixture(scope="module")
def hubs(request, cluster):
    h = Hubs(request, cluster)
    yield h
    h.stop()


def member(hub, name: str, groups: list[str]) -> None:
    hub.ensure_user(name)
    for g in groups:
        r = hub.api("POST", f"/groups/{g}/users", json={"users": [name]})
        assert r.status_code == 200, r.text


def leave(hub, name: str, group: str) -> None:
    r = hub.api("DELETE", f"/groups/{group}/users", json={"users": [name]})
    assert r.status_code == 200, r.text


def home_of(cluster, pod: dict) -> str:
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == "/home/jovyan")
    return os.path.join(cluster.claim_dir(NAMESPACE, "efs-home"), mount.get("subPath", ""))


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def started_pod(hub, cluster, user: str, profile: str, timeout: float = 120) -> dict:
    hub.start(user, {"profile": profile}, timeout=timeout)
    return cluster.get("pods", f"jupyter-{user}", NAMESPACE)


def stop(hub, cluster, user: str) -> None:
    hub.stop_server(user)
    cluster.wait_gone("pods", f"jupyter-{user}", NAMESPACE, timeout=60)


def validate(pod: dict) -> None:
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod["metadata"]["name"]},
                                  "spec": pod["spec"]}, K8S_VERSION, strict=True)


def course_inits(pod: dict) -> dict[str, dict]:
    return {c["name"]: c for c in pod["spec"].get("initContainers") or [] if c["name"].startswith("course-")}


def test_every_profile_image_gets_the_course_from_the_course_image(hubs, cluster):
    hub = hubs.start(courses_config("v1"))
    for profile, image in PROFILES.items():
        user = f"every-{profile}"
        member(hub, user, EVERYONE + ["cs101"])
        pod = started_pod(hub, cluster, user, profile)
        assert pod["spec"]["containers"][0]["image"].startswith(image + ":")
        validate(pod)
        [init] = course_inits(pod).values()
        assert init["name"] == "course-cs101" and init["image"] == f"{CS101}:v1"
        sc = init["securityContext"]
        assert sc["runAsNonRoot"] and sc["runAsUser"] == 1000 and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        [status] = [s for s in pod["status"]["initContainerStatuses"] if s["name"] == "course-cs101"]
        assert status["state"]["terminated"]["exitCode"] == 0
        home = home_of(cluster, pod)
        assert read(os.path.join(home, "cs101", "week1", "lab.ipynb")) == '{"v": 1}\n', profile
        st = os.stat(os.path.join(home, "cs101", "README.md"))
        assert st.st_uid == 1000, "seeded as the user"
        [line] = [ln for ln in read(os.path.join(home, "cs101", ".course-seeder", "seeder.log")).splitlines()
                  if "status=" in ln]
        assert "status=ok added=3" in line, line
        assert not os.path.exists(os.path.join(home, "stats200"))  # not in that group
        # the user image really has no seeder: the course could only have come from the course image
        code, out = cluster.exec(NAMESPACE, pod["metadata"]["name"],
                                 ["python3", "-c", "import jupyterhub_ext"])
        assert code != 0 and "ModuleNotFoundError" in out, out
        stop(hub, cluster, user)


def test_two_courses_by_group_and_leaving_a_group_keeps_the_files(hubs, cluster):
    hub = hubs.hub or hubs.start(courses_config("v1"))
    member(hub, "both-courses", EVERYONE + ["cs101", "stats200"])
    member(hub, "stats-only", EVERYONE + ["stats200"])
    member(hub, "no-course", EVERYONE)
    pod = started_pod(hub, cluster, "both-courses", "elyra")
    assert list(course_inits(pod)) == ["course-cs101", "course-stats200"]
    home = home_of(cluster, pod)
    assert read(os.path.join(home, "cs101", "README.md")) == "# CS101\n"
    assert read(os.path.join(home, "stats200", "intro.md")) == "# Stats 200\n"
    stop(hub, cluster, "both-courses")

    pod = started_pod(hub, cluster, "stats-only", "elyra")
    assert list(course_inits(pod)) == ["course-stats200"]
    assert not os.path.exists(os.path.join(home_of(cluster, pod), "cs101"))
    stop(hub, cluster, "stats-only")

    pod = started_pod(hub, cluster, "no-course", "elyra")
    assert course_inits(pod) == {}
    stop(hub, cluster, "no-course")

    leave(hub, "both-courses", "stats200")
    pod = started_pod(hub, cluster, "both-courses", "elyra")
    assert list(course_inits(pod)) == ["course-cs101"]
    assert read(os.path.join(home, "stats200", "intro.md")) == "# Stats 200\n"  # kept, no longer updated
    stop(hub, cluster, "both-courses")


def test_a_new_image_tag_updates_what_the_student_did_not_touch(hubs, cluster):
    hub = hubs.hub or hubs.start(courses_config("v1"))
    user = "updated-student"
    member(hub, user, EVERYONE + ["cs101"])
    pod = started_pod(hub, cluster, user, "data-engineering")
    home = home_of(cluster, pod)
    code, out = cluster.exec(NAMESPACE, pod["metadata"]["name"],
                             ["sh", "-c", "echo 'my answers' >> ~/cs101/week1/lab.ipynb && id -u"])
    assert code == 0 and out.strip() == "1000", out
    stop(hub, cluster, user)

    hub = hubs.start(courses_config("v2"))  # the operator publishes cs101:v2 and upgrades the hub
    member(hub, user, EVERYONE + ["cs101"])
    pod = started_pod(hub, cluster, user, "data-engineering")
    assert course_inits(pod)["course-cs101"]["image"] == f"{CS101}:v2"
    assert home_of(cluster, pod) == home
    course = os.path.join(home, "cs101")
    assert read(os.path.join(course, "week1", "lab.ipynb")) == '{"v": 1}\nmy answers\n'  # edited: kept
    [beside] = glob.glob(os.path.join(course, "week1", "lab.course-*.ipynb"))
    assert read(beside) == '{"v": 2}\n'  # the new version beside it
    assert read(os.path.join(course, "week1", "data.csv")) == "a\n1\n2\n"  # untouched: updated
    assert read(os.path.join(course, "week2", "hw.ipynb")) == '{"hw": 2}\n'  # new: added
    notice = read(os.path.join(course, "COURSE-UPDATES.md"))
    assert "`week1/lab.ipynb`" in notice and os.path.basename(beside) in notice  # the student is told
    stop(hub, cluster, user)


def test_a_course_image_that_cannot_be_pulled(hubs, cluster):
    hub = hubs.hub or hubs.start(courses_config("v2"))
    member(hub, "pull-optional", EVERYONE + ["cs101", "broken"])
    r = hub.spawn("pull-optional", {"profile": "elyra"})
    assert r.status_code in (201, 202), r.text
    began = time.monotonic()
    events = hub.progress("pull-optional", timeout=90)
    model = hub.wait_ready("pull-optional", timeout=90)
    took = time.monotonic() - began
    assert model["ready"]
    notes = [e["message"] for e in events if "not available right now" in e.get("message", "")]
    assert notes and "optional-extra" in notes[0] and "ghcr.io/uni/missing-course:1" in notes[0], \
        [e.get("message") for e in events]
    assert took < 55, "it should not wait for start_timeout (60 s)"
    pod = cluster.get("pods", "jupyter-pull-optional", NAMESPACE)
    assert list(course_inits(pod)) == ["course-cs101"]  # started again without the course that cannot come
    assert os.path.exists(os.path.join(home_of(cluster, pod), "cs101", "README.md"))
    assert "Start of pull-optional without courses optional-extra" in hub.process.log_text()
    stop(hub, cluster, "pull-optional")

    member(hub, "pull-required", EVERYONE + ["exam"])
    began = time.monotonic()
    with pytest.raises(SpawnFailed) as failed:
        hub.start("pull-required", {"profile": "elyra"}, timeout=90)
    assert time.monotonic() - began < 55
    message = failed.value.message
    assert "cannot start without the material of course exam" in message, message
    assert "ghcr.io/uni/missing-course:exam" in message and "tell your instructor" in message
    cluster.wait_gone("pods", "jupyter-pull-required", NAMESPACE, timeout=60)


def test_image_volume_delivery_with_an_image_without_the_seeder(hubs, cluster):
    hub = hubs.start(courses_config("v2", delivery="image-volume"))
    user = "volume-student"
    member(hub, user, EVERYONE + ["stats200"])
    pod = started_pod(hub, cluster, user, "gpu")
    validate(pod)
    assert course_inits(pod) == {}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["course-stats200"]["image"]["reference"] == f"{STATS}:1"
    home = home_of(cluster, pod)
    assert read(os.path.join(home, "stats200", "sets", "one.ipynb")) == "{}\n"
    assert os.stat(os.path.join(home, "stats200", "intro.md")).st_uid == 1000
    stop(hub, cluster, user)
    shutil.rmtree(os.path.join(home, "stats200"))
