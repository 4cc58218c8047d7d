"""The compliance score of a clinic for a month: five components, each 0–100 with what it is made
of, and their weighted mean. Formula and reasons in docs/compliance.md; never an unexplained number.

``score(inputs)`` is pure; ``gather(sql, clinic, year, month, now)`` reads what it needs from SQL (the
daily statistics per appliance, the alert store, the twice-daily check alerts, the waste bags).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.clinic_time import CLINIC_TZ

ACK_WITHIN_S = 30 * 60.0  # DESIGN §6: level 1 is told after 30 min without acknowledgement
CLOSED_AGE_S = 72 * 3600.0  # a bag is old enough to have closed its loop

# weights: what matters most to the vaccines comes first
WEIGHTS = {"temperature": 35.0, "alert_response": 25.0, "response_time": 10.0, "checks": 20.0, "waste": 10.0}


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a month of one clinic is judged on."""

    appliances: int  # vaccine appliances with daily statistics this month
    minutes_out_of_range: float  # above + below the range, all appliances
    covered_minutes: float  # minutes with readings, all appliances
    gap_minutes: float  # minutes without readings
    alerts: int  # warning and critical alerts that started this month
    acked_within_30: int  # of those, acknowledged (or closed by a person) within 30 min
    response_minutes: tuple[float, ...]  # time to acknowledgement of each alert that was acknowledged
    check_slots: int  # twice-daily check slots of the month (2 x days x appliances, days so far)
    missed_checks: int
    bags_old_enough: int  # waste bags generated this month at least 72 h before the end (or now)
    bags_closed: int  # of those, disposed or refused whole
    storage_overdue_alerts: int


@dataclass(frozen=True, slots=True)
class Component:
    key: str
    weight: float
    score: float | None  # None: nothing to judge (the weight goes to the others)
    value: str  # the measure, in words and numbers
    rule: str  # how the score is made from it


@dataclass(frozen=True, slots=True)
class Score:
    score: float | None
    components: tuple[Component, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {"score": self.score, "components": [asdict(c) for c in self.components]}


def _clamp(x: float) -> float:
    return round(max(0.0, min(100.0, x)), 1)


def score(i: Inputs) -> Score:
    comps: list[Component] = []
    if i.appliances:
        hours_each = i.minutes_out_of_range / 60.0 / i.appliances
        comps.append(
            Component(
                "temperature",
                WEIGHTS["temperature"],
                _clamp(100.0 - 5.0 * hours_each),
                f"{hours_each:.1f} h out of range per appliance ({i.minutes_out_of_range:.0f} min in all, "
                f"{i.appliances} appliance(s)); {i.gap_minutes:.0f} min without readings",
                "100 − 5 per hour out of range per appliance (20 h or more: 0)",
            )
        )
    else:
        comps.append(Component("temperature", WEIGHTS["temperature"], None, "no daily statistics", "—"))
    if i.alerts:
        comps.append(
            Component(
                "alert_response",
                WEIGHTS["alert_response"],
                _clamp(100.0 * i.acked_within_30 / i.alerts),
                f"{i.acked_within_30} of {i.alerts} alert(s) acknowledged within 30 min",
                "the share acknowledged within 30 min, × 100",
            )
        )
    else:
        comps.append(
            Component("alert_response", WEIGHTS["alert_response"], 100.0, "no alert", "no alert: 100")
        )
    if i.response_minutes:
        median = statistics.median(i.response_minutes)
        comps.append(
            Component(
                "response_time",
                WEIGHTS["response_time"],
                _clamp(100.0 * (120.0 - median) / (120.0 - 15.0)) if median > 15 else 100.0,
                f"median {median:.0f} min to acknowledge ({len(i.response_minutes)} acknowledged)",
                "100 up to 15 min, falling to 0 at 120 min",
            )
        )
    else:
        comps.append(Component("response_time", WEIGHTS["response_time"], None, "nothing acknowledged", "—"))
    if i.check_slots:
        done = i.check_slots - i.missed_checks
        comps.append(
            Component(
                "checks",
                WEIGHTS["checks"],
                _clamp(100.0 * done / i.check_slots),
                f"{i.missed_checks} of {i.check_slots} twice-daily check(s) missed",
                "the share of checks done, × 100",
            )
        )
    else:
        comps.append(Component("checks", WEIGHTS["checks"], None, "no check due", "—"))
    if i.bags_old_enough:
        rate = i.bags_closed / i.bags_old_enough
        comps.append(
            Component(
                "waste",
                WEIGHTS["waste"],
                _clamp(100.0 * rate - 5.0 * i.storage_overdue_alerts),
                f"closed-loop rate {100 * rate:.1f} % ({i.bags_closed} of {i.bags_old_enough} bags); "
                f"{i.storage_overdue_alerts} storage-overdue alert(s)",
                "closed-loop rate × 100, − 5 per storage-overdue alert",
            )
        )
    else:
        comps.append(Component("waste", WEIGHTS["waste"], None, "no waste tracked", "—"))
    judged = [c for c in comps if c.score is not None]
    total = sum(c.weight for c in judged)
    value = round(sum(c.weight * (c.score or 0.0) for c in judged) / total, 1) if total else None
    return Score(value, tuple(comps))


# ---------------------------------------------------------------- reading the month from SQL


def month_bounds(year: int, month: int) -> tuple[float, float, date, date]:
    """[start, end) of a month in clinic time, as epoch seconds, and its first and last day."""
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    start = datetime(first.year, first.month, first.day, tzinfo=CLINIC_TZ).timestamp()
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=CLINIC_TZ).timestamp()
    return start, end, first, nxt - timedelta(days=1)


