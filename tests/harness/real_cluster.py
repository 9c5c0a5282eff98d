"""The subset of :class:`cluster.EmulatedCluster` that end-to-end tests use, against a real cluster.

Selected with ``KUBECONFIG`` (tests marked ``cluster``). Credentials come from the kubeconfig through
kubernetes_asyncio's loader (tokens, client certificates, exec plugins such as ``aws eks get-token``).
Faults, node pools and the kubelet's process view do not exist here: tests needing them are emulator-only.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Callable

import requests
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import Configuration

from .resources import TYPES


class RealCluster:
    emulated = False

    def __init__(self, kubeconfig: str | None = None, namespace: str | None = None):
        self.kubeconfig = kubeconfig or os.environ["KUBECONFIG"].split(os.pathsep)[0]
        cfg = Configuration()
        asyncio.run(k8s_config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg))
        self.url = cfg.host.rstrip("/")
        self.session = requests.Session()
        auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if auth:
            prefix = cfg.api_key_prefix.get("authorization", "")
            self.session.headers["Authorization"] = f"{prefix} {auth}".strip() if not auth.startswith("Bearer") \
                else auth
        if cfg.cert_file:
            self.session.cert = (cfg.cert_file, cfg.key_file)
        self.session.verify = cfg.ssl_ca_cert or cfg.verify_ssl
        self.namespace = namespace

    def _url(self, plural: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        rt = TYPES[plural]
        base = f"{self.url}/apis/{rt.group}/{rt.version}" if rt.group else f"{self.url}/api/v1"
        if rt.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base

    def _check(self, r: requests.Response) -> dict:
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.method} {r.url}: {r.status_code} {r.text[:500]}")
        return r.json()

    def create(self, plural: str, body: dict, namespace: str | None = None) -> dict:
        return self._check(self.session.post(self._url(plural, namespace), json=body, timeout=30))

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict:
        return self._check(self.session.get(self._url(plural, namespace, name), timeout=30))

    def find(self, plural: str, name: str, namespace: str | None = None) -> dict | None:
        r = self.session.get(self._url(plural, namespace, name), timeout=30)
        return None if r.status_code == 404 else self._check(r)

    def list(self, plural: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        return self._check(self.session.get(self._url(plural, namespace), params=params, timeout=30))["items"]

    def delete(self, plural: str, name: str, namespace: str | None = None,
               grace_period_seconds: int | None = None) -> dict | None:
        params = {"gracePeriodSeconds": grace_period_seconds} if grace_period_seconds is not None else {}
        r = self.session.delete(self._url(plural, namespace, name), params=params, timeout=30)
        return None if r.status_code == 404 else self._check(r)

    def events(self, namespace: str | None = None, name: str | None = None, reason: str | None = None) -> list[dict]:
        sel = ",".join(filter(None, [f"involvedObject.name={name}" if name else "",
                                     f"reason={reason}" if reason else ""]))
        evs = self.list("events", namespace, field_selector=sel or None)
        return sorted(evs, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "",
                                          e["metadata"]["name"]))

    def event_messages(self, namespace: str | None = None, name: str | None = None,
                       reason: str | None = None) -> list[str]:
        return [f"{e['reason']}: {e['message']}" for e in self.events(namespace, name, reason)]

    def wait_for(self, fn: Callable[[], Any], timeout: float = 30, interval: float = 0.5, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = fn()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or fn}")
            time.sleep(interval)

    def wait_gone(self, plural: str, name: str, namespace: str | None = None, timeout: float = 60) -> None:
        self.wait_for(lambda: self.find(plural, name, namespace) is None, timeout, what=f"{plural} {name} gone")

    def ensure_namespace(self, namespace: str) -> None:
        if self.find("namespaces", namespace) is None:
            self.create("namespaces", {"metadata": {"name": namespace}})
