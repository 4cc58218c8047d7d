"""The vaccine stock API (issue 9), JSON under ``/api/stock``, for clinic staff, the bureau and the pages
(``web.stock_pages``); the books themselves are ``core.stock``'s:

- ``GET /api/stock/products``: the vaccine catalogue (every logged-in user).
- ``GET /api/stock/lots?product=&lot_number=`` and ``POST /api/stock/lots`` ``{"product", "lot_number",
  "expiry", "manufacturer"}``: the lots; the POST gets the lot or adds it (``core.stock.lot``: a new lot
  needs its expiry, an existing one keeps its own), ``created`` says which.
- ``POST /api/stock/movements``: one movement of doses, of any kind of ``core.stock.Kind`` (received,
  moved, administered, wasted, quarantined, released, discarded). The clinic is the appliance's (give
  ``clinic`` only to check it); a move names ``to_equipment``, whose clinic is the destination. An
  issue to another clinic goes to that clinic's holding place (``to_equipment`` "transit" with
  ``to_clinic``), and the clinic checks it in with a move from (``equipment`` "transit", ``clinic``)
  into an appliance (docs/stock.md); a move straight into another clinic's appliance is an issue too,
  trusted as it is. Recorded as the logged-in user (their registry person if linked, else
  ``user:<username>``); ``at`` is epoch seconds or ISO 8601 (no offset: clinic time), default now (a
  paper record typed in later gives its own time). ``ident`` is the client's idempotency key: the same
  key again returns the movement stored the first time (``created`` false), so a retried request or a
  double tap is stored once. Anything ``core.stock.record`` refuses (doses the books do not have at that
  time, quarantined doses administered, a waste without a reason...) is 422 with its one-line reason,
  and nothing is stored. Every movement asked for is audited (``stock_movement``).
- ``GET /api/stock?clinic=``: the stock now per lot and appliance (available / quarantined doses,
  product, lot number, expiry) with the lot's latest heat and freeze exposure
  (``alerting.exposure.latest_exposure``) when it has been computed.
- ``GET /api/stock/movements?clinic=&lot=&start=&end=``: the movements from, in or to the clinics in
  [start, end) (default: the 31 days up to now), newest first.

Lists are paginated ``{items, total, limit, offset}``. Scope as everywhere (``web.auth``): clinic staff
their clinic, district officers the clinics of their district, admins every clinic but read-only (writes
403); a clinic, appliance or lot outside the scope is 404, so clinic staff move doses within their clinic
only and officers issue them between the clinics of their district. Writes need the session's CSRF
token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting.exposure import LotExposureRow, latest_exposure
from core.db import ClinicRow, EquipmentRow
from core.stock import (
    DOSES_MAX,
    LOT_MAX,
    NOTE_MAX,
    Balance,
    Kind,
    Movement,
    StockError,
    StockMovementRow,
    VaccineLotRow,
    VaccineProductRow,
    lot,
    record,
    stock,
)
from web.api_alerts import ERRORS, ID_MAX, LIMIT_DEFAULT, LIMIT_MAX, ActUser, ApiError, instant
from web.app import ClockDep, SessionDep
from web.auth import CurrentUser, User, audit, can_see_clinic, visible_clinics

router = APIRouter(prefix="/api", tags=["stock"])

DEFAULT_SPAN_S = 31 * 86400.0
FUTURE_S = 600.0  # a movement may be up to 10 min ahead of the server's clock (core.stock)
IDENT_MAX = 64
SOURCE_MAX = 200
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ApiError, "description": "missing CSRF token, or a role that does not record stock"},
    422: {
        "model": ApiError,
        "description": "bad parameters, or a movement the books refuse (why, in one line)",
    },
}
VACCINE_PROFILES = ("refrigerator", "cold_box", "freezer")  # appliances that hold vaccines
TRANSIT = "transit"  # a clinic's place for doses issued to it, not checked in yet (alerting.reconcile)


# ---------------------------------------------------------------- models


class ProductOut(BaseModel):
    id: str = Field(examples=["hepb"])
    name: str = Field(description="zh-CN")
    name_en: str
    doses_per_vial: int
    freeze_sensitive: bool
    heat_stability: str | None = Field(description="WHO heat-stability category, A (most stable) … D")
    vvm_type: int | None = Field(description="2, 7, 14 or 30; null: no vaccine vial monitor")


class ProductPage(BaseModel):
    items: list[ProductOut]
    total: int
    limit: int
    offset: int


class LotIn(BaseModel):
    product: str = Field(max_length=ID_MAX, examples=["hepb"])
    lot_number: str = Field(max_length=LOT_MAX + 20, examples=["HB202603A"])
    expiry: str | None = Field(default=None, max_length=20, description="YYYY-MM-DD; required for a new lot")
    manufacturer: str | None = Field(default=None, max_length=200)


class LotOut(BaseModel):
    id: int
    product: str
    lot_number: str
    expiry: str
    manufacturer: str | None


class LotResult(BaseModel):
    created: bool = Field(description="false: the lot existed already")
    lot: LotOut


class LotPage(BaseModel):
    items: list[LotOut]
    total: int
    limit: int
    offset: int


class MovementIn(BaseModel):
    kind: Kind
    lot: int = Field(description="the lot's id (POST /api/stock/lots)")
    equipment: str = Field(max_length=ID_MAX, description="where the doses are (received: where they go)")
    clinic: str | None = Field(default=None, max_length=ID_MAX, description="default: the appliance's")
    doses: int = Field(description=f"a whole number from 1 to {DOSES_MAX}")
    at: str | None = Field(
        default=None,
        max_length=40,
        description="epoch seconds or ISO 8601 (no offset: clinic time); default now",
    )
    to_equipment: str | None = Field(default=None, max_length=ID_MAX, description="moved: where to")
    to_clinic: str | None = Field(default=None, max_length=ID_MAX, description="default: to_equipment's")
    quarantined: bool = Field(default=False, description="moved / discarded: quarantined doses")
    reason: str | None = Field(
        default=None,
        max_length=32,
        description="wasted, discarded: opened_vial_expiry, broken, excursion, expired, other",
    )
    source: str | None = Field(default=None, max_length=SOURCE_MAX, description="received: from where")
    alert_id: str | None = Field(default=None, max_length=ID_MAX, description="quarantined: the excursion")
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    ident: str | None = Field(
        default=None,
        min_length=1,
        max_length=IDENT_MAX,
        pattern=r"^[0-9A-Za-z._:-]+$",
        description="the client's idempotency key: the same key again is stored once",
    )


class MovementOut(BaseModel):
    id: int
    ident: str
    kind: str
    lot: int
    product: str
    lot_number: str
    clinic: str
    equipment: str
    to_clinic: str | None
    to_equipment: str | None
    quarantined: bool
    doses: int
    reason: str | None
    source: str | None
    at: float = Field(description="when it happened, epoch seconds")
    recorded_at: float = Field(description="when it was stored")
    person: str = Field(description="registry person id, or user:<username>")
    alert_id: str | None
    note: str | None


class MovementResult(BaseModel):
    created: bool = Field(description="false: this idempotency key was recorded before")
    movement: MovementOut


class MovementPage(BaseModel):
    items: list[MovementOut]
    total: int
    limit: int
    offset: int


class ExposureOut(BaseModel):
    heat_budget_used: float | None = Field(description="fraction of the VVM heat budget used; null: no VVM")
    freeze_minutes: float | None = Field(description="minutes at or below −0.5 °C (freeze-sensitive only)")
    covered_until: float
    computed_at: float


class StockLine(BaseModel):
    clinic: str
    equipment: str
    equipment_name: str
    lot: int
    product: str
    product_name: str
    product_name_en: str
    lot_number: str
    expiry: str
    available: int
    quarantined: int
    exposure: ExposureOut | None = Field(description="the lot's latest exposure; null: not computed yet")


class StockPage(BaseModel):
    items: list[StockLine]
    total: int
    limit: int
    offset: int


# ---------------------------------------------------------------- products and lots


@router.get("/stock/products", response_model=ProductPage, responses=ERRORS)
def list_products(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ProductPage:
    """The vaccine catalogue."""
    rows = list(session.scalars(select(VaccineProductRow).order_by(VaccineProductRow.id)))
    items = [_product(p) for p in rows[offset : offset + limit]]
    return ProductPage(items=items, total=len(rows), limit=limit, offset=offset)


@router.get("/stock/lots", response_model=LotPage, responses=ERRORS)
def list_lots(
    session: SessionDep,
    user: CurrentUser,
    product: Annotated[str | None, Query(max_length=ID_MAX)] = None,
    lot_number: Annotated[str | None, Query(max_length=LOT_MAX + 20)] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LotPage:
    """The lots known, by product and lot number."""
    q = select(VaccineLotRow)
    if product is not None:
        q = q.where(VaccineLotRow.product_id == product)
    if lot_number is not None:
        q = q.where(VaccineLotRow.lot_number == lot_number.strip().upper())
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(VaccineLotRow.product_id, VaccineLotRow.lot_number).limit(limit).offset(offset)
    )
    return LotPage(items=[_lot(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/stock/lots", response_model=LotResult, responses=WRITE_ERRORS)
def get_or_add_lot(
    request: Request, session: SessionDep, clock: ClockDep, user: ActUser, body: LotIn
) -> LotResult:
    """The lot of a product with this number, added when new (then its expiry is required)."""
    write_lock(session)
    try:
        row, created = lot_of(session, body.product, body.lot_number, body.expiry, body.manufacturer)
    except StockError as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    if created:
        detail = {"product": row.product_id, "lot_number": row.lot_number, "expiry": row.expiry}
        audit(session, request, user, clock.now(), "stock_lot", "vaccine_lot", str(row.id), detail)
    session.commit()
    return LotResult(created=created, lot=_lot(row))


# ---------------------------------------------------------------- movements


@router.post("/stock/movements", response_model=MovementResult, responses=WRITE_ERRORS)
def add_movement(
    request: Request, session: SessionDep, clock: ClockDep, user: ActUser, body: MovementIn
) -> MovementResult:
    """Record one movement of doses (received, moved, administered, wasted, quarantined, released,
    discarded)."""
    return record_movement(request, session, clock.now(), user, body)


def record_movement(
    request: Request, session: Session, now: float, user: User, body: MovementIn, *, locked: bool = False
) -> MovementResult:
    """``POST /api/stock/movements`` (the pages' forms call it too): scope, then ``core.stock.record``,
    the audit row, commit. ``HTTPException`` 404 outside the scope, 422 when refused (nothing stored).
    ``locked``: the caller has called ``write_lock`` already (and may have added the lot)."""
    if not locked:
        write_lock(session)
    m = _movement(session, user, now, body)
    try:
        try:
            row, created = record(session, m, now)
        except IntegrityError:  # the same key stored by a concurrent request: that row is the answer
            session.rollback()
            row, created = record(session, m, now)
    except StockError as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    detail = {
        "created": created,
        "movement_id": row.id,
        "ident": row.ident,
        "kind": row.kind,
        "lot": row.lot_id,
        "doses": row.doses,
        "clinic": row.clinic_id,
        "equipment": row.equipment_id,
        "to_clinic": row.to_clinic_id,
        "to_equipment": row.to_equipment_id,
        "quarantined": row.quarantined,
        "reason": row.reason,
        "at": row.at,
        "by": user.actor,
    }
    audit(session, request, user, now, "stock_movement", "stock_movement", str(row.id), detail)
    session.commit()
    return MovementResult(created=created, movement=_movement_out(session, row))


@router.get("/stock/movements", response_model=MovementPage, responses=ERRORS)
def list_movements(
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    clinic: Annotated[
        str | None, Query(max_length=ID_MAX, description="default: every clinic in scope")
    ] = None,
    lot: Annotated[int | None, Query(ge=1, le=2**62, description="a lot's id")] = None,
    start: Annotated[
        str | None,
        Query(
            max_length=40,
            description="epoch seconds or ISO 8601 (no offset: clinic time); default end - 31 d",
        ),
    ] = None,
    end: Annotated[str | None, Query(max_length=40, description="as start; default now (+10 min)")] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MovementPage:
    """The movements from, in or to the clinics in [start, end), newest first."""
    clinics = _clinics(session, user, clinic)
    now = clock.now()
    hi = instant("end", end) if end is not None else now + FUTURE_S
    lo = instant("start", start) if start is not None else min(now, hi) - DEFAULT_SPAN_S
    if lo >= hi:
        raise HTTPException(422, "start is not before end")
    q = select(StockMovementRow).where(StockMovementRow.at >= lo, StockMovementRow.at < hi)
    if clinics is not None:
        q = q.where(or_(StockMovementRow.clinic_id.in_(clinics), StockMovementRow.to_clinic_id.in_(clinics)))
    if lot is not None:
        q = q.where(StockMovementRow.lot_id == lot)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(
        session.scalars(
            q.order_by(StockMovementRow.at.desc(), StockMovementRow.id.desc()).limit(limit).offset(offset)
        )
    )
    lots = _lots(session, {r.lot_id for r in rows})
    items = [_movement_out(session, r, lots) for r in rows]
    return MovementPage(items=items, total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------- the stock


@router.get("/stock", response_model=StockPage, responses=ERRORS)
def list_stock(
    session: SessionDep,
    user: CurrentUser,
    clinic: Annotated[
        str | None, Query(max_length=ID_MAX, description="default: every clinic in scope")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StockPage:
    """The stock now per lot and appliance, with each lot's latest exposure when known."""
    lines = stock_lines(session, _clinics(session, user, clinic))
    items = [_line_out(x) for x in lines[offset : offset + limit]]
    return StockPage(items=items, total=len(lines), limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class Line:
    """One lot in one appliance: its doses now, what it is, and its latest exposure (None: not yet)."""

    clinic: str
    equipment: EquipmentRow
    lot: VaccineLotRow
    product: VaccineProductRow
    balance: Balance
    exposure: LotExposureRow | None


def stock_lines(session: Session, clinics: Sequence[str] | None) -> list[Line]:
    """The stock of ``clinics`` (None: all) now, by clinic, appliance, product and expiry."""
    held = stock(session, clinics)
    lots = _lots(session, {p[0] for p in held})
    products = {p.id: p for p in session.scalars(select(VaccineProductRow))}
    equipment = {
        e.id: e
        for e in session.scalars(select(EquipmentRow).where(EquipmentRow.id.in_({p[2] for p in held})))
    }
    exposure = latest_exposure(session, sorted(lots))
    out = []
    for (lot_id, clinic, eq), balance in held.items():
        row = lots[lot_id]
        appliance = equipment.get(eq) or EquipmentRow(id=eq, clinic_id=clinic, name=eq, profile="", probe="")
        out.append(Line(clinic, appliance, row, products[row.product_id], balance, exposure.get(lot_id)))
    out.sort(
        key=lambda x: (
            x.clinic,
            x.equipment.name,
            x.equipment.id,
            x.product.id,
            x.lot.expiry,
            x.lot.lot_number,
        )
    )
    return out


def vaccine_equipment(session: Session, clinic_id: str) -> list[EquipmentRow]:
    """The clinic's appliances that hold vaccines (not the waste store): refrigerators first (where
    deliveries go), then cold boxes and freezers, each by name."""
    q = select(EquipmentRow).where(
        EquipmentRow.clinic_id == clinic_id, EquipmentRow.profile.in_(VACCINE_PROFILES)
    )
    rows = session.scalars(q.order_by(EquipmentRow.name, EquipmentRow.id))
    return sorted(rows, key=lambda e: VACCINE_PROFILES.index(e.profile))


# ---------------------------------------------------------------- helpers


def write_lock(session: Session) -> None:
    """One writer at a time for a lot's books (the check and the insert must see the same movements):
    on SQLite a write transaction, begun before anything is written; elsewhere the movement's lot row
    is read FOR UPDATE (``_movement``)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))


def lot_of(
    session: Session, product: str, lot_number: str, expiry: str | None, manufacturer: str | None = None
) -> tuple[VaccineLotRow, bool]:
    """``core.stock.lot``, and whether the lot was added now. ``StockError`` as it raises."""
    number = lot_number.strip().upper()
    known = session.scalars(
        select(VaccineLotRow.id).where(
            VaccineLotRow.product_id == product, VaccineLotRow.lot_number == number
        )
    ).first()
    return lot(session, product, lot_number, expiry or None, manufacturer or None), known is None


def _movement(session: Session, user: User, now: float, body: MovementIn) -> Movement:
    clinic, equipment = _place(session, user, body.equipment, body.clinic)
    if equipment == TRANSIT and body.kind in (Kind.received, Kind.administered):
        raise HTTPException(422, f"doses in {TRANSIT} are checked in (moved) first, not {body.kind.value}")
    lot_row = session.get(VaccineLotRow, body.lot, with_for_update=True)
    if lot_row is None:
        raise HTTPException(404, f"no lot {body.lot}")
    to_clinic = to_equipment = None
    if body.to_equipment is not None:
        to_clinic, to_equipment = _place(session, user, body.to_equipment, body.to_clinic)
        if to_equipment == TRANSIT and to_clinic == clinic:
            raise HTTPException(422, f"{TRANSIT} is for doses issued to another clinic")
    elif body.to_clinic is not None:
        raise HTTPException(422, "to_clinic needs to_equipment: the appliance the doses go to")
    at = instant("at", body.at) if body.at is not None else now
    return Movement(
        lot_id=lot_row.id,
        kind=body.kind,
        clinic_id=clinic,
        equipment_id=equipment,
        doses=body.doses,
        at=at,
        person_id=user.actor,
        to_clinic_id=to_clinic,
        to_equipment_id=to_equipment,
        quarantined=body.quarantined,
        reason=body.reason or None,
        source=(body.source or "").strip() or None,
        alert_id=body.alert_id or None,
        note=(body.note or "").strip() or None,
        ident=f"k:{user.id}:{body.ident}" if body.ident else None,
    )


def _place(session: Session, user: User, equipment_id: str, clinic_id: str | None) -> tuple[str, str]:
    """(clinic, appliance) of a movement's source or destination: an appliance of a clinic in the
    user's scope (``clinic_id``, if given, must be its clinic), or ``TRANSIT`` of ``clinic_id``."""
    if clinic_id is not None and not can_see_clinic(session, user, clinic_id):
        raise HTTPException(404, f"no clinic {clinic_id!r}")
    if equipment_id == TRANSIT:
        if clinic_id is None or session.get(ClinicRow, clinic_id) is None:
            raise HTTPException(422, f"{TRANSIT} needs the clinic it belongs to")
        return clinic_id, TRANSIT
    equipment = _equipment_or_404(session, user, equipment_id)
    if clinic_id is not None and clinic_id != equipment.clinic_id:
        raise HTTPException(422, f"{equipment.id} is in {equipment.clinic_id}, not in {clinic_id}")
    return equipment.clinic_id, equipment.id


def _equipment_or_404(session: Session, user: User, equipment_id: str) -> EquipmentRow:
    equipment = session.get(EquipmentRow, equipment_id[:ID_MAX])
    if equipment is None or not can_see_clinic(session, user, equipment.clinic_id):
        raise HTTPException(404, f"no equipment {equipment_id!r}")
    if equipment.profile not in VACCINE_PROFILES:
        raise HTTPException(422, f"{equipment.id} ({equipment.profile}) holds no vaccines")
    return equipment


def _clinics(session: Session, user: User, clinic: str | None) -> list[str] | None:
    """The clinics a list covers: ``clinic`` if the user may see it (else 404), else every clinic in
    the user's scope (None: all, for admins)."""
    if clinic is not None:
        if not can_see_clinic(session, user, clinic):
            raise HTTPException(404, f"no clinic {clinic!r}")
        return [clinic]
    seen = visible_clinics(session, user)
    return None if seen is None else sorted(seen)


def _lots(session: Session, ids: set[int]) -> dict[int, VaccineLotRow]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(VaccineLotRow).where(VaccineLotRow.id.in_(sorted(ids))))}


