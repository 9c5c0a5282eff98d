"""Classroom logins with shared passwords: JupyterHub's own SharedPasswordAuthenticator, configured safely.

The replacement for running a class on ``DummyAuthenticator`` (any name, one password): the class list is
explicit, passwords come from a Kubernetes secret (file or environment variable) rather than from values
files, are long enough, are never logged, and the hub does not start without them.

``jupyterhub_ext.z2jh.setup(c)`` puts this class in place of JupyterHub's own when the configuration names
that one (``shared-password``), so ``c.SharedPasswordAuthenticator.*`` settings get the same checks; error
messages name the config section a setting was actually written in.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Unicode, validate

from ..errors import ConfigError
from ..configkey import config_key
from .checks import refuse_invalid_config


def _strip_one_newline(text: str) -> str:
    # Secret files usually end with a newline that is not part of the password; other whitespace is.
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


class ClassroomSharedPasswordAuthenticator(SharedPasswordAuthenticator):
    """Shared passwords for a listed class: students use ``user_password``, ``admin_users`` use ``admin_password``.

    Each password comes from exactly one of: the trait itself, a ``*_file`` (a mounted secret), or the
    environment variable named by ``*_env``.
    """

    user_password_file = Unicode(
        config=True,
        help="""
        Path of a file holding the shared password of students (non-admin users), e.g. a mounted
        Kubernetes secret. One trailing newline is ignored. Read once at start-up.
        """,
    )

    user_password_env = Unicode(
        "JUPYTERHUB_SHARED_PASSWORD",
        config=True,
        help="""
        Name of the environment variable holding the students' shared password (e.g. set from a secret
        with z2jh's ``hub.extraEnv``). Used when neither ``user_password`` nor ``user_password_file`` is set.
        """,
    )

    admin_password_file = Unicode(
        config=True,
        help="""
        Path of a file holding the password of ``admin_users`` (at least 32 characters). One trailing
        newline is ignored. Read once at start-up.
        """,
    )

    admin_password_env = Unicode(
        "JUPYTERHUB_SHARED_ADMIN_PASSWORD",
        config=True,
        help="""
        Name of the environment variable holding the admin password. Used when neither ``admin_password``
        nor ``admin_password_file`` is set.
        """,
    )

    def _key(self, trait: str) -> str:
        # Unset traits are named in the most specific of our sections in use, so that a config written for
        # JupyterHub's `shared-password` reads `SharedPasswordAuthenticator.user_password: ...`.
        sections = list(reversed(self.section_names()))
        ours = sections[: sections.index("SharedPasswordAuthenticator") + 1]
        in_use = next((name for name in ours if name in self.config and self.config[name]), None)
        return config_key(self, trait, in_use)

    # JupyterHub's own validators run while the config is loaded and name this class whatever section the
    # setting came from; validate_config() makes the same checks (and more) at start-up, naming the key.
    @validate("user_password")
    def _validate_password(self, proposal):
        return proposal.value or None

    @validate("admin_password")
    def _validate_admin_password(self, proposal):
        return proposal.value or None

    def _read_password(self, which: str) -> tuple[str | None, str]:
        """(password or None, the config key it came from)."""
        direct = getattr(self, f"{which}_password")
        file_path = getattr(self, f"{which}_password_file")
        env_name = getattr(self, f"{which}_password_env")
        env_value = os.environ.get(env_name) if env_name else None
        # An explicitly configured trait or file must not be silently shadowed by, or shadow, another one.
        if direct and file_path:
            raise ConfigError(
                self._key(f"{which}_password_file"), f"set either {which}_password or {which}_password_file, not both"
            )
        if direct:
            return direct, self._key(f"{which}_password")
        if file_path:
            key = self._key(f"{which}_password_file")
            try:
                text = Path(file_path).read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(key, f"cannot read {file_path}: {e.strerror or e}") from None
            return _strip_one_newline(text), key
        if env_value:
            return env_value, f"{self._key(f'{which}_password_env')} (${env_name})"
        return None, self._key(f"{which}_password")

    def check_allow_config(self):
        refuse_invalid_config(self)
        super().check_allow_config()

    def validate_config(self) -> None:
        key = self._key
        user_password, user_source = self._read_password("user")
        admin_password, admin_source = self._read_password("admin")
        minimum_user = self._USER_PASSWORD_MIN_LENGTH
        minimum_admin = self._ADMIN_PASSWORD_MIN_LENGTH
        # Messages give lengths and sources, never the password.
        if not user_password:
            raise ConfigError(
                user_source,
                f"no shared password is set: set user_password_file (a mounted secret) or the "
                f"{self.user_password_env or 'user_password_env'} environment variable",
            )
        if len(user_password) < minimum_user:
            raise ConfigError(user_source, f"must be at least {minimum_user} characters long, got {len(user_password)}")
        if admin_password is not None:
            if len(admin_password) < minimum_admin:
                raise ConfigError(
                    admin_source, f"must be at least {minimum_admin} characters long, got {len(admin_password)}"
                )
            if admin_password == user_password:
                raise ConfigError(admin_source, "must differ from the students' password")
        # JupyterHub 5.5+: more shared passwords, each putting its users in groups. Same rules as the students'.
        for group_password in getattr(self, "password_groups", None) or {}:
            if len(group_password) < minimum_user:
                raise ConfigError(
                    key("password_groups"),
                    f"a password there must be at least {minimum_user} characters long, got {len(group_password)}",
                )
            if group_password == admin_password:
                raise ConfigError(key("password_groups"), "a password there must differ from the admin password")
        if self.allow_all:
            raise ConfigError(
                key("allow_all"),
                "would let anyone who knows the shared password create any number of accounts; "
                "list the class in allowed_users",
            )
        if not self.allowed_users:
            raise ConfigError(key("allowed_users"), "must list the users of the class (nobody could log in otherwise)")
        if self.admin_users and admin_password is None:
            raise ConfigError(
                admin_source,
                "admin_users are listed but no admin password is set (they could not log in): set "
                f"admin_password_file or the {self.admin_password_env or 'admin_password_env'} environment variable",
            )
        if admin_password is not None and not self.admin_users:
            raise ConfigError(key("admin_users"), "an admin password is set but no admin_users are listed")
        # The parent class validates again (length, difference) when the traits are set.
        self.user_password = user_password
        self.admin_password = admin_password

    async def authenticate(self, handler, data):
        # JupyterHub 5.x compares the name *before* normalising it, so "ALICE" (admin "alice") could log in
        # as alice with the students' password (fixed in JupyterHub 6). Normalise first, on every version.
        data = dict(data or {})
        data["username"] = self.normalize_username(data.get("username") or "")
        if not data["username"] or not isinstance(data.get("password"), str):
            return None
        return await super().authenticate(handler, data)
