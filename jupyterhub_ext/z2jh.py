"""What the z2jh chart's ``hub.extraConfig`` imports: one call that wires our classes into ``c``.

    hub:
      extraConfig:
        zz-jupyterhub-ext: |
          import jupyterhub_ext.z2jh
          jupyterhub_ext.z2jh.setup(c)

The chart runs ``hub.extraConfig`` entries in key order, after ``hub.config``; naming the entry ``zz-...``
makes it run last, so it validates the final configuration. A mistake stops the hub at start-up with one
line naming the key (``ProfilesKubeSpawner.profiles[3].hardware.gpus: expected a positive integer, got 0``)
instead of failing at the first spawn.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import contextmanager
from typing import Iterator

from traitlets import TraitError
from traitlets.config import Config

from .culling.service import wire_culling
from .errors import CONFIG_ERROR_PREFIX, ConfigError
from .fairuse.notices import wire as wire_notices
from .sections import ConfigErrors, unknown_settings


def _run(check) -> None:
    """KubeSpawner needs a running event loop to build its API client; the hub has one while it loads config."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async def in_loop() -> None:
            check()

        asyncio.run(in_loop())
    else:
        check()


def _upstream_shared_password(value) -> bool:
    """Whether ``JupyterHub.authenticator_class`` is JupyterHub's own SharedPasswordAuthenticator, however it is
    named: its entry point (``shared-password``, the name JupyterHub documents), its module path
    (``jupyterhub.authenticators.shared.SharedPasswordAuthenticator``) or the class itself. Every spelling gets
    the same checks: a safe default must not depend on how the class was written down."""
    from jupyterhub.app import JupyterHub
    from jupyterhub.authenticators.shared import SharedPasswordAuthenticator

    if isinstance(value, str):
        try:  # JupyterHub's own resolution: entry point names (case-insensitively), then dotted paths
            value = JupyterHub.class_traits()["authenticator_class"].validate(None, value)
        except Exception:  # noqa: BLE001 - a broken or missing class is JupyterHub's to report, with its own message
            return False
    return value is SharedPasswordAuthenticator


def wire_authenticator(c: Config) -> None:
    """Give JupyterHub's own shared-password mode our checks: listed users, passwords of 8 / 32 characters
    from a secret, nothing logged, no start without a password. ClassroomSharedPasswordAuthenticator is a
    subclass, so every ``c.SharedPasswordAuthenticator.*`` setting still applies."""
    if _upstream_shared_password(c.JupyterHub.get("authenticator_class")):
        from .auth.shared import ClassroomSharedPasswordAuthenticator

        c.JupyterHub.authenticator_class = ClassroomSharedPasswordAuthenticator


def problems(c: Config) -> list[ConfigError]:
    """Every start-up problem of ``c``, each once, in order: unknown settings and sections, each of the spawner's
    start-up checks (catalog, storage, courses, limits), the authenticator's. The hub stops on all of them at
    once; ``jupyterhub-ext check`` prints the same list."""
    found = [*unknown_settings(c), *_spawner_problems(c), *_authenticator_problems(c)]
    out: list[ConfigError] = []
    for error in found:
        if str(error) not in {str(e) for e in out}:  # a broken catalog is met by every check that reads it
            out.append(error)
    return out


def check(c: Config) -> None:
    """Validate the configuration in ``c``; raise ConfigError naming the key (ConfigErrors: several)."""
    found = problems(c)
    if len(found) == 1:
        raise found[0]
    if found:
        raise ConfigErrors(found)


def _spawner_problems(c: Config) -> list[ConfigError]:
    from .profiles import CatalogMixin

    cls = c.JupyterHub.get("spawner_class")
    if not (isinstance(cls, type) and issubclass(cls, CatalogMixin)):
        return []
    out: list[ConfigError] = []

    def inside() -> None:
        try:
            spawner = cls.for_checks(c)
        except ConfigError as e:
            out.append(e)
            return
        except TraitError as e:  # a value traitlets refuses (an Enum's unknown choice, an empty file name)
            out.append(trait_error(c, cls, e))
            return
        for _, one in spawner.startup_checks():
            try:
                one()
            except ConfigError as e:
                out.append(e)

    _run(inside)
    return out


