"""What the hub tells a user on its own pages (home, spawn, token...): their server's budget runs out, it was
stopped. Shown through JupyterHub's ``announcement`` template variable, which may be a callable of the user.

In the hub process's memory: a notice is about a server this hub runs now, or one it just stopped; a restarted hub
says it again at its first poll of that server. Our text is escaped (names and labels come from users, groups
and the catalog); the operator's own announcement is passed on as JupyterHub passes it, as HTML.
"""

from __future__ import annotations

import html
from typing import Any, Callable

ANNOUNCEMENTS = ("announcement", "announcement_home", "announcement_spawn")


class Notices:
    def __init__(self) -> None:
        self._by_user: dict[str, dict[str, str]] = {}

    def tell(self, user: str, server: str, text: str) -> None:
        self._by_user.setdefault(user, {})[server] = text

    def clear(self, user: str, server: str) -> None:
        notes = self._by_user.get(user)
        if notes is not None:
            notes.pop(server, None)
            if not notes:
                del self._by_user[user]

    def of(self, user: str) -> list[str]:
        return [text for _, text in sorted(self._by_user.get(user, {}).items())]


NOTICES = Notices()  # the hub process's one set


def announcement(operator: Any, notices: Notices = NOTICES) -> Callable[[Any], str]:
    """A template variable showing the operator's announcement (a string or a callable of the user, as
    JupyterHub takes it) followed by this user's notices."""

    def render(user) -> str:
        theirs = operator(user) if callable(operator) else operator
        ours = notices.of(user.name) if user is not None else []
        parts = [theirs] if theirs else []
        parts += [html.escape(text) for text in ours]
        return "<br>".join(parts)

    return render


def wire(c) -> None:
    """Put the notices into ``c.JupyterHub.template_vars``: ``announcement`` (every page), and the page-specific
    ones the operator set (a page-specific announcement replaces the general one on its page)."""
    template_vars = dict(c.JupyterHub.get("template_vars") or {})
    template_vars["announcement"] = announcement(template_vars.get("announcement"))
    for name in ANNOUNCEMENTS[1:]:
        if name in template_vars:
            template_vars[name] = announcement(template_vars[name])
    c.JupyterHub.template_vars = template_vars
