"""Who sees what, one default per view, and the check of every spawn request against the user's view."""

import pytest
from hypothesis import given, settings, strategies as st

from jupyterhub_ext.catalog import SelectionError, Who, parse_catalog, resolve, view_for

CATALOG = parse_catalog([
    {"slug": "cpu", "display_name": "CPU", "image": "img/cpu:1", "hardware": {"kind": "cpu"},
     "options": [
         {"slug": "image", "display_name": "Image", "choices": [
             {"slug": "a", "display_name": "A", "image": "img/a:1"},
             {"slug": "beta", "display_name": "Beta", "image": "img/beta:1", "default": True,
              "access": {"groups": ["testers"]}},
         ], "free_text": {"pattern": r"img/[a-z]+:[0-9]+", "access": {"groups": ["power"]}}},
         {"slug": "size", "display_name": "Size", "choices": [
             {"slug": "s", "display_name": "S"}, {"slug": "l", "display_name": "L", "access": {"users": ["bob"]}}]},
     ]},
    {"slug": "gpu", "display_name": "GPU", "default": True, "hardware": {"kind": "gpu"},
     "access": {"groups": ["gpu-users"]}},
    {"slug": "admin", "display_name": "Admin only", "hardware": {"kind": "cpu"}, "access": {"admin_only": True}},
    {"slug": "named", "display_name": "Named", "hardware": {"kind": "cpu"}, "access": {"users": ["carol"]}},
])

ALICE = Who("alice")
BOB = Who("bob", frozenset({"gpu-users", "testers"}))
ADMIN = Who("root", admin=True)


def slugs(view):
    return [p.profile.slug for p in view.profiles]


def test_visibility_by_group_user_and_admin():
    assert slugs(view_for(CATALOG, ALICE)) == ["cpu"]
    assert slugs(view_for(CATALOG, BOB)) == ["cpu", "gpu"]
    assert slugs(view_for(CATALOG, Who("carol"))) == ["cpu", "named"]
    assert slugs(view_for(CATALOG, ADMIN)) == ["cpu", "gpu", "admin", "named"]
    assert slugs(view_for(CATALOG, ADMIN, admins_see_all=False)) == ["cpu", "admin"]


def test_exactly_one_default_per_view():
    # gpu is marked default; alice can't see it, so her first profile becomes the default
    for who, expected in ((ALICE, "cpu"), (BOB, "gpu"), (ADMIN, "gpu")):
        view = view_for(CATALOG, who)
        assert [p.profile.slug for p in view.profiles if p.default] == [expected]


def test_choice_default_falls_back_when_hidden():
    image = view_for(CATALOG, ALICE).by_slug["cpu"].options[0]
    assert [c.slug for c in image.choices] == ["a"] and image.default.slug == "a" and image.free_text is None
    image = view_for(CATALOG, BOB).by_slug["cpu"].options[0]
    assert image.default.slug == "beta"


def test_resolve_defaults_and_choices():
    sel = resolve(view_for(CATALOG, ALICE), {})
    assert sel.profile.slug == "cpu" and sel.labels() == {"profile": "cpu", "image": "a", "size": "s"}
    sel = resolve(view_for(CATALOG, BOB), {"profile": "cpu", "size": "l"})
    assert sel.labels() == {"profile": "cpu", "image": "beta", "size": "l"}


