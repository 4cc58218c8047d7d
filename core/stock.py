"""Vaccine stock (issue 9): products, lots, and every movement of doses into, between and out of the
clinics' appliances. The one store that the exposure budget, the excursion impact, the shake-test
workflow, the reconciliation, the pages and the simulator all read and write.

Tables (on ``core.db.Base``; ``init_stock_tables`` creates them, and ``init_db`` does once this module
is imported):

- ``vaccine_product``: the catalogue (``core/vaccines.yaml``, loaded by ``ensure_products``): name in
  zh-CN and English, doses per vial, freeze-sensitive or not, WHO heat-stability category, VVM type
  (2 / 7 / 14 / 30, or none).
- ``vaccine_lot``: a lot of a product: lot number (unique per product), expiry date, manufacturer.
- ``stock_movement``: one row per movement, never updated or deleted (records are kept at least 5
  years after the vaccines expire, DESIGN §5). Doses are always a positive whole number; what a
  movement does to the stock depends on its ``kind``:

  =============  ==================================================================================
  received       + available doses in (clinic, equipment); ``source`` says from where (the district
                 CDC's store, a supplier)
  moved          available (or, with ``quarantined``, quarantined) doses from (clinic, equipment) to
                 (to_clinic, to_equipment), keeping their status; to another clinic it is an *issue*
  administered   − available doses (given to people); quarantined doses cannot be administered
  wasted         − available doses, with a ``reason`` (WASTE_REASONS)
  quarantined    available → quarantined in the same appliance (``alert_id``: the excursion)
  released       quarantined → available (e.g. after a passed shake test)
  discarded      − quarantined doses (or available ones, without ``quarantined``), with a reason
  =============  ==================================================================================

A movement has two times: ``at``, when it happened, and ``recorded_at``, when it was stored (a paper
record typed in later keeps both). The stock at any time is the movements up to then in ``at`` order
(``replay``); a movement that would make any balance negative at any time, earlier or later, is
refused with a ``StockError`` that says which and when, and nothing is stored. ``ident`` makes a
movement idempotent: the same ident again returns the stored row (a retried request, a double tap).

Plain functions over a ``Session``: they add and flush, the caller commits. ``replay`` and
``intervals`` are pure.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Boolean,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.clinic_time import stamp
from core.db import Base, create_tables

CATALOGUE = Path(__file__).with_name("vaccines.yaml")
ID_MAX = 64
LOT_MAX = 40
NOTE_MAX = 1000
DOSES_MAX = 1_000_000
LOT_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._/-]{0,39}")
VVM_TYPES = (2, 7, 14, 30)


class Kind(StrEnum):
    received = "received"
    moved = "moved"
    administered = "administered"
    wasted = "wasted"
    quarantined = "quarantined"
    released = "released"
    discarded = "discarded"


class WasteReason(StrEnum):
    opened_vial_expiry = "opened_vial_expiry"  # an opened multi-dose vial past its time
    broken = "broken"
    excursion = "excursion"  # damaged by heat or freezing
    expired = "expired"
    other = "other"


class StockError(ValueError):
    """A movement that cannot be recorded as asked; the message says why, in one line."""


# ---------------------------------------------------------------- tables


class VaccineProductRow(Base):
    __tablename__ = "vaccine_product"

    id: Mapped[str] = mapped_column(String(ID_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # zh-CN
    name_en: Mapped[str] = mapped_column(String(200))
    doses_per_vial: Mapped[int] = mapped_column(Integer)
    freeze_sensitive: Mapped[bool] = mapped_column(Boolean)
    heat_stability: Mapped[str | None] = mapped_column(String(32), nullable=True)  # WHO category
    vvm_type: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 2, 7, 14, 30


class VaccineLotRow(Base):
    __tablename__ = "vaccine_lot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("vaccine_product.id"))
    lot_number: Mapped[str] = mapped_column(String(LOT_MAX))
    expiry: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    manufacturer: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (UniqueConstraint("product_id", "lot_number", name="uq_lot_product_number"),)


class StockMovementRow(Base):
    __tablename__ = "stock_movement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ident: Mapped[str] = mapped_column(String(80), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("vaccine_lot.id"))
    kind: Mapped[str] = mapped_column(String(16))
    clinic_id: Mapped[str] = mapped_column(String(ID_MAX))
    equipment_id: Mapped[str] = mapped_column(String(ID_MAX))
    to_clinic_id: Mapped[str | None] = mapped_column(String(ID_MAX), nullable=True)
    to_equipment_id: Mapped[str | None] = mapped_column(String(ID_MAX), nullable=True)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)  # moved/discarded: quarantined doses
    doses: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)  # received: from where
    at: Mapped[float] = mapped_column(Double)
    recorded_at: Mapped[float] = mapped_column(Double)
    person_id: Mapped[str] = mapped_column(String(ID_MAX))
    alert_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_stock_movement_lot_at", "lot_id", "at"),
        Index("ix_stock_movement_clinic_at", "clinic_id", "at"),
        Index("ix_stock_movement_to_clinic", "to_clinic_id"),
    )


def init_stock_tables(engine: Engine) -> None:
    create_tables(
        engine,
        [VaccineProductRow.__table__, VaccineLotRow.__table__, StockMovementRow.__table__],  # type: ignore[list-item]
    )


# ---------------------------------------------------------------- the catalogue


def load_catalogue(path: Path = CATALOGUE) -> list[dict[str, Any]]:
    """The products of a catalogue YAML (a list under ``products``), checked."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for i, p in enumerate(doc.get("products") or []):
        where = f"{path.name}: products[{i}]"
        missing = {"id", "name", "name_en", "doses_per_vial", "freeze_sensitive"} - set(p)
        if missing:
            raise ValueError(f"{where}: missing {', '.join(sorted(missing))}")
        if p.get("vvm_type") is not None and p["vvm_type"] not in VVM_TYPES:
            raise ValueError(f"{where}: vvm_type {p['vvm_type']!r} is not one of 2, 7, 14, 30")
        if not isinstance(p["doses_per_vial"], int) or p["doses_per_vial"] < 1:
            raise ValueError(f"{where}: doses_per_vial must be a whole number of 1 or more")
        out.append(p)
    return out