def _product(p: VaccineProductRow) -> ProductOut:
    return ProductOut(
        id=p.id,
        name=p.name,
        name_en=p.name_en,
        doses_per_vial=p.doses_per_vial,
        freeze_sensitive=p.freeze_sensitive,
        heat_stability=p.heat_stability,
        vvm_type=p.vvm_type,
    )


def _lot(r: VaccineLotRow) -> LotOut:
    return LotOut(
        id=r.id, product=r.product_id, lot_number=r.lot_number, expiry=r.expiry, manufacturer=r.manufacturer
    )


def _movement_out(
    session: Session, r: StockMovementRow, lots: dict[int, VaccineLotRow] | None = None
) -> MovementOut:
    lot_row = (lots or {}).get(r.lot_id) or session.get(VaccineLotRow, r.lot_id)
    assert lot_row is not None  # a foreign key
    return MovementOut(
        id=r.id,
        ident=r.ident,
        kind=r.kind,
        lot=r.lot_id,
        product=lot_row.product_id,
        lot_number=lot_row.lot_number,
        clinic=r.clinic_id,
        equipment=r.equipment_id,
        to_clinic=r.to_clinic_id,
        to_equipment=r.to_equipment_id,
        quarantined=r.quarantined,
        doses=r.doses,
        reason=r.reason,
        source=r.source,
        at=r.at,
        recorded_at=r.recorded_at,
        person=r.person_id,
        alert_id=r.alert_id,
        note=r.note,
    )


def _line_out(x: Line) -> StockLine:
    e = x.exposure
    exposure = None
    if e is not None:
        exposure = ExposureOut(
            heat_budget_used=_finite(e.heat_budget_used),
            freeze_minutes=_finite(e.freeze_minutes),
            covered_until=e.covered_until,
            computed_at=e.computed_at,
        )
    return StockLine(
        clinic=x.clinic,
        equipment=x.equipment.id,
        equipment_name=x.equipment.name,
        lot=x.lot.id,
        product=x.product.id,
        product_name=x.product.name,
        product_name_en=x.product.name_en,
        lot_number=x.lot.lot_number,
        expiry=x.lot.expiry,
        available=x.balance.available,
        quarantined=x.balance.quarantined,
        exposure=exposure,
    )


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None
