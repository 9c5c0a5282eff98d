"""Karpenter, reduced to what a hub sees: a pending pod that a NodePool could host gets a node after the
pool's delay (a ``Nominated`` event names the NodeClaim meanwhile); nodes left empty are removed after the
pool's ``consolidate_after``. Pods that no pool can host just stay Pending with the scheduler's reason."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from fractions import Fraction

from .events import EventRecorder
from .nodes import NodePool
from .resources import ApiError
from .scheduler import filter_node, pod_is_active, pod_requests
from .store import Store

log = logging.getLogger("harness.karpenter")

# Extended resources Karpenter knows from EC2 instance types. Resources that device plugins make up on the
# node (MIG slices, renamed time-sliced GPUs) are unknown to it: it never provisions for pods requesting them
# (kubernetes-sigs/karpenter#751), so such pools need nodes that already exist (warm nodes).
KNOWN_EXTENDED = {"nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore",
                  "aws.amazon.com/neurondevice", "amd.com/gpu", "habana.ai/gaudi", "vpc.amazonaws.com/efa"}
STANDARD = {"cpu", "memory", "pods", "ephemeral-storage"}


@dataclass
class NodeClaim:
    name: str
    pool: NodePool
    template: dict
    nominated: dict[str, dict[str, Fraction]] = field(default_factory=dict)  # pod uid -> requests
    launched: bool = False


class Provisioner:
    def __init__(self, store: Store, recorder: EventRecorder, pools: list[NodePool]):
        self.store, self.recorder = store, recorder
        self.pools = {p.name: p for p in pools}
        self.claims: dict[str, NodeClaim] = {}
        self._empty_since: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self.launched: list[str] = []
        self.enabled = True  # False: Karpenter is down (or every pool at its limit) and no node is added

    def start(self) -> None:
        for pool in self.pools.values():
            for _ in range(pool.initial):
                self.store.create("nodes", None, pool.node(self._name(pool)))
        self._task = asyncio.get_running_loop().create_task(self._consolidate(), name="karpenter")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def add_pool(self, pool: NodePool) -> None:
        self.pools[pool.name] = pool
        for _ in range(pool.initial):
            self.store.create("nodes", None, pool.node(self._name(pool)))

    @staticmethod
    def _name(pool: NodePool) -> str:
        return f"{pool.name}-{''.join(random.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"

    def _pool_nodes(self, pool: NodePool) -> int:
        existing = sum(1 for n in self.store.iter("nodes")
                       if (n["metadata"].get("labels") or {}).get("karpenter.sh/nodepool") == pool.name)
        inflight = sum(1 for c in self.claims.values() if c.pool is pool and not c.launched)
        return existing + inflight

    def pod_unschedulable(self, pod: dict) -> None:
        if not self.enabled:
            return
        uid = pod["metadata"]["uid"]
        if any(r not in STANDARD and r not in KNOWN_EXTENDED and v for r, v in pod_requests(pod).items()):
            return
        if any(uid in c.nominated for c in self.claims.values()):
            return
        for claim in self.claims.values():
            if claim.launched:
                continue
            used = self._claim_usage(claim)
            if not filter_node(pod, claim.template, used)[0]:
                self._nominate(claim, pod)
                return
        for pool in sorted(self.pools.values(), key=lambda p: p.name):
            if self._pool_nodes(pool) >= pool.limit:
                continue
            itype = next((t for t in pool.candidates if not filter_node(pod, pool.node("template", t), None)[0]),
                         None)
            if itype is None:
                continue
            name = self._name(pool)
            claim = NodeClaim(name, pool, pool.node(name, itype))
            self.claims[name] = claim
            self._nominate(claim, pod)
            asyncio.get_event_loop().call_later(pool.delay, self._launch, claim)
            return

    @staticmethod
    def _claim_usage(claim: NodeClaim) -> dict[str, Fraction]:
        used: dict[str, Fraction] = {}
        for req in claim.nominated.values():
            for k, v in req.items():
                used[k] = used.get(k, Fraction(0)) + v
        return used

    def _nominate(self, claim: NodeClaim, pod: dict) -> None:
        claim.nominated[pod["metadata"]["uid"]] = pod_requests(pod)
        self.recorder.record(pod, "Normal", "Nominated", f"Pod should schedule on: nodeclaim/{claim.name}",
                             "karpenter")

    def _launch(self, claim: NodeClaim) -> None:
        claim.launched = True
        try:
            self.store.create("nodes", None, claim.template)
            self.launched.append(claim.name)
        except ApiError as e:
            log.warning("could not create node %s: %s", claim.name, e)
        self.claims.pop(claim.name, None)

    async def _consolidate(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            busy = {p["spec"].get("nodeName") for p in self.store.iter("pods")
                    if pod_is_active(p) and p["spec"].get("nodeName")}
            for node in list(self.store.iter("nodes")):
                pool = self.pools.get((node["metadata"].get("labels") or {}).get("karpenter.sh/nodepool", ""))
                name = node["metadata"]["name"]
                if pool is None or pool.consolidate_after is None or name in busy:
                    self._empty_since.pop(name, None)
                    continue
                since = self._empty_since.setdefault(name, now)
                keep = sum(1 for n in self.store.iter("nodes")
                           if (n["metadata"].get("labels") or {}).get("karpenter.sh/nodepool") == pool.name)
                if now - since >= pool.consolidate_after and keep > pool.initial:
                    try:
                        self.store.delete("nodes", None, name)
                    except ApiError:
                        pass
                    self._empty_since.pop(name, None)
