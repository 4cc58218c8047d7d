"""Excursion impact and the shake test (issue 9, items 4 and 5): when a heat or freeze alarm fires for an
appliance, which vaccine lots were inside it, how many doses, how much of their heat budget is left and
what to do with each (WHO's decision flow, ``recommend``); for a suspected freeze, the WHO shake test per
freeze-sensitive lot and the stock movements its result calls for. For the nurse deciding "can I still
use these vaccines?", the clinic page and the API that show it, and the SMS that says how many doses are
at risk. The flow and its thresholds are documented in ``docs/impact.md``.

Table ``alert_impact`` (on ``core.db.Base``): one row per (alert, lot): the lot's doses in the alert's
appliance at the alert's start (``core.stock.lots_in``), its exposure as ``alerting.exposure`` had it
when the impact was (re)computed, the recommendation and its reasons, and the lot's shake-test result
(passed / failed, who, when, how many doses were released or discarded). The per-lot rows live here
rather than in the alert's JSON ``values`` because the lifecycle rewrites ``values`` with the rule's
numbers at every escalation, and the shake-test results are written by people long after; only the
count the SMS needs, ``values["doses_at_risk"]``, is put on the alert (again after every change of it).

When (``record_impacts``, called by the alerting service in the same transaction as the lifecycle, so
the SMS composed for the alert always sees the doses at risk): a heat or freeze alarm fired, escalated
(a warning became the alarm) or reopened. Then ``refresh_impacts``, after the commit, asks
``alerting.exposure.update_exposure`` to bring the lots' exposure up to date (``trigger
"alert:{id}"``) and recomputes the recommendations with it.

Doses at risk: for a heat alarm every dose inside; for a freeze alarm the doses of freeze-sensitive
products (freezing does not harm the others).

Plain functions over a ``Session`` (they add and flush, the caller commits), except ``refresh_impacts``
which opens its own sessions; ``recommend`` is pure. Time is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Double, Engine, ForeignKey, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import alerting.exposure
from alerting import lifecycle
from alerting.exposure import latest_exposure
from alerting.lifecycle import AlertChange
from alerting.messages import EN, ZH, normalize_lang
from alerting.rules.types import Rule
from alerting.store import AlertRow, AlertState, EventKind
from core.clinic_time import CLINIC_TZ
from core.db import Base, create_tables
from core.stock import (
    Balance,
    Kind,
    Movement,
    StockError,
    StockMovementRow,
    VaccineLotRow,
    VaccineProductRow,
    WasteReason,
    lots_in,
    record,
    stock,
)

log = logging.getLogger("chainwatch.impact")

IMPACT_RULES = frozenset({Rule.heat_alarm.value, Rule.freeze_alarm.value})
IMPACT_KINDS = frozenset({EventKind.fired, EventKind.escalated, EventKind.reopened})
# heat budget used (fraction of the VVM's stability budget): at or past these, the recommendation is
HEAT_DISCARD = 1.0  # discard: the VVM would be at its discard point
HEAT_ASSESS = 0.75  # quarantine pending assessment: little budget left to use safely
HEAT_USE_FIRST = 0.5  # use first: sound, but it has used half its budget
DOSES_AT_RISK = "doses_at_risk"  # the key on the alert's ``values``


class ImpactError(ValueError):
    """A shake-test step that cannot be done as asked; the message says why, in one line."""


class Alarm(StrEnum):
    heat = "heat"
    freeze = "freeze"


class Recommendation(StrEnum):
    use = "use"
    use_first = "use_first"
    quarantine_shake_test = "quarantine_shake_test"
    quarantine_assessment = "quarantine_assessment"
    discard = "discard"


class Reason(StrEnum):
    expired = "expired"  # past its expiry date
    vvm_discard_point = "vvm_discard_point"  # heat budget used >= 1
    freeze_sensitive = "freeze_sensitive"  # frozen and freeze-sensitive: only a shake test can tell
    not_freeze_sensitive = "not_freeze_sensitive"  # freezing does not harm it
    no_vvm = "no_vvm"  # heat alarm, a product without a VVM: no budget to judge by
    exposure_unknown = "exposure_unknown"  # heat alarm, its exposure not computed (yet)
    budget_high = "budget_high"  # >= HEAT_ASSESS used
    budget_moderate = "budget_moderate"  # >= HEAT_USE_FIRST used
    budget_ok = "budget_ok"  # less than HEAT_USE_FIRST used


class ShakeResult(StrEnum):
    passed = "passed"  # the suspect vial settled slower than the frozen control: not frozen, release
    failed = "failed"  # it settled as fast as (or faster than) the control: frozen, discard


# ---------------------------------------------------------------- the decision flow (pure)


def recommend(
    alarm: Alarm,
    *,
    freeze_sensitive: bool,
    vvm_type: int | None,
    expiry: date,
    today: date,
    heat_budget_used: float | None,
) -> tuple[Recommendation, tuple[Reason, ...]]:
    """What to do with a lot that was in an appliance when ``alarm`` fired, and why (WHO's flow, most
    serious first): expired -> discard; VVM at its discard point (budget used >= 1) -> discard; a
    freeze alarm and a freeze-sensitive product -> quarantine pending a shake test; a heat alarm and a
    product without VVM, or without a computed exposure -> quarantine pending assessment; budget used
    >= 0.75 -> quarantine pending assessment; >= 0.5 -> use first; else use."""
    if expiry < today:
        return Recommendation.discard, (Reason.expired,)
    used = heat_budget_used
    if used is not None and used >= HEAT_DISCARD:
        return Recommendation.discard, (Reason.vvm_discard_point,)
    first: tuple[Reason, ...] = ()
    if alarm is Alarm.freeze:
        if freeze_sensitive:
            return Recommendation.quarantine_shake_test, (Reason.freeze_sensitive,)
        first = (Reason.not_freeze_sensitive,)
    elif vvm_type is None:
        return Recommendation.quarantine_assessment, (Reason.no_vvm,)
    elif used is None:
        return Recommendation.quarantine_assessment, (Reason.exposure_unknown,)
    if used is None:  # a freeze alarm, a product freezing does not harm, no heat budget known
        return Recommendation.use, first
    if used >= HEAT_ASSESS:
        return Recommendation.quarantine_assessment, (*first, Reason.budget_high)
    if used >= HEAT_USE_FIRST:
        return Recommendation.use_first, (*first, Reason.budget_moderate)
    return Recommendation.use, (*first, Reason.budget_ok)


def alarm_of(rule: str) -> Alarm | None:
    return {Rule.heat_alarm.value: Alarm.heat, Rule.freeze_alarm.value: Alarm.freeze}.get(rule)


def at_risk(alarm: Alarm, freeze_sensitive: bool) -> bool:
    """Whether the excursion can harm a product: heat harms every vaccine, freezing the sensitive ones."""
    return alarm is Alarm.heat or freeze_sensitive


# ---------------------------------------------------------------- the table


class AlertImpactRow(Base):
    __tablename__ = "alert_impact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32))
    lot_id: Mapped[int] = mapped_column(ForeignKey("vaccine_lot.id"))
    clinic_id: Mapped[str] = mapped_column(String(64))
    equipment_id: Mapped[str] = mapped_column(String(64))
    alarm: Mapped[str] = mapped_column(String(16))  # heat, freeze
    at: Mapped[float] = mapped_column(Double)  # the alert's start: when the doses were counted
    doses_available: Mapped[int] = mapped_column(Integer)
    doses_quarantined: Mapped[int] = mapped_column(Integer)
    heat_budget_used: Mapped[float | None] = mapped_column(Double, nullable=True)
    freeze_minutes: Mapped[float | None] = mapped_column(Double, nullable=True)
    exposure_at: Mapped[float | None] = mapped_column(Double, nullable=True)  # the exposure's computed_at
    recommendation: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    computed_at: Mapped[float] = mapped_column(Double)
    shake_result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    shake_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shake_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    shake_doses: Mapped[int | None] = mapped_column(Integer, nullable=True)  # released or discarded

    __table_args__ = (
        UniqueConstraint("alert_id", "lot_id", name="uq_alert_impact_lot"),
        Index("ix_alert_impact_alert", "alert_id"),
    )


def init_impact_tables(engine: Engine) -> None:
    from core.stock import init_stock_tables

    init_stock_tables(engine)
    alerting.exposure.init_exposure_tables(engine)
    create_tables(engine, [AlertImpactRow.__table__])  # type: ignore[arg-type]


# ---------------------------------------------------------------- what the pages and the API read


@dataclass(frozen=True, slots=True)
class LotImpact:
    """One lot of an alert's impact, as the pages and the API show it."""

    lot_id: int
    product_id: str
    product_name: str  # zh-CN
    product_name_en: str
    lot_number: str
    expiry: str
    freeze_sensitive: bool
    vvm_type: int | None
    doses_available: int
    doses_quarantined: int
    at_risk: bool
    heat_budget_used: float | None
    heat_budget_left: float | None  # 1 - used, never below 0
    freeze_minutes: float | None
    exposure_at: float | None
    recommendation: Recommendation
    reasons: list[Reason]
    shake_test: bool  # the lot is in the alert's shake test
    shake_result: ShakeResult | None = None
    shake_by: str | None = None
    shake_at: float | None = None
    shake_doses: int | None = None

    @property
    def doses(self) -> int:
        return self.doses_available + self.doses_quarantined


