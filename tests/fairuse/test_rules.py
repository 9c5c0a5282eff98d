"""The limits as written, checked; the caps' rules (who is charged, what is refused and how it is said); the places
kept as servers start and stop."""

from __future__ import annotations

import datetime

import pytest

from jupyterhub_ext.catalog.access import Who
from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.fairuse.budgets import charged_to, period_end, period_start
from jupyterhub_ext.fairuse.budgets import refusal as budget_refusal
from jupyterhub_ext.fairuse.model import parse_limits
from jupyterhub_ext.fairuse.places import Places
from jupyterhub_ext.fairuse.rules import OTHERS, Charge, Refusal, charge_anyway, refusal_text

KEY = "ProfilesKubeSpawner.limits"
SLUGS = ["cpu", "gpu", "gpu-timeslice", "gpu-mig", "trainium"]
LABELS = {"gpu": "GPU (A10G)", "cpu": "CPU", "trainium": "Trainium"}
LIMITS = {
    "pools": {"a10g": ["gpu", "gpu-timeslice"]},
    "caps": [
        {"pool": "a10g", "total": 8, "per_user": 1, "groups": {"students": 4, "staff": 8}},
        {"profile": "trainium", "total": 2},
        {"profile": "gpu-mig", "groups": {"research": 3}, "others": 0},
    ],
}


def limits(raw=LIMITS):
    return parse_limits(raw, KEY, SLUGS)


def student(name="s1", *groups):
    return Who(name, frozenset(groups or ("students",)))


def error(raw) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        parse_limits(raw, KEY, SLUGS)
    return e.value


def test_parsed_with_pools_and_defaults():
    lim = limits()
    assert lim.pools == {"a10g": frozenset({"gpu", "gpu-timeslice"})}
    [a10g] = lim.caps_on("gpu-timeslice")
    assert (a10g.name, a10g.total, a10g.per_user, dict(a10g.groups)) == ("a10g", 8, 1, {"students": 4, "staff": 8})
    assert lim.admins_exempt and lim.caps_on("cpu") == ()
    assert parse_limits(None, KEY, SLUGS).empty and parse_limits({}, KEY, SLUGS).empty


@pytest.mark.parametrize("raw, path, words", [
    ({"caps": [{"profile": "gpu", "total": 0}]}, "caps[0].total", "positive whole number"),
    ({"caps": [{"profile": "gpu", "total": -1}]}, "caps[0].total", "positive whole number"),
    ({"caps": [{"profile": "gpu", "per_user": True}]}, "caps[0].per_user", "positive whole number"),
    ({"caps": [{"profile": "gpux", "total": 1}]}, "caps[0].profile", "did you mean 'gpu'"),
    ({"caps": [{"pool": "a100", "total": 1}]}, "caps[0].pool", "no pool 'a100'"),
    ({"caps": [{"profile": "gpu", "pool": "a10g", "total": 1}], "pools": {"a10g": ["gpu"]}}, "caps[0]",
     "exactly one of pool or profile"),
    ({"caps": [{"profile": "gpu", "totl": 1}]}, "caps[0].totl", "did you mean 'total'"),
    ({"cap": []}, "cap", "did you mean 'caps'"),
    ({"caps": [{"profile": "gpu"}]}, "caps[0]", "limits nothing"),
    ({"caps": [{"profile": "gpu", "total": 2, "groups": {"students": 3}}]}, "caps[0].groups.students",
     "could never be met"),
    ({"caps": [{"profile": "gpu", "total": 2, "per_user": 3}]}, "caps[0].per_user", "more than the total"),
    ({"caps": [{"profile": "gpu", "total": 2}, {"profile": "gpu", "per_user": 1}]}, "caps[1]", "capped twice"),
    ({"pools": {"gpu": ["cpu"]}}, "pools.gpu", "also a profile"),
    ({"pools": {"p": ["nope"]}}, "pools.p[0]", "no profile 'nope'"),
    ({"caps": [{"profile": "gpu", "others": 1}]}, "caps[0].others", "list groups"),
    ({"admins_exempt": "no"}, "admins_exempt", "true or false"),
])
def test_bad_limits_name_the_key(raw, path, words):
    e = error(raw)
    assert e.path == f"{KEY}.{path}" and words in e.message, (e.path, e.message)


