"""The profile form of a catalog: KubeSpawner's own template, compiled once and rendered once per kind of user."""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from typing import Any, Callable, Hashable

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, Template

from .catalog import kubespawner as ks


@functools.lru_cache(maxsize=8)
def form_environment(template_paths: tuple[str, ...]) -> Environment:
    """KubeSpawner's form environment (its loaders and json policy), made once instead of at every render.

    KubeSpawner builds a new Environment, and so compiles ``form.html`` again, for each form it renders: with a
    per-user (callable) profile_list that was ~60% of the form's time (benchmarks/form.py). Jinja's own cache
    keeps the compiled template and still reloads a changed template file (``auto_reload``)."""
    env = Environment(loader=ChoiceLoader([FileSystemLoader(list(template_paths)),
                                           PackageLoader("kubespawner", "templates")]))
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # as KubeSpawner: keep the catalog's order
    return env


@functools.lru_cache(maxsize=8)
def _string_template(template_paths: tuple[str, ...], source: str) -> Template:
    return form_environment(template_paths).from_string(source)


def form_template(template_paths: tuple[str, ...], source: str) -> Template:
    """KubeSpawner's ``profile_form_template`` when set (``source``), else its ``form.html``."""
    if source != "":
        return _string_template(template_paths, source)
    return form_environment(template_paths).get_template("form.html")  # a new object if the file changed


class RenderedForms:
    """Forms by (view key, template, last options), least recently used out first.

    Views are shared by every user of a kind (profiles.view_key: the groups and users the catalog's rules
    name), so a class of 300 students in a few groups shares a few forms. Keys hold the objects themselves
    (the catalog, the template), never their ids, so an entry can never answer for another object.
    """

    def __init__(self, size: int = 128):
        self.size = size
        self._forms: OrderedDict[tuple, str] = OrderedDict()

    def get(self, key: tuple[Hashable, ...], render: Callable[[], str]) -> str:
        html = self._forms.get(key)
        if html is not None:
            self._forms.move_to_end(key)
            return html
        html = self._forms[key] = render()
        while len(self._forms) > self.size:
            self._forms.popitem(last=False)
        return html

    def clear(self) -> None:
        self._forms.clear()


RENDERED = RenderedForms()


def render_catalog_form(spawner: Any, template: Template) -> str:
    """The form for ``spawner``'s user: their view of the catalog, their last options pre-selected."""
    view = spawner.user_view()
    user_options = spawner.user_options or {}
    options_key = json.dumps(user_options, sort_keys=True, default=str) if user_options else ""

    def render() -> str:
        # ks.profile_list() is already what KubeSpawner's _get_initialized_profile_list makes of it (slugs,
        # one default each, unlisted_choice filled; tests/spawner/test_form.py), and fresh: no deep copy
        profile_list = ks.profile_list(view)
        options = user_options
        if options:
            # as KubeSpawner >= 7.1: the last options are pre-selected only while they are still valid
            try:
                spawner._validate_user_options(profile_list)
            except ValueError:
                options = {}
        return template.render(profile_list=profile_list, user_options=options)

    return RENDERED.get((spawner.user_view_key(), template, options_key), render)


def clear_caches() -> None:
    RENDERED.clear()
    form_environment.cache_clear()
    _string_template.cache_clear()
