"""Every private upstream name (leading ``_``) the package overrides, calls, sets or reads, in one place.

KubeSpawner, JupyterHub and oauthenticator may change these in any release. Each entry says where we use it
and the releases it was checked against; :func:`problems` checks the installed ones (tests/test_compat.py runs
it in both test installs, and ``jupyterhub_ext.z2jh.setup`` logs what it finds at hub start-up), so an
upgrade that renames or reshapes one fails loudly instead of quietly changing what a start does.
docs/architecture.md has the table for readers.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from dataclasses import dataclass

KUBESPAWNER = "kubespawner 7.0.0, 7.1.0"
JUPYTERHUB = "jupyterhub 5.5.0, 6.1.1"
OAUTHENTICATOR = "oauthenticator 17.4.0"


@dataclass(frozen=True)
class Private:
    owner: str                          # "module:Class"
    name: str
    params: tuple[str, ...] | None      # a method's parameters after self; None for an attribute or constant
    use: str                            # overridden, called, set, read
    where: str                          # our code that depends on it
    checked: str                        # the releases it was checked against

    def problem(self) -> str | None:
        module, _, cls_name = self.owner.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if self.params is None:
            # a class attribute, or an instance attribute its own code sets
            present = self.name in vars(cls) or f"self.{self.name}" in _source(cls)
            return None if present else f"{cls_name}.{self.name} is gone ({self.where})"
        member = inspect.getattr_static(cls, self.name, None)
        if member is None:
            return f"{cls_name}.{self.name} is gone ({self.where})"
        if isinstance(member, property):
            return None
        function = getattr(member, "__func__", member)
        got = tuple(inspect.signature(function).parameters)[1:]
        if got != self.params:
            return f"{cls_name}.{self.name}{got} is not {self.params} ({self.where})"
        return None


@functools.lru_cache(maxsize=8)
def _source(cls) -> str:
    """The text of the module defining ``cls`` (read, not parsed: inspect.getsource parses it, ~70 ms)."""
    try:
        with open(inspect.getsourcefile(cls) or "", encoding="utf-8") as f:
            return f.read()
    except (OSError, TypeError):
        return ""


KS = "kubespawner:KubeSpawner"
PRIVATE: tuple[Private, ...] = (
    Private(KS, "_render_options_form_dynamically", ("current_spawner",), "overridden",
            "spawner.py: ProfilesKubeSpawner (the catalog's form, rendered once per kind of user)", KUBESPAWNER),
    Private(KS, "_options_from_form", ("formdata",), "overridden, and called on the local spawner",
            "spawner.py: ProfilesKubeSpawner; local/spawner.py: LocalProfilesSpawner (KubeSpawner's form parsing)",
            KUBESPAWNER),
    Private(KS, "_validate_user_options", ("profile_list",), "called",
            "form.py: render_catalog_form (last options pre-selected only while valid)", KUBESPAWNER),
    Private(KS, "_apply_overrides", ("spawner_override",), "called",
            "spawner.py: ProfilesKubeSpawner._apply_catalog_options (KubeSpawner's own override semantics)",
            KUBESPAWNER),
    Private(KS, "_start", (), "called", "spawner.py: ProfilesKubeSpawner._start_explained", KUBESPAWNER),
    Private(KS, "_start_future", None, "set", "spawner.py: ProfilesKubeSpawner.start (progress() waits on it)",
            KUBESPAWNER),
    Private(KS, "_make_create_pod_request", ("pod", "request_timeout"), "overridden",
            "podrequests.py: a create whose answer was lost", KUBESPAWNER),
    Private(KS, "_make_delete_pod_request", ("pod_name", "delete_options", "grace_seconds", "request_timeout"),
            "overridden", "podrequests.py: transient delete errors retried", KUBESPAWNER),
    Private(KS, "_make_delete_pvc_request", ("pvc_name", "request_timeout"), "overridden",
            "podrequests.py: transient claim-delete errors retried", KUBESPAWNER),
    Private(KS, "_state_kubespawner_version", None, "read and set",
            "storage/mixin.py: StorageMixin.load_state (a 6.x claim kept for a user with no state)", KUBESPAWNER),
    Private(KS, "_expand_user_properties", ("template", "slug_scheme"), "mirrored",
            "storage/naming.py: user_fields renders {escaped,safe}_username as it does (slug length 48)",
            KUBESPAWNER),
    Private("jupyterhub.spawner:Spawner", "_log_name", None, "read", "spawner.py: log lines", JUPYTERHUB),
    Private("oauthenticator.oauth2:OAuthenticator", "_token_to_auth_model", ("token_info",), "called",
            "auth/oidc.py: OIDCAuthenticator.auth_model_from_tokens (refresh)", OAUTHENTICATOR),
    Private("oauthenticator.oauth2:OAuthenticator", "_call_refresh_user_hook", ("user", "auth_state"), "called",
            "auth/oidc.py: OIDCAuthenticator.refresh_user", OAUTHENTICATOR),
    Private("jupyterhub.authenticators.shared:SharedPasswordAuthenticator", "_validate_password", None,
            "overridden (traitlets validator of user_password)", "auth/shared.py", JUPYTERHUB),
    Private("jupyterhub.authenticators.shared:SharedPasswordAuthenticator", "_validate_admin_password", None,
            "overridden (traitlets validator of admin_password)", "auth/shared.py", JUPYTERHUB),
    Private("jupyterhub.authenticators.shared:SharedPasswordAuthenticator", "_USER_PASSWORD_MIN_LENGTH", None,
            "read", "auth/shared.py: validate_config", JUPYTERHUB),
    Private("jupyterhub.authenticators.shared:SharedPasswordAuthenticator", "_ADMIN_PASSWORD_MIN_LENGTH", None,
            "read", "auth/shared.py: validate_config", JUPYTERHUB),
)

# Not a method: JupyterHub 5's request-handler setting that counts failed starts (spawner.py takes a refused
# start back out of it). JupyterHub 6 no longer counts refusals, so only 5 is checked (tests/spawner).
FAILURE_COUNT_SETTING = "failure_count"


def problems(*, loaded_only: bool = False) -> list[str]:
    """What of :data:`PRIVATE` the installed releases no longer have as we use it; with ``loaded_only``, of
    the modules this process has imported (the hub start-up check: no import for a check's sake)."""
    entries = [e for e in PRIVATE if not loaded_only or e.owner.partition(":")[0] in sys.modules]
    return [p for p in (entry.problem() for entry in entries) if p]