def ensure_products(engine: Engine, path: Path = CATALOGUE) -> int:
    """Add the catalogue's products that the database lacks (existing rows are left as they are);
    returns how many were added."""
    init_stock_tables(engine)
    added = 0
    with Session(engine) as s, s.begin():
        have = set(s.scalars(select(VaccineProductRow.id)))
        for p in load_catalogue(path):
            if p["id"] in have:
                continue
            s.add(
                VaccineProductRow(
                    id=p["id"],
                    name=p["name"],
                    name_en=p["name_en"],
                    doses_per_vial=p["doses_per_vial"],
                    freeze_sensitive=bool(p["freeze_sensitive"]),
                    heat_stability=p.get("heat_stability"),
                    vvm_type=p.get("vvm_type"),
                )
            )
            added += 1
    return added


def lot(
    session: Session,
    product_id: str,
    lot_number: str,
    expiry: str | None = None,
    manufacturer: str | None = None,
) -> VaccineLotRow:
    """The lot ``lot_number`` of ``product_id``, added when new (then ``expiry`` is required). A lot
    that exists keeps its expiry: a different one given is an error (a typing mistake, or two lots)."""
    product = session.get(VaccineProductRow, product_id)
    if product is None:
        raise StockError(f"no vaccine product {product_id!r}")
    number = lot_number.strip().upper()
    if not LOT_RE.fullmatch(number):
        raise StockError(f"lot number {lot_number!r:.50} is not valid (letters, digits, . _ / -, up to 40)")
    row = session.scalars(
        select(VaccineLotRow).where(
            VaccineLotRow.product_id == product_id, VaccineLotRow.lot_number == number
        )
    ).first()
    if expiry is not None:
        try:
            expiry = date.fromisoformat(expiry).isoformat()
        except ValueError:
            raise StockError(f"expiry {expiry!r:.20} is not a date (YYYY-MM-DD)") from None
    if row is not None:
        if expiry is not None and expiry != row.expiry:
            raise StockError(f"lot {number} of {product_id} expires {row.expiry}, not {expiry}")
        return row
    if expiry is None:
        raise StockError(f"lot {number} of {product_id} is new: give its expiry date")
    row = VaccineLotRow(product_id=product_id, lot_number=number, expiry=expiry, manufacturer=manufacturer)
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------- movements


@dataclass(frozen=True, slots=True)
class Movement:
    """A movement as asked for (``record``), or as stored (``movement_of``)."""

    lot_id: int
    kind: Kind
    clinic_id: str
    equipment_id: str
    doses: int
    at: float
    person_id: str
    to_clinic_id: str | None = None
    to_equipment_id: str | None = None
    quarantined: bool = False
    reason: str | None = None
    source: str | None = None
    alert_id: str | None = None
    note: str | None = None
    ident: str | None = None  # None: one is made from the movement's content
    id: int = 0  # the stored row's id (0: not stored yet); orders movements at the same ``at``


Place = tuple[int, str, str]  # (lot id, clinic, equipment)


@dataclass(slots=True)
class Balance:
    available: int = 0
    quarantined: int = 0

    @property
    def total(self) -> int:
        return self.available + self.quarantined


