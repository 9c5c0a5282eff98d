"""Which of a start's courses cannot be delivered because their image cannot be pulled, and what to tell the user.

An init container whose image cannot be pulled holds the whole pod in ``Init:ImagePullBackOff``: Kubernetes
never starts the notebook, and the start would time out. The spawner reads the pod (and its events, for image
volumes) as KubeSpawner's reflectors hold them, asks :func:`unpullable`, and then either starts again without
those courses or, for a ``required`` course, fails at once with :func:`refusal`. Pure functions over plain
Kubernetes JSON.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .plan import Pulled

# waiting reasons of a container whose image will not come by waiting (the kubelet's own words)
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})


def _waiting(statuses: Iterable[dict]) -> dict[str, dict]:
    out = {}
    for cs in statuses or []:
        waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_FAILURES:
            out[cs.get("name")] = waiting
    return out


def _detail(waiting: dict) -> str:
    message = " ".join((waiting.get("message") or "").split())
    return f"{waiting['reason']}: {message}" if message else waiting["reason"]


def unpullable(pod: dict | None, events: Iterable[dict], pulled: Mapping[str, Pulled]) -> dict[str, str]:
    """Course name -> why its image cannot be pulled, for the courses of ``pulled`` that cannot be delivered."""
    if not pod or not pulled:
        return {}
    status = pod.get("status") or {}
    init = _waiting(status.get("initContainerStatuses"))
    main = _waiting(status.get("containerStatuses"))
    warnings = [" ".join(str(e.get("message") or "").split()) for e in events
                if isinstance(e, dict) and e.get("type") == "Warning"]
    out: dict[str, str] = {}
    for name, p in pulled.items():
        if p.container and p.container in init:
            out[name] = _detail(init[p.container])
        elif p.volume:
            quoted = f'"{p.image}"'
            for waiting in main.values():  # a kubelet that reports an image volume's pull on the container
                if quoted in (waiting.get("message") or "") or p.image in (waiting.get("message") or ""):
                    out[name] = _detail(waiting)
            for message in warnings:  # or as a volume that could not be set up
                if f'volume "{p.volume}"' in message and "pull" in message.lower():
                    out.setdefault(name, message)
    return out


def left_out_notice(names: Iterable[str], why: Mapping[str, str], images: Mapping[str, Pulled]) -> str:
    """What the user reads on the progress page when their server starts without some courses."""
    parts = [f"{n} (image {images[n].image}: {why[n]})" for n in names]
    return ("Course material not available right now, starting without it: " + "; ".join(parts)
            + ". What these courses put in your home before is still there; the next start tries again.")


def refusal(names: Iterable[str], why: Mapping[str, str], images: Mapping[str, Pulled]) -> str:
    """The error of a start that must not go without a required course."""
    parts = [f"{n} (image {images[n].image}: {why[n]})" for n in names]
    return ("your server cannot start without the material of course " + "; ".join(parts)
            + ", which could not be pulled; please tell your instructor")
