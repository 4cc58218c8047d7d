"""The twice-daily temperature check over HTTP (issue 6; the rule in ``alerting.rules.checks``, the
records in ``alerting.checks_store``, docs/rules.md "twice_daily_check"), for clinic staff and the pages:

- ``POST /api/equipment/{id}/checks`` ``{"celsius": 4.6, "note": ..., "checked_at": ...}``: the person
  read the appliance's thermometer (``checked_at``: epoch seconds or ISO 8601, no offset: clinic time;
  default now; a paper record typed in later gives the time it was read). Recorded as the logged-in user
  (their registry person if linked, else ``user:<username>``) with ``record_check``, and audited
  (``equipment_check``). The same check sent again is not stored twice (``created`` false). Like
  acknowledging: the session's CSRF token in ``X-CSRF-Token``, clinic staff and district officers only
  (admins 403). A temperature that is not a number within −100…100 °C, a time more than 10 min ahead,
  an appliance without the check (a waste store): 422.
- ``GET /api/equipment/{id}/checks?start=&end=&limit=&offset=``: the checks made in [start, end)
  (default: the 31 days up to now), newest first, paginated ``{items, total, limit, offset}``.

An appliance outside the user's scope is 404, as if it did not exist (``web.auth``). ``today`` is the
pure part the clinic page shows: each of today's two slots done (by whom, when, what was read), due,
late, missed, or not open yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting.checks_store import (
    CELSIUS_MAX,
    CELSIUS_MIN,
    NOTE_MAX,
    CheckConflict,
    CheckError,
    EquipmentCheckRow,
    record_check,
)
from alerting.rules.checks import CheckMachine, CheckSettings, Slot, applies_to, check_settings, day_record
from core.clinic_time import DAY_S, day_number, day_start
from core.db import EquipmentRow, PersonRow
from core.profiles import profile_settings
from core.registry_store import profile_overrides
from web.api_alerts import ERRORS, ID_MAX, LIMIT_DEFAULT, LIMIT_MAX, ActUser, ApiError, EquipmentId, instant
from web.app import ClockDep, SessionDep
from web.auth import CurrentUser, User, audit, can_see_clinic

router = APIRouter(prefix="/api", tags=["checks"])

DEFAULT_SPAN_S = 31 * 86400.0
RECORD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ApiError, "description": "missing CSRF token, or a role that does not record checks"},
    409: {"model": ApiError, "description": "the same check (person, time) is recorded with another reading"},
}


# ---------------------------------------------------------------- models


class CheckIn(BaseModel):
    celsius: float = Field(
        ge=CELSIUS_MIN, le=CELSIUS_MAX, allow_inf_nan=False, description="what the thermometer showed, °C"
    )
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    checked_at: str | None = Field(
        default=None,
        max_length=40,
        description="when it was read: epoch seconds or ISO 8601 (no offset: clinic time); default now",
    )


class CheckOut(BaseModel):
    id: int
    equipment: str
    clinic: str
    checked_at: float = Field(description="when the person read the thermometer, epoch seconds")
    recorded_at: float = Field(description="when the system stored it")
    person: str = Field(description="registry person id, or user:<username>")
    person_name: str
    celsius: float | None
    note: str | None


class RecordOut(BaseModel):
    created: bool = Field(description="false: the same check was already recorded")
    check: CheckOut


class CheckPage(BaseModel):
    items: list[CheckOut]
    total: int
    limit: int
    offset: int


# ---------------------------------------------------------------- endpoints


@router.post("/equipment/{equipment_id}/checks", response_model=RecordOut, responses=RECORD_ERRORS)
def record(
    equipment_id: EquipmentId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    body: CheckIn,
) -> RecordOut:
    """Record a twice-daily check: the temperature the person read on the appliance's thermometer."""
    now = clock.now()
    equipment = _equipment_or_404(session, user, equipment_id)
    if not _checked(session, equipment):
        raise HTTPException(422, f"{equipment.id} ({equipment.profile}) has no twice-daily check")
    at = instant("checked_at", body.checked_at) if body.checked_at is not None else now
    args = (equipment.id, equipment.clinic_id, user.actor, at, body.celsius, body.note, now)
    try:
        try:
            done = record_check(session, *args)
        except IntegrityError:  # the same check stored by a concurrent request: that row is the answer
            session.rollback()
            done = record_check(session, *args)
    except CheckConflict as exc:
        session.rollback()
        raise HTTPException(409, str(exc)) from None
    except CheckError as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    row = done.row
    detail = {
        "created": done.created,
        "check_id": row.id,
        "by": user.actor,
        "checked_at": row.checked_at,
        "celsius": row.celsius,
        "note": row.note,
    }
    audit(session, request, user, now, "equipment_check", "equipment", equipment.id, detail)
    session.commit()
    return RecordOut(created=done.created, check=_out(row, _people(session)))


