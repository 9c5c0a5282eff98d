"""Why a pod is still not running: the words a user sees when their server could not start in time.

JupyterHub ends a spawn that outlives ``start_timeout`` with a bare timeout, shown as ``Spawn failed: `` and
nothing else; the scheduler's reason ("0/3 nodes are available: ...") was only in the progress events, which a
reloaded spawn page no longer shows. :func:`explain_pending` turns the pod as the reflector last saw it and its
events into one sentence, and ``ProfilesKubeSpawner`` raises it just before JupyterHub's own timeout fires.

Pure functions over plain Kubernetes JSON (what KubeSpawner's reflectors hold), so they are tested without a hub.
"""

from __future__ import annotations

from typing import Any, Iterable

# container waiting reasons that mean "this will not fix itself by waiting longer"
_STUCK_WAITING = {
    "ErrImagePull": "the image could not be pulled",
    "ImagePullBackOff": "the image could not be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CreateContainerError": "the container could not be created",
    "CrashLoopBackOff": "the server keeps exiting right after it starts",
    "RunContainerError": "the container could not be run",
}


def _conditions(pod: dict) -> dict[str, dict]:
    return {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}


def _container_problem(pod: dict) -> str | None:
    status = pod.get("status") or {}
    for kind in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(kind) or []:
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            reason = waiting.get("reason")
            if reason in _STUCK_WAITING:
                detail = (waiting.get("message") or "").strip()
                what = "init container" if kind == "initContainerStatuses" else "container"
                text = f"{_STUCK_WAITING[reason]} ({what} {cs.get('name')!r}: {reason}"
                return text + (f": {detail})" if detail else ")")
            terminated = state.get("terminated") or {}
            if kind == "initContainerStatuses" and terminated and terminated.get("exitCode", 0) != 0:
                detail = (terminated.get("message") or terminated.get("reason") or "").strip()
                text = f"init container {cs.get('name')!r} failed with exit code {terminated.get('exitCode')}"
                return text + (f": {detail}" if detail else "")
    return None


def _last_warning(events: Iterable[dict]) -> str | None:
    last = None
    for event in events:
        if isinstance(event, dict) and event.get("type") == "Warning" and event.get("message"):
            last = event
    if last is None:
        return None
    reason = last.get("reason")
    return f"{reason}: {last['message']}" if reason else last["message"]


def explain_pending(pod: dict | None, events: Iterable[dict] = ()) -> str:
    """One sentence saying why ``pod`` is not running yet (no trailing full stop)."""
    if not pod:
        return "its pod never appeared in Kubernetes"
    scheduled = _conditions(pod).get("PodScheduled") or {}
    if scheduled.get("status") == "False":
        message = (scheduled.get("message") or "").strip()
        warning = None if message else _last_warning(events)
        return "no node can run it yet" + (f" ({message or warning})" if (message or warning) else "")
    problem = _container_problem(pod)
    if problem:
        return problem
    warning = _last_warning(events)
    if warning:
        return f"the last warning was {warning}"
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    node = (pod.get("spec") or {}).get("nodeName")
    return f"its pod is still {phase}" + (f" on node {node}" if node else "")


def timeout_message(seconds: Any, pod: dict | None, events: Iterable[dict] = ()) -> str:
    return f"your server did not start within {seconds} seconds: {explain_pending(pod, events)}"
