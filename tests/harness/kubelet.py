"""A local kubelet: every pod bound to a modelled node becomes real local processes.

Per pod: a loopback address 127.B.x.y of its own (``status.podIP``; all of 127/8 routes to lo on Linux, so
every pod can listen on 8888), its volumes as directories (see :mod:`volumes`), init containers run to
completion in order, then each container: image pull events, ``Created``, the process (through
:mod:`container_init`: own mount/UTS namespaces, volumes at their ``mountPath``, read-only mounts enforced,
running as the pod's uid/gid/fsGroup), ``Started``, the postStart exec hook (the container stays
``ContainerCreating`` until it returns; on failure ``FailedPostStartHook``, the container is killed and
restarted per ``restartPolicy``), readiness (probe or started), exit codes and ``restartCount`` with
CrashLoopBackOff. Deleting a pod runs preStop, sends SIGTERM, waits the grace period, SIGKILLs the process
group and removes the pod object.

Images are not pulled: :class:`ImageConfig` says what an image would provide (entrypoint/cmd, env, user,
working directory, directories such as ``/home/jovyan``) and ``command_map`` swaps image entry points for
local stand-ins (``start-singleuser.sh`` -> ``jupyterhub-singleuser`` from the virtual environment).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import fnmatch
import functools
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field

from .events import EventRecorder
from .resources import ApiError
from .scheduler import set_condition
from .store import Change, Store, now_iso
from .volumes import NO_FSGROUP_DRIVERS, VolumeDirs

log = logging.getLogger("harness.kubelet")

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "container_init.py")
VENV_BIN = sysconfig.get_path("scripts")
# What the "image" ships from this machine: the Python installation and virtual environment the containers run.
EXPOSE = sorted({sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))})


@dataclass
class ImageConfig:
    """What an image provides. Defaults describe a Jupyter docker-stacks / z2jh singleuser image."""

    entrypoint: list[str] = field(default_factory=lambda: ["tini", "-g", "--"])
    cmd: list[str] = field(default_factory=lambda: ["start-notebook.py"])
    env: dict[str, str] = field(default_factory=dict)
    uid: int = 1000
    gid: int = 100
    working_dir: str = "/home/jovyan"
    dirs: dict[str, tuple[int, int, int]] = field(default_factory=lambda: {"/home/jovyan": (1000, 100, 0o755)})
    size: int = 1_073_741_824
    # What the image ships beyond the host's root (which stands in for every image): a path in the image -> the
    # host directory that holds it, seen read-only; e.g. a course image's {"/course": ..., "/opt/course-seeder": ...}
    content: dict[str, str] = field(default_factory=dict)
    # Host paths the image does not have (hidden in its containers): e.g. the package directory, for a
    # third-party image without jupyterhub_ext
    lacks: list[str] = field(default_factory=list)

    def full_env(self) -> dict[str, str]:
        base = {"PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/home/jovyan", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "SHELL": "/bin/bash",
                "NB_USER": "jovyan", "NB_UID": str(self.uid), "NB_GID": str(self.gid)}
        base.update(self.env)
        return base


# Image entry points -> local stand-ins. A value of [] drops the word (and, for tini, its flags).
DEFAULT_COMMAND_MAP: dict[str, list[str]] = {
    "tini": [],
    "start-singleuser.sh": ["jupyterhub-singleuser"],
    "start-singleuser.py": ["jupyterhub-singleuser"],
    "start-notebook.sh": ["jupyterhub-singleuser"],
    "start-notebook.py": ["jupyterhub-singleuser"],
    "start.sh": [],
    # z2jh's block-cloud-metadata init container: pods share the host's network namespace here, so the rule
    # must never reach the host's firewall (network policy is not emulated).
    "iptables": ["true"],
}

# The stdlib stand-in for jupyterhub-singleuser (see standin_singleuser.py), run with this Python.
STANDIN_COMMAND = [sys.executable, "-I", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "standin_singleuser.py")]

WILDCARD_HOSTS = {"0.0.0.0", "", "::", "[::]", "*"}


_ISOLATION: str | None = None


def probe_isolation() -> str:
    """'namespaces' when this process may create mount namespaces (root with CAP_SYS_ADMIN), else 'none'."""
    global _ISOLATION
    if _ISOLATION is None:
        if os.geteuid() != 0:
            _ISOLATION = "none"
        else:
            import subprocess
            # libc's unshare, so Pythons without os.unshare (3.11) isolate too; container_init.py does the same
            code = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
                    "raise SystemExit(0 if libc.unshare(0x00020000) == 0 else 1)")
            probe = subprocess.run([sys.executable, "-I", "-S", "-c", code],
                                   capture_output=True, timeout=30)
            _ISOLATION = "namespaces" if probe.returncode == 0 else "none"
    return _ISOLATION


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: $$ escapes, unknown references stay as written."""
    def repl(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", repl, value)


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerState:
    name: str
    spec: dict
    init: bool = False
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    proc: "LocalProcess | None" = None
    container_id: str = ""
    log_path: str = ""
    env: dict = field(default_factory=dict)
    cwd: str = "/"
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    image_id: str = ""

    def status(self) -> dict:
        return {"name": self.name, "image": self.spec.get("image"), "imageID": self.image_id,
                "containerID": self.container_id or None, "ready": self.ready, "started": self.started,
                "restartCount": self.restart_count, "state": copy.deepcopy(self.state),
                "lastState": copy.deepcopy(self.last_state)}


@dataclass
class PodRuntime:
    uid: str
    namespace: str
    name: str
    node: str
    dir: str
    ip: str | None = None
    containers: dict[str, ContainerState] = field(default_factory=dict)
    init_containers: dict[str, ContainerState] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=dict)  # volume name -> host dir
    read_only_volumes: set = field(default_factory=set)
    posix_users: dict = field(default_factory=dict)  # volume name -> (uid, gid) an EFS access point enforces
    task: asyncio.Task | None = None
    terminating: bool = False
    phase: str = "Pending"
    initialized: bool = False
    start_time: str | None = None
    probes: list = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def label(self) -> str:
        return f"{self.name}_{self.namespace}({self.uid})"


