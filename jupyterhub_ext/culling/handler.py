"""``POST /hub/api/jupyterhub-ext/culls``: the culler's hook says which server it is about to stop and why.

Registered by ``jupyterhub_ext.z2jh.setup(c)`` through ``JupyterHub.extra_handlers`` (routes there are under the
hub's prefix), only when per-profile culling is on. The mark it leaves is read by that server's stop, which then
records the run in the usage ledger as ``culled``. Only who may stop that server may say so (``delete:servers``
on it: the culler's role has it).
"""

from __future__ import annotations

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from .arbiter import CULLS_PATH
from .marks import MARKS, REASONS

ROUTE = "/api" + CULLS_PATH


class CullMarkHandler(APIHandler):
    def post(self) -> None:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "expected a JSON object with user, server and reason")
        user, server, reason = body.get("user"), body.get("server", ""), body.get("reason")
        if not isinstance(user, str) or not user or not isinstance(server, str):
            raise web.HTTPError(400, "user (a name) and server (a name, '' for the default) are required")
        if reason not in REASONS:
            raise web.HTTPError(400, f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
        self._mark(user, server, reason)
        self.set_status(204)

    @needs_scope("delete:servers")  # filtered on user_name/server_name: that user's server
    def _mark(self, user_name: str, server_name: str, reason: str) -> None:
        if self.find_user(user_name) is None:
            raise web.HTTPError(404, f"no user {user_name!r}")
        MARKS.mark(user_name, server_name, reason)
        self.log.info("jupyterhub_ext: the culler stops %s/%s (%s)", user_name, server_name, reason)
