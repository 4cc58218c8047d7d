"""The alerts REST API (DESIGN §6), JSON under ``/api``, every endpoint behind a login and scoped:

- ``GET /api/alerts?state=&clinic=&severity=&rule=&limit=&offset=``: the alerts the user may see,
  newest first, paginated ``{items, total, limit, offset}``; ``state=open`` is firing or acknowledged.
- ``GET /api/alerts/{id}``: an alert with its history.
- ``POST /api/alerts/{id}/ack`` ``{"note": ...}`` and ``POST /api/alerts/{id}/resolve``
  ``{"corrective_action": "<preset>", "detail": ...}``: as the logged-in user (their registry person if
  linked, else ``user:<username>``), with the session's CSRF token in ``X-CSRF-Token``; clinic staff and
  district officers only. A critical cold-chain alert cannot be resolved without a corrective action
  (422). The alert records the action as ``<preset>`` or ``<preset>: <detail>``. Both are idempotent
  (``changed`` says whether anything changed) and both go to the audit log.
- ``GET /api/clinics/{id}/status``: each appliance with its latest temperature (InfluxDB), its allowed
  range (profile) and its state from the open alerts (red: an open critical alert whose condition is
  still on; amber: any other open warning or critical alert; green: none) -- or amber when the latest
  reading is outside the range and no such alert is open yet (the rules wait before alarming), with
  ``out_of_range_since`` the first reading of that run (looked for up to 24 h back) -- and the clinic's
  open alerts. InfluxDB down: the same answer with the temperatures null and ``influx_error`` saying
  why.
- ``GET /api/equipment/{id}/temperature?start=&end=``: mean, min and max per time bucket over at most 31
  days, at most 1,500 buckets (InfluxQL ``GROUP BY time(...)``). InfluxDB down: 503.
- ``GET /api/deadletters``: messages the collector rejected, newest first (admins only).

Anything outside the user's scope is 404, as if it did not exist (``web.auth``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from alerting import lifecycle
from alerting.impact import AlertImpact, alert_impact
from alerting.rules.temperature import DS18B20_CODES
from alerting.rules.types import Rule, Severity
from alerting.store import AlertRow, AlertState
from core.clinic_time import CLINIC_TZ
from core.db import ClinicRow, DeadLetterRow, EquipmentRow, TownshipRow
from core.influx import InfluxClient, InfluxError
from core.lineprotocol import quote_literal
from core.profiles import ProfileSettings, profile_settings
from core.registry_store import profile_overrides
from web.app import ClockDep, InfluxDep, SessionDep
from web.auth import AdminUser, CsrfUser, CurrentUser, User, audit, can_see_clinic, visible_clinics
from web.users import Role

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # a bare date in a query: its start, or end_of_day

router = APIRouter(prefix="/api", tags=["alerts"])

LIMIT_DEFAULT = 50
LIMIT_MAX = 500
ID_MAX = 64
NOTE_MAX = 500
DETAIL_MAX = 1000
MAX_SPAN_S = 31 * 86400.0
DEFAULT_SPAN_S = 24 * 3600.0
MAX_POINTS = 1500
PAYLOAD_SHOWN = 2000  # characters of a dead letter's payload
SINCE_LOOKBACK_S = 24 * 3600.0  # how far back "out of range since" looks for the last reading in range
ACT_ROLES = frozenset({Role.clinic_staff, Role.district_officer})  # who acknowledges and resolves
OPEN_STATES = (AlertState.firing.value, AlertState.acknowledged.value)

AlertId = Annotated[str, Path(max_length=ID_MAX, description="alert id", examples=["A-20261126-0001"])]
ClinicId = Annotated[str, Path(max_length=ID_MAX, examples=["qingshui-thc"])]
EquipmentId = Annotated[str, Path(max_length=ID_MAX, examples=["qingshui-fridge1"])]


class CorrectiveAction(StrEnum):
    moved_vaccines = "moved_vaccines"  # moved the vaccines to a backup appliance
    called_technician = "called_technician"
    power_restored = "power_restored"
    shake_test_done = "shake_test_done"  # the detail says the result
    stock_quarantined = "stock_quarantined"  # the detail gives the lot numbers
    stock_discarded = "stock_discarded"  # the detail gives the lot numbers
    other = "other"  # the detail says what


# ---------------------------------------------------------------- models


class ApiError(BaseModel):
    error: str = Field(examples=["not_found"])
    detail: str = Field(examples=["no alert 'A-20261126-0001'"])


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ApiError, "description": "not logged in"},
    404: {"model": ApiError, "description": "unknown id, or outside the user's scope"},
    422: {"model": ApiError, "description": "bad parameters"},
}
ACT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ApiError, "description": "missing CSRF token, or a role that does not act on alerts"},
}


class AlertOut(BaseModel):
    id: str
    rule: str
    family: str
    subject: str
    clinic: str | None
    severity: str
    state: str = Field(description="firing, acknowledged or resolved")
    started_at: float
    last_change_at: float
    condition_cleared_at: float | None
    acknowledged_by: str | None
    acknowledged_at: float | None
    acknowledged_note: str | None
    resolved_by: str | None
    resolved_at: float | None
    resolution: str | None = Field(description="auto, corrective_action or manual")
    corrective_action: str | None
    message: str = Field(description="zh-CN")
    message_en: str
    values: dict[str, Any]
    needs_corrective_action: bool = Field(description="a critical cold-chain alert: resolving needs one")


class AlertEventOut(BaseModel):
    at: float
    recorded_at: float
    kind: str
    by: str
    note: str | None
    rule: str
    severity: str
    state: str
    values: dict[str, Any] | None


class AlertDetail(AlertOut):
    history: list[AlertEventOut]
    impact: AlertImpact | None = Field(
        default=None,
        description="a heat or freeze alarm: the vaccine lots inside its appliance at its start, their "
        "doses, exposure, the recommendation with its reasons and the shake-test results (alerting.impact)",
    )


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class AckIn(BaseModel):
    note: str | None = Field(default=None, max_length=NOTE_MAX)


class ResolveIn(BaseModel):
    corrective_action: CorrectiveAction | None = Field(
        default=None, description="what was done; required for a critical cold-chain alert"
    )
    detail: str | None = Field(
        default=None, max_length=DETAIL_MAX, description="shake test result, lot numbers, what 'other' was"
    )


class ActionOut(BaseModel):
    changed: bool = Field(description="false: the alert was already acknowledged / resolved")
    alert: AlertDetail


class EquipmentStatus(BaseModel):
    id: str
    name: str
    profile: str
    device: str
    celsius: float | None = Field(description="the latest reading; null if none or InfluxDB is down")
    reading_at: float | None
    age_s: float | None = Field(description="seconds since the latest reading, by the server clock")
    low_c: float | None = Field(description="the allowed range (its profile); null: none (waste store)")
    high_c: float | None
    state: Literal["green", "amber", "red"]
    out_of_range_since: float | None = Field(
        description="the latest reading is outside the range and no warning or critical alert is open: "
        "the first reading of that run (at most 24 h back)"
    )
    open_alerts: list[str]


class ClinicStatus(BaseModel):
    clinic: str
    clinic_name: str
    township: str
    township_name: str | None
    district: str | None
    now: float
    state: Literal["green", "amber", "red"]
    equipment: list[EquipmentStatus]
    open_alerts: list[AlertOut]
    influx_error: str | None = Field(description="why the temperatures are missing, if InfluxDB failed")


class TemperaturePoint(BaseModel):
    t: float = Field(description="start of the bucket, epoch seconds")
    mean: float | None
    min: float | None
    max: float | None


class TemperatureSeries(BaseModel):
    equipment: str
    clinic: str
    profile: str
    start: float
    end: float
    interval_s: int
    points: list[TemperaturePoint]


class DeadLetterOut(BaseModel):
    id: int
    received_at: float
    topic: str
    reason: str
    detail: str
    size: int = Field(description="payload bytes")
    payload: str = Field(description=f"the payload as UTF-8 (invalid bytes replaced), first {PAYLOAD_SHOWN}")
    truncated: bool


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    total: int
    limit: int
    offset: int


# ---------------------------------------------------------------- alerts


def _act_user(user: CsrfUser) -> User:
    if user.role not in ACT_ROLES:
        raise HTTPException(
            403, "administrators do not acknowledge or resolve alerts: clinic staff and district officers do"
        )
    return user


ActUser = Annotated[User, Depends(_act_user)]


@router.get("/alerts", response_model=AlertPage, responses=ERRORS)
def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    state: Annotated[
        Literal["firing", "acknowledged", "resolved", "open"] | None,
        Query(description="open: firing or acknowledged"),
    ] = None,
    clinic: Annotated[str | None, Query(max_length=ID_MAX)] = None,
    severity: Severity | None = None,
    rule: Rule | None = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlertPage:
    """The alerts in the user's scope, newest first (by start)."""
    q = select(AlertRow)
    if state == "open":
        q = q.where(AlertRow.state.in_(OPEN_STATES))
    elif state is not None:
        q = q.where(AlertRow.state == state)
    if clinic is not None:
        _clinic_or_404(session, user, clinic)
        q = q.where(AlertRow.clinic == clinic)
    seen = visible_clinics(session, user)
    if seen is not None:
        q = q.where(AlertRow.clinic.in_(sorted(seen)))
    if severity is not None:
        q = q.where(AlertRow.severity == severity.value)
    if rule is not None:
        q = q.where(AlertRow.rule == rule.value)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(AlertRow.started_at.desc(), AlertRow.id.desc()).limit(limit).offset(offset)
    )
    return AlertPage(items=[_alert(a) for a in rows], total=total, limit=limit, offset=offset)


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses=ERRORS)
def get_alert(alert_id: AlertId, session: SessionDep, user: CurrentUser) -> AlertDetail:
    """An alert and its history, oldest first."""
    return _detail(session, _alert_or_404(session, user, alert_id))


