"""Routing and escalation, pure: the demo district's rota (nurse 1 by day, nurse 2 by night, the clinic
head at level 1, the bureau's duty officers at level 2, one on weekdays and one at weekends) and an
injected time. Level 0 at once, level 1 at 30 min, level 2 at 90 min, reminders every 60 min, stop on
acknowledgement, resolves announced to whoever was told."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine

from alerting.notify.planner import AlertView, Ledger, Notice, Purpose, next_due, plan
from alerting.notify.routing import Routing, Shift, build_routing, e164, routing_from_sql
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry

# Thursday 2026-11-26, 03:00 in the clinics (UTC+8): the night shift
NIGHT = datetime(2026, 11, 25, 19, 0, tzinfo=UTC).timestamp()
DAY = NIGHT + 7 * 3600  # 10:00 clinic time
SATURDAY_NIGHT = NIGHT + 2 * 86400
MIN = 60.0


@pytest.fixture(scope="module")
def routing() -> Routing:
    engine = create_engine("sqlite://")
    store_registry(engine, load_registry_file(DEMO_REGISTRY))
    return routing_from_sql(engine)


def heat(severity: str = "critical", state: str = "firing", **kw: str) -> AlertView:
    return AlertView("A-1", "qingshui-thc", "heat", "qingshui-fridge1", severity, state, **kw)


class Run:
    """Plans one alert over time, keeping its ledger, as the dispatcher does."""

    def __init__(self, routing: Routing, alert: AlertView) -> None:
        self.routing, self.alert, self.ledger = routing, alert, Ledger(alert.id)
        self.keys: set[str] = set()

    def at(self, t: float, offline: frozenset[str] = frozenset()) -> list[Notice]:
        self.ledger, notices = plan(self.alert, self.ledger, self.routing, t, offline)
        fresh = [n for n in notices if n.key not in self.keys]
        self.keys.update(n.key for n in notices)
        return fresh


def who(notices: list[Notice]) -> list[tuple[str, str]]:
    return sorted((n.person.person_id, n.purpose.value) for n in notices)


def test_escalation_timeline_with_the_design_defaults(routing: Routing) -> None:
    run = Run(routing, heat())
    t0 = NIGHT
    assert who(run.at(t0)) == [("qingshui-nurse2", "fired")]  # the night nurse, at once
    assert run.at(t0 + 29 * MIN) == []
    assert who(run.at(t0 + 30 * MIN)) == [("qingshui-head", "escalated")]
    assert run.at(t0 + 59 * MIN) == []
    assert who(run.at(t0 + 60 * MIN)) == [("qingshui-head", "reminder"), ("qingshui-nurse2", "reminder")]
    assert run.at(t0 + 89 * MIN) == []
    # Thursday: the weekday duty officer of the bureau
    assert who(run.at(t0 + 90 * MIN)) == [("bureau-duty1", "escalated")]
    assert who(run.at(t0 + 120 * MIN)) == [
        ("bureau-duty1", "reminder"),
        ("qingshui-head", "reminder"),
        ("qingshui-nurse2", "reminder"),
    ]
    assert run.ledger.level == 2 and run.ledger.reminders == 2


def test_everything_stops_on_acknowledgement_and_the_others_hear_who(routing: Routing) -> None:
    run = Run(routing, heat())
    run.at(NIGHT)
    run.at(NIGHT + 30 * MIN)  # nurse 2 and the head told
    run.alert = heat(state="acknowledged", acknowledged_by="qingshui-nurse2")
    assert who(run.at(NIGHT + 40 * MIN)) == [("qingshui-head", "acknowledged")]
    for minutes in (60, 90, 120, 600):
        assert run.at(NIGHT + minutes * MIN) == []


def test_resolve_is_announced_to_whoever_was_told_except_who_resolved(routing: Routing) -> None:
    run = Run(routing, heat())
    run.at(NIGHT)
    run.at(NIGHT + 30 * MIN)
    run.alert = heat(state="resolved", resolved_by="qingshui-head")
    assert who(run.at(NIGHT + 50 * MIN)) == [("qingshui-nurse2", "resolved")]
    assert run.ledger.closed
    assert run.at(NIGHT + 51 * MIN) == []


def test_an_alert_nobody_was_told_of_closes_silently(routing: Routing) -> None:
    ledger, notices = plan(heat(state="resolved"), Ledger("A-1"), routing, NIGHT)
    assert notices == [] and ledger.closed


def test_shifts_pick_the_person_on_duty(routing: Routing) -> None:
    assert who(Run(routing, heat()).at(DAY)) == [("qingshui-nurse1", "fired")]
    run = Run(routing, heat())
    run.at(SATURDAY_NIGHT)
    told = who(run.at(SATURDAY_NIGHT + 90 * MIN))
    assert ("bureau-duty2", "escalated") in told  # the weekend officer
    assert ("bureau-duty1", "escalated") not in told


def test_an_overnight_shift_belongs_to_the_day_it_started() -> None:
    friday_night = Shift("p", 0, "c", frozenset({4}), 20 * 60, 8 * 60)  # Fridays 20:00-08:00
    saturday_2am = datetime(2026, 11, 27, 18, 0, tzinfo=UTC).timestamp()  # Sat 02:00 clinic time
    friday_2am = saturday_2am - 86400
    friday_9pm = saturday_2am - 5 * 3600
    assert friday_night.on_duty(saturday_2am)
    assert friday_night.on_duty(friday_9pm)
    assert not friday_night.on_duty(friday_2am)  # that belongs to Thursday's night


def test_a_gap_in_the_rota_tells_everyone_of_the_level() -> None:
    r = build_routing(
        [("n1", "c", "N1", "+86 138 1", "nurse", "zh-CN"), ("n2", "c", "N2", "138-2", "nurse", "en")],
        {"c": "t"},
        "b",
        [("c", "n1", 0, "mon", "08:00", "12:00"), ("c", "n2", 0, "tue", "08:00", "12:00")],
    )
    alert = AlertView("A-1", "c", "heat", "f", "critical", "firing")
    _, notices = plan(alert, Ledger("A-1"), r, NIGHT)  # a Thursday night: nobody scheduled
    assert sorted(n.person.person_id for n in notices) == ["n1", "n2"]
    assert {n.person.phone for n in notices} == {"+861381", "+1382"}


def test_without_a_rota_the_roles_of_design_6_are_told() -> None:
    r = build_routing(
        [
            ("n1", "c", "N1", "1", "nurse", "zh-CN"),
            ("h1", "c", "H1", "2", "clinic_head", "zh-CN"),
            ("d1", "b", "D1", "3", "duty_officer", "zh-CN"),
            ("x", "other", "X", "4", "nurse", "zh-CN"),
        ],
        {"c": "t"},
        "b",
        [],
    )
    run = Run(r, AlertView("A-1", "c", "heat", "f", "critical", "firing"))
    assert who(run.at(NIGHT)) == [("n1", "fired")]
    assert who(run.at(NIGHT + 30 * MIN)) == [("h1", "escalated")]
    assert ("d1", "escalated") in who(run.at(NIGHT + 90 * MIN))


def test_nobody_at_level_0_goes_to_the_next_level_at_once() -> None:
    r = build_routing([("h1", "c", "H1", "2", "clinic_head", "zh-CN")], {"c": "t"}, "b", [])
    _, notices = plan(AlertView("A-1", "c", "heat", "f", "critical", "firing"), Ledger("A-1"), r, NIGHT)
    assert [(n.person.person_id, n.purpose, n.level) for n in notices] == [("h1", Purpose.escalated, 1)]


def test_policy_per_severity_and_per_clinic(routing: Routing) -> None:
    # demo registry: warnings reach the bureau after 180 min instead of 90
    warning = routing.policy("qingshui-thc", "warning")
    assert (warning.level1_after_s, warning.level2_after_s, warning.reminder_every_s) == (1800, 10800, 3600)
    assert routing.policy("qingshui-thc", "critical").level2_after_s == 5400
    assert not routing.policy("qingshui-thc", "info").notify
    custom = build_routing(
        [],
        {},
        "b",
        [],
        [
            (None, "critical", {"level1_after_min": 20}),
            ("c", None, {"level1_after_min": 10, "reminder_every_min": None}),
            ("c", "critical", {"level2_after_min": None}),
        ],
    )
    p = custom.policy("c", "critical")
    assert (p.level1_after_s, p.level2_after_s, p.reminder_every_s) == (600, None, None)
    assert custom.policy("other", "critical").level1_after_s == 1200
    assert custom.policy("other", "warning").level1_after_s == 1800


def test_warnings_wait_longer_for_the_bureau(routing: Routing) -> None:
    run = Run(routing, heat("warning"))
    run.at(NIGHT)
    run.at(NIGHT + 30 * MIN)
    assert all(n.purpose is Purpose.reminder for n in run.at(NIGHT + 90 * MIN) + run.at(NIGHT + 120 * MIN))
    assert ("bureau-duty1", "escalated") in who(run.at(NIGHT + 180 * MIN))


def test_info_alerts_send_no_sms(routing: Routing) -> None:
    assert Run(routing, heat("info")).at(NIGHT) == []


def test_a_clinic_offline_alert_inhibits_the_other_alerts_of_the_clinic(routing: Routing) -> None:
    offline = frozenset({"qingshui-thc"})
    fridge = Run(routing, heat())
    assert fridge.at(NIGHT, offline) == []
    clinic = Run(routing, AlertView("A-2", "qingshui-thc", "offline", "qingshui-thc", "warning", "firing"))
    assert who(clinic.at(NIGHT, offline)) == [("qingshui-nurse2", "fired")]
    device = Run(routing, AlertView("A-3", "qingshui-thc", "offline", "qingshui-gw1", "warning", "firing"))
    assert device.at(NIGHT, offline) == []
    other = Run(routing, replace(heat(), id="A-4", clinic="baihe-thc", subject="baihe-fridge1"))
    assert who(other.at(NIGHT, offline)) == [("baihe-nurse2", "fired")]
    # the clinic is back: the fridge alert is told then
    assert who(fridge.at(NIGHT + 10 * MIN)) == [("qingshui-nurse2", "fired")]


def test_a_rise_in_severity_is_told_even_after_acknowledgement(routing: Routing) -> None:
    run = Run(routing, heat("warning"))
    run.at(NIGHT)
    run.alert = heat("warning", state="acknowledged", acknowledged_by="qingshui-nurse2")
    run.at(NIGHT + 5 * MIN)
    run.alert = heat("critical", state="acknowledged", acknowledged_by="qingshui-nurse2")
    assert who(run.at(NIGHT + 20 * MIN)) == [("qingshui-nurse2", "severity")]
    assert run.at(NIGHT + 21 * MIN) == []


def test_after_an_outage_the_steps_due_are_taken_together_with_one_reminder(routing: Routing) -> None:
    run = Run(routing, heat())
    run.at(NIGHT)
    notices = run.at(NIGHT + 150 * MIN)  # the service was down for 2.5 h
    assert ("qingshui-head", "escalated") in who(notices) and ("bureau-duty1", "escalated") in who(notices)
    assert [n.seq for n in notices if n.purpose is Purpose.reminder] == [2]  # only the newest reminder


def test_notice_keys_are_stable_so_a_replan_makes_nothing_new(routing: Routing) -> None:
    alert = heat()
    ledger, first = plan(alert, Ledger("A-1"), routing, NIGHT)
    _, again = plan(alert, Ledger("A-1"), routing, NIGHT + 1)  # a lost ledger update: same keys
    assert [n.key for n in first] == [n.key for n in again]
    assert plan(alert, ledger, routing, NIGHT + 2)[1] == []


def test_phone_numbers_become_e164() -> None:
    assert e164("+86 138 0000 1001") == "+8613800001001"
    assert e164("138-0000-1001") == "+13800001001"


def test_a_switched_off_level_1_still_lets_level_2_come() -> None:
    r = build_routing(
        [("n", "c", "N", "1", "nurse", "zh-CN"), ("h", "c", "H", "2", "clinic_head", "zh-CN"),
         ("d", "b", "D", "3", "duty_officer", "zh-CN")],
        {"c": "t"},
        "b",
        [],
        [(None, None, {"level1_after_min": None, "reminder_every_min": None})],
    )  # fmt: skip
    run = Run(r, AlertView("A-1", "c", "heat", "f", "critical", "firing"))
    assert who(run.at(NIGHT)) == [("n", "fired")]
    assert next_due(run.alert, run.ledger, r) == NIGHT + 90 * MIN
    assert run.at(NIGHT + 60 * MIN) == []
    assert who(run.at(NIGHT + 90 * MIN)) == [("d", "escalated")]
    assert next_due(run.alert, run.ledger, r) is None


def test_next_due_is_the_next_escalation_or_reminder(routing: Routing) -> None:
    run = Run(routing, heat())
    assert next_due(run.alert, run.ledger, routing) == 0.0  # not told yet: look at once
    run.at(NIGHT)
    assert next_due(run.alert, run.ledger, routing) == NIGHT + 30 * MIN
    run.at(NIGHT + 30 * MIN)
    assert next_due(run.alert, run.ledger, routing) == NIGHT + 60 * MIN  # the reminder comes first
    run.at(NIGHT + 60 * MIN)
    assert next_due(run.alert, run.ledger, routing) == NIGHT + 90 * MIN
    assert next_due(heat(state="acknowledged"), run.ledger, routing) is None
    assert next_due(heat(), Ledger("A-1"), routing, frozenset({"qingshui-thc"})) == 0.0  # inhibited
    assert next_due(heat("info"), Ledger("A-1"), routing) is None