@dataclass(frozen=True, slots=True)
class AlertImpact:
    """The lots inside the alert's appliance at its start and what to do with each."""

    alert_id: str
    alarm: Alarm
    clinic_id: str
    equipment_id: str
    at: float
    computed_at: float
    doses_at_risk: int
    lots: list[LotImpact] = field(default_factory=list)

    @property
    def shake_lots(self) -> list[LotImpact]:
        return [lot for lot in self.lots if lot.shake_test]

    @property
    def shake_done(self) -> bool:
        """Every lot of the shake test has its result (False when there is no shake test)."""
        lots = self.shake_lots
        return bool(lots) and all(lot.shake_result is not None for lot in lots)


def alert_impact(session: Session, alert_id: str) -> AlertImpact | None:
    """The stored impact of an alert (None: not a heat or freeze alarm, or none computed)."""
    return alert_impacts(session, [alert_id]).get(alert_id)


def alert_impacts(session: Session, alert_ids: Sequence[str]) -> dict[str, AlertImpact]:
    """alert id -> its stored impact, for the alerts that have one."""
    if not alert_ids:
        return {}
    q = (
        select(AlertImpactRow, VaccineLotRow, VaccineProductRow)
        .join(VaccineLotRow, VaccineLotRow.id == AlertImpactRow.lot_id)
        .join(VaccineProductRow, VaccineProductRow.id == VaccineLotRow.product_id)
        .where(AlertImpactRow.alert_id.in_(list(alert_ids)))
        .order_by(AlertImpactRow.alert_id, VaccineProductRow.id, VaccineLotRow.lot_number)
    )
    lots: dict[str, list[tuple[AlertImpactRow, LotImpact]]] = {}
    for row, lot, product in session.execute(q).tuples():
        lots.setdefault(row.alert_id, []).append((row, _lot_impact(row, lot, product)))
    out: dict[str, AlertImpact] = {}
    for alert_id, items in lots.items():
        first = items[0][0]
        views = [v for _r, v in items]
        out[alert_id] = AlertImpact(
            alert_id=alert_id,
            alarm=Alarm(first.alarm),
            clinic_id=first.clinic_id,
            equipment_id=first.equipment_id,
            at=first.at,
            computed_at=max(r.computed_at for r, _v in items),
            doses_at_risk=sum(v.doses for v in views if v.at_risk),
            lots=views,
        )
    return out


