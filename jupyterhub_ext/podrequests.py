"""Pod requests that survive a hiccup of the Kubernetes API: a create whose answer was lost, a refused delete.

A mixin over KubeSpawner's request methods (private ones: jupyterhub_ext.compat lists them with the versions
they were checked against).
"""

from __future__ import annotations

import asyncio
import json
import uuid

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions
from kubernetes_asyncio.client.rest import ApiException

from .errors import ShownError

# answers to a delete that say "try again", not "no": retried within k8s_api_request_retry_timeout
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# on every pod: which start made it, so a retried create can recognise the pod its own lost request made
START_ANNOTATION = "jupyterhub-ext/start"
# a pod a stop could not delete is retried in the background, this often at most (seconds)
LEFTOVER_RETRY_MAX = 30.0
# (namespace, name, uid) -> the task deleting that leftover pod; kept here so the task is not garbage-collected
_leftover_tasks: dict[tuple[str, str, str], asyncio.Task] = {}


class PodDeleteFailed(ShownError):
    """A pod the API would not delete; the message names the pod and the API's answer."""


def api_error_text(e: ApiException) -> str:
    """``403 Forbidden: <the Status message>``: an ApiException's str() is a dump of headers and body."""
    try:
        message = json.loads(e.body or "{}").get("message") or ""
    except (TypeError, ValueError, AttributeError):
        message = str(e.body or "")
    return " ".join(str(part) for part in (e.status, e.reason) if part) + (f": {message}" if message else "")


async def delete_leftover_pod(api, namespace: str, name: str, uid: str, grace_seconds: int, request_timeout: float,
                              log) -> None:
    """Delete the pod ``uid`` once the API allows it, retrying with a growing pause.

    The uid precondition keeps this off the user's next pod: a new pod of that name has another uid, the API
    answers 409, and the retries end (that start replaced the leftover itself)."""
    pause = 1.0
    while True:
        await asyncio.sleep(pause)
        pause = min(pause * 2, LEFTOVER_RETRY_MAX)
        try:
            await asyncio.wait_for(api.delete_namespaced_pod(
                name=name, namespace=namespace, grace_period_seconds=grace_seconds,
                body=V1DeleteOptions(grace_period_seconds=grace_seconds, preconditions=V1Preconditions(uid=uid))),
                request_timeout)
        except asyncio.TimeoutError:
            continue
        except ApiException as e:
            if e.status in (404, 409):  # gone, or replaced by a newer pod of that name
                log.info("Pod %s/%s left by a failed delete is gone", namespace, name)
                return
            log.debug("Deleting leftover pod %s/%s: %s; retrying", namespace, name, api_error_text(e))
            continue
        log.info("Deleted pod %s/%s that a failed delete had left", namespace, name)
        return


