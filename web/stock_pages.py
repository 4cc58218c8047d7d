"""The vaccine stock pages (issue 9), server-rendered, no JavaScript, zh-CN first (``?lang=en``), for a
nurse's cheap phone on a poor signal and for the district bureau:

- ``GET /clinics/{clinic_id}/stock``: one card per appliance with the lots inside (product, lot number,
  expiry, doses available and quarantined, the heat budget left when it has been computed, "expires in
  N days" from 30 days before expiry), and four small forms with a big button each: receive a delivery
  (product from the catalogue; the lot number typed, or scanned by a phone's scanner keyboard into a
  plain text field; expiry, doses, appliance, from where), move doses between the clinic's appliances,
  doses administered today, doses wasted (with the reason).
- ``POST /clinics/{clinic_id}/stock``: those forms (``kind`` says which; ``csrf``, ``lang`` and an
  ``ident`` the page made, so a double tap is stored once). Recorded by ``web.api_stock.record_movement``
  (scope, ``core.stock.record``, audit log), then back to the stock page (303) with a line saying what
  was recorded. Anything refused shows the page again with why in one line, on the form (422), and
  nothing is stored.
- ``GET /district/stock``: the bureau's view: every clinic of the district with its doses per product
  (available / quarantined), its lots expiring within 30 days and its lots that have used half their
  heat budget or more (when known). Officers see their district, admins the demo district or
  ``?district=``; clinic staff are sent to their clinic's page (as from ``/district``).

Scope as everywhere (``web.auth``): a clinic outside the user's scope is 404; admins look but do not
record (403); a page asked for without a login redirects to ``/login``.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alerting.compliance import month_bounds
from alerting.messages import EN, ZH
from alerting.reconcile import flag_lines, read_many, site_names
from core.clinic_time import CLINIC_TZ
from core.db import ClinicRow, TownshipRow
from core.stock import DOSES_MAX, LOT_MAX, Kind, StockError, VaccineProductRow, WasteReason
from web import api_alerts, api_stock
from web.api_alerts import ACT_ROLES, ActUser, ClinicId
from web.api_stock import Line, MovementIn
from web.app import ClockDep, SessionDep, form_field, form_lang
from web.auth import CurrentUser, User
from web.district_page import DistrictQuery, _district
from web.i18n import pick_lang, texts
from web.pages import Lang, _clinic_url, _render, lang_url
from web.users import Role

router = APIRouter(tags=["pages"])

FORM_KINDS = (Kind.received, Kind.moved, Kind.administered, Kind.wasted)  # the quick-entry forms
EXPIRY_WARN_DAYS = 30  # "expires in N days" from here
BUDGET_WARN = 0.5  # the bureau's list: lots that have used this much of their heat budget or more
SOURCE_MAX = 200
REASONS = tuple(r.value for r in WasteReason)


async def _form(request: Request) -> FormData:
    """The posted form (Starlette caches it: the CSRF check has read it already)."""
    return await request.form(max_files=0, max_fields=16)


FormDep = Annotated[FormData, Depends(_form)]


# ---------------------------------------------------------------- the clinic's stock


@router.get("/clinics/{clinic_id}/stock", response_class=HTMLResponse)
def clinic_stock_page(
    clinic_id: ClinicId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    lang: Lang = None,
    done: Annotated[str | None, Query(max_length=16, description="what was just recorded")] = None,
) -> HTMLResponse:
    """The clinic's vaccines per appliance, and the quick-entry forms."""
    lang = pick_lang(lang, user.language)
    shown = done if done in {k.value for k in FORM_KINDS} else None
    return _clinic_stock(request, session, clock.now(), user, clinic_id, lang, done=shown)