def _lot_impact(row: AlertImpactRow, lot: VaccineLotRow, product: VaccineProductRow) -> LotImpact:
    used = row.heat_budget_used
    recommendation = Recommendation(row.recommendation)
    return LotImpact(
        lot_id=lot.id,
        product_id=product.id,
        product_name=product.name,
        product_name_en=product.name_en,
        lot_number=lot.lot_number,
        expiry=lot.expiry,
        freeze_sensitive=product.freeze_sensitive,
        vvm_type=product.vvm_type,
        doses_available=row.doses_available,
        doses_quarantined=row.doses_quarantined,
        at_risk=at_risk(Alarm(row.alarm), product.freeze_sensitive),
        heat_budget_used=used,
        heat_budget_left=None if used is None else max(0.0, 1.0 - used),
        freeze_minutes=row.freeze_minutes,
        exposure_at=row.exposure_at,
        recommendation=recommendation,
        reasons=[Reason(r) for r in row.reasons or []],
        shake_test=recommendation is Recommendation.quarantine_shake_test or row.shake_result is not None,
        shake_result=ShakeResult(row.shake_result) if row.shake_result else None,
        shake_by=row.shake_by,
        shake_at=row.shake_at,
        shake_doses=row.shake_doses,
    )


# ---------------------------------------------------------------- computing it


