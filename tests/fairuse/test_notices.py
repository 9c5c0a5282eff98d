"""The notices a user reads on the hub's pages, composed with the operator's own announcements."""

from __future__ import annotations

from types import SimpleNamespace

from traitlets.config import Config

from jupyterhub_ext.fairuse.notices import Notices, announcement, wire

ALICE = SimpleNamespace(name="alice")


def test_the_operators_announcement_comes_first_and_ours_are_escaped():
    notices = Notices()
    render = announcement("<b>Exam on Friday.</b>", notices)
    assert render(ALICE) == "<b>Exam on Friday.</b>"  # HTML, as JupyterHub takes it from the operator
    notices.tell("alice", "", "Your server <script>x</script> will be stopped")
    notices.tell("alice", "big", "Your server 'big' will be stopped")
    assert render(ALICE) == ("<b>Exam on Friday.</b><br>Your server &lt;script&gt;x&lt;/script&gt; will be stopped"
                             "<br>Your server &#x27;big&#x27; will be stopped")
    assert render(SimpleNamespace(name="bob")) == "<b>Exam on Friday.</b>"
    assert render(None) == "<b>Exam on Friday.</b>"  # the login page has no user
    notices.clear("alice", "")
    notices.clear("alice", "big")
    assert render(ALICE) == "<b>Exam on Friday.</b>" and notices.of("alice") == []


def test_an_operators_callable_is_called_with_the_user():
    notices = Notices()
    notices.tell("alice", "", "stopped soon")
    render = announcement(lambda user: f"Hello {user.name}" if user else None, notices)
    assert render(ALICE) == "Hello alice<br>stopped soon"
    assert announcement(None, notices)(ALICE) == "stopped soon"


def test_wire_keeps_every_template_variable_the_operator_set():
    c = Config()
    c.JupyterHub.template_vars = {"announcement_home": "Home news", "org": "Uni"}
    wire(c)
    tv = c.JupyterHub.template_vars
    assert tv["org"] == "Uni"
    assert callable(tv["announcement"]) and tv["announcement"](ALICE) == ""
    assert tv["announcement_home"](ALICE) == "Home news"  # the home page's own, with our notices after it
    assert "announcement_spawn" not in tv  # the general one shows there
    c = Config()
    wire(c)
    assert set(c.JupyterHub.template_vars) == {"announcement"}