@pytest.mark.parametrize("who,options,message", [
    (ALICE, {"profile": "gpu"}, "Unknown profile 'gpu', or not one you may start"),
    (ALICE, {"profile": "nope"}, "Unknown profile 'nope'"),
    (ALICE, {"profile": "cpu", "image": "beta"}, "unknown choice 'beta'"),
    (ALICE, {"profile": "cpu", "size": "l"}, "unknown choice 'l'"),
    (ALICE, {"profile": "cpu", "image--unlisted-choice": "img/x:1"}, "a custom value is not allowed"),
    (Who("p", frozenset({"power"})), {"profile": "cpu", "image--unlisted-choice": "img/x:1@evil"}, "must match"),
    (Who("p", frozenset({"power"})), {"profile": "cpu", "image--unlisted-choice": "img/x:1\n"}, "must match"),
    (ALICE, {"profile": ["cpu"]}, "must be given by its name"),
    (ALICE, {"profile": "cpu", "size": 3}, "expected text"),
    (ALICE, {"profile": "cpu", "mem_limit": "100G"}, "Unknown server option(s)"),
    (ALICE, {"cpu": "a"}, "Unknown server option(s)"),
    (ALICE, ["cpu"], "must be a JSON object"),
])
def test_resolve_refuses(who, options, message):
    with pytest.raises(SelectionError) as info:
        resolve(view_for(CATALOG, who), options)
    assert message in str(info.value)


def test_free_text_accepted_for_allowed_group():
    sel = resolve(view_for(CATALOG, Who("p", frozenset({"power"}))), {"profile": "cpu",
                                                                       "image--unlisted-choice": "img/x:1"})
    assert [(o.slug, v) for o, v in sel.free_text] == [("image", "img/x:1")]
    assert sel.labels()["image"] == "custom"


def test_no_profiles_at_all_is_a_clear_refusal():
    empty = parse_catalog([{"slug": "x", "display_name": "X", "hardware": {"kind": "cpu"},
                            "access": {"groups": ["g"]}}])
    with pytest.raises(SelectionError, match="no server profile you may start"):
        resolve(view_for(empty, ALICE), {})


# -- property: a request is accepted exactly when it names things in that user's view -----------------

WHOS = st.builds(Who, st.sampled_from(["alice", "bob", "carol", "p"]),
                 st.frozensets(st.sampled_from(["gpu-users", "testers", "power", "other"])), st.booleans())
VALUES = st.one_of(st.sampled_from(["cpu", "gpu", "admin", "named", "a", "beta", "s", "l", "img/x:1", "", "x"]),
                   st.text(max_size=8), st.integers(), st.none(), st.lists(st.text(max_size=2), max_size=2))
KEYS = st.sampled_from(["profile", "image", "size", "image--unlisted-choice", "size--unlisted-choice", "other"])


def oracle(view, options):
    """An independent statement of what may be started: returns the expected labels or None."""
    if options is None:  # JupyterHub's "no options": the defaults
        options = {}
    if not isinstance(options, dict):
        return None
    slug = options.get("profile")
    if slug in (None, ""):
        pv = view.default
    elif isinstance(slug, str) and slug in view.by_slug:
        pv = view.by_slug[slug]
    else:
        return None
    labels = {"profile": pv.profile.slug}
    allowed_keys = {"profile"}
    for ov in pv.options:
        k = ov.option.slug
        allowed_keys |= {k, k + "--unlisted-choice"}
        v, typed = options.get(k), options.get(k + "--unlisted-choice")
        if any(x is not None and not isinstance(x, str) for x in (v, typed)):
            return None
        if typed:
            if ov.free_text is None or not ov.free_text.pattern.fullmatch(typed):
                return None
            labels[k] = "custom"
        elif v:
            if v not in {c.slug for c in ov.choices}:
                return None
            labels[k] = v
        elif ov.default is not None:
            labels[k] = ov.default.slug
    if set(options) - allowed_keys:
        return None
    return labels


@settings(max_examples=500, deadline=None)
@given(who=WHOS, options=st.one_of(st.dictionaries(KEYS, VALUES, max_size=4), VALUES))
def test_resolve_accepts_exactly_what_the_view_offers(who, options):
    view = view_for(CATALOG, who)
    expected = oracle(view, options)
    try:
        sel = resolve(view, options)
    except SelectionError:
        assert expected is None
    else:
        assert sel.labels() == expected
        assert sel.profile.slug in view.by_slug