@router.post("/alerts/{alert_id}/ack", response_model=ActionOut, responses=ACT_ERRORS)
def acknowledge(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    body: Annotated[AckIn | None, Body()] = None,
) -> ActionOut:
    """Acknowledge a firing alert (nothing changes for one already acknowledged or resolved)."""
    now = clock.now()
    note = body.note if body else None
    lock_alert(session, alert_id)
    alert = _alert_or_404(session, user, alert_id)
    changes = lifecycle.acknowledge(session, alert.id, by=user.actor, note=note, now=now)
    detail = {"changed": bool(changes), "by": user.actor, "note": (note or "").strip() or None}
    audit(session, request, user, now, "alert_ack", "alert", alert.id, detail)
    session.commit()
    return ActionOut(changed=bool(changes), alert=_detail(session, alert))


@router.post("/alerts/{alert_id}/resolve", response_model=ActionOut, responses=ACT_ERRORS)
def resolve(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    body: Annotated[ResolveIn | None, Body()] = None,
) -> ActionOut:
    """Close an alert, with the corrective action taken (required for a critical cold-chain alert)."""
    now = clock.now()
    body = body or ResolveIn()
    detail_text = (body.detail or "").strip() or None
    if body.corrective_action is None and detail_text is not None:
        raise HTTPException(422, "detail without a corrective_action: choose one (or 'other')")
    if body.corrective_action is CorrectiveAction.other and detail_text is None:
        raise HTTPException(422, "corrective_action 'other' needs a detail saying what was done")
    action = None
    if body.corrective_action is not None:
        action = body.corrective_action.value + (f": {detail_text}" if detail_text else "")
    lock_alert(session, alert_id)
    alert = _alert_or_404(session, user, alert_id)
    try:
        changes = lifecycle.resolve(session, alert.id, by=user.actor, corrective_action=action, now=now)
    except lifecycle.CorrectiveActionRequired as exc:
        raise HTTPException(422, str(exc)) from None
    info = {"changed": bool(changes), "by": user.actor, "corrective_action": action}
    audit(session, request, user, now, "alert_resolve", "alert", alert.id, info)
    session.commit()
    return ActionOut(changed=bool(changes), alert=_detail(session, alert))


