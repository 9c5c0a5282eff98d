"""A kube-scheduler for the emulator: the default profile's filters, in its order, and its messages.

Filters (first failure wins per node, as in the framework): NodeUnschedulable, NodeName, TaintToleration
(NoSchedule and NoExecute; PreferNoSchedule is a score, ignored), NodeAffinity (nodeSelector and required node
affinity: In, NotIn, Exists, DoesNotExist, Gt, Lt, matchFields on metadata.name), NodeResourcesFit (cpu,
memory, pods, ephemeral-storage and extended resources; requests are max(sum of containers, largest init
container) + overhead). PreFilter: VolumeBinding (missing, unbound or deleting PVCs).

A pod that fits nowhere stays Pending with PodScheduled=False and a FailedScheduling event worded as
FitError.Error() words it, e.g.::

    0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node
    affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod,
    2 Preemption is not helpful for scheduling.

Preemption itself is not implemented: nodes failing only on resources report "No preemption victims found".
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import Counter
from fractions import Fraction
from typing import Iterable, Mapping

from .events import EventRecorder
from .quantity import QuantityError, parse_quantity
from .resources import ApiError
from .store import Change, Store, now_iso

log = logging.getLogger("harness.scheduler")

SCHEDULER_NAME = "default-scheduler"
# z2jh's user-scheduler is a kube-scheduler with another scoring profile: same filters, same messages. The chart
# names it after the release ("jupyterhub-user-scheduler" for the release "jupyterhub", as the tests install it).
SCHEDULER_NAMES = ("default-scheduler", "user-scheduler", "jupyterhub-user-scheduler")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

MSG_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
MSG_UNSCHEDULABLE = "node(s) were unschedulable"
MSG_NODE_NAME = "node(s) didn't match the requested node name"
MSG_NOT_HELPFUL = "Preemption is not helpful for scheduling"
MSG_NO_VICTIMS = "No preemption victims found for incoming pod"
MSG_NO_NODES = "no nodes available to schedule pods"


# --- resources ---------------------------------------------------------------------------------------------------

def _q(value) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Fraction(0)


def container_requests(container: dict) -> dict[str, Fraction]:
    res = container.get("resources") or {}
    out = {k: _q(v) for k, v in (res.get("limits") or {}).items()}  # limits imply requests
    out.update({k: _q(v) for k, v in (res.get("requests") or {}).items()})
    return out


def pod_requests(pod: dict) -> dict[str, Fraction]:
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        for k, v in container_requests(c).items():
            total[k] = total.get(k, Fraction(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in container_requests(c).items():
            if v > total.get(k, Fraction(0)):
                total[k] = v
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, Fraction(0)) + _q(v)
    total["pods"] = Fraction(1)
    return total


def node_allocatable(node: dict) -> dict[str, Fraction]:
    return {k: _q(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}


def pod_is_active(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def usage_by_node(pods: Iterable[dict]) -> dict[str, dict[str, Fraction]]:
    used: dict[str, dict[str, Fraction]] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if not node or not pod_is_active(p):
            continue
        u = used.setdefault(node, {})
        for k, v in pod_requests(p).items():
            u[k] = u.get(k, Fraction(0)) + v
    return used


# --- filters -----------------------------------------------------------------------------------------------------

def tolerates(toleration: dict, taint: dict) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taints(tolerations: Iterable[dict], taints: Iterable[dict]) -> list[dict]:
    """The NoSchedule and NoExecute taints that none of ``tolerations`` tolerates, in order."""
    tolerations = list(tolerations)
    return [taint for taint in taints if taint.get("effect") in ("NoSchedule", "NoExecute")
            and not any(tolerates(t, taint) for t in tolerations)]


def untolerated_taint(pod: dict, node: dict) -> dict | None:
    """TaintToleration: the first of the node's taints the pod does not tolerate, or None."""
    taints = untolerated_taints((pod.get("spec") or {}).get("tolerations") or [],
                                (node.get("spec") or {}).get("taints") or [])
    return taints[0] if taints else None