def _effects(m: Movement) -> list[tuple[Place, int, int]]:
    """(place, Δavailable, Δquarantined) of one movement."""
    here: Place = (m.lot_id, m.clinic_id, m.equipment_id)
    n = m.doses
    if m.kind is Kind.received:
        return [(here, n, 0)]
    if m.kind is Kind.moved:
        there: Place = (m.lot_id, m.to_clinic_id or m.clinic_id, m.to_equipment_id or "")
        if m.quarantined:
            return [(here, 0, -n), (there, 0, n)]
        return [(here, -n, 0), (there, n, 0)]
    if m.kind in (Kind.administered, Kind.wasted):
        return [(here, -n, 0)]
    if m.kind is Kind.quarantined:
        return [(here, -n, n)]
    if m.kind is Kind.released:
        return [(here, n, -n)]
    if m.kind is Kind.discarded:
        return [(here, 0, -n)] if m.quarantined else [(here, -n, 0)]
    raise StockError(f"unknown movement kind {m.kind!r}")


def replay(movements: Iterable[Movement], until: float = math.inf) -> dict[Place, Balance]:
    """The stock after ``movements`` (those at or before ``until``), in time order; a balance that
    would go negative raises ``StockError`` naming the movement."""
    out: dict[Place, Balance] = defaultdict(Balance)
    for m in sorted(movements, key=lambda m: (m.at, m.id or math.inf)):
        if m.at > until:
            break
        for place, d_avail, d_quar in _effects(m):
            b = out[place]
            b.available += d_avail
            b.quarantined += d_quar
            if b.available < 0 or b.quarantined < 0:
                what = "quarantined" if b.quarantined < 0 else "available"
                have = (b.quarantined if b.quarantined < 0 else b.available) + m.doses
                raise StockError(
                    f"{m.kind.value} of {m.doses} dose(s) at {_when(m.at)}: only {max(have, 0)} {what} "
                    f"dose(s) of this lot in {place[2]} then"
                )
    return {p: b for p, b in out.items() if b.available or b.quarantined}


def intervals(movements: Iterable[Movement], lot_id: int) -> list[tuple[str, str, float, float]]:
    """Where a lot was: (clinic, equipment, from, to) for every stretch of time with doses of it in an
    appliance (``to`` is ``inf`` while they are still there). What its exposure is computed over."""
    mine = sorted((m for m in movements if m.lot_id == lot_id), key=lambda m: (m.at, m.id or math.inf))
    held: dict[tuple[str, str], int] = defaultdict(int)
    since: dict[tuple[str, str], float] = {}
    out: list[tuple[str, str, float, float]] = []
    for m in mine:
        for (_lot, clinic, equipment), d_avail, d_quar in _effects(m):
            key = (clinic, equipment)
            before = held[key]
            held[key] = before + d_avail + d_quar
            if before <= 0 < held[key]:
                since[key] = m.at
            elif before > 0 >= held[key]:
                out.append((clinic, equipment, since.pop(key), m.at))
    out += [(c, e, t, math.inf) for (c, e), t in since.items()]
    return sorted(out, key=lambda x: (x[2], x[0], x[1]))


def movement_of(row: StockMovementRow) -> Movement:
    return Movement(
        lot_id=row.lot_id,
        kind=Kind(row.kind),
        clinic_id=row.clinic_id,
        equipment_id=row.equipment_id,
        doses=row.doses,
        at=row.at,
        person_id=row.person_id,
        to_clinic_id=row.to_clinic_id,
        to_equipment_id=row.to_equipment_id,
        quarantined=row.quarantined,
        reason=row.reason,
        source=row.source,
        alert_id=row.alert_id,
        note=row.note,
        ident=row.ident,
        id=row.id,
    )


def movements(
    session: Session,
    lot_ids: Sequence[int] | None = None,
    *,
    clinic_ids: Sequence[str] | None = None,
    equipment_id: str | None = None,
) -> list[Movement]:
    """Movements in time order: all, those of ``lot_ids``, or every movement of the lots that ever
    touched ``clinic_ids`` or ``equipment_id`` (a lot's books are replayed whole, so a place's stock
    needs all of its lots' movements, and none of the other lots')."""
    m = StockMovementRow
    q = select(m).order_by(m.at, m.id)
    if lot_ids is not None:
        q = q.where(m.lot_id.in_(list(lot_ids)))
    if clinic_ids is not None:
        ids = list(clinic_ids)
        q = q.where(m.lot_id.in_(select(m.lot_id).where(or_(m.clinic_id.in_(ids), m.to_clinic_id.in_(ids)))))
    if equipment_id is not None:
        there = or_(m.equipment_id == equipment_id, m.to_equipment_id == equipment_id)
        q = q.where(m.lot_id.in_(select(m.lot_id).where(there)))
    return [movement_of(r) for r in session.scalars(q)]


