"""Recorded twice-daily temperature checks (SQLAlchemy 2, on ``core.db.Base``): who read which
appliance's thermometer when, and what it showed.

``record_check`` is the API call that records a check: the web issue's ``POST`` for a check calls it
(after confirming that the equipment exists and belongs to the clinic, which is the caller's job: the
registry is not consulted here). ``checks_between`` is what the rule (``alerting.rules.checks``) and the
monthly report read. Importing this module registers the ``equipment_check`` table on ``core.db.Base``,
so ``core.db.init_db`` creates it; ``init_check_tables`` creates just this one.

Layout: one row per check, never updated or deleted (records are kept at least 5 years after the
vaccines expire, DESIGN §5). ``checked_at`` is when the person read the thermometer, ``recorded_at``
when the system stored it: a check written on paper and typed in later keeps both, and the reminders
count it from ``recorded_at`` (see ``alerting.rules.checks``). Times are epoch seconds as DOUBLE
PRECISION, ``checked_at`` rounded to the millisecond. (equipment, person, checked_at) is UNIQUE: the
same check sent twice (a retried request, a double tap) is one row. No foreign key to the registry, as
for alerts: reloading the registry replaces its rows, the records stay.

Plain functions over a ``Session``: they add and flush, the caller commits. Two concurrent requests
for the same new check: one gets an ``IntegrityError`` on the unique constraint; rolling back and
calling ``record_check`` again returns the row the other stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Double, Engine, Index, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.rules.checks import Check
from core.db import Base, create_tables

FUTURE_TOLERANCE_S = 600.0  # a phone's clock may run a little ahead; more is a typing error
ID_MAX = 64
NOTE_MAX = 1000
CELSIUS_MIN, CELSIUS_MAX = -100.0, 100.0  # what a thermometer on a vaccine appliance can show at all
SYSTEM = "system"  # reserved for changes the rules make: a check is made by a person


class EquipmentCheckRow(Base):
    __tablename__ = "equipment_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    equipment_id: Mapped[str] = mapped_column(String(ID_MAX))
    clinic_id: Mapped[str] = mapped_column(String(ID_MAX))
    checked_at: Mapped[float] = mapped_column(Double)
    person_id: Mapped[str] = mapped_column(String(ID_MAX))
    celsius: Mapped[float | None] = mapped_column(Double, nullable=True)  # what the person read
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("equipment_id", "person_id", "checked_at", name="uq_equipment_check"),
        Index("ix_equipment_check_at", "equipment_id", "checked_at"),
        Index("ix_equipment_check_clinic_at", "clinic_id", "checked_at"),
    )

    def as_check(self) -> Check:
        """The check as the rule takes it."""
        return Check(self.checked_at, self.person_id, self.recorded_at)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "equipment_id": self.equipment_id,
            "clinic_id": self.clinic_id,
            "checked_at": self.checked_at,
            "person_id": self.person_id,
            "celsius": self.celsius,
            "note": self.note,
            "recorded_at": self.recorded_at,
        }


CHECK_TABLE_NAMES = ("equipment_check",)


def init_check_tables(engine: Engine) -> None:
    """Create the check table (and nothing else) if it does not exist yet."""
    create_tables(engine, [Base.metadata.tables[name] for name in CHECK_TABLE_NAMES])


class CheckError(ValueError):
    """A check that cannot be recorded; the message says why (for the API's 4xx answer)."""


class CheckInFuture(CheckError):
    def __init__(self, checked_at: float, now: float) -> None:
        super().__init__(
            f"checked_at is {checked_at - now:.0f} s in the future (at most {FUTURE_TOLERANCE_S:.0f} s "
            "allowed): check the phone's clock"
        )
        self.checked_at = checked_at
        self.now = now


class CheckConflict(CheckError):
    """The same check (equipment, person, time) is already recorded with other content."""

    def __init__(self, existing: EquipmentCheckRow) -> None:
        super().__init__(
            f"a check of {existing.equipment_id} by {existing.person_id} at {existing.checked_at:.3f} is "
            f"already recorded (id {existing.id}, {existing.celsius} °C, note {existing.note!r}); "
            "records are not changed: record a new check with a note instead"
        )
        self.existing = existing


@dataclass(frozen=True, slots=True)
class Recorded:
    row: EquipmentCheckRow
    created: bool  # False: the same check was already recorded (an idempotent repeat)


def record_check(
    session: Session,
    equipment_id: str,
    clinic_id: str,
    person_id: str,
    checked_at: float,
    celsius: float | None,
    note: str | None,
    now: float,
) -> Recorded:
    """Record that ``person_id`` read ``equipment_id``'s thermometer at ``checked_at`` (epoch s) and saw
    ``celsius`` (None: not noted). This is the API call that records a check.

    The caller has checked that the equipment exists and belongs to ``clinic_id``. Raises
    ``CheckError`` for a missing or too long id, a time that is not a number, a reading that is not a
    temperature, and ``CheckInFuture`` for a check more than 10 min after ``now``. The same check again
    (same equipment, person and ``checked_at``, same reading and note) returns the stored row with
    ``created`` False; the same key with a different reading or note raises ``CheckConflict``. A check
    in the past is accepted (a paper record typed in later): ``recorded_at`` = ``now`` says when."""
    equipment = _ident("equipment_id", equipment_id)
    clinic = _ident("clinic_id", clinic_id)
    person = _ident("person_id", person_id)
    if person == SYSTEM:
        raise CheckError(f"person_id {SYSTEM!r} is reserved: a check is made by a person")
    at = _time("checked_at", checked_at)
    recorded = _time("now", now)
    if at > recorded + FUTURE_TOLERANCE_S:
        raise CheckInFuture(at, recorded)
    reading = _celsius(celsius)
    text = (note or "").strip() or None
    if text is not None and len(text) > NOTE_MAX:
        raise CheckError(f"note longer than {NOTE_MAX} characters")

    existing = session.scalars(
        select(EquipmentCheckRow).where(
            EquipmentCheckRow.equipment_id == equipment,
            EquipmentCheckRow.person_id == person,
            EquipmentCheckRow.checked_at == at,
        )
    ).first()
    if existing is not None:
        if (existing.clinic_id, existing.celsius, existing.note) != (clinic, reading, text):
            raise CheckConflict(existing)
        return Recorded(existing, False)
    row = EquipmentCheckRow(
        equipment_id=equipment,
        clinic_id=clinic,
        checked_at=at,
        person_id=person,
        celsius=reading,
        note=text,
        recorded_at=recorded,
    )
    session.add(row)
    session.flush()
    return Recorded(row, True)


def checks_between(session: Session, equipment_id: str, start: float, end: float) -> list[EquipmentCheckRow]:
    """The checks of ``equipment_id`` made in [start, end) (epoch s), oldest first."""
    q = (
        select(EquipmentCheckRow)
        .where(
            EquipmentCheckRow.equipment_id == equipment_id,
            EquipmentCheckRow.checked_at >= start,
            EquipmentCheckRow.checked_at < end,
        )
        .order_by(EquipmentCheckRow.checked_at, EquipmentCheckRow.id)
    )
    return list(session.scalars(q))


def _ident(name: str, value: str) -> str:
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        raise CheckError(f"{name} is required")
    if len(text) > ID_MAX:
        raise CheckError(f"{name} longer than {ID_MAX} characters")
    return text


def _time(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CheckError(f"{name} must be epoch seconds (got {value!r:.40})")
    return round(float(value), 3)


def _celsius(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CheckError(f"celsius must be a number or null (got {value!r:.40})")
    if not CELSIUS_MIN <= value <= CELSIUS_MAX:
        raise CheckError(f"celsius {value} is not a thermometer reading ({CELSIUS_MIN:g}…{CELSIUS_MAX:g} °C)")
    return float(value)
