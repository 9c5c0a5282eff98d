"""Nothing ignored in silence: the configuration sections this package reads, checked key by key.

traitlets logs one warning line for a key no class has (``catalog_flie``) and says nothing at all about a section
no class has (``ProfileKubeSpawner``): the hub then starts without the setting, which for the catalog means with
no profile form. Here every key under one of our classes' sections must be one of its settings, and a section named
almost like one of ours is taken for a typo; both with did-you-mean, all of them at once.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from traitlets.config import Config, Configurable

from .errors import ConfigError

CUTOFF = 0.8


def our_classes() -> list[type[Configurable]]:
    """Every configurable class of this package whose section an operator writes."""
    from .auth.cognito import CognitoAuthenticator
    from .auth.keycloak import KeycloakAuthenticator
    from .auth.shared import ClassroomSharedPasswordAuthenticator
    from .local import LocalProfilesSpawner
    from .spawner import ProfilesKubeSpawner

    return [ProfilesKubeSpawner, LocalProfilesSpawner, CognitoAuthenticator, KeycloakAuthenticator,
            ClassroomSharedPasswordAuthenticator]


def _sections_of_ours(classes: Iterable[type[Configurable]]) -> dict[str, set[str]]:
    """Section name -> the settings that section may hold: our configurable classes (and their configurable
    bases of ours, such as ``OIDCAuthenticator``, whose section applies to every class built on them)."""
    out: dict[str, set[str]] = {}
    for cls in classes:
        for klass in _ours(cls):
            if issubclass(klass, Configurable):
                # a key under a base's section reaches only the traits the classes built on it have
                out.setdefault(klass.__name__, set()).update(cls.class_trait_names(config=True))
    return out


def _mixins_of_ours(classes: Iterable[type[Configurable]]) -> dict[str, list[str]]:
    """Our mixins (``CatalogMixin``...): not configurable, so traitlets reads no section of theirs, while
    docs/settings.md names them as where a setting comes from. -> the classes whose section to write instead."""
    out: dict[str, list[str]] = {}
    for cls in classes:
        for klass in _ours(cls):
            if not issubclass(klass, Configurable):
                out.setdefault(klass.__name__, []).append(cls.__name__)
    return out


def _ours(cls: type) -> list[type]:
    return [k for k in cls.mro() if k.__module__.split(".")[0] == __package__]  # the rest check their own


def _every_class_name() -> set[str]:
    names: set[str] = set()
    todo = [Configurable]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def unknown_settings(c: Config, classes: Iterable[type[Configurable]] | None = None) -> list[ConfigError]:
    """Every key under one of our sections that is no setting of it, and every section named like one of ours
    that no class has: one error each, naming the key as written, in the order written."""
    classes = our_classes() if classes is None else list(classes)
    ours, mixins = _sections_of_ours(classes), _mixins_of_ours(classes)
    real = None
    problems: list[ConfigError] = []
    for section, values in c.items():
        if not isinstance(values, Config):
            continue
        if section in ours:
            for key in values:
                if key not in ours[section]:
                    problems.append(ConfigError(f"{section}.{key}", _unknown_setting(key, ours[section])))
            continue
        if section in mixins:
            problems.append(ConfigError(section, f"{section} is not a configuration section, its settings are ignored "
                                                 f"as written: write them under {' or '.join(mixins[section])}"))
            continue
        close = difflib.get_close_matches(section, list(ours), n=1, cutoff=CUTOFF)
        if close:
            real = _every_class_name() if real is None else real
            if section not in real:
                problems.append(ConfigError(section, f"no configurable class is called {section!r}: did you mean "
                                                     f"{close[0]!r}? (its settings are ignored as written)"))
    return problems


def _unknown_setting(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=CUTOFF)
    if close:
        return f"unknown setting {key!r}: did you mean {close[0]!r}?"
    return f"unknown setting {key!r}: docs/settings.md lists them"


class ConfigErrors(ConfigError):
    """Several problems at once, one line each."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__(errors[0].path, errors[0].message)

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]