@router.post("/clinics/{clinic_id}/stock", response_class=RedirectResponse, status_code=303)
def clinic_stock_form(
    clinic_id: ClinicId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    form: FormDep,
) -> Response:
    """One of the quick-entry forms: received, moved, administered or wasted doses."""
    lang = form_lang(form, user.language)
    t = texts(lang)
    now = clock.now()
    clinic = api_alerts.clinic_or_404(session, user, clinic_id)
    kind = form_field(form, "kind", 16)
    if kind not in {k.value for k in FORM_KINDS}:
        raise HTTPException(422, f"kind must be one of {', '.join(k.value for k in FORM_KINDS)}")
    api_stock.write_lock(session)
    try:
        body = _body(session, clinic.id, Kind(kind), form, t)
        api_stock.record_movement(request, session, now, user, body, locked=True)
    except _Refused as exc:
        session.rollback()
        error = str(exc)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        session.rollback()
        error = t["stock_refused"].format(why=exc.detail)
    except ValidationError as exc:  # a field no page of ours sends (an ident that is not ours)
        session.rollback()
        error = t["stock_refused"].format(why=exc.errors()[0].get("msg", "invalid"))
    else:
        query = {"done": kind} | ({"lang": lang} if lang != ZH else {})
        target = f"{_stock_url(clinic.id)}?{urlencode(query)}#done"  # (not the form's #form-…)
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    values = {
        k: form_field(form, k, 100) for k in ("product", "lot_number", "expiry", "doses", "source", "place")
    }
    values |= {k: form_field(form, k, 100) for k in ("equipment", "to_equipment", "reason")}
    return _clinic_stock(
        request, session, now, user, clinic.id, lang, status=422, error=error, error_form=kind, values=values
    )


class _Refused(Exception):
    """A form that cannot be recorded; the message is the page's one line (in its language)."""


def _body(session: Session, clinic_id: str, kind: Kind, form: FormData, t: dict[str, str]) -> MovementIn:
    """The movement a form asks for, checked as far as the page can say why in its own language (the
    books' own refusals come from ``core.stock``)."""
    doses = _doses(form_field(form, "doses", 20))
    if doses is None:
        raise _Refused(t["stock_bad_doses"].format(max=DOSES_MAX))
    ident = form_field(form, "ident", api_stock.IDENT_MAX) or None
    if kind is Kind.received:
        product = form_field(form, "product", 64)
        if session.get(VaccineProductRow, product) is None:
            raise _Refused(t["stock_need_product"])
        number = form_field(form, "lot_number", LOT_MAX + 20).strip()
        if not number:
            raise _Refused(t["stock_need_lot"])
        equipment = form_field(form, "equipment", 64)
        _own_equipment(session, clinic_id, equipment, t)
        expiry = form_field(form, "expiry", 20).strip()
        try:
            lot_row, _new = api_stock.lot_of(session, product, number, expiry or None)
        except StockError as exc:
            raise _Refused(_lot_refusal(str(exc), t)) from None
        source = form_field(form, "source", SOURCE_MAX).strip() or None
        return MovementIn(
            kind=kind,
            lot=lot_row.id,
            equipment=equipment,
            clinic=clinic_id,
            doses=doses,
            source=source,
            ident=ident,
        )
    lot_id, equipment = _place(form_field(form, "place", 200))
    held = {
        (x.lot.id, x.equipment.id): x.balance.available for x in api_stock.stock_lines(session, [clinic_id])
    }
    if (lot_id, equipment) not in held:
        raise _Refused(t["stock_need_place"])
    if doses > held[(lot_id, equipment)]:
        raise _Refused(t["stock_not_enough"].format(n=held[(lot_id, equipment)]))
    extra: dict[str, Any] = {}
    if kind is Kind.moved:
        to = form_field(form, "to_equipment", 64)
        _own_equipment(session, clinic_id, to, t)
        if to == equipment:
            raise _Refused(t["stock_same_place"])
        extra["to_equipment"] = to
    if kind is Kind.wasted:
        reason = form_field(form, "reason", 32)
        if reason not in REASONS:
            raise _Refused(t["stock_need_reason"])
        extra["reason"] = reason
    return MovementIn(
        kind=kind, lot=lot_id, equipment=equipment, clinic=clinic_id, doses=doses, ident=ident, **extra
    )


def _own_equipment(session: Session, clinic_id: str, equipment_id: str, t: dict[str, str]) -> None:
    if equipment_id not in {e.id for e in api_stock.vaccine_equipment(session, clinic_id)}:
        raise _Refused(t["stock_need_equipment"])


