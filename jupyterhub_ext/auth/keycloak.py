"""Keycloak realms: endpoints from the realm's discovery document, groups and roles as JupyterHub groups."""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Mapping
from typing import Any

from tornado import web
from traitlets import Bool, Enum, List, Unicode, default

from ..errors import ConfigError
from .idtoken import ProviderUnavailable
from .checks import check_url
from .handlers import provider_logout_query
from .oidc import OIDCAuthenticator, _string_list

_REALM_URL = re.compile(r"^https?://[^/]+(?:/.*)?/realms/(?P<realm>[^/?#]+)/?$")

REALM_ROLE_PREFIX = "realm-role:"
CLIENT_ROLE_PREFIX = "client-role:"


def normalize_group_path(value: str, mode: str) -> str:
    """A Keycloak group as a JupyterHub group name.

    Keycloak sends ``/parent/child`` when the group mapper's "Full group path" is on, ``child`` when off.
    ``full`` keeps the path without the leading slash (``parent/child``): groups with the same name under
    different parents stay different. ``last`` keeps the last segment (``child``).
    """
    segments = [s.strip() for s in value.split("/") if s.strip()]
    if not segments:
        return ""
    return "/".join(segments) if mode == "full" else segments[-1]


class KeycloakAuthenticator(OIDCAuthenticator):
    """Log in with a Keycloak realm.

    Minimal settings: ``realm_url``, ``client_id``, ``client_secret`` and an allow rule
    (``allowed_groups``, ``allowed_users`` or ``allow_all``).
    """

    realm_url = Unicode(
        config=True,
        help="""
        The realm's URL, e.g. ``https://sso.example.com/realms/hub`` (``.../auth/realms/hub`` on Keycloak
        before 17). Endpoints, issuer and signing keys come from its OpenID Connect discovery document,
        fetched at start-up in the background and at the first login if that failed.
        """,
    )

    end_session_url = Unicode(
        config=True,
        help="""
        The realm's RP-initiated logout endpoint. Default: ``end_session_endpoint`` from the discovery
        document.
        """,
    )

    group_path = Enum(
        ["full", "last"],
        default_value="full",
        config=True,
        help="""
        How Keycloak group paths (``/parent/child``) become JupyterHub group names: ``full`` gives
        ``parent/child`` (default: unambiguous, ``/courseA/students`` and ``/courseB/students`` stay
        apart), ``last`` gives ``child``. ``allowed_groups`` and ``admin_groups`` may be written either
        way (with or without the leading slash); they are normalised the same way.
        """,
    )

    realm_roles_as_groups = Bool(
        False,
        config=True,
        help=f"""
        Add the user's realm roles (the ``realm_access.roles`` claim) to their groups, named
        ``{REALM_ROLE_PREFIX}<role>``. Keycloak puts this claim in the ID token only when the "realm roles"
        mapper has "Add to ID token" on (or in userinfo with ``fetch_userinfo``).
        """,
    )

    client_roles_as_groups = List(
        Unicode(),
        config=True,
        help=f"""
        Client ids whose client roles (``resource_access.<client>.roles``) are added to the user's groups,
        named ``{CLIENT_ROLE_PREFIX}<client>:<role>``. Needs "Add to ID token" on the "client roles" mapper.
        """,
    )

    ignored_realm_roles = List(
        Unicode(),
        default_value=["offline_access", "uma_authorization", "default-roles-*"],
        config=True,
        help="""
        Realm roles (shell-style patterns) not turned into groups: Keycloak gives these to every user.
        """,
    )

    @default("login_service")
    def _login_service_default(self):
        return "Keycloak"

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("groups_claim")
    def _groups_claim_default(self):
        return "groups"

    # Empty until discovery fills them; an explicit value always wins.
    @default("authorize_url")
    def _authorize_url_default(self):
        return ""

    @default("token_url")
    def _token_url_default(self):
        return ""

    @default("userdata_url")
    def _userdata_url_default(self):
        return ""

    @property
    def realm(self) -> str:
        match = _REALM_URL.match(self.realm_url or "")
        return match.group("realm") if match else ""

    @property
    def discovery_url(self) -> str:
        return f"{self.realm_url.rstrip('/')}/.well-known/openid-configuration"

    _discovered: dict[str, Any] | None = None
    _discovery_lock: asyncio.Lock | None = None

    async def resolve_endpoints(self) -> None:
        if self._discovered is not None:
            return
        if self._discovery_lock is None:
            self._discovery_lock = asyncio.Lock()
        async with self._discovery_lock:
            if self._discovered is not None:
                return
            doc = await self.fetch_json(self.discovery_url)
            if not isinstance(doc, Mapping):
                raise ProviderUnavailable(f"{self.discovery_url} is not a JSON object")
            needed = {
                "issuer": "issuer",
                "authorize_url": "authorization_endpoint",
                "token_url": "token_endpoint",
                "jwks_url": "jwks_uri",
            }
            optional = {"userdata_url": "userinfo_endpoint", "end_session_url": "end_session_endpoint"}
            for trait, field in {**needed, **optional}.items():
                if getattr(self, trait):
                    continue  # configured explicitly
                value = doc.get(field)
                if not value and trait in needed:
                    raise ProviderUnavailable(f"the discovery document {self.discovery_url} has no {field!r}")
                setattr(self, trait, value or "")
            self._discovered = dict(doc)
            self.log.info("Keycloak realm %r: issuer %s", self.realm, self.issuer)

    def validate_provider_config(self) -> None:
        key = self._key
        check_url(key("realm_url"), self.realm_url)
        if not self.realm:
            raise ConfigError(
                key("realm_url"),
                f"{self.realm_url!r} is not a realm URL like https://sso.example.com/realms/<realm>",
            )
        for trait in ("issuer", "jwks_url", "authorize_url", "token_url", "userdata_url", "end_session_url"):
            check_url(key(trait), getattr(self, trait), required=False)
        for trait in ("allowed_groups", "admin_groups"):
            normalized = set()
            for name in getattr(self, trait):
                if name.startswith((REALM_ROLE_PREFIX, CLIENT_ROLE_PREFIX)):
                    normalized.add(name)
                    continue
                if self.group_path == "last" and "/" in name.strip("/"):
                    raise ConfigError(
                        key(trait),
                        f"{name!r} is a group path, but group_path is 'last' (groups are known by their last "
                        "segment only); write the group's name, or set group_path = 'full'",
                    )
                value = normalize_group_path(name, self.group_path)
                if not value:
                    raise ConfigError(key(trait), f"{name!r} is not a group name")
                normalized.add(value)
            if normalized != set(getattr(self, trait)):
                setattr(self, trait, normalized)

    def groups_from_claims(self, claims: Mapping[str, Any]) -> set[str]:
        groups = {
            name
            for raw in _string_list(claims.get(self.groups_claim))
            if (name := normalize_group_path(raw, self.group_path))
        }
        if self.realm_roles_as_groups:
            realm_access = claims.get("realm_access")
            roles = _string_list(realm_access.get("roles")) if isinstance(realm_access, Mapping) else []
            groups |= {
                REALM_ROLE_PREFIX + role
                for role in roles
                if not any(fnmatch.fnmatchcase(role, pattern) for pattern in self.ignored_realm_roles)
            }
        resource_access = claims.get("resource_access")
        if self.client_roles_as_groups and isinstance(resource_access, Mapping):
            for client in self.client_roles_as_groups:
                entry = resource_access.get(client)
                roles = _string_list(entry.get("roles")) if isinstance(entry, Mapping) else []
                groups |= {f"{CLIENT_ROLE_PREFIX}{client}:{role}" for role in roles}
        return groups

    def provider_logout_url(self, handler: web.RequestHandler, id_token: str | None) -> str | None:
        # OpenID Connect RP-Initiated Logout 1.0, as Keycloak 18+ implements it: with id_token_hint the
        # session ends without a confirmation page; client_id lets Keycloak check the redirect URI.
        if not self.end_session_url:
            return None
        return provider_logout_query(
            self.end_session_url,
            {
                "client_id": self.client_id,
                "post_logout_redirect_uri": self.post_logout_url(handler),
                "id_token_hint": id_token,
            },
        )
