"""Who may see and start what, and the check of a spawn request against that.

The same per-user view drives the form and the server-side check of a submission (form or REST API), so a
user can never start something the form would not have offered them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .model import Access, Catalog, Choice, FreeText, Option, Profile


@dataclass(frozen=True)
class Who:
    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False


def allowed(access: Access, who: Who, *, admins_see_all: bool = True) -> bool:
    if who.admin and admins_see_all:
        return True
    if access.admin_only:
        return who.admin
    if access.is_open:
        return True
    return who.name in access.users or not access.groups.isdisjoint(who.groups)


@dataclass(frozen=True)
class OptionView:
    option: Option
    choices: tuple[Choice, ...]
    default: Choice | None
    free_text: FreeText | None


@dataclass(frozen=True)
class ProfileView:
    profile: Profile
    options: tuple[OptionView, ...]
    default: bool = False


@dataclass(frozen=True)
class View:
    profiles: tuple[ProfileView, ...]
    by_slug: Mapping[str, ProfileView] = field(default_factory=dict)

    @property
    def default(self) -> ProfileView | None:
        return next((p for p in self.profiles if p.default), None)


def view_for(catalog: Catalog, who: Who, *, admins_see_all: bool = True) -> View:
    """The profiles, options and choices this user may see, with exactly one default of each."""
    profiles = []
    for profile in catalog.profiles:
        if not allowed(profile.access, who, admins_see_all=admins_see_all):
            continue
        options = []
        for option in profile.options:
            choices = tuple(c for c in option.choices if allowed(c.access, who, admins_see_all=admins_see_all))
            free_text = option.free_text
            if free_text is not None and not allowed(free_text.access, who, admins_see_all=admins_see_all):
                free_text = None
            if not choices and free_text is None:
                continue  # nothing left to choose: the profile's own settings apply
            default = next((c for c in choices if c.default), choices[0] if choices else None)
            options.append(OptionView(option, choices, default, free_text))
        profiles.append(ProfileView(profile, tuple(options)))
    if profiles:
        marked = next((i for i, p in enumerate(profiles) if p.profile.default), 0)
        profiles[marked] = ProfileView(profiles[marked].profile, profiles[marked].options, default=True)
    return View(tuple(profiles), {p.profile.slug: p for p in profiles})


# -- checking a request ------------------------------------------------------------------------------

class SelectionError(ValueError):
    """A spawn request that names something this user may not start. The message is for the user."""


@dataclass(frozen=True)
class Selection:
    profile: Profile
    choices: tuple[tuple[Option, Choice], ...] = ()
    free_text: tuple[tuple[Option, str], ...] = ()  # (option, value) entered by the user

    def labels(self) -> dict[str, str]:
        out = {"profile": self.profile.slug}
        out.update({option.slug: choice.slug for option, choice in self.choices})
        out.update({option.slug: "custom" for option, _ in self.free_text})
        return out


UNLISTED = "--unlisted-choice"


def resolve(view: View, user_options: object) -> Selection:
    """Check ``user_options`` (as KubeSpawner's form or a REST client sends them) against the user's view.

    Accepted shapes: ``{}`` (the default profile with its defaults), ``{"profile": slug}``,
    ``{"profile": slug, "<option>": "<choice slug>"}``, ``{"profile": slug, "<option>--unlisted-choice": value}``.
    Anything else is refused with a message that says what is wrong.
    """
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, dict):
        raise SelectionError("Server options must be a JSON object.")
    if not view.profiles:
        raise SelectionError("There is no server profile you may start. Ask your administrator for access.")

    slug = user_options.get("profile")
    if slug in (None, ""):
        pview = view.default
        assert pview is not None
    elif not isinstance(slug, str):
        raise SelectionError(f"The profile must be given by its name (a string), not {type(slug).__name__}.")
    elif slug not in view.by_slug:
        names = ", ".join(p.profile.slug for p in view.profiles)
        raise SelectionError(f"Unknown profile {slug!r}, or not one you may start. Your profiles: {names}.")
    else:
        pview = view.by_slug[slug]

    known = {"profile"}
    choices, free = [], []
    for oview in pview.options:
        key, unlisted_key = oview.option.slug, oview.option.slug + UNLISTED
        known.update((key, unlisted_key))
        value, typed = user_options.get(key), user_options.get(unlisted_key)
        for k, v in ((key, value), (unlisted_key, typed)):
            if v is not None and not isinstance(v, str):
                raise SelectionError(f"{oview.option.display_name}: expected text for {k!r}, "
                                     f"got {type(v).__name__}.")
        if typed:
            if oview.free_text is None:
                raise SelectionError(f"{oview.option.display_name}: a custom value is not allowed here.")
            if not oview.free_text.accepts(typed):
                raise SelectionError(f"{oview.option.display_name}: {typed!r} is not allowed; it must match "
                                     f"{oview.free_text.pattern.pattern!r} in full.")
            free.append((oview.option, typed))
        elif value:
            choice = next((c for c in oview.choices if c.slug == value), None)
            if choice is None:
                names = ", ".join(c.slug for c in oview.choices) or "none"
                raise SelectionError(f"{oview.option.display_name}: unknown choice {value!r}, or not one you "
                                     f"may use. Choices: {names}.")
            choices.append((oview.option, choice))
        elif oview.default is not None:
            choices.append((oview.option, oview.default))

    unknown = sorted(k for k in user_options if k not in known)
    if unknown:
        raise SelectionError(f"Unknown server option(s) for profile {pview.profile.slug!r}: {', '.join(map(str, unknown))}.")
    return Selection(pview.profile, tuple(choices), tuple(free))