def store_impact(session: Session, alert: AlertRow, now: float) -> int | None:
    """(Re)compute and store the impact of a heat or freeze alarm: the lots in its appliance at its
    start, with their exposure as stored now; a lot's shake-test result is kept. Sets the alert's
    ``values["doses_at_risk"]`` and returns it (None: not a heat or freeze alarm)."""
    alarm = alarm_of(alert.rule)
    if alarm is None:
        return None
    inside = lots_in(session, alert.subject, alert.started_at)
    exposure = latest_exposure(session, sorted(inside))
    have = {
        r.lot_id: r
        for r in session.scalars(select(AlertImpactRow).where(AlertImpactRow.alert_id == alert.id))
    }
    today = datetime.fromtimestamp(now, CLINIC_TZ).date()
    at_risk_doses = 0
    for lot_id, balance in sorted(inside.items()):
        lot = session.get(VaccineLotRow, lot_id)
        product = session.get(VaccineProductRow, lot.product_id) if lot else None
        if lot is None or product is None:
            continue
        exp = exposure.get(lot_id)
        used = exp.heat_budget_used if exp is not None else None
        rec, reasons = recommend(
            alarm,
            freeze_sensitive=product.freeze_sensitive,
            vvm_type=product.vvm_type,
            expiry=date.fromisoformat(lot.expiry),
            today=today,
            heat_budget_used=used,
        )
        row = have.pop(lot_id, None)
        if row is None:
            row = AlertImpactRow(alert_id=alert.id, lot_id=lot_id)
            session.add(row)
        row.clinic_id, row.equipment_id = alert.clinic or "", alert.subject
        row.alarm, row.at = alarm.value, alert.started_at
        row.doses_available, row.doses_quarantined = balance.available, balance.quarantined
        row.heat_budget_used = used
        row.freeze_minutes = exp.freeze_minutes if exp is not None else None
        row.exposure_at = exp.computed_at if exp is not None else None
        row.recommendation, row.reasons = rec.value, [r.value for r in reasons]
        row.computed_at = now
        if at_risk(alarm, product.freeze_sensitive):
            at_risk_doses += balance.total
    for row in have.values():  # a late paper record showed the lot was not inside after all
        if row.shake_result is None:
            session.delete(row)
    alert.values = {**(alert.values or {}), DOSES_AT_RISK: at_risk_doses}
    session.flush()
    return at_risk_doses


