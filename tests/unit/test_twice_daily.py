"""The twice-daily temperature check (疫苗储存和运输管理规范 2017, art. 11): reminders at their due times,
clears when the check is recorded, missed checks at the end of their slot, local-time day boundaries,
late and repeated evaluation; and recording checks in the SQL store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, time

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from alerting import lifecycle as lc
from alerting.checks_store import (  # importing it registers equipment_check on core.db.Base
    CheckConflict,
    CheckError,
    CheckInFuture,
    checks_between,
    init_check_tables,
    record_check,
)
from alerting.messages import render
from alerting.rules.checks import (
    Check,
    CheckMachine,
    CheckSettings,
    Slot,
    applies_to,
    day_label,
    day_of_label,
    day_record,
    day_start,
    local_day,
)
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import AlertRow
from core.db import init_db

DATE = "2026-11-20"  # a Friday; local time is UTC+8
DAY = day_of_label(DATE)
MIN = 60.0
HOUR = 3600.0
FRIDGE = "qingshui-fridge1"
CLINIC = "qingshui-thc"


def at(hhmm: str, date: str = DATE) -> float:
    """Epoch seconds of a local (UTC+8) clock time; "24:00" is the next midnight."""
    h, m = (int(x) for x in hhmm.split(":"))
    return day_start(day_of_label(date)) + h * HOUR + m * MIN


def check(hhmm: str, person: str = "nurse-li", recorded: str | None = None) -> Check:
    return Check(at(hhmm), person, None if recorded is None else at(recorded))


def machine(**kw: object) -> CheckMachine:
    return CheckMachine(FRIDGE, clinic=CLINIC, since=at("00:00"), **kw)  # type: ignore[arg-type]


def live(checks: list[Check], until: str = "24:00", step: float = MIN, m: CheckMachine | None = None):
    """Evaluate every ``step`` from local midnight to ``until``, passing only the checks recorded by
    then (as the service would load them)."""
    m = m or machine()
    out: list[Decision] = []
    t = at("00:00")
    while t <= at(until):
        out.extend(m.evaluate(t, [c for c in checks if c.known_at <= t]))
        t += step
    return out


def summary(decisions: list[Decision]) -> list[tuple[str, str, str, str | None]]:
    """(local time, severity, action, slot) per decision, "24:00" for the next midnight."""
    rows = []
    for d in decisions:
        minutes = round((d.time - at("00:00")) / MIN)
        hhmm = f"{minutes // 60:02d}:{minutes % 60:02d}"
        rows.append((hhmm, d.severity.value, d.action.value, d.values.get("slot")))
    return rows


MISSED_AFTERNOON = [
    ("16:00", "info", "fire", "afternoon"),
    ("24:00", "warning", "escalate", "afternoon"),
    ("24:00", "warning", "clear", "afternoon"),
]


# ------------------------------------------------------------------ the regulation's boundaries


def test_checks_at_0800_and_1400_give_no_reminder() -> None:
    assert live([check("08:00"), check("14:00")]) == []


def test_1359_is_5_h_59_min_after_0800_so_the_afternoon_reminder_comes_at_1600() -> None:
    assert summary(live([check("08:00"), check("13:59")])) == MISSED_AFTERNOON
    # the valid check then clears it, with who checked and when
    decisions = live([check("08:00"), check("13:59"), check("16:20", "nurse-wang")])
    assert summary(decisions) == [
        ("16:00", "info", "fire", "afternoon"),
        ("16:20", "info", "clear", "afternoon"),
    ]
    assert decisions[1].values["person"] == "nurse-wang"
    assert decisions[1].values["check_time"] == "16:20"


def test_exactly_6_hours_apart_is_enough() -> None:
    assert live([check("09:30"), check("15:30")]) == []


def test_no_morning_check_reminds_at_1000_and_the_check_clears_it_at_1030() -> None:
    assert live([], until="09:59") == []
    decisions = live([check("10:30"), check("16:30")])
    assert summary(decisions) == [("10:00", "info", "fire", "morning"), ("10:30", "info", "clear", "morning")]
    fire, clear = decisions
    assert (fire.rule, fire.family, fire.subject, fire.clinic) == (
        Rule.twice_daily_check,
        "check",
        FRIDGE,
        CLINIC,
    )
    assert fire.values == {"slot": "morning", "date": DATE, "due": "10:00"}
    assert clear.key == fire.key  # clears the reminder's alert
    assert clear.values["person"] == "nurse-li"


def test_nothing_checked_all_day() -> None:
    """Morning missed at noon (no later check can be a morning check), afternoon missed at midnight:
    each missed check escalates its reminder to a warning and closes it, so the next reminder opens."""
    decisions = live([])
    assert summary(decisions) == [
        ("10:00", "info", "fire", "morning"),
        ("12:00", "warning", "escalate", "morning"),
        ("12:00", "warning", "clear", "morning"),
        *MISSED_AFTERNOON,
    ]
    missed = [d for d in decisions if d.action is Action.escalate]
    assert [dict(d.values) for d in missed] == [
        {"slot": "morning", "missed": "morning", "date": DATE, "due": "10:00"},
        {"slot": "afternoon", "missed": "afternoon", "date": DATE, "due": "16:00"},
    ]
    assert all(d.rule is Rule.twice_daily_check and d.severity is Severity.warning for d in missed)


def test_a_missed_check_at_midnight_belongs_to_the_day_before() -> None:
    decisions = live([check("08:00")])
    assert summary(decisions) == MISSED_AFTERNOON
    assert decisions[-1].time == at("00:00", "2026-11-21")
    assert {d.values["date"] for d in decisions} == {DATE}


def test_an_afternoon_check_without_a_morning_check_counts_as_the_afternoon_one() -> None:
    decisions = live([check("12:30")])
    assert summary(decisions) == [
        ("10:00", "info", "fire", "morning"),
        ("12:00", "warning", "escalate", "morning"),
        ("12:00", "warning", "clear", "morning"),
    ]


def test_a_check_after_noon_does_not_clear_the_morning_reminder() -> None:
    decisions = live([check("11:59"), check("17:59")])
    assert summary(decisions) == [("10:00", "info", "fire", "morning"), ("11:59", "info", "clear", "morning")]
    late = live([check("12:00"), check("18:30")])
    assert [s[2] for s in summary(late)] == ["fire", "escalate", "clear"]


def test_a_late_morning_check_moves_the_afternoon_due_time() -> None:
    """A check at 11:00 makes any afternoon check before 17:00 invalid: the reminder comes at 17:00,
    when it can be acted on, and a check at 16:30 does not count."""
    decisions = [d for d in live([check("11:00"), check("16:30")]) if d.values["slot"] == "afternoon"]
    assert summary(decisions)[0] == ("17:00", "info", "fire", "afternoon")
    assert decisions[0].values["due"] == "17:00"
    assert [d.values["slot"] for d in live([check("11:00"), check("17:00")])] == ["morning", "morning"]


def test_the_earliest_morning_check_sets_the_gap() -> None:
    assert live([check("07:00"), check("11:00"), check("13:30")]) == []


# ------------------------------------------------------------------ local time


def test_local_day_boundaries_at_utc_plus_8() -> None:
    midnight = datetime(2026, 11, 19, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-20 00:00 local
    assert at("00:00") == midnight
    assert local_day(midnight - 1) == DAY - 1 and local_day(midnight) == DAY
    assert day_label(local_day(midnight)) == DATE
    # 23:59 local on the 19th (15:59 UTC) is that day's afternoon; 00:30 local (16:30 UTC on the 19th)
    # is the 20th's morning
    evening = Check(midnight - MIN, "nurse-li")
    early = Check(midnight + 30 * MIN, "nurse-li")
    assert day_record([evening, early], DAY - 1).afternoon == evening
    assert day_record([evening, early], DAY).morning == early
    # the reminder is at 10:00 local = 02:00 UTC
    (fire,) = live([], until="10:00")
    assert datetime.fromtimestamp(fire.time, UTC).strftime("%d %H:%M") == "20 02:00"


def test_another_utc_offset() -> None:
    start = day_start(DAY, 5.75 * HOUR)
    m = CheckMachine(FRIDGE, utc_offset_s=5.75 * HOUR, since=start)  # Nepal, +5:45
    assert m.evaluate(start + 10 * HOUR - 1, []) == []
    (fire,) = m.evaluate(start + 10 * HOUR, [])
    assert fire.time == start + 10 * HOUR and fire.values["date"] == DATE


# ------------------------------------------------------------------ evaluation: idempotent, late


DAY_OF_CHECKS = [
    check("09:00", recorded="10:30"),  # read at 09:00, typed in at 10:30
    check("14:50"),  # 5 h 50 min after the morning check: not the afternoon one
    check("17:20", "nurse-wang", recorded="17:25"),
]


def test_same_now_twice_gives_nothing_new() -> None:
    m = machine()
    first = m.evaluate(at("10:00"), [])
    assert summary(first) == [("10:00", "info", "fire", "morning")]
    assert m.evaluate(at("10:00"), []) == []
    assert m.evaluate(at("09:00"), []) == []  # a clock stepping back changes nothing either
    assert m.evaluate(at("24:00"), []) != []
    assert m.evaluate(at("24:00"), []) == []


def test_evaluating_hours_late_gives_the_same_decisions_at_their_own_times() -> None:
    expected = live(DAY_OF_CHECKS, until="24:00")
    assert summary(expected) == [
        ("10:00", "info", "fire", "morning"),
        ("10:30", "info", "clear", "morning"),
        ("16:00", "info", "fire", "afternoon"),
        ("17:25", "info", "clear", "afternoon"),
    ]
    once = machine().evaluate(at("24:00") + 3 * HOUR, DAY_OF_CHECKS)  # the service was down all day
    assert [d.identity() for d in once] == [d.identity() for d in expected]
    assert [dict(d.values) for d in once] == [dict(d.values) for d in expected]
    m = machine()  # down from 09:00 to 18:00
    resumed = m.evaluate(at("09:00"), []) + m.evaluate(at("18:00"), DAY_OF_CHECKS)
    resumed += m.evaluate(at("24:00"), DAY_OF_CHECKS)
    assert [d.identity() for d in resumed] == [d.identity() for d in expected]


def test_a_check_typed_in_before_the_reminder_is_due_means_no_reminder() -> None:
    assert summary(live([check("09:00", recorded="09:55"), check("15:00")])) == []


def test_catching_up_several_days_gives_each_decision_once() -> None:
    m = machine()
    assert len(m.evaluate(at("10:00"), [])) == 1
    out = m.evaluate(at("11:00", "2026-11-23"), [])  # three days later
    assert [(day_label(local_day(d.time - 1)), d.values["slot"], d.action.value) for d in out][:6] == [
        (DATE, "morning", "escalate"),
        (DATE, "morning", "clear"),
        (DATE, "afternoon", "fire"),
        (DATE, "afternoon", "escalate"),
        (DATE, "afternoon", "clear"),
        ("2026-11-21", "morning", "fire"),
    ]
    assert len(out) == 2 + 3 + 6 + 6 + 1
    assert len({d.identity() for d in out}) == len(out)
    assert len(m.slots) <= 4  # past days are forgotten once settled


def test_a_restart_after_midnight_still_reports_the_missed_afternoon() -> None:
    fresh = CheckMachine(FRIDGE, clinic=CLINIC)  # since: the start of the day before its first evaluation
    out = fresh.evaluate(at("00:05", "2026-11-21"), [check("08:00")])
    assert summary(out) == MISSED_AFTERNOON  # yesterday again: the lifecycle ignores what it has applied
    registered = CheckMachine(FRIDGE, clinic=CLINIC, since=at("13:00"))  # registered at 13:00
    out = registered.evaluate(at("00:05", "2026-11-21"), [check("08:00")])
    assert [(d.action.value, d.values["slot"]) for d in out] == [
        ("fire", "afternoon"),
        ("escalate", "afternoon"),
        ("clear", "afternoon"),
    ]
    registered_late = CheckMachine(FRIDGE, clinic=CLINIC, since=at("17:00"))  # after the reminder
    out = registered_late.evaluate(at("00:05", "2026-11-21"), [])
    assert [(d.action.value, d.severity.value) for d in out] == [("fire", "warning"), ("clear", "warning")]


def test_disabled_and_profiles() -> None:
    assert machine(settings=CheckSettings(enabled=False)).evaluate(at("24:00"), []) == []
    assert [applies_to(p) for p in ("refrigerator", "cold_box", "freezer", "waste_store")] == [
        True,
        True,
        True,
        False,
    ]


def test_other_due_times() -> None:
    s = CheckSettings(morning_due=time(9, 0), afternoon_due=time(15, 30), min_gap_h=5)
    assert summary(live([check("08:00"), check("13:00")], m=machine(settings=s))) == []
    assert summary(live([], until="15:30", m=machine(settings=s)))[::3] == [
        ("09:00", "info", "fire", "morning"),
        ("15:30", "info", "fire", "afternoon"),
    ]


@pytest.mark.parametrize(
    "kw",
    [
        {"morning_due": time(12, 0)},
        {"morning_due": time(0, 0)},
        {"afternoon_due": time(12, 0)},
        {"afternoon_due": time(11, 0)},
        {"min_gap_h": 13.0},
        {"min_gap_h": -1.0},
        {"min_gap_h": math.nan},
    ],
)
def test_settings_are_checked(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CheckSettings(**kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ through the alert lifecycle


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    init_db(engine)
    with Session(engine) as s:
        yield s


def test_each_missed_check_is_one_closed_warning_alert_in_the_record(session: Session) -> None:
    decisions = live([])
    lc.apply_all(session, decisions, now=at("24:00"))
    alerts = lc.list_alerts(session)
    assert len(alerts) == 2  # morning and afternoon: the afternoon reminder was not blocked
    for alert, slot in zip(sorted(alerts, key=lambda a: a.started_at), ("morning", "afternoon"), strict=True):
        assert (alert.rule, alert.severity, alert.state) == ("twice_daily_check", "warning", "resolved")
        assert alert.values == {"date": DATE, "due": alert.values["due"], "missed": slot, "slot": slot}
        kinds = [e.kind for e in lc.history(session, alert.id)]
        assert kinds == ["fired", "escalated", "resolved"]
    assert session.query(AlertRow).filter(AlertRow.open_key.is_not(None)).count() == 0


def test_a_reminder_cleared_by_the_check_is_an_info_alert_resolved_when_recorded(session: Session) -> None:
    lc.apply_all(session, live([check("10:30"), check("16:30")]), now=at("24:00"))
    (alert,) = lc.list_alerts(session)
    assert (alert.severity, alert.state, alert.resolved_at) == ("info", "resolved", at("10:30"))
    assert "上午温度检查未按时完成" in alert.message
    # applying everything again changes nothing
    assert lc.apply_all(session, live([check("10:30"), check("16:30")]), now=at("24:00")) == []


def test_the_texts_name_the_slot() -> None:
    fire, *_ = live([], until="10:00")
    assert "the morning temperature check is overdue" in render(fire, "en")


# ------------------------------------------------------------------ recording a check


def test_record_check_and_read_it_back(session: Session) -> None:
    assert "equipment_check" in inspect(session.get_bind()).get_table_names()
    first = record_check(session, FRIDGE, CLINIC, "nurse-li", at("08:00"), 4.6, " ok ", now=at("08:01"))
    assert first.created and first.row.note == "ok" and first.row.recorded_at == at("08:01")
    record_check(session, FRIDGE, CLINIC, "nurse-wang", at("14:10"), None, None, now=at("14:10"))
    record_check(
        session,
        FRIDGE,
        CLINIC,
        "nurse-li",
        at("08:00", "2026-11-21"),
        5.0,
        None,
        now=at("08:00", "2026-11-21"),
    )
    record_check(session, "other-fridge", CLINIC, "nurse-li", at("09:00"), 5.0, None, now=at("09:00"))
    rows = checks_between(session, FRIDGE, at("00:00"), at("24:00"))
    assert [(r.person_id, r.celsius) for r in rows] == [("nurse-li", 4.6), ("nurse-wang", None)]
    assert [r.as_check() for r in rows] == [
        Check(at("08:00"), "nurse-li", at("08:01")),
        Check(at("14:10"), "nurse-wang", at("14:10")),
    ]
    assert machine().evaluate(at("24:00"), [r.as_check() for r in rows]) == []
    assert rows[0].as_json()["checked_at"] == at("08:00")


def test_the_same_check_twice_is_one_row(session: Session) -> None:
    a = record_check(session, FRIDGE, CLINIC, "nurse-li", at("08:00"), 4.6, "ok", now=at("08:01"))
    b = record_check(session, FRIDGE, CLINIC, "nurse-li", at("08:00"), 4.6, "ok", now=at("08:05"))
    assert (b.created, b.row.id, b.row.recorded_at) == (False, a.row.id, at("08:01"))
    other_person = record_check(
        session, FRIDGE, CLINIC, "nurse-wang", at("08:00"), 4.6, "ok", now=at("08:05")
    )
    assert other_person.created
    with pytest.raises(CheckConflict, match="already recorded"):
        record_check(session, FRIDGE, CLINIC, "nurse-li", at("08:00"), 4.7, "ok", now=at("08:06"))
    assert len(checks_between(session, FRIDGE, 0, at("24:00"))) == 2


def test_a_check_more_than_10_minutes_in_the_future_is_refused(session: Session) -> None:
    now = at("08:00")
    assert record_check(session, FRIDGE, CLINIC, "nurse-li", now + 600, 4.0, None, now=now).created
    with pytest.raises(CheckInFuture, match="601 s in the future"):
        record_check(session, FRIDGE, CLINIC, "nurse-li", now + 601, 4.0, None, now=now)
    # a paper record typed in days later is accepted
    assert record_check(session, FRIDGE, CLINIC, "nurse-li", now - 3 * 86400, 4.0, None, now=now).created


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"equipment_id": ""}, "equipment_id is required"),
        ({"clinic_id": "  "}, "clinic_id is required"),
        ({"person_id": "x" * 65}, "person_id longer than 64"),
        ({"person_id": "system"}, "reserved"),
        ({"checked_at": math.nan}, "checked_at must be epoch seconds"),
        ({"checked_at": True}, "checked_at must be epoch seconds"),
        ({"celsius": math.inf}, "celsius must be a number"),
        ({"celsius": 850.0}, "not a thermometer reading"),
        ({"note": "x" * 1001}, "note longer than 1000"),
    ],
)
def test_bad_checks_are_refused_with_a_reason(session: Session, kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "equipment_id": FRIDGE,
        "clinic_id": CLINIC,
        "person_id": "nurse-li",
        "checked_at": at("08:00"),
        "celsius": 4.0,
        "note": None,
        "now": at("08:00"),
    }
    with pytest.raises(CheckError, match=message):
        record_check(session, **{**args, **kw})  # type: ignore[arg-type]
    assert checks_between(session, FRIDGE, 0, at("24:00")) == []


def test_init_check_tables_creates_just_that_table() -> None:
    engine = create_engine("sqlite://")
    init_check_tables(engine)
    assert inspect(engine).get_table_names() == ["equipment_check"]


def test_the_day_record_for_the_monthly_report() -> None:
    checks = [check("09:00"), check("14:50"), check("15:10", "nurse-wang")]
    rec = day_record(checks, DAY)
    assert rec.complete and rec.morning == checks[0] and rec.afternoon == checks[2]
    assert day_record([check("09:00"), check("14:59")], DAY).missing == (Slot.afternoon,)
    assert day_record([], DAY).missing == (Slot.morning, Slot.afternoon)