# ---------------------------------------------------------------- clinics and equipment


@router.get("/clinics/{clinic_id}/status", response_model=ClinicStatus, responses=ERRORS)
def clinic_status(
    clinic_id: ClinicId, session: SessionDep, clock: ClockDep, influx: InfluxDep, user: CurrentUser
) -> ClinicStatus:
    """Each appliance with its latest temperature and state, and the clinic's open alerts."""
    clinic = _clinic_or_404(session, user, clinic_id)
    now = clock.now()
    township = session.get(TownshipRow, clinic.township_id)
    equipment = list(
        session.scalars(
            select(EquipmentRow).where(EquipmentRow.clinic_id == clinic.id).order_by(EquipmentRow.id)
        )
    )
    alerts = list(
        session.scalars(
            select(AlertRow)
            .where(AlertRow.clinic == clinic.id, AlertRow.state.in_(OPEN_STATES))
            .order_by(AlertRow.started_at.desc(), AlertRow.id.desc())
        )
    )
    latest: dict[str, tuple[float, float]] = {}
    influx_error = None
    try:
        latest = _latest_temperatures(influx, clinic.id)
    except InfluxError as exc:
        influx_error = f"temperatures unavailable: {exc}"
    overrides = profile_overrides(cast(Engine, session.get_bind()))
    items = []
    for e in equipment:
        mine = [a for a in alerts if a.subject in (e.id, e.device_id)]
        reading = latest.get(e.id)
        settings = _profile(e.profile, overrides)
        low, high = (settings.low_c, settings.high_c) if settings else (None, None)
        state = _state(mine)
        since = None
        if (
            state == "green"
            and reading is not None
            and settings is not None
            and _out_of_range(reading[1], settings)
        ):
            try:
                since = _out_of_range_since(influx, e.id, reading[0], settings)
            except InfluxError as exc:
                influx_error = f"temperatures unavailable: {exc}"
                since = reading[0]  # at least since the latest reading
            state = "amber"
        items.append(
            EquipmentStatus(
                id=e.id,
                name=e.name,
                profile=e.profile,
                device=e.device_id,
                celsius=reading[1] if reading else None,
                reading_at=reading[0] if reading else None,
                age_s=round(now - reading[0], 1) if reading else None,
                low_c=low,
                high_c=high,
                state=state,
                out_of_range_since=since,
                open_alerts=[a.id for a in mine],
            )
        )
    return ClinicStatus(
        clinic=clinic.id,
        clinic_name=clinic.name,
        township=clinic.township_id,
        township_name=township.name if township else None,
        district=township.district_id if township else None,
        now=now,
        state=_worst([_state(alerts), *(i.state for i in items)]),
        equipment=items,
        open_alerts=[_alert(a) for a in alerts],
        influx_error=influx_error,
    )


