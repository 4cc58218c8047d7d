"""``/api/waste``: the medical-waste chain of custody as JSON, read-only (DESIGN §3, §5, §6).

- ``GET /api/waste/bags/{bag_id}``: a bag's state (``waste_bag``), its full history (every scan in time
  order, conflicting re-sends of an ``event_id`` included and marked ``conflict``), the waste alerts
  about it, and its clinic's name.
- ``GET /api/waste/manifests``: the transfer manifests (联单), newest first, paginated, each with its
  totals and whether what the plant received matches what was handed over.
- ``GET /api/waste/manifests/{manifest_id}``: a manifest's reconciliation, bag by bag, and its open
  ``manifest_mismatch`` alert if any.
- ``GET /api/waste/clinics/{clinic_id}/days``: per local day, kg by category and by stage and the bags
  generated; the bags in the clinic's store now with their ages; the closed-loop rate.

Times are epoch seconds; days are the clinics' local days (China Standard Time, UTC+8). Reconciliation
is judged under the waste profile in force (``chainwatch waste profile``), as the alerting service does.
Errors are ``{"error": "...", "detail": "..."}`` (``web.app``).

Every endpoint needs a login (``web.auth``) and is scoped: a bag by its clinic, a manifest by the clinics
of its scans (a manifest with bags of several clinics shows to each of them), a clinic's days by the
clinic; anything outside the user's scope is 404, as if it did not exist.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from alerting.rules.types import WASTE_RULES, Rule
from alerting.store import AlertRow
from alerting.waste.manifests import Manifest, Reconciliation, reconcile
from alerting.waste.profiles import WasteProfile, profile_now
from core.clinic_time import CLINIC_TZ
from core.db import ClinicRow, TownshipRow
from core.protocol import Category, Stage
from core.waste_store import STAGES, WasteBagEventRow, WasteBagRow
from web.api_alerts import instant
from web.app import ClockDep, SessionDep
from web.auth import CurrentUser, User, can_see_clinic, visible_clinics

router = APIRouter(prefix="/api/waste", tags=["waste"])

H = 3600.0
DEFAULT_DAYS = 7
MAX_DAYS = 93
CLOSED_LOOP_MIN_AGE_H = 72.0  # a bag younger than this may still be on its way: not judged
OPEN_BAGS_SHOWN = 100
LIMIT_DEFAULT = 50
LIMIT_MAX = 500
MANIFEST_STAGES = (Stage.handed_over.value, Stage.received.value)
WASTE_RULE_NAMES = sorted(r.value for r in WASTE_RULES)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

E = WasteBagEventRow
B = WasteBagRow


# ---------------------------------------------------------------- response models


class ApiError(BaseModel):
    error: str = Field(description="a short code: not_found, invalid_request, ...", examples=["not_found"])
    detail: str = Field(description="what went wrong, in words", examples=["no waste bag 'QJ-0001'"])


NOT_FOUND = {404: {"model": ApiError, "description": "unknown id"}}
INVALID = {422: {"model": ApiError, "description": "bad query parameters"}}


class AlertBrief(BaseModel):
    id: str = Field(examples=["A-20261126-0003"])
    rule: str = Field(examples=["storage_overdue"])
    family: str
    severity: str = Field(examples=["warning"])
    state: str = Field(description="firing, acknowledged or resolved")
    started_at: float


class BagState(BaseModel):
    """The ``waste_bag`` row: what the bag is now, recomputed from its (first, non-conflict) scans."""

    bag_id: str
    clinic: str | None
    category: str
    stage: str = Field(description="the furthest stage reached")
    generated_kg: float | None
    last_kg: float = Field(description="the weight at the latest scan")
    generated_at: float | None
    collected_at: float | None
    stored_at: float | None
    handed_over_at: float | None
    received_at: float | None
    disposed_at: float | None
    manifest_id: str | None
    transporter: str | None
    refused_kg: float
    closed_as: str | None = Field(description="disposed, refused (whole, at the plant), or null: open")
    scans: int
    conflicts: int
    updated_at: float


class BagScan(BaseModel):
    """One scan as it came (``waste_bag_event``)."""

    event_id: str
    stage: str
    category: str
    weight_kg: float
    ts: float = Field(description="when the bag was scanned (scanner time)")
    operator: str
    manifest_id: str | None
    counterparty: str | None
    refused_kg: float | None
    refusal_reason: str | None
    clinic: str | None
    device: str | None
    received_at: float = Field(description="when the server got the scan")
    conflict: bool = Field(description="a known event_id with other content: kept, not counted")


class BagOut(BaseModel):
    bag_id: str
    clinic: str | None
    clinic_name: str | None
    state: BagState
    history: list[BagScan] = Field(description="every scan, in scan-time order")
    alerts: list[AlertBrief] = Field(description="the waste alerts whose subject is this bag, oldest first")


class ManifestSummary(BaseModel):
    manifest_id: str
    clinic: str | None
    transporter: str | None
    vehicle: str | None = Field(default=None, description="from the handover scans, when they carry one")
    handed_over_at: float | None
    received_at: float | None = Field(description="the plant's first receipt scan")
    bags_handed_over: int
    kg_handed_over: float
    bags_received: int
    kg_received: float
    matches: bool = Field(description="no missing or extra bag and no weight beyond the tolerance")
    status: str = Field(description="in_transit (nothing received yet), matches or mismatch")


class ManifestPage(BaseModel):
    items: list[ManifestSummary]
    total: int
    limit: int
    offset: int


class BagLine(BaseModel):
    bag_id: str
    category: str
    handed_kg: float | None
    received_kg: float | None
    refused_kg: float


class ManifestOut(BaseModel):
    """``alerting.waste.manifests.reconcile(...).as_json()`` and what the page around it needs."""

    manifest_id: str
    clinic: str | None
    clinic_name: str | None
    transporter: str | None
    vehicle: str | None = None
    handed_over_at: float | None
    received_at: float | None
    bags: list[BagLine]
    missing: list[str] = Field(description="handed over, not received under this manifest")
    extra: list[str] = Field(description="received under this manifest, not handed over under it")
    weight_differences: list[str] = Field(description="bags received off their handed-over weight")
    handed_kg_by_category: dict[str, float]
    received_kg_by_category: dict[str, float]
    matches: bool
    status: str = Field(description="in_transit, matches or mismatch")
    profile: str = Field(description="the waste profile whose weight tolerance was applied")
    mismatch_alert: AlertBrief | None = Field(description="the open manifest_mismatch alert, if any")


class Day(BaseModel):
    date: str = Field(description="the clinic's local day, YYYY-MM-DD", examples=["2026-11-26"])
    bags_generated: int
    kg_by_category: dict[str, float] = Field(description="kg generated on the day, per category")
    kg_by_stage: dict[str, float] = Field(description="kg scanned at each stage on the day")
    kg_by_stage_category: dict[str, dict[str, float]] = Field(
        description="kg scanned on the day, per stage and category (stages with scans only)"
    )


class StoredBag(BaseModel):
    bag_id: str
    category: str
    kg: float = Field(description="the weight at its latest scan")
    stored_at: float
    age_h: float = Field(description="hours in the store, by the server clock")


class ClosedLoop(BaseModel):
    bags_generated: int = Field(description="bags generated in the range and at least min_age_h ago")
    bags_closed: int = Field(description="of those, disposed or refused whole at the plant")
    rate: float | None = Field(description="bags_closed / bags_generated; null when no bag qualifies")
    min_age_h: float
    open_bags: list[str] = Field(description=f"the bags not closed, oldest first (at most {OPEN_BAGS_SHOWN})")


class ClinicDays(BaseModel):
    clinic: str
    clinic_name: str
    township: str
    township_name: str | None
    start: str
    end: str
    timezone: str = "UTC+08:00"
    now: float
    days: list[Day]
    store: list[StoredBag] = Field(description="bags stored and not yet handed over, oldest first")
    closed_loop: ClosedLoop


# ---------------------------------------------------------------- routes


@router.get("/bags/{bag_id}", response_model=BagOut, responses=NOT_FOUND)
def get_bag(bag_id: str, session: SessionDep, user: CurrentUser) -> BagOut:
    """A bag: its state, every scan in time order (conflicts marked), its alerts and its clinic."""
    bag = session.get(B, bag_id)
    if bag is None or not can_see_clinic(session, user, bag.clinic):
        raise HTTPException(404, f"no waste bag {bag_id!r}")
    scans = session.scalars(select(E).where(E.bag_id == bag_id).order_by(E.ts, E.id))
    alerts = session.scalars(
        select(AlertRow)
        .where(AlertRow.subject == bag_id, AlertRow.rule.in_(WASTE_RULE_NAMES))
        .order_by(AlertRow.started_at, AlertRow.id)
    )
    clinic = session.get(ClinicRow, bag.clinic) if bag.clinic else None
    return BagOut(
        bag_id=bag.bag_id,
        clinic=bag.clinic,
        clinic_name=clinic.name if clinic else None,
        state=BagState.model_validate(bag.as_json()),
        history=[BagScan.model_validate(r.as_json()) for r in scans],
        alerts=[_alert(a) for a in alerts],
    )


@router.get("/manifests", response_model=ManifestPage, responses=INVALID)
def list_manifests(
    session: SessionDep,
    user: CurrentUser,
    clinic: Annotated[str | None, Query(description="manifests with scans of this clinic")] = None,
    since: Annotated[
        str | None,
        Query(
            description="handed over at or after: epoch seconds, YYYY-MM-DD (local midnight) or an ISO "
            "8601 date-time (without an offset: clinic time, UTC+8)",
            examples=["2026-11-20"],
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="handed over before: as ``since``; a bare date includes that whole local day",
            examples=["2026-11-26"],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ManifestPage:
    """The manifests (from the ``handed_over`` and ``received`` scans that carry a manifest id), newest
    first by handed-over time (the first receipt for a manifest with no handover scan)."""
    lo = _instant("since", since, end_of_day=False)
    hi = _instant("until", until, end_of_day=True)
    at = func.coalesce(func.min(case((E.stage == Stage.handed_over.value, E.ts))), func.min(E.ts))
    grouped = (
        select(E.manifest_id.label("manifest_id"), at.label("at"))
        .where(E.manifest_id.is_not(None), E.stage.in_(MANIFEST_STAGES), E.conflict.is_(False))
        .group_by(E.manifest_id)
    )
    if clinic is not None:
        if session.get(ClinicRow, clinic) is None or not can_see_clinic(session, user, clinic):
            raise HTTPException(404, f"no clinic {clinic!r}")
        grouped = grouped.where(E.manifest_id.in_(select(E.manifest_id).where(E.clinic == clinic)))
    seen = visible_clinics(session, user)
    if seen is not None:
        grouped = grouped.where(E.manifest_id.in_(select(E.manifest_id).where(E.clinic.in_(sorted(seen)))))
    if lo is not None:
        grouped = grouped.having(at >= lo)
    if hi is not None:
        grouped = grouped.having(at < hi)
    sub = grouped.subquery()
    total = session.scalar(select(func.count()).select_from(sub)) or 0
    ids = list(
        session.scalars(
            select(sub.c.manifest_id)
            .order_by(sub.c.at.desc(), sub.c.manifest_id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    manifests = _manifests(session, ids)
    profile = _profile(session)
    items = [_summary(reconcile(manifests[i], profile)) for i in ids if i in manifests]
    return ManifestPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/manifests/{manifest_id}", response_model=ManifestOut, responses=NOT_FOUND)
def get_manifest(manifest_id: str, session: SessionDep, user: CurrentUser) -> ManifestOut:
    """A manifest reconciled: per bag what was handed over and what was received (the first
    non-conflict scan of each bag at each end), missing and extra bags, weights beyond the tolerance of
    the profile in force, kg per category at both ends, and the open ``manifest_mismatch`` alert."""
    m = _manifests(session, [manifest_id]).get(manifest_id)
    if m is None or not _can_see_manifest(session, user, manifest_id):
        raise HTTPException(404, f"no manifest {manifest_id!r}")
    profile = _profile(session)
    r = reconcile(m, profile)
    alert = session.scalars(
        select(AlertRow)
        .where(
            AlertRow.subject == manifest_id,
            AlertRow.rule == Rule.manifest_mismatch.value,
            AlertRow.open_key.is_not(None),
        )
        .order_by(AlertRow.started_at.desc())
        .limit(1)
    ).first()
    clinic = session.get(ClinicRow, r.clinic) if r.clinic else None
    return ManifestOut.model_validate(
        {
            **r.as_json(),
            "clinic_name": clinic.name if clinic else None,
            "status": _status(r),
            "profile": profile.name,
            "mismatch_alert": _alert(alert) if alert else None,
        }
    )


@router.get("/clinics/{clinic_id}/days", response_model=ClinicDays, responses={**NOT_FOUND, **INVALID})
def clinic_days(
    clinic_id: str,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    start: Annotated[
        str | None,
        Query(description="first local day, YYYY-MM-DD (default: end - 6 days)", examples=["2026-11-20"]),
    ] = None,
    end: Annotated[
        str | None,
        Query(description="last local day, YYYY-MM-DD, included (default: today)", examples=["2026-11-26"]),
    ] = None,
) -> ClinicDays:
    """A clinic's waste per local day (UTC+8) from ``start`` to ``end`` (both included, at most 93 days):
    kg by category (generated that day) and by stage, and the bags generated, counting each bag's first
    non-conflict scan at each stage on the local day of its scan time. Also the bags in the clinic's
    store now, oldest first, and the closed-loop rate over the bags generated in the range at least 72 h
    ago (closed: disposed, or refused whole at the plant)."""
    clinic = session.get(ClinicRow, clinic_id)
    if clinic is None or not can_see_clinic(session, user, clinic.id):
        raise HTTPException(404, f"no clinic {clinic_id!r}")
    now = clock.now()
    first, last = _day_range(start, end, datetime.fromtimestamp(now, CLINIC_TZ).date())
    lo, hi = _day_start(first), _day_start(last + timedelta(days=1))
    township = session.get(TownshipRow, clinic.township_id)
    return ClinicDays(
        clinic=clinic.id,
        clinic_name=clinic.name,
        township=clinic.township_id,
        township_name=township.name if township else None,
        start=first.isoformat(),
        end=last.isoformat(),
        now=now,
        days=_days(session, clinic_id, first, last, lo, hi),
        store=_store(session, clinic_id, now),
        closed_loop=_closed_loop(session, clinic_id, lo, hi, now),
    )


# ---------------------------------------------------------------- manifests


def _manifests(session: Session, ids: list[str]) -> dict[str, Manifest]:
    """The manifests ``ids`` from their scans: each bag's first non-conflict handover and receipt."""
    if not ids:
        return {}
    rows = session.scalars(
        select(E)
        .where(E.manifest_id.in_(ids), E.stage.in_(MANIFEST_STAGES), E.conflict.is_(False))
        .order_by(E.ts, E.id)
    )
    out: dict[str, Manifest] = {}
    for row in rows:
        assert row.manifest_id is not None
        out.setdefault(row.manifest_id, Manifest(row.manifest_id)).add(row.clinic, row.event())
    return out


