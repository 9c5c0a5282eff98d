"""The spawn form of the local spawner: KubeSpawner's own form for the profiles this machine can run, then the
ones it cannot, greyed out with the reason.

The first part is KubeSpawner's ``form.html`` rendered exactly as KubeSpawner renders it, from the same
per-user ``profile_list`` data (``catalog.kubespawner.profile_list``), so the local form and the cluster form
look and submit alike. Unavailable profiles get a disabled radio button outside that list: a browser never
submits a disabled input, and the server refuses them anyway.
"""

from __future__ import annotations

import copy

from jinja2 import Environment, PackageLoader, select_autoescape

_UNAVAILABLE = """\
<style>
  .jhe-note { margin: 0 0 12px; color: #555; }
  .jhe-unavailable-title { margin: 20px 0 6px; font-size: 1.1em; }
  .jhe-unavailable .profile { opacity: .55; cursor: not-allowed; display: flex; gap: 12px; padding: 8px 0; }
  .jhe-unavailable .profile h3 { margin-top: 0; }
  .jhe-unavailable .jhe-reason { color: #8a4b00; font-weight: 600; }
</style>
{%- if unavailable %}
<div class="form-group jhe-unavailable" id="jupyterhub-ext-unavailable-profiles">
  <h2 class="jhe-unavailable-title">Not available on this machine</h2>
  {%- for profile, reason in unavailable %}
  <div class="profile jhe-unavailable-profile" data-profile="{{ profile.slug }}" title="{{ reason }}">
    <div class="radio">
      <input type="radio" id="profile-item-{{ profile.slug }}" value="{{ profile.slug }}" disabled
             aria-describedby="profile-reason-{{ profile.slug }}" />
    </div>
    <div>
      <h3>{{ profile.display_name }}</h3>
      {%- if profile.description %}<p>{{ profile.description }}</p>{%- endif %}
      <p class="jhe-reason" id="profile-reason-{{ profile.slug }}">Unavailable: {{ reason }}.</p>
    </div>
  </div>
  {%- endfor %}
</div>
{%- endif %}
"""

_NOTE = """<p class="jhe-note" id="jupyterhub-ext-local-note">{{ note }}</p>"""


def _kubespawner_environment() -> Environment:
    # As KubeSpawner builds it (_render_options_form): its package templates, key order kept in |tojson.
    env = Environment(loader=PackageLoader("kubespawner", "templates"))
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return env


_ours = Environment(autoescape=select_autoescape(default_for_string=True, default=True))


def render_form(available: list[dict], unavailable: list[tuple[dict, str]], *, user_options: dict | None = None,
                note: str = "") -> str:
    """HTML of the form: ``available`` is a KubeSpawner ``profile_list``; ``unavailable`` (profile entry, reason)."""
    parts = []
    if note:
        parts.append(_ours.from_string(_NOTE).render(note=note))
    if available:
        profiles = copy.deepcopy(available)
        if not any(p.get("default") for p in profiles):
            profiles[0]["default"] = True
        template = _kubespawner_environment().get_template("form.html")
        parts.append(template.render(profile_list=profiles, user_options=user_options or {}))
    parts.append(_ours.from_string(_UNAVAILABLE).render(unavailable=unavailable))
    return "\n".join(parts)
