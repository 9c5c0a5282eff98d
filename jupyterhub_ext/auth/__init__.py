"""Authenticators: Amazon Cognito, Keycloak, and classroom shared passwords. See docs/auth.md.

Entry points (``c.JupyterHub.authenticator_class``): ``cognito``, ``keycloak``, ``classroom-password``.
JupyterHub's own ``shared-password`` gets the classroom checks too: ``jupyterhub_ext.z2jh.setup(c)`` puts
ClassroomSharedPasswordAuthenticator (its subclass) in its place.
Submodules are imported lazily so that importing one authenticator does not import the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CognitoAuthenticator": "cognito",
    "KeycloakAuthenticator": "keycloak",
    "ClassroomSharedPasswordAuthenticator": "shared",
    "OIDCAuthenticator": "oidc",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)


def checked_authenticators() -> tuple[type, ...]:
    """Our authenticator bases whose ``validate_config()`` the start-up check runs (jupyterhub_ext.z2jh)."""
    from .oidc import OIDCAuthenticator
    from .shared import ClassroomSharedPasswordAuthenticator

    return (OIDCAuthenticator, ClassroomSharedPasswordAuthenticator)