class PodRequestsMixin:
    """Safe-to-retry pod creates and deletes for a KubeSpawner subclass (placed before KubeSpawner)."""

    _start_token: str | None = None
    _create_attempted = False
    _pod_delete_accepted = False

    def new_start_token(self) -> None:
        """Mark the pods of the start that begins now (see ``_make_create_pod_request``)."""
        self._start_token = uuid.uuid4().hex
        self._create_attempted = False

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        token = self._start_token
        if token:
            pod.metadata.annotations = {**(pod.metadata.annotations or {}), START_ANNOTATION: token}
        return pod

    async def _make_create_pod_request(self, pod, request_timeout):
        """KubeSpawner's pod create, made safe to retry.

        When a create times out on the hub's side the API server usually made the pod anyway; KubeSpawner's
        retry then meets 409, deletes that pod (waiting for it to go), and creates it again, and on a busy hub
        that cycle can eat the whole retry budget ("Could not create pod", seen with 300 users starting at
        once). Before a retry this looks for the pod first: if it carries this start's annotation, the lost
        create succeeded and the start goes on with it. A pod from anything else still gets KubeSpawner's
        treatment (409, delete, create again).
        """
        if self._create_attempted:
            mine = await self._pod_is_from_this_start(pod.metadata.name, request_timeout)
            if mine is None:
                return False  # could not tell: try again later
            if mine:
                self.log.info("Pod %s/%s from this start's earlier create exists; using it", self.namespace,
                              pod.metadata.name)
                return True
        self._create_attempted = True
        return await super()._make_create_pod_request(pod, request_timeout)

    def made_by_this_start(self, pod: dict | None) -> bool:
        """Whether ``pod`` (plain JSON, as the reflector holds it) is this start's, and not being deleted."""
        meta = (pod or {}).get("metadata") or {}
        return bool(self._start_token) and (meta.get("annotations") or {}).get(START_ANNOTATION) == \
            self._start_token and not meta.get("deletionTimestamp")

    async def _pod_is_from_this_start(self, pod_name: str, request_timeout: float) -> bool | None:
        token = self._start_token
        if not token:
            return False
        reflector = self.pod_reflector
        seen = reflector.pods.get(f"{self.namespace}/{pod_name}") if reflector is not None else None
        if self.made_by_this_start(seen):
            return True
        try:
            existing = await asyncio.wait_for(self.api.read_namespaced_pod(pod_name, self.namespace),
                                              request_timeout)
        except asyncio.TimeoutError:
            return None
        except ApiException as e:
            if e.status == 404:
                return False
            if e.status in TRANSIENT_STATUSES:
                return None
            raise
        return ((existing.metadata.annotations or {}).get(START_ANNOTATION) == token
                and existing.metadata.deletion_timestamp is None)

    # -- deletes that survive a hiccup --------------------------------------------------------------

    async def stop(self, now=False):
        """KubeSpawner's stop; a pod the API would not delete is deleted in the background later.

        JupyterHub (5 and 6) records the server as stopped whatever ``stop`` does, and drops the error without a
        word: a refused delete (403, or 5xx past the retries) would leave the pod running, holding its node and
        GPU, with nothing in the log. Here the refusal is logged with the API's answer, the pod (by uid, so never
        the user's next one) is deleted as soon as the API allows it, and the error is raised as
        ``PodDeleteFailed``, which a start that met the leftover shows the user. The user's next start replaces
        the leftover too (KubeSpawner deletes a pod in its way).
        """
        self._pod_delete_accepted = False
        try:
            return await super().stop(now=now)
        except Exception as e:
            if self._pod_delete_accepted:
                raise  # the delete was taken (the pod is terminating); only the wait for it to go ended
            leftover = self._schedule_leftover_delete(0 if now else self.delete_grace_period)
            cause = api_error_text(e) if isinstance(e, ApiException) else str(e) or type(e).__name__
            message = (f"the pod {self.namespace}/{self.pod_name} could not be deleted ({cause}); "
                       + ("it is deleted as soon as the Kubernetes API allows it" if leftover else
                          "it is replaced at the next start"))
            self.log.error("Stopping %s: %s", self._log_name, message)
            raise PodDeleteFailed(message) from e

    def _schedule_leftover_delete(self, grace_seconds: int) -> bool:
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
        uid = ((pod or {}).get("metadata") or {}).get("uid")
        if not uid:
            return False  # unknown to the watch: the next start deals with whatever is there
        key = (self.namespace, self.pod_name, uid)
        if key not in _leftover_tasks:
            task = asyncio.ensure_future(delete_leftover_pod(self.api, self.namespace, self.pod_name, uid,
                                                             grace_seconds, self.k8s_api_request_timeout, self.log))
            _leftover_tasks[key] = task
            task.add_done_callback(lambda _: _leftover_tasks.pop(key, None))
        return True

    async def _make_delete_pod_request(self, pod_name, delete_options, grace_seconds, request_timeout):
        """KubeSpawner's pod delete, with a transient API error retried instead of raised.

        KubeSpawner retries a delete that times out but raises on any error status, so one 500 while a server
        stops ends the stop, JupyterHub records the server as stopped, and the pod keeps running (and holding
        its GPU) until the user's next start. Here 429 and 5xx answers are retried like a timeout, within
        ``k8s_api_request_retry_timeout``; other errors (403, ...) end the stop at once (see ``stop``).
        """
        accepted = await self._retrying_transient(
            super()._make_delete_pod_request(pod_name, delete_options, grace_seconds, request_timeout),
            f"pod {self.namespace}/{pod_name}")
        if accepted:
            self._pod_delete_accepted = True
        return accepted

    async def _make_delete_pvc_request(self, pvc_name, request_timeout):
        """KubeSpawner's claim delete (when a user is deleted), with 429 and 5xx answers retried as above.

        JupyterHub deletes the user even when ``delete_forever`` fails, so a claim whose delete was refused once
        would stay behind, owned by nobody.
        """
        return await self._retrying_transient(super()._make_delete_pvc_request(pvc_name, request_timeout),
                                              f"claim {self.namespace}/{pvc_name}")

    async def _retrying_transient(self, request, what: str) -> bool:
        """A delete request's answer; False ("not yet", retried by KubeSpawner) for a 429 or 5xx answer."""
        try:
            return await request
        except ApiException as e:
            if e.status not in TRANSIENT_STATUSES:
                raise
            self.log.warning("Deleting %s answered %s %s; retrying", what, e.status, e.reason)
            return False
