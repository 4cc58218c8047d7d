"""The compliance score of a clinic for a month: five components, each 0–100 with what it is made
of, and their weighted mean. Formula and reasons in docs/compliance.md; never an unexplained number.

``score(inputs)`` is pure; each component keeps the numbers it is made of (``facts``) and
``describe(component, lang)`` says them in zh-CN (the default) or English; ``component_name`` names a
component. ``gather(sql, clinic, year, month, now)`` reads one clinic's month from SQL (the daily
statistics per appliance, the alert store, the twice-daily check alerts, the waste bags);
``gather_many(sql, clinics, year, month, now)`` reads a whole district's in a fixed number of queries
(the district page and report) and gives the same ``Inputs`` per clinic.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerting.messages import EN, ZH, normalize_lang
from core.clinic_time import CLINIC_TZ

ACK_WITHIN_S = 30 * 60.0  # DESIGN §6: level 1 is told after 30 min without acknowledgement
CLOSED_AGE_S = 72 * 3600.0  # a bag is old enough to have closed its loop
VACCINE_PROFILES = ("refrigerator", "freezer", "cold_box")

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

    @property
    def median_response_minutes(self) -> float | None:
        """The median time to acknowledge; None: nothing was acknowledged."""
        return statistics.median(self.response_minutes) if self.response_minutes else None

    @property
    def closed_loop_rate(self) -> float | None:
        """The share (0–1) of the bags old enough that closed their loop; None: no such bag."""
        return self.bags_closed / self.bags_old_enough if self.bags_old_enough else None


@dataclass(frozen=True, slots=True)
class Component:
    key: str
    weight: float
    score: float | None  # None: nothing to judge (the weight goes to the others)
    value: str  # the measure in words and numbers, in English (``describe`` for zh-CN)
    rule: str  # how the score is made from it, in English
    facts: dict[str, float] = field(default_factory=dict)  # the numbers the measure is made of


@dataclass(frozen=True, slots=True)
class Score:
    score: float | None
    components: tuple[Component, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        """``score`` and per component ``key``, ``weight``, ``score``, ``value`` and ``rule`` (English),
        ``facts`` and ``texts``: ``{"zh-CN": {"name", "value", "rule"}, "en": {...}}``."""
        return {"score": self.score, "components": [component_json(c) for c in self.components]}


def component_json(c: Component) -> dict[str, Any]:
    texts = {}
    for lang in (ZH, EN):
        value, rule = describe(c, lang)
        texts[lang] = {"name": component_name(c.key, lang), "value": value, "rule": rule}
    return {**asdict(c), "texts": texts}


# ---------------------------------------------------------------- the words, by language

NAMES: dict[str, tuple[str, str]] = {
    "temperature": ("温度超出范围", "Temperature out of range"),
    "alert_response": ("30 分钟内确认警报", "Alerts acknowledged within 30 min"),
    "response_time": ("确认用时中位数", "Median time to acknowledge"),
    "checks": ("每日两次温度检查", "Twice-daily checks"),
    "waste": ("医疗废物闭环", "Medical waste closed loop"),
}


def component_name(key: str, lang: str = ZH) -> str:
    pair = NAMES.get(key)
    if pair is None:
        return key
    return pair[1] if normalize_lang(lang) == EN else pair[0]


def describe(c: Component, lang: str = ZH) -> tuple[str, str]:
    """(the measure, the rule) of ``c`` in ``lang`` (zh-CN or en), from its facts."""
    en = normalize_lang(lang) == EN
    f = c.facts
    if c.key == "temperature":
        n = int(f.get("appliances", 0))
        if not n:
            return ("no daily statistics", "—") if en else ("无每日统计数据", "—")
        minutes, gap = f["minutes_out_of_range"], f["gap_minutes"]
        h = minutes / 60.0 / n
        if en:
            return (
                f"{h:.1f} h out of range per appliance ({minutes:.0f} min in all, {n} appliance(s)); "
                f"{gap:.0f} min without readings",
                "100 − 5 per hour out of range per appliance (20 h or more: 0)",
            )
        return (
            f"每台设备超出范围 {h:.1f} 小时（共 {minutes:.0f} 分钟，{n} 台设备）；无读数 {gap:.0f} 分钟",
            "100 − 每台设备每超出范围 1 小时扣 5 分（20 小时及以上：0）",
        )
    if c.key == "alert_response":
        alerts, acked = int(f.get("alerts", 0)), int(f.get("acked_within_30", 0))
        if not alerts:
            return ("no alert", "no alert: 100") if en else ("本月无警报", "无警报：100")
        if en:
            return (
                f"{acked} of {alerts} alert(s) acknowledged within 30 min",
                "the share acknowledged within 30 min, × 100",
            )
        return (f"{alerts} 条警报中 {acked} 条在 30 分钟内确认", "30 分钟内确认的比例 × 100")
    if c.key == "response_time":
        n = int(f.get("acknowledged", 0))
        if not n:
            return ("nothing acknowledged", "—") if en else ("无已确认的警报", "—")
        median = f["median_minutes"]
        if en:
            return (
                f"median {median:.0f} min to acknowledge ({n} acknowledged)",
                "100 up to 15 min, falling to 0 at 120 min",
            )
        return (
            f"确认用时中位数 {median:.0f} 分钟（已确认 {n} 条）",
            "15 分钟以内 100，至 120 分钟降为 0",
        )
    if c.key == "checks":
        slots, missed = int(f.get("check_slots", 0)), int(f.get("missed_checks", 0))
        if not slots:
            return ("no check due", "—") if en else ("无应做的检查", "—")
        if en:
            return (f"{missed} of {slots} twice-daily check(s) missed", "the share of checks done, × 100")
        return (f"应做 {slots} 次每日两次检查，漏检 {missed} 次", "已完成检查的比例 × 100")
    if c.key == "waste":
        bags, closed = int(f.get("bags_old_enough", 0)), int(f.get("bags_closed", 0))
        if not bags:
            return ("no waste tracked", "—") if en else ("无医疗废物追踪记录", "—")
        overdue = int(f.get("storage_overdue_alerts", 0))
        rate = 100.0 * closed / bags
        if en:
            return (
                f"closed-loop rate {rate:.1f} % ({closed} of {bags} bags); "
                f"{overdue} storage-overdue alert(s)",
                "closed-loop rate × 100, − 5 per storage-overdue alert",
            )
        return (
            f"闭环率 {rate:.1f}%（{bags} 袋中 {closed} 袋）；暂存超时警报 {overdue} 条",
            "闭环率 × 100，每条暂存超时警报扣 5 分",
        )
    return ("", "")


# ---------------------------------------------------------------- the score


def _clamp(x: float) -> float:
    return round(max(0.0, min(100.0, x)), 1)


def _component(key: str, score: float | None, facts: dict[str, float]) -> Component:
    c = Component(key, WEIGHTS[key], score, "", "", facts)
    value, rule = describe(c, EN)
    return Component(key, WEIGHTS[key], score, value, rule, facts)


def score(i: Inputs) -> Score:
    comps: list[Component] = []
    temperature = {
        "appliances": float(i.appliances),
        "minutes_out_of_range": i.minutes_out_of_range,
        "gap_minutes": i.gap_minutes,
    }
    hours_each = i.minutes_out_of_range / 60.0 / i.appliances if i.appliances else 0.0
    comps.append(
        _component("temperature", _clamp(100.0 - 5.0 * hours_each) if i.appliances else None, temperature)
    )
    answered = {"alerts": float(i.alerts), "acked_within_30": float(i.acked_within_30)}
    comps.append(
        _component(
            "alert_response", _clamp(100.0 * i.acked_within_30 / i.alerts) if i.alerts else 100.0, answered
        )
    )
    median = i.median_response_minutes
    if median is not None:
        timing = {"acknowledged": float(len(i.response_minutes)), "median_minutes": float(median)}
        points = _clamp(100.0 * (120.0 - median) / (120.0 - 15.0)) if median > 15 else 100.0
        comps.append(_component("response_time", points, timing))
    else:
        comps.append(_component("response_time", None, {"acknowledged": 0.0}))
    checks = {"check_slots": float(i.check_slots), "missed_checks": float(i.missed_checks)}
    done = i.check_slots - i.missed_checks
    comps.append(
        _component("checks", _clamp(100.0 * done / i.check_slots) if i.check_slots else None, checks)
    )
    waste = {
        "bags_old_enough": float(i.bags_old_enough),
        "bags_closed": float(i.bags_closed),
        "storage_overdue_alerts": float(i.storage_overdue_alerts),
    }
    rate = i.closed_loop_rate
    points = None if rate is None else _clamp(100.0 * rate - 5.0 * i.storage_overdue_alerts)
    comps.append(_component("waste", points, waste))
    judged = [c for c in comps if c.score is not None]
    if all(c.key == "alert_response" for c in judged) and not i.alerts:
        return Score(None, tuple(comps))  # no statistics, no check due, no waste, no alert: nothing to judge
    total = sum(c.weight for c in judged)
    value = round(sum(c.weight * (c.score or 0.0) for c in judged) / total, 1) if total else None
    return Score(value, tuple(comps))


def unjudged_reason(s: Score, lang: str = ZH) -> str:
    """Why a score is None ("—"): the measures of the components, which all say "nothing"."""
    sep = "; " if normalize_lang(lang) == EN else "；"
    return sep.join(describe(c, lang)[0] for c in s.components if c.key != "response_time")


# ---------------------------------------------------------------- reading the month from SQL


def month_bounds(year: int, month: int) -> tuple[float, float, date, date]:
    """[start, end) of a month in clinic time, as epoch seconds, and its first and last day."""
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    start = datetime(first.year, first.month, first.day, tzinfo=CLINIC_TZ).timestamp()
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=CLINIC_TZ).timestamp()
    return start, end, first, nxt - timedelta(days=1)


def _init_tables(sql: Engine) -> None:
    from alerting.checks_store import init_check_tables
    from alerting.daily import init_daily_tables
    from alerting.store import init_alert_tables
    from core.waste_store import init_waste_tables

    for init in (init_alert_tables, init_check_tables, init_daily_tables, init_waste_tables):
        init(sql)


def gather(sql: Engine, clinic: str, year: int, month: int, now: float) -> Inputs:
    """One clinic's month as known at ``now`` (for the current month: so far)."""
    from alerting.daily import EquipmentDayRow
    from alerting.store import AlertEventRow, AlertRow
    from core.db import EquipmentRow
    from core.waste_store import WasteBagRow

    _init_tables(sql)
    start, end, first, last = month_bounds(year, month)
    until = min(end, now)
    with Session(sql) as s:
        vaccine = {
            e.id
            for e in s.scalars(select(EquipmentRow).where(EquipmentRow.clinic_id == clinic))
            if e.profile in VACCINE_PROFILES
        }
        days: dict[str, tuple[float, float, float]] = {}
        for d in s.scalars(
            select(EquipmentDayRow).where(
                EquipmentDayRow.clinic_id == clinic,
                EquipmentDayRow.date >= first.isoformat(),
                EquipmentDayRow.date <= last.isoformat(),
            )
        ):
            out, covered, gap = days.get(d.equipment_id, (0.0, 0.0, 0.0))
            days[d.equipment_id] = (
                out + d.minutes_above + d.minutes_below,
                covered + d.covered_minutes,
                gap + d.gap_minutes,
            )
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
    closed = sum(1 for b in bags if b.closed_as is not None)
    return _inputs(vaccine, days, alerts, fired_at, (len(bags), closed), until - start)


