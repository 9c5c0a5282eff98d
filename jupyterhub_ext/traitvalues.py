"""KubeSpawner's list-or-dict trait values: ``volumes``, ``volume_mounts``, ``init_containers``, ``tolerations``.

KubeSpawner takes each of these as a list, or as a dict whose values it uses in the order of their keys. What
we add to one keeps the shape the operator gave it: an operator's ``modify_pod_hook`` or ``pre_spawn_hook`` that
does ``spawner.volumes.append(...)`` must still work after a start added the home volume. Entries are plain
dicts or Kubernetes client objects (z2jh appends a ``V1Container``); both are kept as they are. Pure.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Mapping

Identity = Callable[[Any], Any]


def items(value: Any) -> list[Any]:
    """The entries of a list or dict-form value, in the order KubeSpawner puts them in the pod."""
    if isinstance(value, Mapping):
        return [value[k] for k in sorted(value)]
    return list(value or [])


def _field(item: Any, camel: str, snake: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(camel)
    return getattr(item, snake, None)


def name_of(item: Any) -> str:
    """Volumes and containers are identified by name (unique in a pod)."""
    name = _field(item, "name", "name")
    return "" if name is None else str(name)


def mount_path_of(item: Any) -> str:
    """Mounts are identified by path (unique in a container; one volume may be mounted at several)."""
    path = _field(item, "mountPath", "mount_path")
    return "" if path is None else str(path)


def toleration_key(item: Any) -> tuple:
    """Two tolerations that match the same taints the same way are one."""
    return tuple(_field(item, name, name) for name in ("key", "operator", "value", "effect"))


def claim_of(volume: Any) -> Any:
    """The claim a volume mounts, or None."""
    source = _field(volume, "persistentVolumeClaim", "persistent_volume_claim") or {}
    return _field(source, "claimName", "claim_name")


def _free_key(taken: Mapping[str, Any], wanted: str) -> str:
    key, n = wanted, 1
    while key in taken:
        n += 1
        key = f"{wanted}-{n}"
    return key


def put(value: Any, entries: Iterable[Any], identity: Identity, *, key: Callable[[Any], str],
        first: bool = False) -> Any:
    """``value`` with each entry in it: in place of the entry with its identity, else added.

    A list gets new entries at the end (or, with ``first``, before everything, in their order); a dict gets
    them under ``key(entry)``. The result is a new object of ``value``'s shape (a list for None); ``value``
    itself is not changed.
    """
    entries = [copy.deepcopy(e) if isinstance(e, Mapping) else e for e in entries]
    if isinstance(value, Mapping):
        out = dict(value)
        where = {identity(v): k for k, v in out.items()}
        for entry in entries:
            slot = where.get(identity(entry))
            if slot is None:
                slot = where[identity(entry)] = _free_key(out, key(entry))
            out[slot] = entry
        return out
    out_list = list(value or [])
    where_i = {identity(v): i for i, v in enumerate(out_list)}
    added = []
    for entry in entries:
        i = where_i.get(identity(entry))
        if i is None:
            added.append(entry)
        else:
            out_list[i] = entry
    return added + out_list if first else out_list + added


def without(value: Any, identities: Iterable[Any], identity: Identity) -> Any:
    """``value`` less the entries with these identities, in ``value``'s shape."""
    drop = set(identities)
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if identity(v) not in drop}
    return [v for v in value or [] if identity(v) not in drop]


def restored(base: Any, current: Any, identity: Identity, *, key: Callable[[Any], str]) -> Any:
    """``current`` with the configured (``base``) entries that a profile's override dropped put back.

    KubeSpawner merges a dict override into a dict value but replaces the value when either is a list; the
    configured entries then come back, before the override's own and under them (the override's win).
    """
    if current is base or isinstance(base, Mapping) and isinstance(current, Mapping):
        return current
    present = {identity(v) for v in items(current)}
    missing = [v for v in items(base) if identity(v) not in present]
    return put(current, missing, identity, key=key, first=True)