def gather(sql: Engine, clinic: str, year: int, month: int, now: float) -> Inputs:
    from alerting.checks_store import init_check_tables
    from alerting.daily import EquipmentDayRow, init_daily_tables
    from alerting.store import AlertEventRow, AlertRow, init_alert_tables
    from core.db import EquipmentRow
    from core.waste_store import WasteBagRow, init_waste_tables

    for init in (init_alert_tables, init_check_tables, init_daily_tables, init_waste_tables):
        init(sql)
    start, end, first, last = month_bounds(year, month)
    until = min(end, now)
    with Session(sql) as s:
        vaccine = {
            e.id
            for e in s.scalars(select(EquipmentRow).where(EquipmentRow.clinic_id == clinic))
            if e.profile in ("refrigerator", "freezer", "cold_box")
        }
        days = [
            d
            for d in s.scalars(
                select(EquipmentDayRow).where(
                    EquipmentDayRow.clinic_id == clinic,
                    EquipmentDayRow.date >= first.isoformat(),
                    EquipmentDayRow.date <= last.isoformat(),
                )
            )
            if d.equipment_id in vaccine
        ]
        alerts = list(
            s.scalars(
                select(AlertRow).where(
                    AlertRow.clinic == clinic, AlertRow.started_at >= start, AlertRow.started_at < until
                )
            )
        )
        fired_at = {
            a: t
            for a, t in s.execute(
                select(AlertEventRow.alert_id, AlertEventRow.recorded_at).where(
                    AlertEventRow.alert_id.in_([a.id for a in alerts]), AlertEventRow.kind == "fired"
                )
            )
        }
        bags = list(
            s.scalars(
                select(WasteBagRow).where(
                    WasteBagRow.clinic == clinic,
                    WasteBagRow.generated_at >= start,
                    WasteBagRow.generated_at < min(until, now - CLOSED_AGE_S),
                )
            )
        )
    serious = [a for a in alerts if a.severity in ("warning", "critical") and a.rule != "twice_daily_check"]
    acked_in_time = 0
    response: list[float] = []
    for a in serious:
        told = fired_at.get(
            a.id, a.started_at
        )  # when the system knew (a late upload is not the nurse's fault)
        by_person = a.acknowledged_at if a.acknowledged_at is not None else (
            a.resolved_at if a.resolved_by not in (None, "system") else None
        )  # fmt: skip
        if by_person is not None:
            response.append(max(0.0, by_person - told) / 60.0)
            if by_person - told <= ACK_WITHIN_S:
                acked_in_time += 1
    # check slots that have ended: a morning slot at 12:00, an afternoon slot at 24:00 (clinic time)
    elapsed = max(0.0, until - start)
    slots_each = 2 * int(elapsed // 86400) + (1 if elapsed % 86400 >= 12 * 3600 else 0)
    missed = sum(
        1
        for a in alerts
        if a.rule == "twice_daily_check" and a.severity == "warning" and (a.values or {}).get("missed")
    )
    return Inputs(
        appliances=len({d.equipment_id for d in days}),
        minutes_out_of_range=sum(d.minutes_above + d.minutes_below for d in days),
        covered_minutes=sum(d.covered_minutes for d in days),
        gap_minutes=sum(d.gap_minutes for d in days),
        alerts=len(serious),
        acked_within_30=acked_in_time,
        response_minutes=tuple(response),
        check_slots=slots_each * len(vaccine),
        missed_checks=missed,
        bags_old_enough=len(bags),
        bags_closed=sum(1 for b in bags if b.closed_as is not None),
        storage_overdue_alerts=sum(1 for a in alerts if a.rule == "storage_overdue"),
    )
