"""core/v1 Events as client-go's EventRecorder writes them, with its aggregation (same object, reason and
message -> one Event whose ``count`` and ``lastTimestamp`` move)."""

from __future__ import annotations

import copy
import time

from .resources import ApiError
from .store import Store, now_iso, now_micro


def involved(obj: dict, field_path: str | None = None) -> dict:
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
           "uid": meta["uid"], "apiVersion": obj.get("apiVersion"), "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class EventRecorder:
    def __init__(self, store: Store):
        self.store = store
        self._index: dict[tuple, str] = {}  # aggregation key -> event name

    def record(self, obj: dict, type_: str, reason: str, message: str, component: str, host: str | None = None,
               field_path: str | None = None, action: str | None = None) -> dict | None:
        ref = involved(obj, field_path)
        ns = ref["namespace"] or "default"
        key = (ref["uid"], field_path, type_, reason, message, component)
        name = self._index.get(key)
        existing = self.store.find("events", ns, name) if name else None
        try:
            if existing is not None:
                new = copy.deepcopy(existing)
                new["count"] = existing.get("count", 1) + 1
                new["lastTimestamp"] = now_iso()
                return self.store.update("events", ns, name, new, _internal=True)
            name = f"{ref['name']}.{time.time_ns():x}"
            source = {"component": component}
            if host:
                source["host"] = host
            now = now_iso()
            ev = self.store.create("events", ns, {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_, "source": source,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1, "eventTime": None,
                "reportingComponent": component, "reportingInstance": host or "", "action": action or reason,
            })
            self._index[key] = name
            return ev
        except ApiError:
            return None  # namespace gone: events are best effort, as in client-go


__all__ = ["EventRecorder", "involved", "now_micro"]