def _clinic_stock(
    request: Request,
    session: Session,
    now: float,
    user: User,
    clinic_id: str,
    lang: str,
    *,
    status: int = 200,
    done: str | None = None,
    error: str | None = None,
    error_form: str | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    t = texts(lang)
    clinic = api_alerts.clinic_or_404(session, user, clinic_id)
    appliances = api_stock.vaccine_equipment(session, clinic.id)
    lines = api_stock.stock_lines(session, [clinic.id])
    today = datetime.fromtimestamp(now, CLINIC_TZ).date()
    by_equipment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    places = []
    for x in lines:
        by_equipment[x.equipment.id].append(_line_view(x, today, t, lang))
        if x.balance.available:
            places.append(
                {
                    "value": f"{x.lot.id}@{x.equipment.id}",
                    "label": t["stock_place"].format(
                        product=_product_name(x.product, lang),
                        lot=x.lot.lot_number,
                        equipment=_appliance_name(x, t),
                        n=x.balance.available,
                    ),
                    "transit": x.equipment.id == api_stock.TRANSIT,
                }
            )
    known = {e.id for e in appliances}
    cards = [{"id": e.id, "name": e.name, "lots": by_equipment.get(e.id, [])} for e in appliances]
    cards += [  # doses in an appliance no longer in the registry: still shown
        {"id": eq, "name": rows[0]["equipment_name"], "lots": rows}
        for eq, rows in by_equipment.items()
        if eq not in known
    ]
    products = [
        (p.id, _product_name(p, lang))
        for p in session.scalars(select(VaccineProductRow).order_by(VaccineProductRow.id))
    ]
    return _render(
        request,
        "stock_clinic.html",
        lang,
        user,
        status=status,
        title=t["stock_title"].format(name=clinic.name),
        clinic=clinic,
        clinic_url=_clinic_url(clinic.id, lang),
        action=_stock_url(clinic.id),
        cards=cards,
        empty=not lines,
        can_act=user.role in ACT_ROLES,
        products=products,
        appliances=[(e.id, e.name) for e in appliances],
        places=places,
        can_give=any(not p["transit"] for p in places),  # doses in transit are checked in first
        reasons=[(r, t[f"stock_reason_{r}"]) for r in REASONS],
        done=t[f"stock_done_{done}"] if done else None,
        error=error,
        error_form=error_form,
        values=values or {},
        idents={k.value: secrets.token_urlsafe(12) for k in FORM_KINDS},
        today=today.isoformat(),
        lot_max=LOT_MAX,
        doses_max=DOSES_MAX,
        source_max=SOURCE_MAX,
    )


def _line_view(x: Line, today: date, t: dict[str, str], lang: str) -> dict[str, Any]:
    days = (date.fromisoformat(x.lot.expiry) - today).days
    if days < 0:
        expiry_note = t["stock_expired"]
    elif days <= EXPIRY_WARN_DAYS:
        expiry_note = t["stock_expires_in"].format(n=days)
    else:
        expiry_note = None
    used = x.exposure.heat_budget_used if x.exposure is not None else None
    freeze = x.exposure.freeze_minutes if x.exposure is not None else None
    return {
        "lot_id": x.lot.id,
        "equipment_name": _appliance_name(x, t),
        "product": _product_name(x.product, lang),
        "lot": x.lot.lot_number,
        "expiry": x.lot.expiry,
        "available": x.balance.available,
        "quarantined": x.balance.quarantined,
        "budget": t["stock_budget_left"].format(pct=_pct(max(0.0, 1.0 - used))) if used is not None else None,
        "budget_low": used is not None and used >= BUDGET_WARN,
        "frozen": t["stock_frozen"].format(n=f"{freeze:.0f}") if freeze else None,
        "expiry_note": expiry_note,
        "expiry_soon": expiry_note is not None,
    }


# ---------------------------------------------------------------- the district's stock


@router.get("/district/stock", response_class=HTMLResponse)
def district_stock_page(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    district: DistrictQuery = None,
    lang: Lang = None,
) -> Response:
    """Every clinic of the district: doses per product, lots expiring soon, lots with half their heat
    budget used or more."""
    row = _district(session, user, district)
    if isinstance(row, RedirectResponse):  # clinic staff: to their clinic's page, as /district does
        return row
    lang = pick_lang(lang, user.language)
    t = texts(lang)
    today = datetime.fromtimestamp(clock.now(), CLINIC_TZ).date()
    clinics = list(
        session.scalars(
            select(ClinicRow)
            .join(TownshipRow, TownshipRow.id == ClinicRow.township_id)
            .where(TownshipRow.district_id == row.id)
            .order_by(TownshipRow.name, ClinicRow.name, ClinicRow.id)
        )
    )
    lines = api_stock.stock_lines(session, [c.id for c in clinics])
    by_clinic: dict[str, list[Line]] = defaultdict(list)
    for x in lines:
        by_clinic[x.clinic].append(x)
    now = clock.now()  # this month's books: what does not add up, for the bureau to follow up
    start, end, _first, _last = month_bounds(today.year, today.month)
    books = read_many(session, [c.id for c in clinics], start, end, now, site_names(session))
    return _render(
        request,
        "stock_district.html",
        lang,
        user,
        title=t["stock_district_title"].format(name=row.name),
        district=row,
        clinics=[
            {
                **_clinic_summary(c, by_clinic.get(c.id, []), today, t, lang),
                "flags": flag_lines(books[c.id], lang),
            }
            for c in clinics
        ],
        month=today.strftime("%Y-%m"),
        totals=_products(lines, lang),
        district_url=_district_url(user, row.id, lang),
        expiry_days=EXPIRY_WARN_DAYS,
    )


def _clinic_summary(
    c: ClinicRow, lines: list[Line], today: date, t: dict[str, str], lang: str
) -> dict[str, Any]:
    expiring, spent = [], []
    seen: set[int] = set()
    for x in sorted(lines, key=lambda x: (x.lot.expiry, x.lot.lot_number)):
        if x.lot.id in seen:
            continue
        seen.add(x.lot.id)
        doses = sum(y.balance.total for y in lines if y.lot.id == x.lot.id)
        days = (date.fromisoformat(x.lot.expiry) - today).days
        name = _product_name(x.product, lang)
        if days <= EXPIRY_WARN_DAYS:
            when = t["stock_expired"] if days < 0 else t["stock_expires_in"].format(n=days)
            expiring.append(
                t["stock_lot_note"].format(product=name, lot=x.lot.lot_number, n=doses, note=when)
            )
        used = x.exposure.heat_budget_used if x.exposure is not None else None
        if used is not None and used >= BUDGET_WARN:
            note = t["stock_budget_used"].format(pct=_pct(used))
            spent.append(t["stock_lot_note"].format(product=name, lot=x.lot.lot_number, n=doses, note=note))
    return {
        "id": c.id,
        "name": c.name,
        "url": _stock_url(c.id, lang),
        "products": _products(lines, lang),
        "expiring": expiring,
        "spent": spent,
    }


def _products(lines: list[Line], lang: str) -> list[dict[str, Any]]:
    """Doses per product (available, quarantined), by product id."""
    sums: dict[str, list[Any]] = {}
    for x in lines:
        row = sums.setdefault(x.product.id, [_product_name(x.product, lang), 0, 0])
        row[1] += x.balance.available
        row[2] += x.balance.quarantined
    return [{"id": k, "name": v[0], "available": v[1], "quarantined": v[2]} for k, v in sorted(sums.items())]


# ---------------------------------------------------------------- helpers


def _district_url(user: User, district_id: str, lang: str) -> str:
    """Back to /district, on the same district (admins) and in the same language."""
    query = {"district": district_id} if user.role is Role.admin else {}
    query |= {"lang": lang} if lang != ZH else {}
    return "/district" + (f"?{urlencode(query)}" if query else "")


def _stock_url(clinic_id: str, lang: str | None = None) -> str:
    return lang_url(f"/clinics/{quote(clinic_id, safe='')}/stock", lang)


def _appliance_name(x: Line, t: dict[str, str]) -> str:
    """The appliance's name; the clinic's holding place for doses issued to it: "在途（待入库）"."""
    return t["stock_transit"] if x.equipment.id == api_stock.TRANSIT else x.equipment.name


def _product_name(p: VaccineProductRow, lang: str) -> str:
    return p.name_en if lang == EN else p.name


def _place(value: str) -> tuple[int, str]:
    """ "<lot id>@<equipment id>" (a lot in an appliance, as the forms' lists give it); (0, "") if not."""
    lot, _, equipment = value.partition("@")
    return (int(lot), equipment) if lot.isdigit() and len(lot) < 12 and equipment else (0, "")


def _doses(text: str) -> int | None:
    v = text.strip()
    return int(v) if v.isdigit() and len(v) <= 7 and 1 <= int(v) <= DOSES_MAX else None


def _lot_refusal(message: str, t: dict[str, str]) -> str:
    """``core.stock.lot``'s refusal in the page's language (the usual three), else as it is."""
    if "is new: give its expiry" in message:
        return t["stock_need_expiry"]
    if "is not a date" in message:
        return t["stock_bad_expiry"]
    if "is not valid" in message:
        return t["stock_bad_lot"].format(max=LOT_MAX)
    if " expires " in message:
        return t["stock_other_expiry"].format(why=message)
    return t["stock_refused"].format(why=message)


def _pct(x: float) -> str:
    return f"{round(x * 100):d}%"