def _can_see_manifest(session: Session, user: User, manifest_id: str) -> bool:
    """Whether any clinic with scans on the manifest is in the user's scope."""
    clinics = session.scalars(select(E.clinic).where(E.manifest_id == manifest_id).distinct())
    return any(can_see_clinic(session, user, c) for c in clinics)


def _profile(session: Session) -> WasteProfile:
    """The waste profile in force: the last switch's, else the registry's (national by default)."""
    return profile_now(cast(Engine, session.get_bind()))


def _status(r: Reconciliation) -> str:
    if r.received_at is None:
        return "in_transit"
    return "matches" if r.matches else "mismatch"


def _summary(r: Reconciliation) -> ManifestSummary:
    handed = [b for b in r.lines if b.handed_kg is not None]
    received = [b for b in r.lines if b.received_kg is not None]
    return ManifestSummary(
        manifest_id=r.manifest_id,
        clinic=r.clinic,
        transporter=r.transporter,
        vehicle=r.vehicle,
        handed_over_at=r.handed_over_at,
        received_at=r.received_at,
        bags_handed_over=len(handed),
        kg_handed_over=round(sum(b.handed_kg or 0.0 for b in handed), 3),
        bags_received=len(received),
        kg_received=round(sum(b.received_kg or 0.0 for b in received), 3),
        matches=r.matches,
        status=_status(r),
    )