def record_impacts(session: Session, changes: Sequence[AlertChange], now: float) -> list[str]:
    """The impact of every heat or freeze alarm among ``changes`` that fired, escalated or reopened, in
    the caller's transaction (the alerting service's, right after the lifecycle); returns their ids. A
    failure is logged and leaves the alert as the lifecycle made it: the alert matters more."""
    done: list[str] = []
    for c in changes:
        if c.rule not in IMPACT_RULES or c.kind not in IMPACT_KINDS or c.alert_id in done:
            continue
        alert = session.get(AlertRow, c.alert_id)
        if alert is None or alert.rule not in IMPACT_RULES:
            continue
        try:
            with session.begin_nested():
                store_impact(session, alert, now)
        except Exception:
            log.exception("excursion impact of alert %s could not be stored", c.alert_id)
            continue
        done.append(c.alert_id)
    return done


UpdateExposure = Callable[..., Any]


def refresh_impacts(
    engine: Engine,
    influx: Any,
    alert_ids: Sequence[str],
    now: float,
    update: UpdateExposure | None = None,
) -> None:
    """After the alerts are committed: bring the exposure of their lots up to date
    (``alerting.exposure.update_exposure``, trigger ``alert:{id}``) and recompute the recommendations
    with it. Without ``update_exposure`` (not there yet) the impact stays as stored, computed from
    the latest exposure there was. A failure is logged; the impact stored before stays."""
    update = update or getattr(alerting.exposure, "update_exposure", None)
    if update is None:
        return
    for alert_id in alert_ids:
        with Session(engine) as s:
            q = select(AlertImpactRow.lot_id).where(AlertImpactRow.alert_id == alert_id)
            lot_ids = sorted(s.scalars(q))
        try:
            if lot_ids:
                update(engine, influx, lot_ids, now, trigger=f"alert:{alert_id}")
            with Session(engine) as s, s.begin():
                alert = s.get(AlertRow, alert_id)
                if alert is not None:
                    store_impact(s, alert, now)
        except Exception:
            log.exception("exposure of the lots of alert %s could not be refreshed", alert_id)


def refresh_open_impacts(engine: Engine, influx: Any, now: float) -> int:
    """The daily job, once the lots' exposure is brought up to date (``alerting.exposure.run_daily``):
    the impact of every heat or freeze alarm still open is computed again with it, so a lot whose heat
    budget ran out while the alarm stayed open says "discard", not the "use first" of the day the alarm
    fired. Returns how many alarms."""
    with Session(engine) as s:
        ids = list(
            s.scalars(
                select(AlertRow.id).where(
                    AlertRow.rule.in_(sorted(IMPACT_RULES)), AlertRow.state != AlertState.resolved.value
                )
            )
        )
    refresh_impacts(engine, influx, ids, now, update=_already_updated)
    return len(ids)


def _already_updated(*_args: Any, **_kwargs: Any) -> None:
    """``run_daily`` has just brought every lot in stock up to date."""


# ---------------------------------------------------------------- the shake test


@dataclass(frozen=True, slots=True)
class ShakeOutcome:
    changed: bool  # False: the same result was recorded before
    result: ShakeResult
    quarantined: int  # doses quarantined first (they were still available)
    doses: int  # doses released (passed) or discarded (failed)