def gather_many(sql: Engine, clinics: Iterable[str], year: int, month: int, now: float) -> dict[str, Inputs]:
    """``gather`` for many clinics (a district) in five queries, summing in SQL and reading only the
    columns needed: the same ``Inputs`` per clinic, fast enough for a page of 200 clinics."""
    from alerting.daily import EquipmentDayRow as D
    from alerting.store import AlertEventRow, AlertRow
    from core.db import EquipmentRow
    from core.waste_store import WasteBagRow as B

    wanted = sorted(set(clinics))
    _init_tables(sql)
    start, end, first, last = month_bounds(year, month)
    until = min(end, now)
    in_month = (AlertRow.clinic.in_(wanted), AlertRow.started_at >= start, AlertRow.started_at < until)
    vaccine: dict[str, set[str]] = {c: set() for c in wanted}
    days: dict[str, dict[str, tuple[float, float, float]]] = {c: {} for c in wanted}
    alerts: dict[str, list[Any]] = {c: [] for c in wanted}
    bags: dict[str, tuple[int, int]] = {}
    with Session(sql) as s:
        for eq, clinic in s.execute(
            select(EquipmentRow.id, EquipmentRow.clinic_id).where(
                EquipmentRow.clinic_id.in_(wanted), EquipmentRow.profile.in_(VACCINE_PROFILES)
            )
        ):
            vaccine[clinic].add(eq)
        for clinic, eq, out, covered, gap in s.execute(
            select(
                D.clinic_id,
                D.equipment_id,
                func.sum(D.minutes_above + D.minutes_below),
                func.sum(D.covered_minutes),
                func.sum(D.gap_minutes),
            )
            .where(D.clinic_id.in_(wanted), D.date >= first.isoformat(), D.date <= last.isoformat())
            .group_by(D.clinic_id, D.equipment_id)
        ):
            days[clinic][eq] = (float(out or 0.0), float(covered or 0.0), float(gap or 0.0))
        columns = (
            AlertRow.id,
            AlertRow.clinic,
            AlertRow.rule,
            AlertRow.severity,
            AlertRow.started_at,
            AlertRow.acknowledged_at,
            AlertRow.resolved_at,
            AlertRow.resolved_by,
            AlertRow.values,
        )
        for a in s.execute(select(*columns).where(*in_month)):
            alerts[a.clinic or ""].append(a)
        fired_at = {
            a: t
            for a, t in s.execute(
                select(AlertEventRow.alert_id, AlertEventRow.recorded_at).where(
                    AlertEventRow.alert_id.in_(select(AlertRow.id).where(*in_month)),
                    AlertEventRow.kind == "fired",
                )
            )
        }
        for clinic, total, closed in s.execute(
            select(B.clinic, func.count(), func.count(B.closed_as))
            .where(
                B.clinic.in_(wanted), B.generated_at >= start, B.generated_at < min(until, now - CLOSED_AGE_S)
            )
            .group_by(B.clinic)
        ):
            bags[clinic or ""] = (int(total), int(closed))
    return {
        c: _inputs(vaccine[c], days[c], alerts[c], fired_at, bags.get(c, (0, 0)), until - start)
        for c in wanted
    }


