"""The oauthenticator and JupyterHub internals (names starting with ``_``) the auth package relies on, beyond
what jupyterhub_ext.compat lists and tests/test_compat.py checks for every private name: how they behave.

Each one is checked here, in both test installs, so that an upgrade that renames or reshapes one fails
loudly instead of quietly changing behaviour. Checked against oauthenticator 17.4.0 with JupyterHub 5.5.0
and 6.1.1.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from oauthenticator.generic import GenericOAuthenticator
from traitlets.traitlets import ValidateHandler

from jupyterhub_ext.auth.shared import ClassroomSharedPasswordAuthenticator

#: (private trait validator of SharedPasswordAuthenticator, its trait): shared.py overrides them by name.
PRIVATE_VALIDATORS = [("_validate_password", "user_password"), ("_validate_admin_password", "admin_password")]


@pytest.mark.parametrize("name,trait", PRIVATE_VALIDATORS)
def test_private_validators_we_replace_still_exist(name, trait):
    handler = vars(SharedPasswordAuthenticator).get(name)
    assert isinstance(handler, ValidateHandler) and handler.trait_names == (trait,), (
        f"SharedPasswordAuthenticator.{name} no longer validates {trait}: shared.py's override of it does nothing"
    )


def test_shared_password_length_constants():
    # shared.py: ClassroomSharedPasswordAuthenticator.validate_config reads them; docs/auth.md states 8 and 32.
    assert SharedPasswordAuthenticator._USER_PASSWORD_MIN_LENGTH == 8
    assert SharedPasswordAuthenticator._ADMIN_PASSWORD_MIN_LENGTH == 32


def test_our_validators_replace_jupyterhubs():
    # JupyterHub's refuse a short password while the config loads, naming no key; ours leave it to
    # validate_config, which names the key as written. Only works while the method names match.
    with pytest.raises(ValueError, match="at least 8"):
        SharedPasswordAuthenticator(user_password="short")
    assert ClassroomSharedPasswordAuthenticator(user_password="short").user_password == "short"


class _Probe(GenericOAuthenticator):
    """Records what oauthenticator's own flow asks of the hook OIDCAuthenticator plugs into."""

    seen: list

    async def get_token_info(self, handler, params):
        return {"access_token": "at", "id_token": "it", "token_type": "Bearer", "scope": "openid"}

    async def token_to_user(self, token_info):
        self.seen.append(token_info)
        return {"sub": "s-1", "name": "alice", "groups": ["g"]}


async def test_login_and_auth_model_read_the_user_through_token_to_user():
    """OIDCAuthenticator verifies the ID token in token_to_user only: upstream's login must call it, and take
    the name, auth_state and groups from what it returns."""
    probe = _Probe(
        client_id="c", oauth_callback_url="https://hub.example.com/hub/oauth_callback", enable_pkce=False,
        username_claim="name", manage_groups=True, allow_all=True, enable_auth_state=True,
    )
    probe.seen = []
    handler = SimpleNamespace(get_argument=lambda name, default=None: "the-code" if name == "code" else default)
    model = await probe.authenticate(handler)
    assert [t["id_token"] for t in probe.seen] == ["it"]
    assert model["name"] == "alice" and model["groups"] == ["g"]
    assert model["auth_state"]["id_token"] == "it" and model["auth_state"]["oauth_user"]["sub"] == "s-1"
    # The refresh path builds its model the same way, from a token response.
    again = await probe._token_to_auth_model({"access_token": "at2", "id_token": "it2"})
    assert probe.seen[-1]["id_token"] == "it2" and again["name"] == "alice"