def test_total_per_user_and_group_caps():
    places = Places(limits())
    taken = [places.take((f"u{i}", ""), student(f"u{i}"), "gpu", LABELS) for i in range(5)]
    assert all(not isinstance(t, Refusal) for t in taken[:4])
    assert isinstance(taken[4], Refusal)
    assert taken[4].text == "The 4 servers of the a10g servers for your group students are all in use (4 of 4)."
    # staff have their own share of the same pool, up to the total
    for i in range(4):
        assert not isinstance(places.take((f"t{i}", ""), student(f"t{i}", "staff"), "gpu-timeslice"), Refusal)
    total = places.take(("t9", ""), student("t9", "staff"), "gpu")
    assert isinstance(total, Refusal) and "All 8 servers of the a10g servers are in use right now (8 of 8)" \
        in total.text
    # one per user: a second (named) server of the pool is refused
    places.give_back(("u0", ""))
    again = places.take(("u1", "second"), student("u1"), "gpu")
    assert isinstance(again, Refusal) and "You already have 1 server" in again.text and "1 per person" in again.text


def test_a_user_in_two_groups_is_charged_to_the_first_with_room():
    places = Places(limits())
    for i in range(4):
        places.take((f"u{i}", ""), student(f"u{i}"), "gpu")
    both = Who("both", frozenset({"students", "staff"}))
    [charge] = places.take(("both", ""), both, "gpu")
    assert charge == Charge("a10g", "both", "staff")
    assert places.counts.group[("a10g", "staff")] == 1 and places.counts.group[("a10g", "students")] == 4


def test_giving_back_frees_exactly_what_was_taken_even_after_group_changes():
    places = Places(limits())
    places.take(("u", ""), student("u"), "gpu")
    assert places.give_back(("u", "")) and not places.give_back(("u", ""))  # twice is harmless
    assert sum(places.counts.total.values()) == 0 and sum(places.counts.group.values()) == 0
    assert sum(places.counts.user.values()) == 0


def test_others_zero_reserves_a_profile_for_the_listed_groups():
    places = Places(limits())
    refused = places.take(("x", ""), Who("x", frozenset({"students"})), "gpu-mig")
    assert isinstance(refused, Refusal) and refused.text == "The gpu-mig servers are only for members of research."
    assert not isinstance(places.take(("r", ""), Who("r", frozenset({"research"})), "gpu-mig"), Refusal)


def test_admins_are_exempt_unless_configured_otherwise():
    admin = Who("root", frozenset(), admin=True)
    places = Places(limits({"caps": [{"profile": "trainium", "total": 1}]}))
    places.take(("a", ""), student("a"), "trainium")
    assert places.take(("root", ""), admin, "trainium") == ()
    strict = Places(limits({"admins_exempt": False, "caps": [{"profile": "trainium", "total": 1}]}))
    strict.take(("a", ""), student("a"), "trainium")
    assert isinstance(strict.take(("root", ""), admin, "trainium"), Refusal)


def test_exactly_the_cap_is_admitted_from_a_burst():
    places = Places(limits({"caps": [{"profile": "trainium", "total": 4}]}))
    results = [places.take((f"u{i}", ""), student(f"u{i}"), "trainium") for i in range(300)]
    assert sum(not isinstance(r, Refusal) for r in results) == 4
    assert places.in_use("trainium") == 4


def test_adopted_servers_count_with_their_own_charges_and_removed_caps_do_not():
    places = Places(limits())
    n = places.adopt([(("old", ""), "gpu", (Charge("a10g", "old", "students"), Charge("gone-cap", "old", None))),
                      (("t", ""), "trainium", charge_anyway(limits(), student("t"), "trainium"))])
    assert n == 2 and places.in_use("a10g") == 1 and places.in_use("trainium") == 1
    assert "gone-cap" not in places.counts.total
    assert places.adopt([(("old", ""), "gpu", ())]) == 0  # known servers are left as they are
    assert charge_anyway(limits(), Who("x", frozenset()), "gpu-mig") == (Charge("gpu-mig", "x", OTHERS),)