def _authenticator_problems(c: Config) -> list[ConfigError]:
    """Our authenticators' own checks (``validate_config``, what their ``check_allow_config`` runs when JupyterHub
    starts them), run now so their refusals are configuration-error lines like the rest. Their provider's
    endpoints are not asked for here: that is the running hub's business."""
    from jupyterhub.app import JupyterHub

    from .auth import checked_authenticators

    name = c.JupyterHub.get("authenticator_class")
    if name is None:
        return []
    try:
        cls = JupyterHub.class_traits()["authenticator_class"].validate(None, name) if isinstance(name, str) \
            else name
    except Exception:  # noqa: BLE001 - a class that cannot be loaded is JupyterHub's to report, in its words
        return []
    if not (isinstance(cls, type) and issubclass(cls, checked_authenticators())):
        return []
    try:
        authenticator = cls(config=c)
    except TraitError as e:
        return [trait_error(c, cls, e)]
    except ValueError as e:  # refused while it loads its settings (oauthenticator: groups need manage_groups)
        found = _REQUIRES.match(str(e))
        return [ConfigError(found.group(1) if found else cls.__name__, str(e))]
    try:
        authenticator.validate_config()
    except ConfigError as e:
        return [e]
    return []


_TRAIT = re.compile(r"'(\w+)' trait of an? \w+ instance")
_REQUIRES = re.compile(r"(\w+\.\w+) requires ")


def trait_error(c: Config, cls: type, error: TraitError) -> ConfigError:
    """A value traitlets refuses when ``cls`` is built from ``c``, located at the section that set it (the most
    specific of the class's sections holding the key, as traitlets reads them), in traitlets' own words."""
    found = _TRAIT.search(str(error))
    if found:
        for klass in cls.mro():
            section = klass.__name__
            if section in c and found.group(1) in c[section]:
                return ConfigError(f"{section}.{found.group(1)}", str(error))
    return ConfigError(cls.__name__, str(error))


def fail(error: ConfigError) -> "NoReturn":  # noqa: F821
    # SystemExit passes through traitlets' config loader: the hub exits (status 1, the message on stderr)
    # instead of starting half-configured
    lines = error.lines() if isinstance(error, ConfigErrors) else [str(error)]
    raise SystemExit("\n".join(f"{CONFIG_ERROR_PREFIX}{line}" for line in lines))  # a spawner's own line, too


_deferred: list[Config] | None = None


@contextmanager
def deferred_checks() -> Iterator[list[Config]]:
    """While inside, setup(c) wires ``c`` and records it instead of checking it (or stopping the process):
    the operator's command line then reports every problem, with the same checks."""
    global _deferred
    saved, _deferred = _deferred, []
    try:
        yield _deferred
    finally:
        _deferred = saved


def setup(c: Config, *, spawner: str = "kube") -> None:
    """Wire ProfilesKubeSpawner (or the local spawner) into ``c`` and validate the whole configuration.

    ``shared-password`` (JupyterHub's SharedPasswordAuthenticator) becomes ClassroomSharedPasswordAuthenticator,
    whose checks then stop the hub at start-up on a missing or short password or an unlisted class."""
    if spawner == "kube":
        from .spawner import ProfilesKubeSpawner as cls
    elif spawner == "local":
        from .local import LocalProfilesSpawner as cls  # type: ignore[no-redef]
    else:
        raise ValueError(f"spawner must be 'kube' or 'local', not {spawner!r}")
    c.JupyterHub.spawner_class = cls
    wire_authenticator(c)
    wire_notices(c)
    if _deferred is not None:  # `jupyterhub-ext check`: it runs every check itself and reports them all
        _deferred.append(c)
        return
    try:
        check(c)
    except ConfigError as e:
        fail(e)
    _run(lambda: wire_culling(c, cls))  # the chart's culler with our hook for limits.culling, or a warning why not
    _warn_upstream_changes()


def _warn_upstream_changes() -> None:
    """Say at start-up when an installed KubeSpawner, JupyterHub or oauthenticator lacks a private name we use
    (jupyterhub_ext.compat): the hub still starts, and the log says what may behave differently."""
    import logging

    from .compat import problems

    for problem in problems(loaded_only=True):
        logging.getLogger("JupyterHub").warning("jupyterhub_ext: this upstream release differs from the ones it "
                                                "was checked against: %s", problem)