def _alert(a: AlertRow) -> AlertBrief:
    return AlertBrief(
        id=a.id, rule=a.rule, family=a.family, severity=a.severity, state=a.state, started_at=a.started_at
    )


# ---------------------------------------------------------------- clinic days


def _days(session: Session, clinic: str, first: date, last: date, lo: float, hi: float) -> list[Day]:
    """Each bag's first non-conflict scan per stage that falls in [lo, hi), on its local day."""
    in_range = (
        select(E.bag_id)
        .join(B, B.bag_id == E.bag_id)
        .where(B.clinic == clinic, E.ts >= lo, E.ts < hi)
        .distinct()
    )
    rows = session.execute(
        select(E.bag_id, E.stage, E.category, E.weight_kg, E.ts)
        .where(E.bag_id.in_(in_range), E.conflict.is_(False))
        .order_by(E.ts, E.id)
    )
    n = (last - first).days + 1
    kg_cat = [dict.fromkeys((c.value for c in Category), 0.0) for _ in range(n)]
    kg_stage = [dict.fromkeys((s.value for s in STAGES), 0.0) for _ in range(n)]
    matrix: list[dict[str, dict[str, float]]] = [{} for _ in range(n)]
    bags = [0] * n
    seen: set[tuple[str, str]] = set()
    for bag_id, stage, category, kg, ts in rows:
        if (bag_id, stage) in seen:
            continue  # a re-scan at a stage already reached: the first one counts
        seen.add((bag_id, stage))
        if not lo <= ts < hi:
            continue
        i = (datetime.fromtimestamp(ts, CLINIC_TZ).date() - first).days
        kg_stage[i][stage] = kg_stage[i].get(stage, 0.0) + kg
        cell = matrix[i].setdefault(stage, {})
        cell[category] = cell.get(category, 0.0) + kg
        if stage == Stage.generated.value:
            kg_cat[i][category] = kg_cat[i].get(category, 0.0) + kg
            bags[i] += 1
    return [
        Day(
            date=(first + timedelta(days=i)).isoformat(),
            bags_generated=bags[i],
            kg_by_category=_rounded(kg_cat[i]),
            kg_by_stage=_rounded(kg_stage[i]),
            kg_by_stage_category={s: _rounded(c) for s, c in matrix[i].items()},
        )
        for i in range(n)
    ]