def record_shake_test(
    session: Session, alert_id: str, lot_id: int, result: ShakeResult, by: str, now: float
) -> ShakeOutcome:
    """Record a lot's shake-test result and move its doses in the alert's appliance: the exposed doses
    still available there are quarantined first (for this alert), then the alert's quarantined doses
    are released (passed) or discarded with reason ``excursion`` (failed). The same result again changes
    nothing; another result than the one recorded is refused (``ImpactError``)."""
    row = session.scalars(
        select(AlertImpactRow).where(AlertImpactRow.alert_id == alert_id, AlertImpactRow.lot_id == lot_id)
    ).first()
    lot = session.get(VaccineLotRow, lot_id)
    if row is None or lot is None:
        raise ImpactError(f"lot {lot_id} was not in the appliance of alert {alert_id}")
    in_test = row.recommendation == Recommendation.quarantine_shake_test.value or row.shake_result
    if not in_test:
        raise ImpactError(f"lot {lot.lot_number} needs no shake test for alert {alert_id}")
    if row.shake_result == result.value:
        return ShakeOutcome(False, result, 0, row.shake_doses or 0)
    if row.shake_result is not None:
        raise ImpactError(f"lot {lot.lot_number}: the shake test was recorded as {row.shake_result} already")
    if not by:
        raise ImpactError("who did the shake test is required")
    place = (lot_id, row.clinic_id, row.equipment_id)
    now_there = stock(session, [row.clinic_id], until=now).get(place, Balance())
    held = _held_for(session, alert_id, place)
    target = min(row.doses_available + row.doses_quarantined, now_there.total)
    to_quarantine = min(max(0, target - held), now_there.available)

    def move(kind: Kind, doses: int, **kw: Any) -> None:
        m = Movement(
            lot_id, kind, row.clinic_id, row.equipment_id, doses, now, by,
            alert_id=alert_id, ident=f"shake:{alert_id}:{lot_id}:{kind.value}", **kw,
        )  # fmt: skip
        try:
            record(session, m, now)
        except StockError as exc:
            raise ImpactError(f"lot {lot.lot_number}: {exc}") from None

    if to_quarantine:
        move(Kind.quarantined, to_quarantine, reason=WasteReason.excursion.value)
    held += to_quarantine
    if held and result is ShakeResult.passed:
        move(Kind.released, held)
    elif held:
        move(Kind.discarded, held, quarantined=True, reason=WasteReason.excursion.value)
    row.shake_result, row.shake_by, row.shake_at, row.shake_doses = result.value, by, now, held
    session.flush()
    return ShakeOutcome(True, result, to_quarantine, held)


def _held_for(session: Session, alert_id: str, place: tuple[int, str, str]) -> int:
    """Doses of a lot in an appliance that are quarantined for this alert and not released or discarded
    since."""
    lot_id, clinic, equipment = place
    q = select(StockMovementRow).where(
        StockMovementRow.alert_id == alert_id,
        StockMovementRow.lot_id == lot_id,
        StockMovementRow.clinic_id == clinic,
        StockMovementRow.equipment_id == equipment,
    )
    held = 0
    for m in session.scalars(q):
        if m.kind == Kind.quarantined.value:
            held += m.doses
        elif m.kind == Kind.released.value or (m.kind == Kind.discarded.value and m.quarantined):
            held -= m.doses
    return max(0, held)


def shake_test_action(impact: AlertImpact, lang: str = EN) -> str | None:
    """The corrective action the shake test makes, once every lot has its result, its detail in the
    language of the person closing the alert (as a detail they typed would be):
    ``shake_test_done: HB1 passed, DT1 failed – discarded 20 doses`` /
    ``shake_test_done: HB1 通过，DT1 未通过（已销毁 20 剂）`` (None before)."""
    if not impact.shake_done:
        return None
    zh = normalize_lang(lang) == ZH
    parts = []
    for lot in impact.shake_lots:
        doses = lot.shake_doses or 0
        if lot.shake_result is ShakeResult.passed:
            parts.append(f"{lot.lot_number} 通过" if zh else f"{lot.lot_number} passed")
        else:
            parts.append(
                f"{lot.lot_number} 未通过（已销毁 {doses} 剂）"
                if zh
                else f"{lot.lot_number} failed – discarded {doses} doses"
            )
    return "shake_test_done: " + ("，" if zh else ", ").join(parts)


def close_after_shake_test(
    session: Session, alert_id: str, by: str, now: float, lang: str = EN
) -> list[AlertChange]:
    """Resolve the alert with the shake test's corrective action (``ImpactError`` while a lot has no
    result). An alert resolved already stays as it was resolved."""
    impact = alert_impact(session, alert_id)
    action = shake_test_action(impact, lang) if impact is not None else None
    if action is None:
        raise ImpactError(f"alert {alert_id}: record the shake test of every lot before closing it")
    return lifecycle.resolve(session, alert_id, by=by, corrective_action=action, now=now)
