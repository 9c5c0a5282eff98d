"""Errors with the two audiences we have: operators (at hub start-up) and users (on the spawn page)."""

from __future__ import annotations

from tornado import web


class ConfigError(ValueError):
    """A setting is wrong. Raised while the hub starts, so it refuses to start and names the key.

    ``path`` is the exact location, e.g. ``ProfilesKubeSpawner.profiles[3].hardware.gpus``.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def under(self, prefix: str) -> "ConfigError":
        """The same error, located under ``prefix`` (used when a nested parser re-raises)."""
        if not prefix:
            return self
        sep = "" if not self.path or self.path.startswith("[") else "."
        return ConfigError(f"{prefix}{sep}{self.path}", self.message)


CONFIG_ERROR_PREFIX = "jupyterhub_ext: configuration error: "


class ConfigUnusable(web.HTTPError):
    """A ConfigError met while serving a form or a spawn: the hub started without the start-up check
    (``jupyterhub_ext.z2jh.setup(c)``). A 500 whose message is the start-up line, on the spawn page and in
    the REST API's answer, so the operator and the user read the key to fix, not a stack trace."""

    def __init__(self, error: ConfigError):
        line = f"{CONFIG_ERROR_PREFIX}{error}"
        super().__init__(500, "%s", line)
        self.config_error = error
        self.jupyterhub_message = line

    def __str__(self) -> str:
        return self.jupyterhub_message


class SpawnRefused(web.HTTPError):
    """A spawn request we refuse on purpose, with a message meant for the user.

    JupyterHub shows ``jupyterhub_message`` on the spawn form (form submissions) and on the
    spawn-pending page; being an HTTP 400 it also reaches REST API callers as a client error.
    """

    def __init__(self, message: str):
        super().__init__(400, "%s", message)
        self.jupyterhub_message = message
        self.reason = "Bad Request"

    def __str__(self) -> str:
        return self.jupyterhub_message


class ShownError(web.HTTPError):
    """A 500 whose message JupyterHub shows everywhere: in the REST answer (log_message), on the progress stream
    and on a reloaded spawn page, which shows nothing of an error but its ``jupyterhub_message``."""

    def __init__(self, message: str):
        web.HTTPError.__init__(self, 500, "%s", message)
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.jupyterhub_message