def _store(session: Session, clinic: str, now: float) -> list[StoredBag]:
    rows = session.scalars(
        select(B).where(B.clinic == clinic, B.stage == Stage.stored.value).order_by(B.stored_at, B.bag_id)
    )
    return [
        StoredBag(
            bag_id=b.bag_id,
            category=b.category,
            kg=b.last_kg,
            stored_at=b.stored_at,
            age_h=round((now - b.stored_at) / H, 2),
        )
        for b in rows
        if b.stored_at is not None
    ]


def _closed_loop(session: Session, clinic: str, lo: float, hi: float, now: float) -> ClosedLoop:
    cutoff = now - CLOSED_LOOP_MIN_AGE_H * H
    closed = B.closed_as.in_(("disposed", "refused"))
    judged = (B.clinic == clinic, B.generated_at >= lo, B.generated_at < hi, B.generated_at <= cutoff)
    counts = session.execute(
        select(func.count(), func.coalesce(func.sum(case((closed, 1), else_=0)), 0)).where(*judged)
    ).one()
    generated, done = int(counts[0]), int(counts[1])
    open_bags = session.scalars(
        select(B.bag_id)
        .where(*judged, B.closed_as.is_(None))
        .order_by(B.generated_at, B.bag_id)
        .limit(OPEN_BAGS_SHOWN)
    )
    return ClosedLoop(
        bags_generated=generated,
        bags_closed=done,
        rate=round(done / generated, 4) if generated else None,
        min_age_h=CLOSED_LOOP_MIN_AGE_H,
        open_bags=list(open_bags),
    )


# ---------------------------------------------------------------- parameters


def _rounded(kg: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in kg.items()}


def _day_start(d: date) -> float:
    return datetime.combine(d, time(), CLINIC_TZ).timestamp()


def _parse_day(name: str, value: str) -> date:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def _day_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    last = _parse_day("end", end) if end is not None else today
    first = _parse_day("start", start) if start is not None else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise HTTPException(422, f"start {first.isoformat()} is after end {last.isoformat()}")
    n = (last - first).days + 1
    if n > MAX_DAYS:
        raise HTTPException(422, f"the range is {n} days: at most {MAX_DAYS}")
    return first, last


def _instant(name: str, value: str | None, *, end_of_day: bool) -> float | None:
    """``web.api_alerts.instant``, with nothing given meaning no bound."""
    if value is None or not value.strip():
        return None
    return instant(name, value, end_of_day=end_of_day)