class PodGone(Exception):
    pass


class LocalProcess:
    """A container's process, waited for through a pidfd on the event loop (no thread per process)."""

    def __init__(self, popen: subprocess.Popen, loop: asyncio.AbstractEventLoop):
        self.popen, self.pid, self.returncode = popen, popen.pid, None
        self._done = loop.create_future()
        self._loop = loop
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._exited)

    def _exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = self.popen.wait()
        if not self._done.done():
            self._done.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._done)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


class Kubelet:
    def __init__(self, store: Store, recorder: EventRecorder, data_dir: str, *,
                 images: dict[str, ImageConfig] | None = None, default_image: ImageConfig | None = None,
                 command_map: dict[str, list[str]] | None = None, missing_images: list[str] | None = None,
                 isolation: str = "auto", backoff_base: float = 1.0, backoff_max: float = 10.0,
                 kill_grace_cap: float = 10.0, ip_octet: int | None = None):
        self.store, self.recorder = store, recorder
        self.data_dir = os.path.abspath(data_dir)
        self.dirs = VolumeDirs(self.data_dir)
        self.images = images or {}
        self.default_image = default_image or ImageConfig()
        self.command_map = dict(DEFAULT_COMMAND_MAP if command_map is None else command_map)
        self.missing_images = list(missing_images or [])
        self.isolation = probe_isolation() if isolation == "auto" else isolation
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.kill_grace_cap = kill_grace_cap
        self.pods: dict[str, PodRuntime] = {}
        self._pulled: set[tuple[str, str]] = set()
        self._octet = ip_octet if ip_octet is not None else random.randrange(20, 250)
        self._next_ip = 1
        self._ips_in_use: set[str] = set()
        store.subscribe(self._on_change)

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        for pod in self.store.iter("pods"):
            self._sync(pod)

    async def stop(self) -> None:
        """Kill every process right away (harness teardown)."""
        for rt in list(self.pods.values()):
            rt.terminating = True
            if rt.task:
                rt.task.cancel()
            for c in list(rt.init_containers.values()) + list(rt.containers.values()):
                self._kill_group(c, signal.SIGKILL)
        for rt in list(self.pods.values()):
            for c in list(rt.init_containers.values()) + list(rt.containers.values()):
                if c.proc and c.proc.returncode is None:
                    try:
                        await asyncio.wait_for(c.proc.wait(), 5)
                    except Exception:
                        pass
        self.pods.clear()

    def _on_change(self, plural: str, change: Change) -> None:
        if plural == "pods":
            asyncio.get_event_loop().call_soon(self._sync, change.obj, change.type == "DELETED")

    def _sync(self, pod: dict, deleted: bool = False) -> None:
        uid = pod["metadata"]["uid"]
        rt = self.pods.get(uid)
        if deleted:
            if rt is not None and not rt.terminating:
                self._begin_termination(rt, min(self.kill_grace_cap, 2.0), finalize=False)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        if rt is None:
            if pod["metadata"].get("deletionTimestamp"):
                self.store.finalize("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            pod_dir = os.path.join(self.data_dir, "pods", f"{pod['metadata']['namespace']}_{pod['metadata']['name']}_{uid}")
            rt = PodRuntime(uid, pod["metadata"]["namespace"], pod["metadata"]["name"], node, pod_dir)
            self.pods[uid] = rt
            rt.task = asyncio.get_event_loop().create_task(self._run_pod(rt), name=f"pod {rt.name}")
        elif pod["metadata"].get("deletionTimestamp") and not rt.terminating:
            grace = pod["metadata"].get("deletionGracePeriodSeconds") or 0
            self._begin_termination(rt, min(float(grace), self.kill_grace_cap), finalize=True)

    # --- status -------------------------------------------------------------------------------------------------

    def _pod(self, rt: PodRuntime) -> dict:
        pod = self.store.find("pods", rt.namespace, rt.name)
        if pod is None or pod["metadata"]["uid"] != rt.uid:
            raise PodGone()
        return pod

    def _write_status(self, rt: PodRuntime) -> None:
        try:
            pod = self._pod(rt)
        except PodGone:
            return
        status = copy.deepcopy(pod.get("status") or {})
        status["phase"] = rt.phase
        status["hostIP"] = "127.0.0.1"
        status["hostIPs"] = [{"ip": "127.0.0.1"}]
        if rt.ip:
            status["podIP"] = rt.ip
            status["podIPs"] = [{"ip": rt.ip}]
        if rt.start_time:
            status["startTime"] = rt.start_time
        cs = [c.status() for c in rt.containers.values()]
        status["containerStatuses"] = cs
        if rt.init_containers:
            status["initContainerStatuses"] = [c.status() for c in rt.init_containers.values()]
        all_ready = bool(cs) and all(c.ready for c in rt.containers.values())
        set_condition(status, "Initialized", "True" if rt.initialized else "False",
                      None if rt.initialized else "ContainersNotInitialized",
                      None if rt.initialized else "containers with incomplete status: [" +
                      " ".join(n for n, c in rt.init_containers.items() if "terminated" not in c.state) + "]")
        not_ready = [n for n, c in rt.containers.items() if not c.ready]
        msg = None if all_ready else f"containers with unready status: [{' '.join(not_ready)}]"
        set_condition(status, "ContainersReady", "True" if all_ready else "False",
                      None if all_ready else "ContainersNotReady", msg)
        set_condition(status, "Ready", "True" if all_ready else "False",
                      None if all_ready else "ContainersNotReady", msg)
        if rt.phase in ("Succeeded", "Failed"):
            for cond in status["conditions"]:
                if cond["type"] in ("Ready", "ContainersReady"):
                    cond.update(status="False", reason="PodCompleted")
                    cond.pop("message", None)
        try:
            self.store.update("pods", rt.namespace, rt.name, {**pod, "status": status}, subresource="status")
        except ApiError:
            pass

    def _event(self, rt: PodRuntime, type_: str, reason: str, message: str, container: ContainerState | None = None):
        try:
            pod = self._pod(rt)
        except PodGone:
            return
        fp = None
        if container is not None:
            fp = f"spec.{'initContainers' if container.init else 'containers'}{{{container.name}}}"
        self.recorder.record(pod, type_, reason, message, "kubelet", host=rt.node, field_path=fp)

    # --- pod lifecycle --------------------------------------------------------------------------------------------

    async def _run_pod(self, rt: PodRuntime) -> None:
        try:
            pod = self._pod(rt)
            spec = pod["spec"]
            for c in spec.get("initContainers") or []:
                rt.init_containers[c["name"]] = ContainerState(c["name"], c, init=True,
                                                               state={"waiting": {"reason": "PodInitializing"}})
            for c in spec.get("containers") or []:
                rt.containers[c["name"]] = ContainerState(
                    c["name"], c, state={"waiting": {"reason": "PodInitializing" if rt.init_containers
                                                     else "ContainerCreating"}})
            rt.start_time = now_iso()
            os.makedirs(os.path.join(rt.dir, "logs"), exist_ok=True)
            self._allocate_ip(rt, pod)
            self._write_status(rt)
            await self._mount_volumes(rt)
            for c in rt.init_containers.values():
                while True:
                    code = await self._run_container(rt, c, wait=True)
                    if code == 0:
                        break
                    if spec.get("restartPolicy") == "Never":
                        rt.phase = "Failed"
                        self._write_status(rt)
                        return
                    await self._backoff(rt, c)
            rt.initialized = True
            for c in rt.containers.values():
                if c.init is False and "waiting" in c.state:
                    c.state = {"waiting": {"reason": "ContainerCreating"}}
            self._write_status(rt)
            await asyncio.gather(*(self._supervise(rt, c) for c in rt.containers.values()))
        except PodGone:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s failed in the local kubelet", rt.namespace, rt.name)
        finally:
            if not rt.terminating:
                self._release_ip(rt)

    async def _supervise(self, rt: PodRuntime, c: ContainerState) -> None:
        policy = self._pod(rt)["spec"].get("restartPolicy", "Always")
        while not rt.terminating:
            code = await self._run_container(rt, c, wait=True)
            if rt.terminating:
                return
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                if all("terminated" in x.state for x in rt.containers.values()):
                    failed = any(x.state["terminated"]["exitCode"] != 0 for x in rt.containers.values())
                    rt.phase = "Failed" if failed else "Succeeded"
                    self._write_status(rt)
                    self._release_ip(rt)
                return
            await self._backoff(rt, c)

    async def _backoff(self, rt: PodRuntime, c: ContainerState) -> None:
        delay = min(self.backoff_max, self.backoff_base * (2 ** max(0, c.restart_count - 1)))
        c.state = {"waiting": {"reason": "CrashLoopBackOff",
                               "message": f"back-off {int(delay) if delay >= 1 else delay}s restarting failed "
                                          f"container={c.name} pod={rt.label}"}}
        self._event(rt, "Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod {rt.label}", c)
        self._write_status(rt)
        await asyncio.sleep(delay)
        c.restart_count += 1

    def _allocate_ip(self, rt: PodRuntime, pod: dict) -> None:
        ports = [p["containerPort"] for c in pod["spec"].get("containers") or [] for p in c.get("ports") or []
                 if p.get("containerPort")]
        for _ in range(65000):
            n = self._next_ip
            self._next_ip += 1
            third, fourth = divmod(n, 254)
            if third > 255:
                self._octet = 20 + (self._octet - 19) % 230
                self._next_ip = 1
                continue
            ip = f"127.{self._octet}.{third}.{fourth + 1}"
            if ip in self._ips_in_use or not self._bindable(ip, ports):
                continue
            self._ips_in_use.add(ip)
            rt.ip = ip
            return
        raise RuntimeError("no free pod address left in 127.0.0.0/8")

    @staticmethod
    def _bindable(ip: str, ports: list[int]) -> bool:
        for port in ports:
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((ip, port))
            except OSError:
                return False
            finally:
                s.close()
        return True

    def _release_ip(self, rt: PodRuntime) -> None:
        if rt.ip:
            self._ips_in_use.discard(rt.ip)

    # --- volumes --------------------------------------------------------------------------------------------------

    async def _mount_volumes(self, rt: PodRuntime) -> None:
        while True:
            pod = self._pod(rt)
            problems = []
            for v in pod["spec"].get("volumes") or []:
                try:
                    rt.mounts[v["name"]] = self._prepare_volume(rt, pod, v)
                except VolumeNotReady as e:
                    problems.append((v["name"], str(e)))
            if not problems:
                self._apply_fs_group(rt, pod)
                return
            for name, msg in problems:
                self._event(rt, "Warning", "FailedMount", f'MountVolume.SetUp failed for volume "{name}" : {msg}')
            await asyncio.sleep(1.0)

    def _prepare_volume(self, rt: PodRuntime, pod: dict, v: dict) -> str:
        name = v["name"]
        base = os.path.join(rt.dir, "volumes")
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            pvc = self.store.find("persistentvolumeclaims", rt.namespace, claim)
            if pvc is None:
                raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found')
            if (pvc.get("status") or {}).get("phase") != "Bound":
                raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound')
            pv = self.store.find("persistentvolumes", None, pvc["spec"]["volumeName"])
            if pv is None:
                raise VolumeNotReady(f'persistentvolume "{pvc["spec"]["volumeName"]}" not found')
            if v["persistentVolumeClaim"].get("readOnly"):
                rt.read_only_volumes.add(name)
            posix = (pv["metadata"].get("annotations") or {}).get("harness.local/posix-user")
            if posix:
                uid, _, gid = posix.partition(":")
                rt.posix_users[name] = (int(uid), int(gid or uid))
            return self.dirs.ensure_pv(pv)
        if "emptyDir" in v:
            path = os.path.join(base, "kubernetes.io~empty-dir", name)
            if not os.path.isdir(path):
                os.makedirs(path)
                os.chmod(path, 0o777)
            return path
        if "secret" in v or "configMap" in v:
            kind = "secret" if "secret" in v else "configMap"
            src = v[kind]
            obj_name = src.get("secretName") if kind == "secret" else src.get("name")
            obj = self.store.find("secrets" if kind == "secret" else "configmaps", rt.namespace, obj_name)
            path = os.path.join(base, f"kubernetes.io~{kind.lower()}", name)
            if obj is None:
                if src.get("optional"):
                    os.makedirs(path, exist_ok=True)
                    return path
                raise VolumeNotReady(f'{"secret" if kind == "secret" else "configmap"} "{obj_name}" not found')
            data = {k: base64.b64decode(val) for k, val in (obj.get("data") or {}).items()} if kind == "secret" \
                else {k: str(val).encode() for k, val in (obj.get("data") or {}).items()}
            if os.path.isdir(path):
                shutil.rmtree(path)
            os.makedirs(path)
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] not in data:
                    raise VolumeNotReady(f'references non-existent {kind} key: {item["key"]}')
                target = os.path.join(path, item["path"])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(data[item["key"]])
                os.chmod(target, item.get("mode", src.get("defaultMode", 0o644)))
            rt.read_only_volumes.add(name)
            return path
        if "hostPath" in v:
            path = self.dirs.host_path(v["hostPath"]["path"])
            if v["hostPath"].get("type") in ("FileOrCreate",):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            else:
                os.makedirs(path, exist_ok=True)
            return path
        if "nfs" in v:
            return self.dirs.ensure_pv({"metadata": {"name": name}, "spec": {"nfs": v["nfs"]}})
        if "csi" in v:
            return self.dirs.ensure_pv({"metadata": {"name": name}, "spec": {"csi": {
                "driver": v["csi"].get("driver"), "volumeHandle": (v["csi"].get("volumeAttributes") or {}).get(
                    "volumeHandle", name)}}})
        if "image" in v:
            return self._image_volume(rt, name, v["image"])
        # projected and downwardAPI (the API server refuses other sources): an empty read-only directory
        path = os.path.join(base, "kubernetes.io~projected", name)
        os.makedirs(path, exist_ok=True)
        rt.read_only_volumes.add(name)
        return path

    def _image_volume(self, rt: PodRuntime, name: str, source: dict) -> str:
        """An image volume (feature gate ImageVolume): the image's files, read-only. Here an image's files beyond
        the host's root are its ``content``, copied once per pod into the volume's directory."""
        image = source.get("reference", "")
        if any(fnmatch.fnmatch(image, p) for p in self.missing_images):
            raise VolumeNotReady(f'failed to pull image "{image}": rpc error: code = NotFound desc = '
                                 f"{image}: not found")
        path = os.path.join(rt.dir, "volumes", "kubernetes.io~image", name)
        if not os.path.isdir(path):
            os.makedirs(path)
            for inside, src in self.image_config(image).content.items():
                shutil.copytree(src, path + os.path.normpath(inside), symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            self._event(rt, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        rt.read_only_volumes.add(name)
        return path

    def _apply_fs_group(self, rt: PodRuntime, pod: dict) -> None:
        """fsGroup: volumes that support ownership management get group fsGroup, g+rwX and setgid dirs."""
        fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
        if fs_group is None or os.geteuid() != 0:
            return
        for v in pod["spec"].get("volumes") or []:
            path = rt.mounts.get(v["name"])
            if not path or "hostPath" in v or "nfs" in v:
                continue
            if "persistentVolumeClaim" in v:
                pvc = self.store.find("persistentvolumeclaims", rt.namespace, v["persistentVolumeClaim"]["claimName"])
                pv = self.store.find("persistentvolumes", None, (pvc or {}).get("spec", {}).get("volumeName", ""))
                driver = ((pv or {}).get("spec", {}).get("csi") or {}).get("driver")
                if driver in NO_FSGROUP_DRIVERS or (pv or {}).get("spec", {}).get("nfs"):
                    continue
            if os.stat(path).st_gid == fs_group:
                continue  # fsGroupChangePolicy OnRootMismatch
            for root, dirs, files in os.walk(path):
                for p in [root] + [os.path.join(root, f) for f in files]:
                    try:
                        st = os.lstat(p)
                        if os.path.islink(p):
                            continue
                        os.chown(p, -1, fs_group)
                        mode = st.st_mode | 0o060
                        if os.path.isdir(p):
                            mode |= 0o2010
                        os.chmod(p, mode & 0o7777)
                    except OSError:
                        pass

    # --- containers -----------------------------------------------------------------------------------------------

    def image_config(self, image: str) -> ImageConfig:
        for pattern, cfg in self.images.items():
            if fnmatch.fnmatch(image, pattern):
                return cfg
        return self.default_image

    def _map_command(self, argv: list[str]) -> list[str]:
        out = list(argv)
        for _ in range(8):
            if not out:
                break
            word = os.path.basename(out[0])
            if word not in self.command_map:
                break
            rest = out[1:]
            if word == "tini":
                while rest and rest[0].startswith("-"):
                    flag = rest.pop(0)
                    if flag == "--":
                        break
            out = list(self.command_map[word]) + rest
        return out

    def _container_env(self, rt: PodRuntime, pod: dict, c: dict, img: ImageConfig) -> dict[str, str]:
        env = img.full_env()
        env["HOSTNAME"] = pod["spec"].get("hostname") or rt.name
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                cm = self.store.find("configmaps", rt.namespace, src["configMapRef"]["name"])
                if cm is None and not src["configMapRef"].get("optional"):
                    raise ContainerConfigError(f'configmap "{src["configMapRef"]["name"]}" not found')
                for k, v in ((cm or {}).get("data") or {}).items():
                    env[prefix + k] = str(v)
            if "secretRef" in src:
                sec = self.store.find("secrets", rt.namespace, src["secretRef"]["name"])
                if sec is None and not src["secretRef"].get("optional"):
                    raise ContainerConfigError(f'secret "{src["secretRef"]["name"]}" not found')
                for k, v in ((sec or {}).get("data") or {}).items():
                    env[prefix + k] = base64.b64decode(v).decode(errors="replace")
        for e in c.get("env") or []:
            name = e["name"]
            if "value" in e or "valueFrom" not in e:
                env[name] = expand(str(e.get("value", "")), env)
                continue
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                sec = self.store.find("secrets", rt.namespace, ref["name"])
                if sec is None or ref["key"] not in (sec.get("data") or {}):
                    if ref.get("optional"):
                        continue
                    what = f'secret "{ref["name"]}" not found' if sec is None else \
                        f'couldn\'t find key {ref["key"]} in Secret {rt.namespace}/{ref["name"]}'
                    raise ContainerConfigError(what)
                env[name] = base64.b64decode(sec["data"][ref["key"]]).decode(errors="replace")
            elif "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                cm = self.store.find("configmaps", rt.namespace, ref["name"])
                if cm is None or ref["key"] not in (cm.get("data") or {}):
                    if ref.get("optional"):
                        continue
                    what = f'configmap "{ref["name"]}" not found' if cm is None else \
                        f'couldn\'t find key {ref["key"]} in ConfigMap {rt.namespace}/{ref["name"]}'
                    raise ContainerConfigError(what)
                env[name] = str(cm["data"][ref["key"]])
            elif "fieldRef" in vf:
                env[name] = self._field_ref(rt, pod, vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                env[name] = self._resource_ref(pod, c, vf["resourceFieldRef"])
        url = env.get("JUPYTERHUB_SERVICE_URL")
        if url and rt.ip:
            env["JUPYTERHUB_SERVICE_URL"] = re.sub(r"^(\w+://)(\[[^\]]*\]|[^/:]*)",
                                                   lambda m: m.group(1) + (rt.ip if m.group(2) in WILDCARD_HOSTS
                                                                           else m.group(2)), url)
        return env

    def _field_ref(self, rt: PodRuntime, pod: dict, path: str) -> str:
        m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
        if m:
            return str((pod["metadata"].get(m.group(1)) or {}).get(m.group(2), ""))
        return {"metadata.name": rt.name, "metadata.namespace": rt.namespace, "metadata.uid": rt.uid,
                "spec.nodeName": rt.node, "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
                "status.podIP": rt.ip or "", "status.podIPs": rt.ip or "", "status.hostIP": "127.0.0.1",
                "status.hostIPs": "127.0.0.1"}.get(path, "")

    @staticmethod
    def _resource_ref(pod: dict, c: dict, ref: dict) -> str:
        from .quantity import parse_quantity
        which, _, res = ref.get("resource", "").partition(".")
        value = ((c.get("resources") or {}).get(which) or {}).get(res)
        if value is None:
            return "0"
        q = parse_quantity(value) / parse_quantity(ref.get("divisor", "1"))
        return str(-(-q.numerator // q.denominator))

    def _rewrite_args(self, argv: list[str], ip: str) -> list[str]:
        out = []
        for a in argv:
            m = re.match(r"^(--(?:ServerApp\.|NotebookApp\.)?ip=)(.*)$", a)
            if m and m.group(2) in WILDCARD_HOSTS:
                a = m.group(1) + ip
            out.append(a)
        return out

    def _security(self, pod: dict, c: dict, img: ImageConfig) -> tuple[int, int, list[int]]:
        psc, csc = pod["spec"].get("securityContext") or {}, c.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser", img.uid))
        # without runAsGroup the primary group is the image's for its own user (jovyan: users), else root's
        gid = csc.get("runAsGroup", psc.get("runAsGroup", img.gid if uid == img.uid else 0))
        groups = [gid]
        if psc.get("fsGroup") is not None:
            groups.append(psc["fsGroup"])
        groups += list(psc.get("supplementalGroups") or [])
        if (csc.get("runAsNonRoot", psc.get("runAsNonRoot"))) and uid == 0:
            raise ContainerConfigError("container has runAsNonRoot and image will run as root "
                                       f"(pod: \"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
                                       f"({pod['metadata']['uid']})\", container: {c['name']})")
        return uid, gid, groups

    def _mounts(self, rt: PodRuntime, c: dict, env: dict) -> list[dict]:
        mounts = []
        for m in c.get("volumeMounts") or []:
            src = rt.mounts[m["name"]]
            sub = m.get("subPath") or (expand(m["subPathExpr"], env) if m.get("subPathExpr") else "")
            if sub:
                target = os.path.normpath(os.path.join(src, sub))
                if not target.startswith(src.rstrip("/") + "/") and target != src:
                    raise ContainerConfigError(f"subPath {sub!r} escapes the volume")
                if not os.path.exists(target):
                    # kubelet creates a missing subPath as root with the volume root's mode; through an EFS
                    # access point every new file belongs to the access point's POSIX user instead
                    os.makedirs(target, mode=os.stat(src).st_mode & 0o7777, exist_ok=True)
                    os.chmod(target, os.stat(src).st_mode & 0o7777)
                    owner = rt.posix_users.get(m["name"])
                    if owner and os.geteuid() == 0:
                        os.chown(target, *owner)
                src = target
            mounts.append({"source": src, "target": m["mountPath"],
                           "readOnly": bool(m.get("readOnly")) or m["name"] in rt.read_only_volumes})
        return mounts

    async def _pull(self, rt: PodRuntime, c: ContainerState) -> bool:
        image = c.spec.get("image", "")
        policy = c.spec.get("imagePullPolicy", "IfNotPresent")
        c.image_id = f"{image.split(':')[0]}@sha256:{abs(hash(image)):064x}"[:200]
        if any(fnmatch.fnmatch(image, p) for p in self.missing_images):
            if policy == "Never":
                c.state = {"waiting": {"reason": "ErrImageNeverPull",
                                       "message": f'Container image "{image}" is not present with pull policy of '
                                                  "Never"}}
                self._event(rt, "Warning", "ErrImageNeverPull", c.state["waiting"]["message"], c)
                return False
            self._event(rt, "Normal", "Pulling", f'Pulling image "{image}"', c)
            msg = (f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                   f"{image}: not found")
            self._event(rt, "Warning", "Failed", f'Failed to pull image "{image}": rpc error: code = NotFound '
                                                 f"desc = {msg}", c)
            self._event(rt, "Warning", "Failed", "Error: ErrImagePull", c)
            c.state = {"waiting": {"reason": "ErrImagePull", "message": f"rpc error: code = NotFound desc = {msg}"}}
            self._write_status(rt)
            return False
        key = (rt.node, image)
        if policy == "Always" or (policy == "IfNotPresent" and key not in self._pulled):
            self._event(rt, "Normal", "Pulling", f'Pulling image "{image}"', c)
            self._pulled.add(key)
            size = self.image_config(image).size
            self._event(rt, "Normal", "Pulled", f'Successfully pulled image "{image}" in 12ms (12ms including '
                                                f"waiting). Image size: {size} bytes.", c)
        else:
            self._event(rt, "Normal", "Pulled", f'Container image "{image}" already present on machine', c)
        return True

    async def _run_container(self, rt: PodRuntime, c: ContainerState, wait: bool) -> int:
        """Pull, create, start (and postStart); then wait for the process. Returns its exit code."""
        while not await self._pull(rt, c):
            c.state = {"waiting": {"reason": "ImagePullBackOff",
                                   "message": f'Back-off pulling image "{c.spec.get("image")}"'}}
            self._event(rt, "Normal", "BackOff", f'Back-off pulling image "{c.spec.get("image")}"', c)
            self._write_status(rt)
            await asyncio.sleep(min(self.backoff_max, self.backoff_base * 2))
            if rt.terminating:
                return 1
        pod = self._pod(rt)
        img = self.image_config(c.spec.get("image", ""))
        try:
            env = self._container_env(rt, pod, c.spec, img)
            uid, gid, groups = self._security(pod, c.spec, img)
            mounts = self._mounts(rt, c.spec, env)
            # the image's own files under whatever the pod mounts (a volume at one of these paths would win)
            taken = {m["target"] for m in mounts}
            mounts = [{"source": src, "target": target, "readOnly": True}
                      for target, src in img.content.items() if target not in taken] + mounts
        except ContainerConfigError as e:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            self._event(rt, "Warning", "Failed", f"Error: {e}", c)
            self._write_status(rt)
            await asyncio.sleep(self.backoff_base)
            return 1
        argv = [expand(a, env) for a in (c.spec.get("command") or img.entrypoint)] + \
            [expand(a, env) for a in (c.spec.get("args") if c.spec.get("args") is not None or c.spec.get("command")
                                      else img.cmd) or []]
        argv = self._rewrite_args(self._map_command(argv), rt.ip or "127.0.0.1")
        cwd = c.spec.get("workingDir") or img.working_dir
        c.env, c.cwd, c.uid, c.gid, c.groups = env, cwd, uid, gid, groups
        n = c.restart_count
        c.log_path = os.path.join(rt.dir, "logs", c.name, f"{n}.log")
        os.makedirs(os.path.dirname(c.log_path), exist_ok=True)
        scratch = os.path.join(rt.dir, "scratch", f"{c.name}-{n}")
        spec = {"argv": argv, "env": env, "cwd": cwd, "uid": uid, "gid": gid, "groups": groups,
                "hostname": env["HOSTNAME"], "mounts": mounts, "image_dirs": {k: list(v) for k, v in img.dirs.items()},
                "scratch": scratch, "isolation": self.isolation, "hide": [self.data_dir, *img.lacks], "expose": EXPOSE,
                "rootfs": os.path.join(rt.dir, "rootfs", c.name)}
        self._event(rt, "Normal", "Created", f"Created container {c.name}", c)
        code, err = await self._spawn(c, spec)
        if err is not None:
            now = now_iso()
            c.state = {"terminated": {"exitCode": 128, "reason": err["reason"], "message": err["message"],
                                      "startedAt": now, "finishedAt": now, "containerID": c.container_id}}
            c.last_state = {}
            self._event(rt, "Warning", "Failed", f"Error: {err['message']}", c)
            self._write_status(rt)
            return 128
        started = now_iso()
        self._event(rt, "Normal", "Started", f"Started container {c.name}", c)
        c.state = {"waiting": {"reason": "ContainerCreating"}} if not c.init else {"running": {"startedAt": started}}
        hook = ((c.spec.get("lifecycle") or {}).get("postStart") or {})
        if hook and not c.init:
            ok, detail = await self._run_hook(rt, c, hook)
            if not ok:
                self._event(rt, "Warning", "FailedPostStartHook", detail or "PostStartHook failed", c)
                self._event(rt, "Normal", "Killing", "FailedPostStartHook", c)
                await self._kill(c, grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
                code = exit_code(c.proc.returncode if c.proc and c.proc.returncode is not None else -9)
                c.last_state = {"terminated": {"exitCode": code, "reason": "Error", "startedAt": started,
                                               "finishedAt": now_iso(), "containerID": c.container_id}}
                c.state = {"waiting": {"reason": "PostStartHookError", "message": detail}}
                c.started = False
                self._write_status(rt)
                return code if code else 1
        c.state = {"running": {"startedAt": started}}
        c.started = True
        probe = c.spec.get("readinessProbe")
        if c.init:
            pass
        elif probe:
            rt.probes.append(asyncio.get_event_loop().create_task(self._readiness(rt, c, probe)))
        else:
            c.ready = True
        if all("running" in x.state or "terminated" in x.state for x in rt.containers.values()) and \
                rt.phase == "Pending" and rt.initialized:
            rt.phase = "Running"
        self._write_status(rt)
        returncode = await c.proc.wait()
        code = exit_code(returncode)
        c.ready = False
        finished = now_iso()
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": started,
                "finishedAt": finished, "containerID": c.container_id}
        if returncode < 0:
            term["signal"] = -returncode
        c.state = {"terminated": term}
        c.last_state = {"terminated": dict(term)}
        if not rt.terminating:
            self._write_status(rt)
        return code

    async def _spawn(self, c: ContainerState, spec: dict) -> tuple[int | None, dict | None]:
        r, w = os.pipe()
        spec = dict(spec, status_fd=w)
        spec_path = os.path.join(os.path.dirname(c.log_path), f"spec-{c.restart_count}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        os.chmod(spec_path, 0o600)
        logf = open(c.log_path, "ab")
        loop = asyncio.get_running_loop()
        try:
            # fork/exec off the event loop: under a burst the machine is saturated and a vfork'ed child may
            # take milliseconds to exec, during which the API would not answer
            popen = await loop.run_in_executor(None, functools.partial(
                subprocess.Popen, [sys.executable, "-I", "-S", HELPER, spec_path], stdin=subprocess.DEVNULL,
                stdout=logf, stderr=logf, pass_fds=(w,), start_new_session=True, cwd="/"))
            c.proc = LocalProcess(popen, loop)
        finally:
            os.close(w)
            logf.close()
        c.container_id = f"local://{c.proc.pid}"
        data = await asyncio.get_running_loop().run_in_executor(None, _read_all, r)
        if data.strip():
            try:
                err = json.loads(data.decode().splitlines()[0])
            except ValueError:
                err = {"reason": "StartError", "message": data.decode(errors="replace")}
            await c.proc.wait()
            return None, err
        return None, None

    async def exec_in(self, rt: PodRuntime, c: ContainerState, argv: list[str], timeout: float | None = None,
                      env: dict | None = None) -> tuple[int, str]:
        """Run argv inside the container (its mount namespace, uid, env and cwd): ``kubectl exec``."""
        if c.proc is None or c.proc.returncode is not None:
            return 126, "container not running"
        spec = {"argv": argv, "env": env or c.env, "cwd": c.cwd, "uid": c.uid, "gid": c.gid, "groups": c.groups,
                "join_pid": c.proc.pid if self.isolation == "namespaces" else None, "isolation": self.isolation,
                "mounts": [], "rootfs": os.path.join(rt.dir, "rootfs", c.name)}
        path = os.path.join(rt.dir, f"exec-{time.monotonic_ns()}.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-I", "-S", HELPER, path,
                                                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            return 137, "command timed out"
        finally:
            os.unlink(path)
        return proc.returncode, out.decode(errors="replace")

    async def _run_hook(self, rt: PodRuntime, c: ContainerState, hook: dict) -> tuple[bool, str]:
        pod = self._pod(rt)
        if "exec" in hook:
            cmd = hook["exec"].get("command") or []
            code, out = await self.exec_in(rt, c, cmd)
            if code != 0:
                return False, (f"Exec lifecycle hook ({cmd}) for Container \"{c.name}\" in Pod \"{rt.label}\" "
                               f"failed - error: command '{' '.join(cmd)}' exited with {code}: {out}, "
                               f"message: \"{out}\"")
            return True, ""
        if "httpGet" in hook:
            ok = await self._http_get(rt, hook["httpGet"], timeout=pod["spec"].get("terminationGracePeriodSeconds", 30))
            return ok, "" if ok else f"HTTP lifecycle hook ({hook['httpGet'].get('path', '/')}) for Container " \
                                     f"\"{c.name}\" in Pod \"{rt.label}\" failed"
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
        return True, ""

    async def _http_get(self, rt: PodRuntime, get: dict, timeout: float = 1.0) -> bool:
        host = get.get("host") or rt.ip
        port = get.get("port")
        if isinstance(port, str):
            port = next((p["containerPort"] for c in rt.containers.values() for p in c.spec.get("ports") or []
                         if p.get("name") == port), None)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
            writer.write(f"GET {get.get('path', '/')} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
            writer.close()
            parts = line.decode(errors="replace").split()
            return len(parts) >= 2 and 200 <= int(parts[1]) < 400
        except (OSError, asyncio.TimeoutError, ValueError, TypeError):
            return False

    async def _readiness(self, rt: PodRuntime, c: ContainerState, probe: dict) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        period = float(probe.get("periodSeconds", 10))
        failures = 0
        while not rt.terminating and c.proc and c.proc.returncode is None:
            timeout = float(probe.get("timeoutSeconds", 1))
            if "httpGet" in probe:
                ok = await self._http_get(rt, probe["httpGet"], timeout)
            elif "tcpSocket" in probe:
                try:
                    _, w = await asyncio.wait_for(asyncio.open_connection(rt.ip, int(probe["tcpSocket"]["port"])),
                                                  timeout)
                    w.close()
                    ok = True
                except (OSError, asyncio.TimeoutError, ValueError):
                    ok = False
            elif "exec" in probe:
                code, _ = await self.exec_in(rt, c, probe["exec"].get("command") or [], timeout)
                ok = code == 0
            else:
                ok = True
            failures = 0 if ok else failures + 1
            ready = ok or (c.ready and failures < int(probe.get("failureThreshold", 3)))
            if ready != c.ready:
                c.ready = ready
                if not ok:
                    self._event(rt, "Warning", "Unhealthy", "Readiness probe failed", c)
                self._write_status(rt)
            await asyncio.sleep(period if c.ready else min(period, 0.5))

    # --- termination ----------------------------------------------------------------------------------------------

    def _begin_termination(self, rt: PodRuntime, grace: float, finalize: bool) -> None:
        rt.terminating = True
        asyncio.get_event_loop().create_task(self._terminate(rt, grace, finalize))

    async def _terminate(self, rt: PodRuntime, grace: float, finalize: bool) -> None:
        deadline = time.monotonic() + grace
        running = [c for c in rt.containers.values() if c.proc and c.proc.returncode is None]
        running += [c for c in rt.init_containers.values() if c.proc and c.proc.returncode is None]

        async def stop_one(c: ContainerState):
            hook = (c.spec.get("lifecycle") or {}).get("preStop")
            if hook and finalize:
                try:
                    await asyncio.wait_for(self._run_hook(rt, c, hook), max(0.1, deadline - time.monotonic()))
                except (asyncio.TimeoutError, PodGone):
                    pass
            if finalize:
                self._event(rt, "Normal", "Killing", f"Stopping container {c.name}", c)
            await self._kill(c, max(0.0, deadline - time.monotonic()))

        await asyncio.gather(*(stop_one(c) for c in running), return_exceptions=True)
        for t in rt.probes:
            t.cancel()
        if rt.task and not rt.task.done():
            rt.task.cancel()
            try:
                await rt.task
            except BaseException:
                pass
        self._release_ip(rt)
        self.pods.pop(rt.uid, None)
        rt.stopped.set()
        if finalize:
            try:
                pod = self._pod(rt)
                self.store.finalize("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            except PodGone:
                pass

    async def _kill(self, c: ContainerState, grace: float) -> None:
        if c.proc is None or c.proc.returncode is not None:
            self._kill_group(c, signal.SIGKILL)
            return
        try:
            c.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(c.proc.wait()), grace)
        except asyncio.TimeoutError:
            pass
        self._kill_group(c, signal.SIGKILL)  # whatever is left in the "cgroup"
        try:
            await asyncio.wait_for(asyncio.shield(c.proc.wait()), 5)
        except asyncio.TimeoutError:
            log.warning("container %s (pid %s) did not die", c.name, c.proc.pid)

    @staticmethod
    def _kill_group(c: ContainerState, sig: int) -> None:
        if c.proc is None:
            return
        if c.proc.returncode is not None and os.path.exists(f"/proc/{c.proc.pid}"):
            # Our leader is reaped, and a process has its pid: a stranger (pids wrap at pid_max, 32768 here),
            # perhaps a hub leading its own session. While members of our group live, Linux never reuses the
            # pid, so with no such process a killpg can only reach what is left of the container.
            return
        try:
            os.killpg(c.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # --- logs and exec for tests ----------------------------------------------------------------------------------

    def find(self, namespace: str, name: str) -> PodRuntime | None:
        for rt in self.pods.values():
            if rt.namespace == namespace and rt.name == name:
                return rt
        return None

    def read_log(self, namespace: str, name: str, container: str | None = None, tail: int | None = None,
                 previous: bool = False) -> str:
        base = os.path.join(self.data_dir, "pods")
        if not os.path.isdir(base):
            return ""
        dirs = sorted((d for d in os.listdir(base) if d.startswith(f"{namespace}_{name}_")),
                      key=lambda d: os.stat(os.path.join(base, d)).st_mtime)
        if not dirs:
            return ""
        logs = os.path.join(base, dirs[-1], "logs")
        if container is None:
            names = sorted(os.listdir(logs)) if os.path.isdir(logs) else []
            container = names[0] if names else ""
        cdir = os.path.join(logs, container)
        if not os.path.isdir(cdir):
            return ""
        files = sorted((f for f in os.listdir(cdir) if f.endswith(".log")), key=lambda f: int(f.split(".")[0]))
        if not files:
            return ""
        pick = files[-2] if previous and len(files) > 1 else files[-1]
        with open(os.path.join(cdir, pick), errors="replace") as f:
            text = f.read()
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:]) + "\n"
        return text


class VolumeNotReady(Exception):
    pass


class ContainerConfigError(Exception):
    pass


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks)
