"""The emulator's object store: etcd plus the apiserver's registry semantics, without HTTP.

One store per emulated cluster, used from one asyncio event loop (the cluster's). Objects are plain JSON dicts
indexed by (resource, namespace, name); they are never mutated in place once stored (copy on write), so
watchers and controllers may keep references. Every write takes the next resourceVersion from one counter,
appends to that resource's history (bounded, bisectable) and fans out to the matching watches before the
writing call returns, so a watch registered at resourceVersion N sees every change after N exactly once.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .patch import PATCH_TYPES, PatchError
from .resources import (TYPES, ApiError, FieldErrors, ResourceType, already_exists, conflict, default_object,
                        not_found, pod_update_errors, validate_name, validate_object)
from .selectors import FieldSelector, LabelSelector, SelectorError, parse_field_selector, parse_label_selector

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_of(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


@dataclass
class Change:
    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict
    old: dict | None


@dataclass(eq=False)
class Watch:
    """An open watch: a queue of (type, object) fed synchronously by every matching write."""

    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: bool = False
    dropped: bool = False

    def matches(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj["metadata"].get("labels")) and \
            self.fields.matches(obj, self.rt.field_getters)

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        now, before = self.matches(change.obj), self.matches(change.old)
        if change.type == "DELETED":
            if now or before:
                self.queue.put_nowait(("DELETED", change.obj))
        elif now and before:
            self.queue.put_nowait(("MODIFIED", change.obj))
        elif now:
            self.queue.put_nowait(("ADDED", change.obj))
        elif before:  # left the selection: watchers see it go (as the watch cache does)
            self.queue.put_nowait(("DELETED", change.obj))

    def close(self, dropped: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.dropped = dropped
            self.queue.put_nowait(None)


class Store:
    def __init__(self, history_limit: int = 200_000, default_storage_class: str | None = "standard",
                 feature_gates: frozenset[str] = frozenset()):
        self.rv = 1
        self.feature_gates = frozenset(feature_gates)  # API server feature gates turned on (e.g. ImageVolume)
        self.objects: dict[str, dict[str, dict[str, dict]]] = {p: {} for p in TYPES}
        self.by_uid: dict[str, tuple[str, str, str]] = {}
        self.dependents: dict[str, set[tuple[str, str, str]]] = {}
        self.history: dict[str, list[Change]] = {p: [] for p in TYPES}
        self.history_rvs: dict[str, list[int]] = {p: [] for p in TYPES}
        self.history_floor: dict[str, int] = {p: 0 for p in TYPES}
        self.history_limit = history_limit
        self.watches: dict[str, set[Watch]] = {p: set() for p in TYPES}
        self.listeners: list[Callable[[str, Change], None]] = []
        self.default_storage_class = default_storage_class
        self.gc_delay = 0.05  # seconds before the garbage collector acts, as it is asynchronous in a cluster
        self._orphaning: set[str] = set()  # owners deleted with propagationPolicy=Orphan
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create("namespaces", None, {"metadata": {"name": ns}})

    # --- helpers ----------------------------------------------------------------------------------------------------

    @staticmethod
    def type(plural: str) -> ResourceType:
        try:
            return TYPES[plural]
        except KeyError:
            raise ApiError(404, f"the server could not find the requested resource ({plural})") from None

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if rt.namespaced else ""

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, rt: ResourceType, kind: str, obj: dict, old: dict | None) -> None:
        change = Change(int(obj["metadata"]["resourceVersion"]), kind, obj, old)
        hist, rvs = self.history[rt.plural], self.history_rvs[rt.plural]
        hist.append(change)
        rvs.append(change.rv)
        if len(hist) > 2 * self.history_limit:
            cut = len(hist) - self.history_limit
            self.history_floor[rt.plural] = rvs[cut - 1]
            del hist[:cut]
            del rvs[:cut]
        for w in list(self.watches[rt.plural]):
            w.offer(change)
        for listener in list(self.listeners):
            listener(rt.plural, change)

    def subscribe(self, listener: Callable[[str, Change], None]) -> None:
        """Call ``listener(plural, change)`` after every write (synchronously: only queue work in it)."""
        self.listeners.append(listener)

    # --- reads ------------------------------------------------------------------------------------------------------

    def get(self, plural: str, namespace: str | None, name: str) -> dict:
        rt = self.type(plural)
        obj = self.objects[plural].get(self._ns(rt, namespace), {}).get(name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def find(self, plural: str, namespace: str | None, name: str) -> dict | None:
        rt = self.type(plural)
        return self.objects[plural].get(self._ns(rt, namespace), {}).get(name)

    def by_uid_get(self, uid: str) -> dict | None:
        loc = self.by_uid.get(uid)
        if not loc:
            return None
        return self.objects[loc[0]].get(loc[1], {}).get(loc[2])

    def iter(self, plural: str, namespace: str | None = None) -> Iterable[dict]:
        rt = self.type(plural)
        if rt.namespaced and namespace:
            return list(self.objects[plural].get(namespace, {}).values())
        return [o for objs in self.objects[plural].values() for o in objs.values()]

    def list(self, plural: str, namespace: str | None = None, label_selector: str | LabelSelector | None = None,
             field_selector: str | FieldSelector | None = None) -> tuple[list[dict], int]:
        rt = self.type(plural)
        labels, fields = self.parse_selectors(rt, label_selector, field_selector)
        items = self._candidates(rt, namespace, fields)
        out = [o for o in items
               if labels.matches(o["metadata"].get("labels")) and fields.matches(o, rt.field_getters)]
        out.sort(key=key_of)
        return out, self.rv

    def _candidates(self, rt: ResourceType, namespace: str | None, fields: FieldSelector) -> list[dict]:
        ns = namespace if rt.namespaced else None
        if ns is None and rt.namespaced:
            ns = fields.value_of("metadata.namespace")
        name = fields.value_of("metadata.name")
        if name is not None:
            if rt.namespaced and ns is None:
                return [objs[name] for objs in self.objects[rt.plural].values() if name in objs]
            obj = self.objects[rt.plural].get(ns or "", {}).get(name)
            return [obj] if obj else []
        return self.iter(rt.plural, ns)

    @staticmethod
    def parse_selectors(rt: ResourceType, label_selector, field_selector) -> tuple[LabelSelector, FieldSelector]:
        try:
            labels = label_selector if isinstance(label_selector, LabelSelector) else \
                parse_label_selector(label_selector)
            fields = field_selector if isinstance(field_selector, FieldSelector) else \
                parse_field_selector(field_selector, rt.field_getters)
        except SelectorError as e:
            raise ApiError(400, str(e)) from None
        return labels, fields

    # --- watch ------------------------------------------------------------------------------------------------------

    def watch(self, plural: str, namespace: str | None = None, label_selector=None, field_selector=None,
              resource_version: str | None = None) -> Watch:
        """Register a watch and queue what it must replay, atomically (no write can slip in between)."""
        rt = self.type(plural)
        labels, fields = self.parse_selectors(rt, label_selector, field_selector)
        w = Watch(rt, namespace if rt.namespaced else None, labels, fields)
        if resource_version in (None, "", "0"):
            # "start at most recent" / "any": synthetic ADDED for the current state
            for obj in sorted(self._candidates(rt, w.namespace, fields), key=lambda o: int(o["metadata"]["resourceVersion"])):
                if w.matches(obj):
                    w.queue.put_nowait(("ADDED", obj))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise ApiError(400, f"invalid resource version: {resource_version!r}") from None
            floor = self.history_floor[plural]
            if since < floor:
                raise ApiError(410, f"too old resource version: {since} ({floor + 1})", "Expired")
            hist, rvs = self.history[plural], self.history_rvs[plural]
            for change in hist[bisect.bisect_right(rvs, since):]:
                w.offer(change)
        self.watches[plural].add(w)
        return w

    def unwatch(self, w: Watch) -> None:
        self.watches[w.rt.plural].discard(w)
        w.close()

    def drop_watches(self, plural: str | None = None) -> int:
        """Close open watches (the client sees the stream end), as an apiserver restart would."""
        n = 0
        for p, ws in self.watches.items():
            if plural and p != plural:
                continue
            for w in list(ws):
                w.close(dropped=True)
                ws.discard(w)
                n += 1
        return n

    # --- writes -----------------------------------------------------------------------------------------------------

    def create(self, plural: str, namespace: str | None, body: dict) -> dict:
        rt = self.type(plural)
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        ns = self._ns(rt, namespace)
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            nsobj = self.find("namespaces", None, ns) if ns else None
            if nsobj is None:
                raise ApiError(404, f'namespaces "{ns}" not found',
                               details={"name": ns, "kind": "namespaces"})
            if nsobj["status"].get("phase") == "Terminating":
                raise ApiError(403, f"{rt.plural} \"{meta.get('name') or meta.get('generateName', '')}\" is "
                                    f"forbidden: unable to create new content in namespace {ns} because it is "
                                    "being terminated", "Forbidden")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(400, "resourceVersion should not be set on objects to be created")
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                errs = FieldErrors()
                errs.required("metadata.name", "name or generateName is required")
                errs.raise_if_any(rt, "")
            for _ in range(8):
                name = prefix + "".join(random.choice(_NAME_CHARS) for _ in range(5))
                if name not in self.objects[plural].get(ns, {}):
                    break
            meta["name"] = name
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        errs = FieldErrors()
        validate_name(rt, name, errs)
        errs.raise_if_any(rt, name)
        if name in self.objects[plural].get(ns, {}):
            raise already_exists(rt, name)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        default_object(rt, obj, self.default_storage_class)
        errs = FieldErrors()
        validate_object(rt, obj, errs, self.feature_gates)
        errs.raise_if_any(rt, name)
        meta["resourceVersion"] = str(self._next_rv())
        self._put(rt, obj)
        self._emit(rt, "ADDED", obj, None)
        self._check_owners_later(rt, obj)
        return obj

    def _put(self, rt: ResourceType, obj: dict, old: dict | None = None) -> None:
        ns, name = key_of(obj)
        self.objects[rt.plural].setdefault(ns, {})[name] = obj
        uid = obj["metadata"]["uid"]
        self.by_uid[uid] = (rt.plural, ns, name)
        old_owners = {r.get("uid") for r in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        new_owners = {r.get("uid") for r in obj["metadata"].get("ownerReferences") or []}
        for o in old_owners - new_owners:
            self.dependents.get(o, set()).discard((rt.plural, ns, name))
        for o in new_owners - old_owners:
            self.dependents.setdefault(o, set()).add((rt.plural, ns, name))

    def update(self, plural: str, namespace: str | None, name: str, body: dict, subresource: str | None = None,
               _internal: bool = False) -> dict:
        rt = self.type(plural)
        old = self.get(plural, namespace, name)
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, f"the name of the object ({meta['name']}) does not match the name on the URL "
                                f"({name})")
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        return self._replace(rt, old, new, subresource, _internal)

    def patch(self, plural: str, namespace: str | None, name: str, patch, content_type: str,
              subresource: str | None = None) -> dict:
        rt = self.type(plural)
        old = self.get(plural, namespace, name)
        fn = PATCH_TYPES.get(content_type.split(";")[0].strip())
        if fn is None:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                f"include: {', '.join(PATCH_TYPES)}")
        try:
            new = fn(old, patch)
        except PatchError as e:
            raise ApiError(e.code, str(e)) from None
        if not isinstance(new, dict):
            raise ApiError(422, "the patch result is not an object")
        meta = new.setdefault("metadata", {})
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if meta.get("name") != name:
            raise ApiError(422, f"{rt.kind} \"{name}\" is invalid: metadata.name: Invalid value: "
                                f"\"{meta.get('name')}\": field is immutable")
        return self._replace(rt, old, new, subresource, False)

    def _replace(self, rt: ResourceType, old: dict, new: dict, subresource: str | None, internal: bool) -> dict:
        name = old["metadata"]["name"]
        meta = new["metadata"]
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            new["status"] = status
            meta = new["metadata"]
        elif subresource:
            raise ApiError(404, f"the server could not find the requested resource ({subresource})")
        else:
            if rt.status_subresource and not internal:
                new["status"] = copy.deepcopy(old.get("status"))
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        for k in ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        meta["name"] = name
        errs = FieldErrors()
        validate_object(rt, new, errs, self.feature_gates)
        if rt.kind == "Pod" and not internal and subresource is None:
            pod_update_errors(old, new, errs)
        errs.raise_if_any(rt, name)
        if old.get("spec") != new.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        else:
            meta["generation"] = old["metadata"].get("generation", 1)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old  # no-op writes do not bump resourceVersion, as in the apiserver
        meta["resourceVersion"] = str(self._next_rv())
        self._put(rt, new, old)
        self._emit(rt, "MODIFIED", new, old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind not in ("Pod", "Namespace"):
            self._remove(rt, new, "Background")
            return new
        return new

    def delete(self, plural: str, namespace: str | None, name: str, grace_period_seconds: int | None = None,
               propagation_policy: str | None = None, preconditions: dict | None = None) -> dict:
        rt = self.type(plural)
        obj = self.get(plural, namespace, name)
        meta = obj["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
                raise ApiError(409, f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in "
                                    f"object meta: {meta['uid']}", "Conflict")
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
                raise ApiError(409, f"Precondition failed: ResourceVersion in precondition: "
                                    f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                                    f"{meta['resourceVersion']}", "Conflict")
        policy = propagation_policy or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise ApiError(422, f"DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: "
                                f"\"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"")
        if rt.kind == "Pod":
            grace = grace_period_seconds
            if grace is None:
                grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
            grace = max(0, int(grace))
            phase = obj.get("status", {}).get("phase")
            if not obj["spec"].get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
            current = meta.get("deletionGracePeriodSeconds")
            if grace > 0 or (current is not None and grace_period_seconds is None):
                if current is not None and grace >= current:
                    return obj  # already terminating with a shorter or equal grace period
                new = copy.deepcopy(obj)
                when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=grace)
                new["metadata"]["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                return self._write_internal(rt, new, obj)
            if meta.get("finalizers"):
                return self._mark_deleting(rt, obj, 0)
            return self._remove(rt, obj, policy)
        if rt.kind == "Namespace":
            if obj["status"].get("phase") == "Terminating":
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["status"]["phase"] = "Terminating"
            new = self._write_internal(rt, new, obj)
            asyncio.get_event_loop().call_later(0.2, self._finish_namespace, name)  # takes a while, as in a cluster
            return new
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return obj
            return self._mark_deleting(rt, obj, 0)
        return self._remove(rt, obj, policy)

    def _mark_deleting(self, rt: ResourceType, obj: dict, grace: int) -> dict:
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = now_iso()
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        return self._write_internal(rt, new, obj)

    def _write_internal(self, rt: ResourceType, new: dict, old: dict) -> dict:
        new["metadata"]["resourceVersion"] = str(self._next_rv())
        self._put(rt, new, old)
        self._emit(rt, "MODIFIED", new, old)
        return new

    def finalize(self, plural: str, namespace: str | None, name: str) -> dict | None:
        """Remove an object whose deletion was pending (a pod the kubelet has stopped, finalizers gone)."""
        rt = self.type(plural)
        obj = self.find(plural, namespace, name)
        if obj is None:
            return None
        return self._remove(rt, obj, "Background")

    def _remove(self, rt: ResourceType, obj: dict, policy: str) -> dict:
        ns, name = key_of(obj)
        self.objects[rt.plural].get(ns, {}).pop(name, None)
        uid = obj["metadata"]["uid"]
        self.by_uid.pop(uid, None)
        for o in obj["metadata"].get("ownerReferences") or []:
            self.dependents.get(o.get("uid"), set()).discard((rt.plural, ns, name))
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = str(self._next_rv())
        self._emit(rt, "DELETED", final, obj)
        deps = self.dependents.pop(uid, set())
        if policy == "Orphan":
            self._orphaning.add(uid)
        if deps:
            loop = asyncio.get_event_loop()
            loop.call_later(self.gc_delay, self._collect, uid, sorted(deps), policy)
        return final

    # --- controllers that live in the apiserver/controller-manager ---------------------------------------------------

    def _collect(self, owner_uid: str, deps: list[tuple[str, str, str]], policy: str) -> None:
        """Garbage collector: dependents of a deleted owner are deleted (or orphaned)."""
        for plural, ns, name in deps:
            obj = self.find(plural, ns or None, name)
            if obj is None:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == owner_uid for r in refs):
                continue
            remaining = [r for r in refs if r.get("uid") != owner_uid]
            alive = [r for r in remaining if self.by_uid_get(r.get("uid", "")) is not None]
            try:
                if policy == "Orphan" or alive:
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = remaining
                    if not remaining:
                        del new["metadata"]["ownerReferences"]
                    self._write_internal(self.type(plural), new, obj)
                else:
                    self.delete(plural, ns or None, name, propagation_policy="Background")
            except ApiError:
                pass

    def _check_owners_later(self, rt: ResourceType, obj: dict) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return

        def check():
            cur = self.find(rt.plural, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if cur is None or cur["metadata"]["uid"] != obj["metadata"]["uid"]:
                return
            refs_now = cur["metadata"].get("ownerReferences") or []
            if any(r.get("uid") in self._orphaning for r in refs_now):
                return  # being orphaned, not collected
            if refs_now and all(self.by_uid_get(r.get("uid", "")) is None for r in refs_now):
                try:
                    self.delete(rt.plural, cur["metadata"].get("namespace"), cur["metadata"]["name"])
                except ApiError:
                    pass
        try:
            asyncio.get_event_loop().call_later(self.gc_delay, check)
        except RuntimeError:
            pass

    def _finish_namespace(self, ns: str) -> None:
        for plural, rt in TYPES.items():
            if not rt.namespaced:
                continue
            for obj in list(self.objects[plural].get(ns, {}).values()):
                try:
                    self.delete(plural, ns, obj["metadata"]["name"], grace_period_seconds=0)
                except ApiError:
                    pass
        if any(self.objects[p].get(ns) for p, rt in TYPES.items() if rt.namespaced):
            asyncio.get_event_loop().call_later(0.1, self._finish_namespace, ns)
            return
        obj = self.find("namespaces", None, ns)
        if obj is not None:
            self._remove(TYPES["namespaces"], obj, "Background")
