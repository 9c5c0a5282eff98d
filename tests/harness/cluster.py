"""One emulated cluster in a background thread: API server, scheduler, Karpenter, volume controller, kubelet.

    with EmulatedCluster(pools=eks_pools()) as cluster:
        cluster.kubeconfig          # path of a kubeconfig pointing at the emulated API
        cluster.create("pods", {...}, namespace="jhub")
        cluster.wait_for_pod("jhub", "jupyter-alice", lambda p: p["status"]["phase"] == "Running")
        cluster.faults.add("create", "pods", status=500)
        cluster.requests.count("create", "pods")

Every public method is thread-safe: it runs on the cluster's event loop and returns deep copies. Processes
are killed and the API stopped on :meth:`stop` (also at interpreter exit).
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any, Callable

from .events import EventRecorder
from .faults import Faults
from .k8s_api import KubeAPIServer, RequestLog
from .karpenter import Provisioner
from .kubelet import ImageConfig, Kubelet
from .nodes import NodePool, eks_pools, make_node
from .resources import ApiError
from .scheduler import Scheduler
from .store import Store
from .volumes import StorageClassModel, VolumeController, VolumeDirs, default_storage_classes

_LIVE: set["EmulatedCluster"] = set()


@atexit.register
def _kill_leftovers() -> None:
    for cluster in list(_LIVE):
        try:
            cluster.stop()
        except Exception:
            pass


class EmulatedCluster:
    emulated = True

    def __init__(self, data_dir: str | None = None, *, pools: list[NodePool] | None = None,
                 nodes: list[dict] | None = None, storage_classes: list[StorageClassModel] | None = None,
                 namespaces: tuple[str, ...] = (), images: dict[str, ImageConfig] | None = None,
                 default_image: ImageConfig | None = None, command_map: dict[str, list[str]] | None = None,
                 missing_images: list[str] | None = None, isolation: str = "auto",
                 scheduler_retry: float = 1.0, backoff_base: float = 1.0, backoff_max: float = 10.0,
                 kill_grace_cap: float = 10.0, keep_data: bool = False, feature_gates: tuple[str, ...] = ()):
        self._own_dir = data_dir is None
        self.data_dir = os.path.abspath(data_dir or tempfile.mkdtemp(prefix="k8s-emulated-"))
        os.makedirs(self.data_dir, exist_ok=True)
        os.chmod(self.data_dir, 0o755)
        self.pools_config = list(eks_pools() if pools is None else pools)
        self.nodes_config = list(nodes or [])
        self.storage_classes = list(default_storage_classes() if storage_classes is None else storage_classes)
        self.namespaces = namespaces
        self.kubelet_options = dict(images=images, default_image=default_image, command_map=command_map,
                                    missing_images=missing_images, isolation=isolation, backoff_base=backoff_base,
                                    backoff_max=backoff_max, kill_grace_cap=kill_grace_cap)
        self.scheduler_retry = scheduler_retry
        self.keep_data = keep_data
        self.feature_gates = frozenset(feature_gates)  # e.g. ("ImageVolume",): off unless a test turns it on
        self.faults = Faults()
        self.requests = RequestLog()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        self.kubeconfig: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> "EmulatedCluster":
        ready = threading.Event()
        error: list[BaseException] = []

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._astart())
            except BaseException as e:  # report start failures to the caller
                error.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._astop())
            self.loop.close()

        self._thread = threading.Thread(target=run, name="emulated-cluster", daemon=True)
        self._thread.start()
        ready.wait(60)
        if error:
            raise error[0]
        _LIVE.add(self)
        return self

    async def _astart(self) -> None:
        default_sc = next((s.name for s in self.storage_classes if s.default), None)
        self.store = Store(default_storage_class=default_sc, feature_gates=self.feature_gates)
        self.server = KubeAPIServer(self.store, self.faults, self.requests)
        self.url = await self.server.start()
        self.kubeconfig = self.server.write_kubeconfig(os.path.join(self.data_dir, "kubeconfig.yaml"))
        self.recorder = EventRecorder(self.store)
        for sc in self.storage_classes:
            self.store.create("storageclasses", None, sc.manifest())
        for ns in self.namespaces:
            self.store.create("namespaces", None, {"metadata": {"name": ns}})
        self.provisioner = Provisioner(self.store, self.recorder, self.pools_config)
        self.scheduler = Scheduler(self.store, self.recorder, self.scheduler_retry, self.provisioner)
        self.volumes = VolumeController(self.store, self.recorder, VolumeDirs(self.data_dir))
        self.kubelet = Kubelet(self.store, self.recorder, self.data_dir, **self.kubelet_options)
        self.server.log_reader = lambda ns, name, container, tail: self.kubelet.read_log(ns, name, container, tail)
        for node in self.nodes_config:
            self.store.create("nodes", None, node)
        self.provisioner.start()
        self.scheduler.start()
        self.volumes.start()
        self.kubelet.start()

    async def _astop(self) -> None:
        await self.kubelet.stop()
        for part in (self.scheduler, self.provisioner, self.volumes):
            await part.stop()
        await self.server.stop()
        for task in [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]:
            task.cancel()
        await asyncio.sleep(0)

    def stop(self) -> None:
        if self.loop is None or self._thread is None:
            return
        _LIVE.discard(self)
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self._thread = None
        if self._own_dir and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "EmulatedCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- running things on the loop ---------------------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args, timeout: float = 60, **kw) -> Any:
        """Run ``fn(*args, **kw)`` (a function or coroutine function) on the cluster's loop; return a copy."""
        async def run():
            result = fn(*args, **kw)
            if asyncio.iscoroutine(result):
                result = await result
            return copy.deepcopy(result)
        if threading.current_thread() is self._thread:
            raise RuntimeError("EmulatedCluster.call() from the cluster's own thread: use the store directly")
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    # --- API-level helpers (what kubectl would do) --------------------------------------------------------------------

    def create(self, plural: str, body: dict, namespace: str | None = None) -> dict:
        return self.call(lambda: self.store.create(plural, namespace, body))

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict:
        return self.call(lambda: self.store.get(plural, namespace, name))

    def find(self, plural: str, name: str, namespace: str | None = None) -> dict | None:
        return self.call(lambda: self.store.find(plural, namespace, name))

    def list(self, plural: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        return self.call(lambda: self.store.list(plural, namespace, label_selector, field_selector)[0])

    def patch(self, plural: str, name: str, patch: Any, namespace: str | None = None,
              content_type: str = "application/merge-patch+json", subresource: str | None = None) -> dict:
        return self.call(lambda: self.store.patch(plural, namespace, name, patch, content_type, subresource))

    def delete(self, plural: str, name: str, namespace: str | None = None,
               grace_period_seconds: int | None = None) -> dict:
        return self.call(lambda: self.store.delete(plural, namespace, name, grace_period_seconds))

    def events(self, namespace: str | None = None, name: str | None = None, reason: str | None = None) -> list[dict]:
        """Events (oldest first), optionally only those about object ``name`` and with ``reason``."""
        sel = ",".join(filter(None, [f"involvedObject.name={name}" if name else "",
                                     f"reason={reason}" if reason else ""]))
        evs = self.list("events", namespace, field_selector=sel or None)
        return sorted(evs, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))

    def event_messages(self, namespace: str | None = None, name: str | None = None,
                       reason: str | None = None) -> list[str]:
        return [f"{e['reason']}: {e['message']}" for e in self.events(namespace, name, reason)]

    def wait_for(self, fn: Callable[[], Any], timeout: float = 30, interval: float = 0.05, what: str = "") -> Any:
        """Poll ``fn`` (run in the caller's thread) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            result = fn()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or fn}")
            time.sleep(interval)

    def wait_for_pod(self, namespace: str, name: str, predicate: Callable[[dict], bool] | None = None,
                     timeout: float = 30) -> dict:
        predicate = predicate or (lambda p: p["status"].get("phase") == "Running" and all(
            c.get("ready") for c in p["status"].get("containerStatuses") or [{}]))

        def check():
            pod = self.find("pods", name, namespace)
            return pod if pod is not None and predicate(pod) else None
        try:
            return self.wait_for(check, timeout, what=f"pod {namespace}/{name}")
        except TimeoutError:
            pod = self.find("pods", name, namespace)
            raise TimeoutError(f"pod {namespace}/{name} not as expected after {timeout}s: "
                               f"status={json.dumps((pod or {}).get('status'))} events="
                               f"{self.event_messages(namespace, name)}") from None

    def wait_gone(self, plural: str, name: str, namespace: str | None = None, timeout: float = 30) -> None:
        self.wait_for(lambda: self.find(plural, name, namespace) is None, timeout, what=f"{plural} {name} gone")

    # --- nodes, pools, storage ----------------------------------------------------------------------------------------

    def add_node(self, node: dict | None = None, **kw) -> dict:
        """Add a node: a Node dict, or make_node(**kw)."""
        return self.create("nodes", node or make_node(**kw))

    def add_pool(self, pool: NodePool) -> None:
        self.call(lambda: self.provisioner.add_pool(pool))

    def set_provisioning(self, enabled: bool) -> None:
        """Turn Karpenter off (no node is added for pending pods) or back on."""
        def flip():
            self.provisioner.enabled = enabled
        self.call(flip)

    def nodes(self, pool: str | None = None) -> list[dict]:
        return self.list("nodes", label_selector=f"karpenter.sh/nodepool={pool}" if pool else None)

    def claim_dir(self, namespace: str, claim: str) -> str | None:
        """The host directory backing a bound PVC (to seed or inspect what the pod sees)."""
        def find():
            pvc = self.store.find("persistentvolumeclaims", namespace, claim)
            if not pvc or not pvc["spec"].get("volumeName"):
                return None
            pv = self.store.find("persistentvolumes", None, pvc["spec"]["volumeName"])
            return self.volumes.dirs.pv_dir(pv) if pv else None
        return self.call(find)

    # --- the kubelet --------------------------------------------------------------------------------------------------

    def exec(self, namespace: str, pod: str, argv: list[str], container: str | None = None,
             timeout: float = 30) -> tuple[int, str]:
        """``kubectl exec``: run argv in the container (its mounts, uid and env); (exit code, output)."""
        async def run():
            rt = self.kubelet.find(namespace, pod)
            if rt is None:
                raise ApiError(404, f'pods "{pod}" not found or not running on a node')
            c = rt.containers.get(container) if container else next(iter(rt.containers.values()))
            if c is None:
                raise ApiError(400, f"container {container} is not valid for pod {pod}")
            return await self.kubelet.exec_in(rt, c, argv, timeout)
        return self.call(run, timeout=timeout + 10)

    def logs(self, namespace: str, pod: str, container: str | None = None, previous: bool = False) -> str:
        return self.call(lambda: self.kubelet.read_log(namespace, pod, container, None, previous))

    def processes(self, namespace: str | None = None, pod: str | None = None) -> list[int]:
        """PIDs of the container processes still alive (of one namespace or pod)."""
        def pids():
            return [c.proc.pid for rt in self.kubelet.pods.values()
                    if (namespace is None or rt.namespace == namespace) and (pod is None or rt.name == pod)
                    for c in list(rt.containers.values()) + list(rt.init_containers.values())
                    if c.proc and c.proc.returncode is None]
        return self.call(pids)

    # --- faults ---------------------------------------------------------------------------------------------------------

    def drop_watches(self, resource: str | None = None) -> int:
        return self.call(lambda: self.server.drop_watches(resource))

    def open_watches(self, resource: str | None = None) -> int:
        return self.call(lambda: self.server.open_watches(resource))

    # --- artefacts ------------------------------------------------------------------------------------------------------

    def dump(self, directory: str) -> None:
        """Write requests.log, objects.json, events.txt and every container log into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        self.requests.dump(os.path.join(directory, "requests.log"))
        try:
            objects = self.call(lambda: {p: [o for objs in self.store.objects[p].values() for o in objs.values()]
                                         for p in self.store.objects if p != "events"}, timeout=10)
            with open(os.path.join(directory, "objects.json"), "w") as f:
                json.dump(objects, f, indent=1)
            with open(os.path.join(directory, "events.txt"), "w") as f:
                for e in self.events():
                    io = e["involvedObject"]
                    f.write(f"{e['lastTimestamp']} {e['type']:7} {e['reason']:20} {io['kind']}/{io['name']} "
                            f"(x{e.get('count', 1)}) {e['message']}\n")
        except Exception as e:  # the loop may be wedged: still save what we can
            with open(os.path.join(directory, "dump-error.txt"), "w") as f:
                f.write(repr(e))
        pods_dir = os.path.join(self.data_dir, "pods")
        if os.path.isdir(pods_dir):
            for pod in os.listdir(pods_dir):
                logs = os.path.join(pods_dir, pod, "logs")
                if os.path.isdir(logs):
                    shutil.copytree(logs, os.path.join(directory, "pods", pod), dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("spec-*.json"))


def kill_process_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