def test_the_refusal_says_when_a_place_frees_and_what_else_to_start():
    text = refusal_text(Refusal("All 2 servers of the Trainium servers are in use right now (2 of 2)."),
                        ["CPU", "Elyra"])
    assert text == ("All 2 servers of the Trainium servers are in use right now (2 of 2). A place frees when someone "
                    "stops their server. You may start instead: CPU, Elyra.")


# -- hour budgets ------------------------------------------------------------------------------------------

BUDGETS = {"pools": {"a10g": ["gpu", "gpu-timeslice"]},
           "budgets": [{"pool": "a10g", "hours": 20, "groups": ["students"], "minimum_hours": 1},
                       {"profile": "trainium", "hours": 100, "period": "month", "per": "group",
                        "groups": ["research"]}]}


def test_budgets_parsed_and_who_they_charge():
    lim = limits(BUDGETS)
    [week] = lim.budgets_on("gpu")
    assert (week.hours, week.period, week.per, week.minimum_hours) == (20.0, "week", "user", 1.0)
    assert charged_to(week, student("s1")) == "s1" and charged_to(week, Who("x", frozenset({"staff"}))) is None
    [month] = lim.budgets_on("trainium")
    assert charged_to(month, Who("r", frozenset({"research", "x"}))) == "research"
    assert not lim.empty and limits({"budgets": BUDGETS["budgets"], "pools": BUDGETS["pools"]}).caps == ()


@pytest.mark.parametrize("raw, path, words", [
    ({"budgets": [{"profile": "gpu"}]}, "budgets[0].hours", "needs its hours"),
    ({"budgets": [{"profile": "gpu", "hours": 0}]}, "budgets[0].hours", "positive number of hours"),
    ({"budgets": [{"profile": "gpu", "hours": -5}]}, "budgets[0].hours", "positive number of hours"),
    ({"budgets": [{"profile": "gpu", "hours": 5, "period": "day"}]}, "budgets[0].period", "week, month"),
    ({"budgets": [{"profile": "gpu", "hours": 5, "per": "group"}]}, "budgets[0].groups", "needs the groups"),
    ({"budgets": [{"profile": "gpu", "hours": 5, "minimum_hours": 6}]}, "budgets[0].minimum_hours",
     "no start could ever be made"),
    ({"budgets": [{"profile": "gpu", "hours": 5, "hour": 1}]}, "budgets[0].hour", "did you mean 'hours'"),
    ({"budgets": [{"pool": "nope", "hours": 5}]}, "budgets[0].pool", "no pool 'nope'"),
])
def test_bad_budgets_name_the_key(raw, path, words):
    e = error(raw)
    assert e.path == f"{KEY}.{path}" and words in e.message, (e.path, e.message)


def test_periods_are_utc_weeks_from_monday_and_calendar_months():
    now = datetime.datetime(2026, 12, 9, 15, 30)  # a Wednesday
    assert period_start("week", now) == datetime.datetime(2026, 12, 7)
    assert period_end("week", now) == datetime.datetime(2026, 12, 14)
    assert period_start("month", now) == datetime.datetime(2026, 12, 1)
    assert period_end("month", now) == datetime.datetime(2027, 1, 1)


def test_a_start_the_budget_cannot_cover_is_refused_with_the_figures():
    [week] = limits(BUDGETS).budgets_on("gpu")
    now = datetime.datetime(2026, 12, 9, 15, 30)
    assert budget_refusal(week, student("s1"), 18.9, now, "the a10g servers") is None
    assert budget_refusal(week, student("s1"), 19.0, now, "the a10g servers") is None  # exactly the minimum left
    refused = budget_refusal(week, student("s1"), 19.5, now, "the a10g servers")
    assert refused.text == ("You have used 19.5 of your 20 hours of the a10g servers this week; a start needs at "
                            "least 1 hour left. The budget starts again on Monday 14 December 2026, 00:00 UTC.")
    over = budget_refusal(week, student("s1"), 23.0, now, "the a10g servers")
    assert "used 20 of your 20 hours" in over.text  # never more than the budget, even after a grace period
    [month] = limits(BUDGETS).budgets_on("trainium")
    group = budget_refusal(month, Who("r", frozenset({"research"})), 100, now, "the Trainium servers")
    assert group.text.startswith("Your group research has used 100 of its 100 hours of the Trainium servers this "
                                 "month.") and "Friday 1 January 2027" in group.text