@router.get("/equipment/{equipment_id}/checks", response_model=CheckPage, responses=ERRORS)
def list_checks(
    equipment_id: EquipmentId,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    start: Annotated[
        str | None,
        Query(
            max_length=40,
            description="epoch seconds or ISO 8601 (no offset: clinic time); default end - 31 d",
        ),
    ] = None,
    end: Annotated[str | None, Query(max_length=40, description="as start; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CheckPage:
    """The appliance's checks made in [start, end), newest first."""
    equipment = _equipment_or_404(session, user, equipment_id)
    hi = instant("end", end) if end is not None else clock.now()
    lo = instant("start", start) if start is not None else hi - DEFAULT_SPAN_S
    if lo >= hi:
        raise HTTPException(422, "start is not before end")
    q = select(EquipmentCheckRow).where(
        EquipmentCheckRow.equipment_id == equipment.id,
        EquipmentCheckRow.checked_at >= lo,
        EquipmentCheckRow.checked_at < hi,
    )
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(EquipmentCheckRow.checked_at.desc(), EquipmentCheckRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    people = _people(session)
    return CheckPage(items=[_out(r, people) for r in rows], total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------- today's slots (for web.pages)

SlotState = Literal["done", "due", "late", "missed", "later"]


@dataclass(frozen=True, slots=True)
class SlotStatus:
    """One of today's slots: ``done`` (``check`` is the one that counts), ``due`` (open, before its due
    time), ``late`` (open, past its due time), ``missed`` (ended without a check) or ``later`` (a check
    now would not count yet: the afternoon before 12:00 or before the morning check + the minimum gap)."""

    slot: Slot
    state: SlotState
    opens: float  # from when a check counts for this slot (epoch s)
    due: float  # when the reminder comes
    end: float  # when the slot ends
    check: EquipmentCheckRow | None


def today(rows: Sequence[EquipmentCheckRow], now: float, settings: CheckSettings) -> list[SlotStatus]:
    """Today's (clinic time) morning and afternoon slots, judged as the record stands now (a check
    recorded late counts, as in the monthly record)."""
    day = day_number(now)
    start = day_start(day)
    checks = [r.as_check() for r in rows]
    record = day_record(checks, day, settings)
    machine = CheckMachine("", settings)
    out = []
    for slot, found in ((Slot.morning, record.morning), (Slot.afternoon, record.afternoon)):
        due, end = machine.due_and_end(day, slot, checks)
        opens = float(start)
        if slot is Slot.afternoon:
            opens = start + DAY_S / 2
            if record.morning is not None:
                opens = max(opens, record.morning.time + settings.min_gap_s)
        row = next(
            (r for r in rows if found and (r.checked_at, r.person_id) == (found.time, found.person)), None
        )
        state: SlotState
        if found is not None:
            state = "done"
        elif now >= end:
            state = "missed"
        elif now < opens:
            state = "later"
        else:
            state = "late" if now >= due else "due"
        out.append(SlotStatus(slot, state, opens, due, end, row))
    return out


def check_settings_of(session: Session, profile: str) -> CheckSettings | None:
    """The check settings of an appliance of ``profile``; None: it has no twice-daily check."""
    if not applies_to(profile):
        return None
    try:
        settings = check_settings(
            profile_settings(profile, profile_overrides(cast(Engine, session.get_bind())))
        )
    except ValueError:
        return None
    return settings if settings.enabled else None


def parse_celsius(text: str) -> float | None:
    """A thermometer reading as typed ("4.6", "4,6", "−18"); None if it is not a number within
    −100…100 °C."""
    cleaned = text.strip().replace(",", ".").replace("\u2212", "-").removesuffix("°C").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) and CELSIUS_MIN <= value <= CELSIUS_MAX else None


# ---------------------------------------------------------------- helpers


def _equipment_or_404(session: Session, user: User, equipment_id: str) -> EquipmentRow:
    equipment = session.get(EquipmentRow, equipment_id[:ID_MAX])
    if equipment is None or not can_see_clinic(session, user, equipment.clinic_id):
        raise HTTPException(404, f"no equipment {equipment_id!r}")
    return equipment


def _checked(session: Session, equipment: EquipmentRow) -> bool:
    return check_settings_of(session, equipment.profile) is not None


def _people(session: Session) -> dict[str, str]:
    return {p.id: p.name for p in session.scalars(select(PersonRow))}


def _out(r: EquipmentCheckRow, people: dict[str, str]) -> CheckOut:
    return CheckOut(
        id=r.id,
        equipment=r.equipment_id,
        clinic=r.clinic_id,
        checked_at=r.checked_at,
        recorded_at=r.recorded_at,
        person=r.person_id,
        person_name=people.get(r.person_id, r.person_id),
        celsius=r.celsius,
        note=r.note,
    )
