"""Fault injection for the emulated API: make the next N matching requests fail, hang or be slow.

    fault = api.faults.add("create", "pods", times=1, status=500)
    api.faults.quota("create", "persistentvolumeclaims")          # 403 "exceeded quota: ..."
    api.faults.timeout("delete", "pods", times=3)                  # hang past the client's timeout
    api.faults.add("watch", "pods", times=2, status=410)           # watch fails with 410 Gone
    api.drop_watches("pods")                                       # open watch streams end now

Verbs are the apiserver's: get, list, watch, create, update, patch, delete, deletecollection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .resources import ApiError

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass(eq=False)
class Fault:
    verb: str | None
    resource: str | None
    times: int | None = 1  # None: until removed
    status: int = 500
    message: str | None = None
    reason: str | None = None
    hang: float | None = None  # seconds to hang before failing (a client timeout fires first)
    after: bool = False  # with hang: apply the request first, then hang (the response is lost, not the write)
    delay: float | None = None  # seconds to wait, then serve the request normally
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    hits: int = 0
    requests: list = field(default_factory=list)

    def matches(self, verb: str, resource: str, namespace: str | None, name: str | None,
                subresource: str | None) -> bool:
        return ((self.verb is None or self.verb == verb)
                and (self.resource is None or self.resource == resource)
                and (self.namespace is None or self.namespace == namespace)
                and (self.name is None or self.name == name)
                and (self.subresource == subresource or (self.subresource is None and subresource != "log")))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def error(self, resource: str, name: str | None) -> ApiError:
        what = f'{resource} "{name}"' if name else resource
        if self.message:
            return ApiError(self.status, self.message, self.reason)
        if self.status == 403:
            return ApiError(403, f"{what} is forbidden: exceeded quota: user-quota, requested: {resource}=1, "
                                 f"used: {resource}=10, limited: {resource}=10", "Forbidden")
        if self.status == 409:
            if self.verb == "create":
                return ApiError(409, f"{what} already exists", "AlreadyExists",
                                {"name": name or "", "kind": resource})
            return ApiError(409, f"Operation cannot be fulfilled on {what}: the object has been modified; please "
                                 "apply your changes to the latest version and try again", "Conflict")
        if self.status == 410:
            return ApiError(410, "too old resource version: 1 (2)", "Expired")
        if self.status == 429:
            return ApiError(429, "Too many requests, please try again later.", "TooManyRequests")
        if self.status == 503:
            return ApiError(503, "the server is currently unable to handle the request", "ServiceUnavailable")
        if self.status == 504:
            return ApiError(504, "Timeout: request did not complete within requested timeout", "Timeout")
        return ApiError(self.status, f"Internal error occurred: injected fault for {self.verb or '*'} "
                                     f"{what}", reason=self.reason)


class Faults:
    """Thread-safe: tests add faults from their own thread while the server consults them on its loop."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, verb: str | None, resource: str | None, times: int | None = 1, status: int = 500, **kw) -> Fault:
        if verb is not None and verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; one of {VERBS}")
        fault = Fault(verb, resource, times, status, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def quota(self, verb: str = "create", resource: str = "pods", times: int | None = 1, **kw) -> Fault:
        return self.add(verb, resource, times, status=403, **kw)

    def timeout(self, verb: str | None, resource: str | None, times: int | None = 1, hang: float = 60.0,
                after: bool = False, **kw) -> Fault:
        """Requests hang for ``hang`` seconds (beyond KubeSpawner's k8s_api_request_timeout), then fail 504.
        With ``after=True`` the request takes effect first and only its response is lost."""
        return self.add(verb, resource, times, status=504, hang=hang, after=after, **kw)

    def slow(self, verb: str | None, resource: str | None, delay: float, times: int | None = None, **kw) -> Fault:
        return self.add(verb, resource, times, delay=delay, **kw)

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, verb: str, resource: str, namespace: str | None, name: str | None,
             subresource: str | None) -> Fault | None:
        """The first live fault matching this request; counts the hit."""
        with self._lock:
            for f in self._faults:
                if not f.exhausted and f.matches(verb, resource, namespace, name, subresource):
                    f.hits += 1
                    f.requests.append((verb, resource, namespace, name))
                    return f
        return None

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for f in self._faults if not f.exhausted)
