"""``GET /api/stock/reconciliation?clinic=&month=``: a clinic's vaccine stock reconciliation for a month
(``alerting.reconcile``), for the district bureau: per lot opening, in, given, wasted, discarded, moved
out, closing (computed and as the books give it), doses issued and not checked in, the wastage rate per
product, and the flags in words (zh-CN ``text``, English ``text_en``). docs/stock.md explains the books.

``month`` is ``YYYY-MM`` in clinic time (default: the month under way, judged up to now). Scope as
everywhere (``web.auth``): a clinic outside the user's scope is 404, as if it did not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from alerting.compliance import month_bounds
from alerting.reconcile import GRACE_S, WASTAGE_MIN_DOSES, read_reconciliation, site_names
from core.clinic_time import CLINIC_TZ
from core.db import ClinicRow
from web.app import ClockDep, SessionDep
from web.auth import CurrentUser, can_see_clinic
from web.reports import ReportError, parse_month

router = APIRouter(prefix="/api/stock", tags=["stock"])


class ApiError(BaseModel):
    error: str = Field(examples=["not_found"])
    detail: str = Field(examples=["no clinic 'x'"])


class LotOut(BaseModel):
    lot_id: int
    product_id: str
    product: str
    product_en: str
    lot_number: str
    expiry: str
    doses_per_vial: int
    opening: int = Field(description="doses at the clinic (all its places) at the month's start")
    received: int = Field(description="received from outside ChainWatch's books (with a source)")
    moved_in: int = Field(description="issued to the clinic by another site")
    administered: int
    wasted: int
    discarded: int
    moved_out: int = Field(description="issued by the clinic to other sites")
    closing: int = Field(description="opening + received + moved in − given − wasted − discarded − moved out")
    closing_books: int | None = Field(description="the closing stock the books give; null: not replayable")
    in_transit: int = Field(description="of the closing stock: issued to the clinic, not checked in")
    unaccounted: int = Field(description=f"of those: issued more than {GRACE_S / 86400:g} days before")
    tolerance: int = Field(description="doses that may not add up without a flag (an opened vial's rest)")


class WastageOut(BaseModel):
    product_id: str
    product: str
    product_en: str
    administered: int
    wasted: int
    rate: float | None = Field(description="wasted / (administered + wasted)")
    threshold: float
    judged: bool = Field(description=f"at least {WASTAGE_MIN_DOSES} doses given or wasted")


class FlagOut(BaseModel):
    kind: str = Field(description="unaccounted, books, expired_use or wastage")
    product_id: str
    lot_id: int | None
    lot_number: str | None
    doses: int
    text: str = Field(description="what does not add up, in zh-CN")
    text_en: str


class ReconciliationOut(BaseModel):
    clinic: str
    clinic_name: str
    month: str = Field(examples=["2026-11"])
    start: float
    end: float
    until: float = Field(description="judged up to here: the month's end, or now for the month under way")
    lots: list[LotOut]
    wastage: list[WastageOut]
    flags: list[FlagOut]


@router.get(
    "/reconciliation",
    response_model=ReconciliationOut,
    responses={404: {"model": ApiError}, 422: {"model": ApiError}},
)
def get_reconciliation(
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    clinic: Annotated[str, Query(max_length=200, description="the clinic's id")],
    month: Annotated[
        str | None, Query(max_length=20, description="YYYY-MM, clinic time (default: this month)")
    ] = None,
) -> ReconciliationOut:
    """A clinic's stock reconciliation for a month, with what does not add up in words."""
    row = session.get(ClinicRow, clinic)
    if row is None or not can_see_clinic(session, user, row.id):
        raise HTTPException(404, f"no clinic {clinic!r}")
    now = clock.now()
    today = datetime.fromtimestamp(now, CLINIC_TZ)
    try:
        year, mon = parse_month(month) if month else (today.year, today.month)
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from None
    if not 2000 <= year <= 9999:
        raise HTTPException(422, f"no such month {month}")
    start, end, _first, _last = month_bounds(year, mon)
    if start > now:
        raise HTTPException(422, f"month {year:04d}-{mon:02d} has not started yet")
    rec = read_reconciliation(session, row.id, start, end, now, site_names(session))
    return ReconciliationOut.model_validate(
        {**rec.as_json(), "clinic_name": row.name, "month": f"{year:04d}-{mon:02d}"}
    )
