"""An emulated Kubernetes API server: plain HTTP + JSON on 127.0.0.1, backed by :class:`store.Store`.

Serves the core/v1 paths KubeSpawner, kubernetes_asyncio and our code use (namespaces, nodes, pods and their
status/log/binding subresources, persistentvolumeclaims, persistentvolumes, secrets, configmaps, services,
serviceaccounts, events) plus storage.k8s.io/v1 storageclasses, with the verbs get, list, watch (``watch=true``,
``watch=True``, ``watch=1`` and the legacy ``/watch/`` prefix), create, update, patch (merge, JSON, strategic),
delete and deletecollection. Errors are ``Status`` objects. Every request is logged (:class:`RequestLog`) and
may be failed, delayed or hung by :class:`faults.Faults`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import unquote

from aiohttp import web

from .faults import Faults
from .resources import BY_GROUP, TYPES, ApiError, ResourceType
from .store import Store

TRUE = {"true", "True", "1"}
DEFAULT_WATCH_TIMEOUT = 1800  # the apiserver's --min-request-timeout


@dataclass
class RequestRecord:
    start: float  # time.monotonic()
    method: str
    path: str
    query: str
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None
    status: int = 0  # 0 while the request is in flight
    duration: float = 0.0
    fault: bool = False


class RequestLog:
    """Every request the emulator served, in arrival order. Safe to read from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, rec: RequestRecord) -> None:
        with self._lock:
            self._records.append(rec)

    def records(self, verb: str | None = None, resource: str | None = None, status: int | None = None,
                namespace: str | None = None, name: str | None = None, since: float | None = None,
                method: str | None = None) -> list[RequestRecord]:
        with self._lock:
            recs = list(self._records)
        return [r for r in recs
                if (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
                and (status is None or r.status == status) and (namespace is None or r.namespace == namespace)
                and (name is None or r.name == name) and (since is None or r.start >= since)
                and (method is None or r.method == method)]

    def count(self, verb: str | None = None, resource: str | None = None, **kw) -> int:
        return len(self.records(verb, resource, **kw))

    def histogram(self, since: float | None = None) -> Counter:
        """Counter of (verb, resource, status), handy in benchmark reports."""
        return Counter((r.verb, r.resource, r.status) for r in self.records(since=since))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            for r in self.records():
                f.write(f"{r.start:.3f} {r.method:6} {r.status} {r.duration * 1000:8.1f}ms {r.verb:16} "
                        f"{r.path}{'?' + r.query if r.query else ''}{'  [fault]' if r.fault else ''}\n")


@dataclass
class Route:
    verb: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool = False


def _json(body, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def _error(e: ApiError) -> web.Response:
    return _json(e.status(), e.code)


class KubeAPIServer:
    """The HTTP front of a :class:`Store`. Start and use it on one event loop."""

    def __init__(self, store: Store, faults: Faults | None = None, log: RequestLog | None = None):
        self.store = store
        self.faults = Faults() if faults is None else faults
        self.log = RequestLog() if log is None else log
        self.log_reader: Callable[[str, str, str | None, int | None], str] | None = None  # kubelet hook
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task] = set()

    # --- lifecycle ----------------------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # the bound port when port=0
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        self.store.drop_watches()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: str, namespace: str = "default") -> str:
        """A kubeconfig (JSON is YAML) with one context pointing at this server, no credentials."""
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "emulated", "user": {"token": "emulated-token"}}],
            "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "emulated",
                                                          "namespace": namespace}}],
            "current-context": "emulated",
        }
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        return path

    # --- routing ------------------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query) -> Route | web.Response:
        segs = [unquote(s) for s in path.strip("/").split("/") if s]
        if not segs or segs == ["api"] or segs == ["apis"] or segs[0] in ("version", "healthz", "livez", "readyz"):
            return self._discovery(segs)
        if segs[0] == "api" and len(segs) >= 2 and segs[1] == "v1":
            group, rest = "", segs[2:]
        elif segs[0] == "apis" and len(segs) >= 3:
            group, rest = segs[1], segs[3:]
            if segs[2] != "v1":
                raise ApiError(404, "the server could not find the requested resource")
        else:
            raise ApiError(404, "the server could not find the requested resource")
        if not rest:
            return self._resource_list(group)
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in BY_GROUP:
            namespace, rest = rest[1], rest[2:]
        rt = BY_GROUP.get((group, rest[0]))
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) or None
        if rt.namespaced is False and namespace:
            raise ApiError(404, "the server could not find the requested resource")
        watch = watch_prefix or query.get("watch") in TRUE
        if method == "GET":
            verb = "watch" if watch else ("get" if name else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise ApiError(405, f"the server does not allow this method on the requested resource")
        if name is None and method in ("PUT", "PATCH"):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if name and method == "POST" and sub is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return Route(verb, rt, namespace, name, sub, watch)

    def _discovery(self, segs) -> web.Response:
        if not segs or segs[0] in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if segs[0] == "version":
            return _json({"major": "1", "minor": "31", "gitVersion": "v1.31.0-emulated", "platform": "linux/amd64"})
        if segs == ["api"]:
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        groups = sorted({t.group for t in TYPES.values() if t.group})
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in groups]})

    def _resource_list(self, group: str) -> web.Response:
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        resources = []
        for t in TYPES.values():
            if t.group != group:
                continue
            resources.append({"name": t.plural, "singularName": t.kind.lower(), "namespaced": t.namespaced,
                              "kind": t.kind, "verbs": verbs})
            if t.status_subresource:
                resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                                  "kind": t.kind, "verbs": ["get", "patch", "update"]})
        return _json({"kind": "APIResourceList", "apiVersion": "v1",
                      "groupVersion": f"{group}/v1" if group else "v1", "resources": resources})

    # --- handling -----------------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        query = request.query
        rec = RequestRecord(start, request.method, request.path, request.query_string, "", "", None, None, None)
        self.log.append(rec)  # logged on arrival (status 0 while in flight), completed in place
        try:
            route = self._route(request.method, request.path, query)
            if isinstance(route, web.Response):
                rec.verb, rec.status = "discovery", route.status
                return route
            rec.verb, rec.resource = route.verb, route.rt.plural
            rec.namespace, rec.name, rec.subresource = route.namespace, route.name, route.subresource
            fault = self.faults.take(route.verb, route.rt.plural, route.namespace, route.name, route.subresource)
            if fault is not None:
                if fault.hang:
                    rec.fault = True
                    if fault.after and not route.watch:
                        resp = await self._dispatch(request, route)
                        rec.status = resp.status
                    await asyncio.sleep(fault.hang)
                    raise fault.error(route.rt.plural, route.name)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                    fault = None
            if fault is not None:
                rec.fault = True
                err = fault.error(route.rt.plural, route.name or await self._body_name(request))
                if route.watch and err.code == 410:
                    return await self._watch_error(request, err)
                raise err
            if route.watch:
                return await self._watch(request, route, rec)
            resp = await self._dispatch(request, route)
            rec.status = resp.status
            return resp
        except ApiError as e:
            rec.status = e.code
            return _error(e)
        except json.JSONDecodeError as e:
            rec.status = 400
            return _error(ApiError(400, f"the body of the request was in an unknown format: {e}"))
        except asyncio.CancelledError:
            rec.status = 499  # client went away
            raise
        finally:
            if not rec.status:
                rec.status = 200
            rec.duration = time.monotonic() - start

    @staticmethod
    async def _body_name(request) -> str | None:
        if request.method != "POST" or not request.can_read_body:
            return None
        try:
            body = await request.json()
            return (body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName")
        except Exception:
            return None

    async def _dispatch(self, request: web.Request, r: Route) -> web.Response:
        store, q = self.store, request.query
        ns = r.namespace
        if r.rt.namespaced and r.name and ns is None and r.verb not in ("list", "watch"):
            raise ApiError(404, "the server could not find the requested resource")
        if r.subresource == "log":
            return self._pod_log(r, q)
        if r.subresource == "binding" and r.rt.plural == "pods" and r.verb == "create":
            body = await request.json()
            return _json(self.bind(ns, r.name, (body.get("target") or {}).get("name")), 201)
        if r.subresource not in (None, "status"):
            raise ApiError(404, "the server could not find the requested resource")
        if r.verb == "get":
            return _json(store.get(r.rt.plural, ns, r.name))
        if r.verb == "list":
            items, rv = store.list(r.rt.plural, ns, q.get("labelSelector"), q.get("fieldSelector"))
            return _json({"kind": f"{r.rt.kind}List", "apiVersion": r.rt.api_version,
                          "metadata": {"resourceVersion": str(rv)}, "items": items})
        if r.verb == "create":
            return _json(store.create(r.rt.plural, ns, await request.json()), 201)
        if r.verb == "update":
            return _json(store.update(r.rt.plural, ns, r.name, await request.json(), r.subresource))
        if r.verb == "patch":
            return _json(store.patch(r.rt.plural, ns, r.name, await request.json(),
                                     request.headers.get("Content-Type", ""), r.subresource))
        if r.verb == "delete":
            opts = await self._delete_options(request)
            obj = store.delete(r.rt.plural, ns, r.name, **opts)
            return _json(obj, 200)
        if r.verb == "deletecollection":
            opts = await self._delete_options(request)
            items, _ = store.list(r.rt.plural, ns, q.get("labelSelector"), q.get("fieldSelector"))
            out = []
            for item in items:
                try:
                    out.append(store.delete(r.rt.plural, item["metadata"].get("namespace"),
                                            item["metadata"]["name"], **opts))
                except ApiError as e:
                    if e.code != 404:
                        raise
            return _json({"kind": f"{r.rt.kind}List", "apiVersion": r.rt.api_version,
                          "metadata": {"resourceVersion": str(store.rv)}, "items": out})
        raise ApiError(405, "the server does not allow this method on the requested resource")

    @staticmethod
    async def _delete_options(request: web.Request) -> dict:
        body = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                body = json.loads(raw) or {}
        q = request.query
        grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        policy = q.get("propagationPolicy", body.get("propagationPolicy"))
        if body.get("orphanDependents") is True and policy is None:
            policy = "Orphan"
        try:
            grace = None if grace is None else int(grace)
        except ValueError:
            raise ApiError(400, f"invalid gracePeriodSeconds {grace!r}") from None
        return {"grace_period_seconds": grace, "propagation_policy": policy,
                "preconditions": body.get("preconditions")}

    def bind(self, namespace: str, name: str, node: str | None) -> dict:
        """The pods/binding subresource: what the scheduler calls to place a pod."""
        pod = self.store.get("pods", namespace, name)
        if pod["spec"].get("nodeName"):
            raise ApiError(409, f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already '
                                f'assigned to node "{pod["spec"]["nodeName"]}"', "Conflict")
        if not node:
            raise ApiError(422, "Binding is invalid: target.name: Required value")
        new = json.loads(json.dumps(pod))
        new["spec"]["nodeName"] = node
        self.store.update("pods", namespace, name, new, _internal=True)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _pod_log(self, r: Route, q) -> web.Response:
        if r.rt.plural != "pods" or r.verb != "get":
            raise ApiError(404, "the server could not find the requested resource")
        pod = self.store.get("pods", r.namespace, r.name)
        container = q.get("container")
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        if container is None:
            if len(names) > 1:
                raise ApiError(400, f"a container name must be specified for pod {r.name}, choose one of: "
                                    f"[{' '.join(names)}]")
            container = names[0]
        if self.log_reader is None:
            return web.Response(text="")
        tail = q.get("tailLines")
        return web.Response(text=self.log_reader(r.namespace, r.name, container, int(tail) if tail else None))

    # --- watch ----------------------------------------------------------------------------------------------------------

    async def _watch_error(self, request, err: ApiError) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def _watch(self, request: web.Request, r: Route, rec: RequestRecord) -> web.StreamResponse:
        q = request.query
        field_selector = q.get("fieldSelector")
        if r.name:  # GET .../pods/<name>?watch=true is a watch on one object
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={r.name}"]))
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise ApiError(400, f"invalid timeoutSeconds {q.get('timeoutSeconds')!r}") from None
        try:
            w = self.store.watch(r.rt.plural, r.namespace, q.get("labelSelector"), field_selector,
                                 q.get("resourceVersion"))
        except ApiError as e:
            if e.code == 410:
                rec.status = 200
                return await self._watch_error(request, e)
            raise
        rec.status = 200
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Transfer-Encoding": "chunked"})
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            await resp.prepare(request)
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(w.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if item is None:  # closed: dropped by a fault or server shutdown
                    if w.dropped and request.transport is not None:
                        request.transport.close()  # abrupt, like a broken connection
                        return resp
                    break
                batch = [item]
                while not w.queue.empty() and len(batch) < 256:
                    nxt = w.queue.get_nowait()
                    if nxt is None:
                        w.queue.put_nowait(None)
                        break
                    batch.append(nxt)
                await resp.write(b"".join(
                    json.dumps({"type": t, "object": o}, separators=(",", ":")).encode() + b"\n" for t, o in batch))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(w)
        return resp

    def open_watches(self, resource: str | None = None) -> int:
        return sum(len(ws) for p, ws in self.store.watches.items() if resource is None or p == resource)

    def drop_watches(self, resource: str | None = None) -> int:
        return self.store.drop_watches(resource)