def record(session: Session, m: Movement, now: float) -> tuple[StockMovementRow, bool]:
    """Store a movement after checking it; (the row, True) when stored now, (the row stored before,
    False) for an ident seen already. Raises ``StockError`` (nothing stored) when it is invalid or
    would make a balance negative at any time."""
    _check(session, m, now)
    ident = m.ident or _ident(m)
    old = session.scalars(select(StockMovementRow).where(StockMovementRow.ident == ident)).first()
    if old is not None:
        if _ident(movement_of(old)) != _ident(m):
            raise StockError(f"movement {ident} was recorded before with other content")
        return old, False
    replay([*movements(session, [m.lot_id]), m])  # raises when the books would go negative
    row = StockMovementRow(
        ident=ident,
        lot_id=m.lot_id,
        kind=m.kind.value,
        clinic_id=m.clinic_id,
        equipment_id=m.equipment_id,
        to_clinic_id=m.to_clinic_id,
        to_equipment_id=m.to_equipment_id,
        quarantined=m.quarantined,
        doses=m.doses,
        reason=m.reason,
        source=m.source,
        at=round(m.at, 3),
        recorded_at=now,
        person_id=m.person_id,
        alert_id=m.alert_id,
        note=m.note,
    )
    session.add(row)
    session.flush()
    return row, True


def stock(
    session: Session, clinic_ids: Sequence[str] | None = None, until: float = math.inf
) -> dict[Place, Balance]:
    """The stock now (or at ``until``), per (lot, clinic, equipment); only places holding doses."""
    out = replay(movements(session, clinic_ids=clinic_ids), until)
    if clinic_ids is None:
        return out
    wanted = set(clinic_ids)
    return {p: b for p, b in out.items() if p[1] in wanted}


def lots_in(session: Session, equipment_id: str, at: float) -> dict[int, Balance]:
    """lot id -> its doses in ``equipment_id`` at ``at`` (what an excursion there put at risk)."""
    held = replay(movements(session, equipment_id=equipment_id), at)
    return {p[0]: b for p, b in held.items() if p[2] == equipment_id}


# ---------------------------------------------------------------- helpers


def _ident(m: Movement) -> str:
    import hashlib

    key = "|".join(
        str(x)
        for x in (
            m.lot_id, m.kind.value, m.clinic_id, m.equipment_id, m.to_clinic_id, m.to_equipment_id,
            m.quarantined, m.doses, m.reason, round(m.at, 3), m.person_id, m.alert_id,
        )
    )  # fmt: skip
    return "m-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _check(session: Session, m: Movement, now: float) -> None:
    if session.get(VaccineLotRow, m.lot_id) is None:
        raise StockError(f"no lot {m.lot_id}")
    if not isinstance(m.doses, int) or isinstance(m.doses, bool) or not 1 <= m.doses <= DOSES_MAX:
        raise StockError(f"doses must be a whole number from 1 to {DOSES_MAX}, not {m.doses!r:.20}")
    if not math.isfinite(m.at) or m.at > now + 600:
        raise StockError(f"the time of the movement ({_when(m.at)}) is in the future")
    if not m.person_id:
        raise StockError("who made the movement is required")
    if m.kind is Kind.moved:
        if not m.to_equipment_id:
            raise StockError("a move needs the appliance the doses go to")
        if (m.to_clinic_id or m.clinic_id, m.to_equipment_id) == (m.clinic_id, m.equipment_id):
            raise StockError("a move needs another appliance than the one the doses are in")
    elif m.to_clinic_id or m.to_equipment_id:
        raise StockError(f"only a move has a destination, not {m.kind.value}")
    if m.quarantined and m.kind not in (Kind.moved, Kind.discarded):
        raise StockError(f"'quarantined' applies to moved and discarded doses, not {m.kind.value}")
    if m.kind in (Kind.wasted, Kind.discarded):
        if m.reason not in {r.value for r in WasteReason}:
            raise StockError(f"{m.kind.value} needs a reason: {', '.join(r.value for r in WasteReason)}")
    elif m.reason is not None and m.kind is not Kind.quarantined:
        raise StockError(f"a reason is for wasted, discarded or quarantined doses, not {m.kind.value}")
    if m.note is not None and len(m.note) > NOTE_MAX:
        raise StockError(f"the note is longer than {NOTE_MAX} characters")


def _when(t: float) -> str:
    return stamp(t) if math.isfinite(t) else str(t)