def _inputs(
    vaccine: set[str],  # the clinic's vaccine appliances
    days: dict[str, tuple[float, float, float]],  # equipment -> minutes out of range, covered, gap
    alerts: Sequence[Any],  # the clinic's alerts that started in the month (so far): rows or tuples
    fired_at: dict[str, float],  # alert id -> when the system knew
    bags: tuple[int, int],  # bags generated in the month at least 72 h ago, and of those closed
    elapsed_s: float,  # of the month, so far
) -> Inputs:
    """The month's measures (pure)."""
    sums = [v for eq, v in days.items() if eq in vaccine]
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
    elapsed = max(0.0, elapsed_s)
    slots_each = 2 * int(elapsed // 86400) + (1 if elapsed % 86400 >= 12 * 3600 else 0)
    missed = sum(
        1
        for a in alerts
        if a.rule == "twice_daily_check" and a.severity == "warning" and (a.values or {}).get("missed")
    )
    return Inputs(
        appliances=len(sums),
        minutes_out_of_range=sum(x[0] for x in sums),
        covered_minutes=sum(x[1] for x in sums),
        gap_minutes=sum(x[2] for x in sums),
        alerts=len(serious),
        acked_within_30=acked_in_time,
        response_minutes=tuple(response),
        check_slots=slots_each * len(vaccine),
        missed_checks=missed,
        bags_old_enough=bags[0],
        bags_closed=bags[1],
        storage_overdue_alerts=sum(1 for a in alerts if a.rule == "storage_overdue"),
    )