def _match_expression(expr: dict, value: str | None, present: bool) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except (TypeError, ValueError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def requirement_matches(expr: dict, labels: Mapping[str, str]) -> bool:
    """A NodeSelectorRequirement (as in node affinity, or a Karpenter NodePool's requirements) on labels."""
    return _match_expression(expr, labels.get(expr.get("key")), expr.get("key") in labels)


def node_selector_term_matches(term: dict, node: dict) -> bool:
    """A NodeSelectorTerm: its matchExpressions and matchFields are ANDed; an empty term matches nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    for e in exprs:
        if not requirement_matches(e, labels):
            return False
    for f in fields:
        if f.get("key") != "metadata.name" or not _match_expression(f, node["metadata"]["name"], True):
            return False
    return True


def node_affinity_matches(pod: dict, node: dict) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required:
        terms = required.get("nodeSelectorTerms") or []
        if not any(node_selector_term_matches(t, node) for t in terms):
            return False
    return True


def insufficient(pod: dict, node: dict, used: dict[str, Fraction] | None) -> list[str]:
    """NodeResourcesFit reasons: "Too many pods", "Insufficient cpu", "Insufficient nvidia.com/gpu", ..."""
    alloc = node_allocatable(node)
    used = used or {}
    reasons = []
    req = pod_requests(pod)
    if used.get("pods", 0) + 1 > alloc.get("pods", Fraction(110)):
        reasons.append("Too many pods")
    for name in ("cpu", "memory", "ephemeral-storage"):
        want = req.get(name, Fraction(0))
        if want and want > alloc.get(name, Fraction(0)) - used.get(name, Fraction(0)):
            reasons.append(f"Insufficient {name}")
    for name, want in sorted(req.items()):
        if name in ("cpu", "memory", "ephemeral-storage", "pods") or not want:
            continue
        if want > alloc.get(name, Fraction(0)) - used.get(name, Fraction(0)):
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_node(pod: dict, node: dict, used: dict[str, Fraction] | None) -> tuple[list[str], bool]:
    """([] , _) when the pod fits; else (reasons, resolvable_by_preemption)."""
    spec = pod.get("spec") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        taint = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
        if not any(tolerates(t, taint) for t in spec.get("tolerations") or []):
            return [MSG_UNSCHEDULABLE], False
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return [MSG_NODE_NAME], False
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"], False
    if not node_affinity_matches(pod, node):
        return [MSG_AFFINITY], False
    reasons = insufficient(pod, node, used)
    return reasons, True


def fit_error(pod: dict, nodes: list[dict], used: dict[str, dict[str, Fraction]]) -> str:
    """The FailedScheduling message for a pod no node accepts (FitError.Error() + the preemption message)."""
    n = len(nodes)
    if n == 0:
        return MSG_NO_NODES
    histogram: Counter = Counter()
    preemption: Counter = Counter()
    for node in nodes:
        reasons, resolvable = filter_node(pod, node, used.get(node["metadata"]["name"]))
        for r in reasons:
            histogram[r] += 1
        preemption[MSG_NO_VICTIMS if resolvable else MSG_NOT_HELPFUL] += 1
    filters = ", ".join(sorted(f"{c} {r}" for r, c in histogram.items()))
    msg = f"0/{n} nodes are available: {filters}."
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return msg + " preemption: not eligible due to preemptionPolicy=Never."
    post = ", ".join(sorted(f"{c} {r}" for r, c in preemption.items()))
    return f"{msg} preemption: 0/{n} nodes are available: {post}."


def prefilter_error(pod: dict, nodes: list[dict], message: str) -> str:
    n = len(nodes)
    return f"0/{n} nodes are available: {message}. preemption: 0/{n} nodes are available: {n} {MSG_NOT_HELPFUL}."


def volume_prefilter(store: Store, pod: dict) -> str | None:
    """VolumeBinding PreFilter: claims must exist, not be deleting, and be bound unless WaitForFirstConsumer."""
    ns = pod["metadata"].get("namespace")
    for v in (pod.get("spec") or {}).get("volumes") or []:
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        pvc = store.find("persistentvolumeclaims", ns, claim)
        if pvc is None:
            return f'persistentvolumeclaim "{claim}" not found'
        if pvc["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{claim}" is being deleted'
        if (pvc.get("status") or {}).get("phase") != "Bound":
            sc_name = (pvc.get("spec") or {}).get("storageClassName")
            sc = store.find("storageclasses", None, sc_name) if sc_name else None
            if not (sc and sc.get("volumeBindingMode") == "WaitForFirstConsumer"):
                return "pod has unbound immediate PersistentVolumeClaims"
    return None


def _score(pod: dict, node: dict, used: dict[str, Fraction] | None) -> Fraction:
    """LeastAllocated on cpu and memory: prefer the emptiest node."""
    alloc, used = node_allocatable(node), used or {}
    req = pod_requests(pod)
    score = Fraction(0)
    for r in ("cpu", "memory"):
        cap = alloc.get(r) or Fraction(1)
        score += (cap - used.get(r, 0) - req.get(r, 0)) / cap
    return score


def choose_node(pod: dict, nodes: list[dict], used: dict[str, dict[str, Fraction]]) -> dict | None:
    best, best_score = None, None
    for node in nodes:
        reasons, _ = filter_node(pod, node, used.get(node["metadata"]["name"]))
        if reasons:
            continue
        s = _score(pod, node, used.get(node["metadata"]["name"]))
        if best is None or s > best_score:
            best, best_score = node, s
    return best


def is_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


# --- the scheduler loop --------------------------------------------------------------------------------------------

class Scheduler:
    """Binds pending pods to nodes, with the real scheduler's queues: a new pod is tried once; if nothing
    fits it waits among the unschedulable until a cluster event that could help (a node added or changed, a
    pod gone, a claim changed) or ``retry_seconds`` (the real backoff is 1-10 s, then cluster events)."""

    def __init__(self, store: Store, recorder: EventRecorder, retry_seconds: float = 2.0, provisioner=None,
                 names: tuple[str, ...] = SCHEDULER_NAMES):
        self.names = names
        self.store = store
        self.recorder = recorder
        self.retry_seconds = retry_seconds
        self.provisioner = provisioner
        self._wake = asyncio.Event()
        self._active: dict[str, tuple[str, str]] = {}  # uid -> (ns, name), insertion-ordered FIFO
        self._unschedulable: dict[str, tuple[str, str, float]] = {}  # uid -> (ns, name, last attempt)
        self._task: asyncio.Task | None = None
        self.attempts = 0
        store.subscribe(self._on_change)
        for pod in store.iter("pods"):
            self._maybe_queue(pod)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _maybe_queue(self, pod: dict) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or spec.get("schedulerName", SCHEDULER_NAME) not in self.names:
            return
        if pod["metadata"].get("deletionTimestamp") or not pod_is_active(pod):
            return
        uid = pod["metadata"]["uid"]
        if uid in self._unschedulable:
            return  # waits for a cluster event or its retry time
        self._active[uid] = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self._wake.set()

    def _move_all_to_active(self) -> None:
        for uid, (ns, name, _) in self._unschedulable.items():
            self._active[uid] = (ns, name)
        self._unschedulable.clear()
        self._wake.set()

    def _on_change(self, plural: str, change: Change) -> None:
        if plural == "pods":
            if change.type == "DELETED":
                uid = change.obj["metadata"]["uid"]
                self._active.pop(uid, None)
                self._unschedulable.pop(uid, None)
                if change.obj["spec"].get("nodeName"):
                    self._move_all_to_active()  # resources freed
            else:
                if change.type == "ADDED":
                    self._maybe_queue(change.obj)
                if change.old and pod_is_active(change.old) and not pod_is_active(change.obj):
                    self._move_all_to_active()
        elif plural in ("nodes", "persistentvolumeclaims", "storageclasses", "persistentvolumes"):
            self._move_all_to_active()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.retry_seconds / 2)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = loop.time()
            for uid, (ns, name, last) in list(self._unschedulable.items()):
                if now - last >= self.retry_seconds:
                    del self._unschedulable[uid]
                    self._active[uid] = (ns, name)
            if not self._active:
                continue
            try:
                self.schedule_pending()
            except Exception:  # never let one bad pod stop scheduling
                log.exception("scheduling round failed")
            await asyncio.sleep(0)

    def schedule_pending(self) -> None:
        nodes = [n for n in self.store.iter("nodes") if is_ready(n)]
        nodes.sort(key=lambda n: n["metadata"]["name"])
        used = usage_by_node(self.store.iter("pods"))
        now = asyncio.get_event_loop().time()
        batch, self._active = self._active, {}
        for uid, (ns, name) in batch.items():
            pod = self.store.find("pods", ns, name)
            if pod is None or pod["metadata"]["uid"] != uid or pod["spec"].get("nodeName") \
                    or pod["metadata"].get("deletionTimestamp"):
                continue
            self.attempts += 1
            node, message = None, None
            if not nodes:
                message = MSG_NO_NODES
            else:
                claim_problem = volume_prefilter(self.store, pod)
                if claim_problem is not None:
                    message = prefilter_error(pod, nodes, claim_problem)
                else:
                    node = choose_node(pod, nodes, used)
                    if node is None:
                        message = fit_error(pod, nodes, used)
            if node is not None:
                if self._bind(pod, node):
                    u = used.setdefault(node["metadata"]["name"], {})
                    for k, v in pod_requests(pod).items():
                        u[k] = u.get(k, Fraction(0)) + v
                else:
                    self._unschedulable[uid] = (ns, name, now)
                continue
            self._unschedulable[uid] = (ns, name, now)
            self._unschedulable_status(pod, message)
            if self.provisioner is not None:
                self.provisioner.pod_unschedulable(pod)

    def _bind(self, pod: dict, node: dict) -> bool:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node["metadata"]["name"]
        try:
            bound = self.store.update("pods", ns, name, new, _internal=True)
            status = copy.deepcopy(bound["status"])
            _set_condition(status, "PodScheduled", "True")
            status.pop("nominatedNodeName", None)
            bound = self.store.update("pods", ns, name, {**bound, "status": status}, subresource="status")
        except ApiError as e:
            log.warning("binding %s/%s failed: %s", ns, name, e)
            return False
        self.recorder.record(bound, "Normal", "Scheduled",
                             f"Successfully assigned {ns}/{name} to {node['metadata']['name']}",
                             pod["spec"].get("schedulerName", SCHEDULER_NAME), action="Binding")
        return True

    def _unschedulable_status(self, pod: dict, message: str) -> None:
        cond = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"),
                    None)
        if not (cond and cond.get("status") == "False" and cond.get("message") == message):
            status = copy.deepcopy(pod.get("status") or {})
            _set_condition(status, "PodScheduled", "False", "Unschedulable", message)
            try:
                pod = self.store.update("pods", pod["metadata"]["namespace"], pod["metadata"]["name"],
                                        {**pod, "status": status}, subresource="status")
            except ApiError:
                return
        self.recorder.record(pod, "Warning", "FailedScheduling", message,
                             pod["spec"].get("schedulerName", SCHEDULER_NAME), action="Scheduling")


def _set_condition(status: dict, type_: str, value: str, reason: str | None = None,
                   message: str | None = None) -> None:
    conds = status.setdefault("conditions", [])
    cur = next((c for c in conds if c["type"] == type_), None)
    new = {"type": type_, "status": value, "lastProbeTime": None,
           "lastTransitionTime": now_iso() if (cur is None or cur["status"] != value) else cur["lastTransitionTime"]}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    if cur is None:
        conds.append(new)
    else:
        conds[conds.index(cur)] = new


set_condition = _set_condition
