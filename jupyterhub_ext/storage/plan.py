"""One user's storage: volumes, mounts, the ownership init container and the non-root security settings. Pure."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..catalog.access import Who
from .naming import check_relative_path
from .settings import StorageSettings

HOME_VOLUME = "home"
SHARED_VOLUME = "shared"
INIT_CONTAINER = "home-ownership"
INIT_HOME = "/mnt/home"
INIT_SHARED = "/mnt/shared"


@dataclass
class Plan:
    """What one user's pod gets, each kind keyed by its identity (volume and container name, mount path)."""

    volumes: dict[str, dict] = field(default_factory=dict)            # by volume name
    volume_mounts: dict[str, dict] = field(default_factory=dict)      # by mount path
    init_containers: dict[str, dict] = field(default_factory=dict)    # by container name
    container_security_context: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)              # other KubeSpawner traits to set
    shared_access: str | None = None                                  # 'read-write', 'read-only' or None


# Ownership is fixed on the mount roots only: never recursively, and only when it is wrong, so a start costs
# the same whether a home holds ten files or a million. No braces: KubeSpawner formats init containers.
OWNERSHIP_SCRIPT = """\
set -eu
uid="$1"; gid="$2"; shift 2
for d in "$@"; do
  if [ "$(stat -c %u:%g "$d")" != "$uid:$gid" ]; then
    chown "$uid:$gid" "$d"
    echo "home-ownership: $d now owned by $uid:$gid"
  fi
  case "$(stat -c %A "$d")" in
    drwx*) ;;
    *) chmod u+rwx "$d"; echo "home-ownership: $d made usable by its owner" ;;
  esac
done
"""


def user_container_security(s: StorageSettings) -> dict[str, Any]:
    return {
        "runAsUser": s.uid,
        "runAsGroup": s.gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def ownership_init_container(s: StorageSettings, mounts: list[dict]) -> dict:
    """Root, but only CHOWN/DAC_OVERRIDE/FOWNER, only the user's own directories, and only in this container."""
    return {
        "name": INIT_CONTAINER,
        "image": s.home_init_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", OWNERSHIP_SCRIPT, INIT_CONTAINER, str(s.uid), str(s.gid),
                    *[m["mountPath"] for m in mounts]],
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": mounts,
    }


def writes_shared(who: Who, write_groups: Iterable[str]) -> bool:
    """Admins and members of a write group write the shared volume; everyone else reads it."""
    return who.admin or not set(write_groups).isdisjoint(who.groups)


def _plan_home(plan: Plan, home_dir: str | None, s: StorageSettings) -> list[dict]:
    """The home volume and mount; returns the init container's mounts of it."""
    if s.home_mode == "efs":
        if home_dir is None:
            raise ValueError("efs mode needs the user's home directory")
        check_relative_path(home_dir)
        plan.volumes[HOME_VOLUME] = {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": s.home_pvc}}
        plan.volume_mounts[s.home_mount_path] = {"name": HOME_VOLUME, "mountPath": s.home_mount_path,
                                                 "subPath": home_dir}
        return [{"name": HOME_VOLUME, "mountPath": INIT_HOME, "subPath": home_dir}]
    if s.home_mode == "pvc":
        # KubeSpawner's own PVC machinery: it creates claim {pvc_name} (pvc_name_template, remembered across
        # restarts, legacy 6.x names found) and fills in the name when it formats the volume.
        plan.volumes[HOME_VOLUME] = {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        plan.volume_mounts[s.home_mount_path] = {"name": HOME_VOLUME, "mountPath": s.home_mount_path}
        plan.traits.update(storage_pvc_ensure=True, storage_capacity=s.home_pvc_size,
                           storage_class=s.home_storage_class or None)
        return [{"name": HOME_VOLUME, "mountPath": INIT_HOME}]
    return []


def _plan_shared(plan: Plan, who: Who, s: StorageSettings) -> list[dict]:
    """The shared volume, read-only or read-write, and the group directories; returns the init mounts."""
    if not s.shared_pvc:
        return []
    access = plan.shared_access = "read-write" if writes_shared(who, s.shared_write_groups) else "read-only"
    plan.volumes[SHARED_VOLUME] = {"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": s.shared_pvc}}
    mount = {"name": SHARED_VOLUME, "mountPath": s.shared_mount_path, "readOnly": access == "read-only"}
    if s.shared_subpath:
        mount["subPath"] = s.shared_subpath
    plan.volume_mounts[s.shared_mount_path] = mount
    if access == "read-write":
        return [{**mount, "mountPath": INIT_SHARED, "readOnly": False}]
    init_mounts = []
    # a member writes in their group's directory, mounted read-write over the read-only parent
    for group in s.shared_group_dirs:
        if group in who.groups:
            sub = posixpath.join(s.shared_subpath, group) if s.shared_subpath else group
            path = posixpath.join(s.shared_mount_path, group)
            plan.volume_mounts[path] = {"name": SHARED_VOLUME, "mountPath": path, "subPath": sub}
            init_mounts.append({"name": SHARED_VOLUME, "mountPath": f"{INIT_SHARED}-{group}", "subPath": sub})
    return init_mounts


def plan_storage(who: Who, home_dir: str | None, s: StorageSettings) -> Plan:
    """The volumes, mounts, init container and security settings for this user.

    ``home_dir`` is :func:`~.naming.home_subpath` for this user in 'efs' mode (ignored otherwise).
    """
    plan = Plan()
    init_mounts = _plan_home(plan, home_dir, s) + _plan_shared(plan, who, s)
    if s.home_ownership == "init-container" and init_mounts:
        plan.init_containers[INIT_CONTAINER] = ownership_init_container(s, init_mounts)
    plan.container_security_context = user_container_security(s)
    # fsGroup makes a fresh per-user disk writable for gid 100; OnRootMismatch stops the kubelet from
    # re-walking every file on each start (the slow, recursive chown this module exists to avoid).
    # runAsNonRoot stays per container: the chart's own root init container (iptables) must still run.
    plan.pod_security_context = {"fsGroup": s.fs_gid, "fsGroupChangePolicy": "OnRootMismatch"}
    plan.traits.update(uid=s.uid, gid=s.gid, fs_gid=s.fs_gid, allow_privilege_escalation=False,
                       privileged=False)
    return plan