@router.get(
    "/equipment/{equipment_id}/temperature",
    response_model=TemperatureSeries,
    responses={**ERRORS, 503: {"model": ApiError, "description": "InfluxDB unavailable"}},
)
def temperature(
    equipment_id: EquipmentId,
    session: SessionDep,
    clock: ClockDep,
    influx: InfluxDep,
    user: CurrentUser,
    start: Annotated[
        str | None,
        Query(
            max_length=40,
            description="epoch seconds or ISO 8601 (no offset: clinic time, UTC+8); default end - 24 h",
        ),
    ] = None,
    end: Annotated[str | None, Query(max_length=40, description="as start; default now")] = None,
) -> TemperatureSeries:
    """Mean, min and max temperature per bucket from ``start`` to ``end`` (at most 31 days), in at most
    1,500 buckets; buckets without readings are left out."""
    equipment = session.get(EquipmentRow, equipment_id)
    if equipment is None or not can_see_clinic(session, user, equipment.clinic_id):
        raise HTTPException(404, f"no equipment {equipment_id!r}")
    hi = instant("end", end) if end is not None else clock.now()
    lo = instant("start", start) if start is not None else hi - DEFAULT_SPAN_S
    if lo >= hi:
        raise HTTPException(422, "start is not before end")
    if hi - lo > MAX_SPAN_S:
        raise HTTPException(422, f"the range is {(hi - lo) / 86400:.1f} days: at most 31")
    interval = max(1, math.ceil((hi - lo) / (MAX_POINTS - 1)))  # buckets aligned to the epoch: +1 at most
    try:
        points = temperature_points(influx, equipment.id, lo, hi, interval)
    except InfluxError as exc:
        raise HTTPException(503, f"temperatures unavailable: {exc}") from None
    return TemperatureSeries(
        equipment=equipment.id,
        clinic=equipment.clinic_id,
        profile=equipment.profile,
        start=lo,
        end=hi,
        interval_s=interval,
        points=points[:MAX_POINTS],
    )


