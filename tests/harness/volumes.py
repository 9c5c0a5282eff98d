"""Where volumes live on this machine, and the controllers that bind and protect claims.

* Every PersistentVolume is a directory under ``<data>/volumes``, keyed so that two PVs naming the same backing
  storage share it: CSI ``(driver, volumeHandle)`` (EFS ``fs-id[:/path][::ap]`` handles share the filesystem
  ``fs-id`` and honour the path), NFS ``(server, path)``, hostPath, or the PV's name.
* Dynamic provisioning: a claim naming a StorageClass gets a PV ``pvc-<uid>`` (Immediate binding, or when its
  first pod is scheduled for WaitForFirstConsumer). A fresh block volume's root is root:root 0755 (as a new
  ext4 filesystem); an EFS access point's root is owned by the class' ``uid``/``gid`` with ``directoryPerms``.
* ``kubernetes.io/pvc-protection``: a deleted claim stays Terminating while a running pod uses it.
* Reclaim: when a claim goes, its PV is deleted with its data (``Delete``) or left ``Released`` (``Retain``).
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
from dataclasses import dataclass, field

from .events import EventRecorder
from .resources import ApiError
from .scheduler import pod_is_active
from .store import Change, Store

# CSI drivers whose volumes get fsGroup ownership applied by the kubelet (fsGroupPolicy File /
# ReadWriteOnceWithFSType); shared filesystems (EFS, NFS, Azure Files) do not.
NO_FSGROUP_DRIVERS = {"efs.csi.aws.com", "nfs.csi.k8s.io", "file.csi.azure.com"}


@dataclass
class StorageClassModel:
    name: str
    provisioner: str = "ebs.csi.aws.com"
    binding_mode: str = "WaitForFirstConsumer"
    reclaim_policy: str = "Delete"
    default: bool = False
    parameters: dict = field(default_factory=dict)

    def manifest(self) -> dict:
        meta = {"name": self.name}
        if self.default:
            meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
        return {"metadata": meta, "provisioner": self.provisioner, "reclaimPolicy": self.reclaim_policy,
                "volumeBindingMode": self.binding_mode, "parameters": dict(self.parameters)}


def default_storage_classes() -> list[StorageClassModel]:
    return [
        StorageClassModel("gp3", default=True, parameters={"type": "gp3"}),
        StorageClassModel("efs-sc", provisioner="efs.csi.aws.com", binding_mode="Immediate",
                          parameters={"provisioningMode": "efs-ap", "fileSystemId": "fs-emulated",
                                      "directoryPerms": "700", "uid": "1000", "gid": "100"}),
        StorageClassModel("managed-csi", provisioner="disk.csi.azure.com"),
    ]


class VolumeDirs:
    def __init__(self, data_dir: str):
        self.root = os.path.join(data_dir, "volumes")
        os.makedirs(self.root, exist_ok=True)

    def pv_dir(self, pv: dict) -> str:
        spec = pv.get("spec") or {}
        if spec.get("csi"):
            driver, handle = spec["csi"].get("driver", "csi"), spec["csi"].get("volumeHandle", pv["metadata"]["name"])
            if driver == "efs.csi.aws.com":
                # fs-id[:/subpath][::access-point]; an access point is its own root directory, named by the
                # PV annotation harness.local/access-point-root (its real root path) or by its id
                fs, _, rest = handle.partition(":")
                sub, _, ap = rest.partition("::") if not rest.startswith(":") else ("", "", rest[1:])
                base = os.path.join(self.root, "csi", driver, fs)
                if ap:
                    ann = pv["metadata"].get("annotations") or {}
                    base = self._safe(base, ann.get("harness.local/access-point-root") or f"access-points/{ap}")
                return self._safe(base, sub)
            return self._safe(os.path.join(self.root, "csi", driver), handle)
        if spec.get("nfs"):
            return self._safe(os.path.join(self.root, "nfs", spec["nfs"].get("server", "server")),
                              spec["nfs"].get("path", "/"))
        if spec.get("hostPath"):
            return self._safe(os.path.join(self.root, "hostpath"), spec["hostPath"].get("path", "/"))
        return self._safe(os.path.join(self.root, "pv"), pv["metadata"]["name"])

    def host_path(self, path: str) -> str:
        return self._safe(os.path.join(self.root, "hostpath"), path)

    @staticmethod
    def _safe(base: str, rel: str) -> str:
        out = os.path.normpath(os.path.join(base, rel.lstrip("/")))
        if out != base and not out.startswith(base + os.sep):
            raise ValueError(f"path {rel!r} escapes {base}")
        return out

    def ensure_pv(self, pv: dict) -> str:
        path = self.pv_dir(pv)
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            ann = pv["metadata"].get("annotations") or {}
            uid, gid = int(ann.get("harness.local/root-uid", 0)), int(ann.get("harness.local/root-gid", 0))
            os.chown(path, uid, gid) if os.geteuid() == 0 else None
            os.chmod(path, int(ann.get("harness.local/root-mode", "755"), 8))
        return path

    def delete_pv(self, pv: dict) -> None:
        spec = pv.get("spec") or {}
        if (spec.get("csi") or {}).get("driver") == "efs.csi.aws.com" and \
                "::" not in spec["csi"].get("volumeHandle", "") and ":" not in spec["csi"].get("volumeHandle", ""):
            return  # a whole EFS filesystem is never deleted with one PV
        path = self.pv_dir(pv)
        if pv["metadata"]["name"] in path or spec.get("csi"):
            shutil.rmtree(path, ignore_errors=True)


class VolumeController:
    """PV binder, dynamic provisioner, pvc-protection and reclaim, reacting to store changes."""

    def __init__(self, store: Store, recorder: EventRecorder, dirs: VolumeDirs):
        self.store, self.recorder, self.dirs = store, recorder, dirs
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        store.subscribe(self._on_change)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="volume-controller")
        for pvc in self.store.iter("persistentvolumeclaims"):
            self._queue.put_nowait(("pvc", pvc["metadata"]["namespace"], pvc["metadata"]["name"]))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _on_change(self, plural: str, change: Change) -> None:
        obj = change.obj
        if plural == "persistentvolumeclaims":
            if change.type == "DELETED":
                self._queue.put_nowait(("reclaim", obj))
            else:
                self._queue.put_nowait(("pvc", obj["metadata"]["namespace"], obj["metadata"]["name"]))
        elif plural == "persistentvolumes" and change.type != "DELETED":
            for pvc in self.store.iter("persistentvolumeclaims"):
                if (pvc.get("spec") or {}).get("volumeName") == obj["metadata"]["name"]:
                    self._queue.put_nowait(("pvc", pvc["metadata"]["namespace"], pvc["metadata"]["name"]))
        elif plural == "pods":
            became_inactive = change.type == "DELETED" or not pod_is_active(obj)
            scheduled = obj["spec"].get("nodeName") and not (change.old or {}).get("spec", {}).get("nodeName")
            if became_inactive or scheduled:
                for v in obj["spec"].get("volumes") or []:
                    claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
                    if claim:
                        self._queue.put_nowait(("pvc", obj["metadata"]["namespace"], claim))

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item[0] == "reclaim":
                    self._reclaim(item[1])
                else:
                    self._sync_claim(item[1], item[2])
            except ApiError:
                pass
            except Exception:  # keep the controller alive, as a real one would
                import logging
                logging.getLogger("harness.volumes").exception("volume controller")

    def _claim_users(self, ns: str, name: str) -> list[dict]:
        return [p for p in self.store.iter("pods", ns) if pod_is_active(p) and any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == name for v in p["spec"].get("volumes") or [])]

    def _sync_claim(self, ns: str, name: str) -> None:
        pvc = self.store.find("persistentvolumeclaims", ns, name)
        if pvc is None:
            return
        meta = pvc["metadata"]
        if meta.get("deletionTimestamp"):
            if "kubernetes.io/pvc-protection" in (meta.get("finalizers") or []) and not self._claim_users(ns, name):
                new = copy.deepcopy(pvc)
                new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != "kubernetes.io/pvc-protection"]
                self.store.update("persistentvolumeclaims", ns, name, new, _internal=True)
            return
        if (pvc.get("status") or {}).get("phase") == "Bound":
            return
        spec = pvc.get("spec") or {}
        if spec.get("volumeName"):
            pv = self.store.find("persistentvolumes", None, spec["volumeName"])
            if pv is not None:
                self._bind(pvc, pv)
            return
        sc_name = spec.get("storageClassName")
        if not sc_name:
            return  # static binding by selector is not modelled: stays Pending
        sc = self.store.find("storageclasses", None, sc_name)
        if sc is None:
            self.recorder.record(pvc, "Warning", "ProvisioningFailed",
                                 f'storageclass.storage.k8s.io "{sc_name}" not found',
                                 "persistentvolume-controller")
            return
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            users = [p for p in self._claim_users(ns, name) if p["spec"].get("nodeName")]
            if not users:
                self.recorder.record(pvc, "Normal", "WaitForFirstConsumer",
                                     "waiting for first consumer to be created before binding",
                                     "persistentvolume-controller")
                return
        self._provision(pvc, sc)

    def _provision(self, pvc: dict, sc: dict) -> None:
        params = sc.get("parameters") or {}
        name = f"pvc-{pvc['metadata']['uid']}"
        annotations = {"pv.kubernetes.io/provisioned-by": sc["provisioner"]}
        handle = name
        if sc["provisioner"] == "efs.csi.aws.com":
            annotations.update({"harness.local/root-uid": params.get("uid", "0"),
                                "harness.local/root-gid": params.get("gid", "0"),
                                "harness.local/root-mode": params.get("directoryPerms", "755"),
                                "harness.local/posix-user": f"{params.get('uid', '0')}:{params.get('gid', '0')}"})
            handle = f"{params.get('fileSystemId', 'fs-emulated')}:/{name}::fsap-{pvc['metadata']['uid'][:8]}"
        storage = ((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        pv = self.store.create("persistentvolumes", None, {
            "metadata": {"name": name, "annotations": annotations,
                         "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {"capacity": {"storage": storage}, "accessModes": pvc["spec"].get("accessModes"),
                     "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                     "storageClassName": sc["metadata"]["name"], "volumeMode": "Filesystem",
                     "csi": {"driver": sc["provisioner"], "volumeHandle": handle, "fsType": "ext4"}},
        })
        self.dirs.ensure_pv(pv)
        self.recorder.record(pvc, "Normal", "ProvisioningSucceeded",
                             f"Successfully provisioned volume {name}", f"{sc['provisioner']}")
        self._bind(pvc, pv)

    def _bind(self, pvc: dict, pv: dict) -> None:
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        new_pv = copy.deepcopy(pv)
        new_pv["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                                      "uid": pvc["metadata"]["uid"], "apiVersion": "v1"}
        new_pv = self.store.update("persistentvolumes", None, pv["metadata"]["name"], new_pv, _internal=True)
        new_pv = self.store.update("persistentvolumes", None, pv["metadata"]["name"],
                                   {**new_pv, "status": {"phase": "Bound"}}, subresource="status")
        self.dirs.ensure_pv(new_pv)
        new = copy.deepcopy(pvc)
        new["spec"]["volumeName"] = pv["metadata"]["name"]
        new["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = "yes"
        new = self.store.update("persistentvolumeclaims", ns, name, new, _internal=True)
        status = {"phase": "Bound", "accessModes": pv["spec"].get("accessModes"),
                  "capacity": dict(pv["spec"].get("capacity") or {})}
        self.store.update("persistentvolumeclaims", ns, name, {**new, "status": status}, subresource="status")

    def _reclaim(self, pvc: dict) -> None:
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        pv = self.store.find("persistentvolumes", None, pv_name) if pv_name else None
        if pv is None or ((pv.get("spec") or {}).get("claimRef") or {}).get("uid") != pvc["metadata"]["uid"]:
            return
        if pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
            self.dirs.delete_pv(pv)
            new = copy.deepcopy(pv)
            new["metadata"]["finalizers"] = []
            self.store.update("persistentvolumes", None, pv_name, new, _internal=True)
            if self.store.find("persistentvolumes", None, pv_name) is not None:
                self.store.delete("persistentvolumes", None, pv_name)
        else:
            self.store.update("persistentvolumes", None, pv_name, {**pv, "status": {"phase": "Released"}},
                              subresource="status")
