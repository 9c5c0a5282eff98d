"""Which config key a start-up error names: the one the operator actually wrote."""

from __future__ import annotations

from traitlets.config import Configurable


def config_key(obj: Configurable, trait: str, default_section: str | None = None) -> str:
    """``<Section>.<trait>`` for the most specific section of ``obj``'s class hierarchy that sets ``trait``
    in ``obj.config`` (``Authenticator.allowed_users``, ``SharedPasswordAuthenticator.user_password``), the
    section traitlets took the value from; otherwise ``default_section`` (by default the class name).

    A setting passed to the constructor rather than through config names the class."""
    for section in reversed(obj.section_names()):  # most specific first: the one traitlets applied last
        if f"{section}.{trait}" in obj.config:
            return f"{section}.{trait}"
    return f"{default_section or obj.__class__.__name__}.{trait}"