# ---------------------------------------------------------------- dead letters


@router.get("/deadletters", response_model=DeadLetterPage, responses={**ERRORS, 403: {"model": ApiError}})
def deadletters(
    session: SessionDep,
    user: AdminUser,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeadLetterPage:
    """Messages the collector rejected, newest first, with why (admins only)."""
    q = select(DeadLetterRow)
    if reason is not None:
        q = q.where(DeadLetterRow.reason == reason)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(DeadLetterRow.received_at.desc(), DeadLetterRow.id.desc()).limit(limit).offset(offset)
    )
    items = []
    for r in rows:
        payload = bytes(r.payload or b"")
        shown = payload.decode("utf-8", errors="replace")
        at = r.received_at if r.received_at.tzinfo else r.received_at.replace(tzinfo=UTC)
        items.append(
            DeadLetterOut(
                id=r.id,
                received_at=at.timestamp(),
                topic=r.topic,
                reason=r.reason,
                detail=r.detail,
                size=len(payload),
                payload=shown[:PAYLOAD_SHOWN],
                truncated=len(shown) > PAYLOAD_SHOWN,
            )
        )
    return DeadLetterPage(items=items, total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------- public wrappers (for web.pages)


def temperature_points(
    influx: InfluxClient, equipment_id: str, lo: float, hi: float, interval_s: int
) -> list[TemperaturePoint]:
    """Mean, min and max of ``equipment_id``'s readings per ``interval_s`` bucket (aligned to the
    epoch) in [lo, hi), oldest first; buckets without readings are left out. Raises ``InfluxError``."""
    q = (
        'SELECT mean("celsius"), min("celsius"), max("celsius") FROM "temperature" '
        f'WHERE "equipment" = {quote_literal(equipment_id)} '
        f"AND time >= {int(lo * 1e9)} AND time < {int(hi * 1e9)} "
        f"GROUP BY time({interval_s}s) fill(none)"
    )
    points = []
    for s in influx.query(q):
        for row in s.get("values", []):
            t_ms, mean, lo_c, hi_c = [*row, None, None, None, None][:4]
            if t_ms is None:
                continue
            points.append(TemperaturePoint(t=t_ms / 1000, mean=_num(mean), min=_num(lo_c), max=_num(hi_c)))
    points.sort(key=lambda p: p.t)
    return points


def clinic_or_404(session: Session, user: User, clinic_id: str) -> ClinicRow:
    """The clinic, if the user may see it; else ``HTTPException(404)``."""
    return _clinic_or_404(session, user, clinic_id)


def alert_state(alerts: list[AlertRow]) -> Literal["green", "amber", "red"]:
    """The colour of an appliance or clinic with these open alerts (as ``GET .../status`` gives it)."""
    return _state(alerts)


def alert_out(a: AlertRow) -> AlertOut:
    """An alert as the API shows it."""
    return _alert(a)


def instant(name: str, value: str, *, end_of_day: bool = False) -> float:
    """Epoch seconds from a query value: epoch seconds, a date (YYYY-MM-DD: its start in clinic time, or
    with ``end_of_day`` the start of the next day) or an ISO 8601 date-time (no offset: clinic time);
    anything else is a 422 that says what is accepted."""
    v = value.strip()
    try:
        seconds = float(v)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or abs(seconds) > 1e11:
            raise HTTPException(422, f"{name}: {value!r} is not a time")
        return seconds
    try:
        t = datetime.fromisoformat(v)
        if end_of_day and _DATE.fullmatch(v):
            t += timedelta(days=1)
        return (t if t.tzinfo else t.replace(tzinfo=CLINIC_TZ)).astimezone(UTC).timestamp()
    except (ValueError, OverflowError):
        if _DATE.fullmatch(v):  # the shape of a date, but no such day (2026-02-30)
            raise HTTPException(422, f"{name}: {value!r} is not a date") from None
        raise HTTPException(
            422, f"{name}: {value!r} is not epoch seconds, a date (YYYY-MM-DD) or an ISO 8601 date-time"
        ) from None


# ---------------------------------------------------------------- helpers


def _clinic_or_404(session: Session, user: User, clinic_id: str) -> ClinicRow:
    clinic = session.get(ClinicRow, clinic_id)
    if clinic is None or not can_see_clinic(session, user, clinic.id):
        raise HTTPException(404, f"no clinic {clinic_id!r}")
    return clinic


def _alert_or_404(session: Session, user: User, alert_id: str) -> AlertRow:
    alert = session.get(AlertRow, alert_id)
    if alert is None or not can_see_clinic(session, user, alert.clinic):
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert


def _alert(a: AlertRow) -> AlertOut:
    return AlertOut.model_validate(
        {**a.as_json(), "needs_corrective_action": lifecycle.needs_corrective_action(a)}
    )


def _detail(session: Session, a: AlertRow) -> AlertDetail:
    events = [AlertEventOut.model_validate(e.as_json()) for e in lifecycle.history(session, a.id)]
    impact = alert_impact(session, a.id)
    return AlertDetail.model_validate({**_alert(a).model_dump(), "history": events, "impact": impact})


def _state(alerts: list[AlertRow]) -> Literal["green", "amber", "red"]:
    """red: an open critical alert whose condition is on; amber: any other open warning or critical."""
    if any(a.severity == Severity.critical.value and a.condition_cleared_at is None for a in alerts):
        return "red"
    if any(a.severity in (Severity.critical.value, Severity.warning.value) for a in alerts):
        return "amber"
    return "green"


def _worst(states: list[Literal["green", "amber", "red"]]) -> Literal["green", "amber", "red"]:
    return "red" if "red" in states else "amber" if "amber" in states else "green"


def _profile(name: str, overrides: dict[str, dict[str, Any]]) -> ProfileSettings | None:
    try:
        return profile_settings(name, overrides)
    except ValueError:
        return None


def _out_of_range(celsius: float, p: ProfileSettings) -> bool:
    """Outside the range as the rules mean it (strictly above high_c or below low_c); a reading the
    probe cannot give (a DS18B20 error code, outside its physical range) is a probe fault, not this."""
    if celsius in DS18B20_CODES or not p.probe_min_c <= celsius <= p.probe_max_c:
        return False
    return (p.high_c is not None and celsius > p.high_c) or (p.low_c is not None and celsius < p.low_c)


def _out_of_range_since(influx: InfluxClient, equipment_id: str, latest: float, p: ProfileSettings) -> float:
    """The first reading after the last one in range (looked for up to ``SINCE_LOOKBACK_S`` before the
    latest reading; none in range then: the first reading of that window)."""
    eq = quote_literal(equipment_id)
    lo_ns, hi_ns = int((latest - SINCE_LOOKBACK_S) * 1e9), int(latest * 1e9)
    in_range = " AND ".join(
        [
            *([f'"celsius" >= {p.low_c!r}'] if p.low_c is not None else []),
            *([f'"celsius" <= {p.high_c!r}'] if p.high_c is not None else []),
        ]
    )
    q = (
        f'SELECT last("celsius") FROM "temperature" WHERE "equipment" = {eq} '
        f"AND time >= {lo_ns} AND time <= {hi_ns} AND {in_range}"
    )
    last_in_ms = _first_ms(influx.query(q))
    after_ns = (last_in_ms + 1) * 1_000_000 if last_in_ms is not None else lo_ns  # readings are in ms
    q = (
        f'SELECT first("celsius") FROM "temperature" WHERE "equipment" = {eq} '
        f"AND time >= {after_ns} AND time <= {hi_ns}"
    )
    first_out_ms = _first_ms(influx.query(q))
    return first_out_ms / 1000 if first_out_ms is not None else latest


def _first_ms(series: list[dict[str, Any]]) -> int | None:
    """The time (epoch ms) of the first row of the first series."""
    for s in series:
        for row in s.get("values") or []:
            if row and isinstance(row[0], int | float) and not isinstance(row[0], bool):
                return int(row[0])
    return None


def out_of_range_clinics(session: Session, influx: InfluxClient, district_id: str) -> set[str]:
    """The district's clinics with an appliance whose latest reading is outside its range and that has
    no open warning or critical alert yet: amber on the district grid, as on the clinic page. One
    InfluxDB query for the whole district (raises InfluxError)."""
    q = (
        'SELECT last("celsius") FROM "temperature" '
        f'WHERE "district" = {quote_literal(district_id)} GROUP BY "clinic", "equipment"'
    )
    latest: dict[str, float] = {}
    for s in influx.query(q):
        equipment = (s.get("tags") or {}).get("equipment")
        values = s.get("values") or []
        c = _num([*values[-1], None, None][1]) if values else None
        if equipment and c is not None:
            latest[str(equipment)] = c
    if not latest:
        return set()
    rows = list(session.scalars(select(EquipmentRow).where(EquipmentRow.id.in_(sorted(latest)))))
    alerted = {
        (a.clinic, a.subject)
        for a in session.scalars(
            select(AlertRow).where(
                AlertRow.clinic.in_({e.clinic_id for e in rows}),
                AlertRow.state.in_(OPEN_STATES),
                AlertRow.severity.in_((Severity.critical.value, Severity.warning.value)),
            )
        )
    }
    overrides = profile_overrides(cast(Engine, session.get_bind()))
    out = set()
    for e in rows:
        p = _profile(e.profile, overrides)
        if p is None or (e.clinic_id, e.id) in alerted or (e.clinic_id, e.device_id) in alerted:
            continue
        if _out_of_range(latest[e.id], p):
            out.add(e.clinic_id)
    return out


def _latest_temperatures(influx: InfluxClient, clinic_id: str) -> dict[str, tuple[float, float]]:
    """equipment id -> (reading time, celsius) of the clinic's latest readings."""
    q = (
        'SELECT last("celsius") FROM "temperature" '
        f'WHERE "clinic" = {quote_literal(clinic_id)} GROUP BY "equipment"'
    )
    out: dict[str, tuple[float, float]] = {}
    for s in influx.query(q):
        equipment = (s.get("tags") or {}).get("equipment")
        values = s.get("values") or []
        if not equipment or not values:
            continue
        t_ms, celsius = [*values[-1], None, None][:2]
        c = _num(celsius)
        if t_ms is not None and c is not None:
            out[str(equipment)] = (float(t_ms) / 1000, c)
    return out


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def lock_alert(session: Session, alert_id: str) -> None:
    """Hold the alert until commit, so that two people acting on it at once are one change and one
    "already done by ...": on SQLite a write transaction, begun before anything is read (reads so far
    took none); elsewhere the row lock. The API, the SMS link page and the shake test all take it."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))
    else:
        session.get(AlertRow, alert_id, with_for_update=True, populate_existing=True)
