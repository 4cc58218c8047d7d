"""The district pages (issue 6) for the district bureau:

- ``GET /district``: every clinic of the district (name, worst colour, open alerts); the ranking of its
  clinics by this month's compliance score so far, best first, each score with its five components
  (score and measure in words), the waste closed-loop rate and the median time to acknowledge per
  clinic and for the district (``web.district_report``; a clinic with nothing to judge shows "—" and
  why); links to the district's monthly report; the district's open alerts, most severe first, oldest
  first within a severity.
- ``GET /district/report/{YYYY-MM}.pdf`` and ``.csv``: the district's compliance report for a month.

Officers see their district (another one: 404), admins the demo district or ``?district=``; clinic
staff are sent to their clinic's page (303). Built from the helpers of ``web.pages``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.compliance import component_name, describe
from alerting.messages import ZH
from alerting.store import AlertRow
from core.clinic_time import CLINIC_TZ
from core.db import ClinicRow, DistrictRow, TownshipRow
from core.influx import InfluxError
from web import api_alerts, district_report, reports
from web.api_alerts import OPEN_STATES
from web.app import ClockDep, InfluxDep, SessionDep
from web.auth import HEADERS, CurrentUser, User
from web.district_report import (
    ClinicCompliance,
    DistrictRecord,
    ack_why,
    minutes_text,
    percent_text,
    score_text,
    score_why,
    waste_why,
)
from web.i18n import pick_lang, texts
from web.pages import SEVERITY_ORDER, Lang, Month, _alert_view, _clinic_url, _download, _people, _render
from web.users import DEMO_DISTRICT, Role

router = APIRouter(tags=["pages"])

DistrictQuery = Annotated[str | None, Query(max_length=64, description="admins: which district")]


def _district(session: Session, user: User, district: str | None) -> DistrictRow | RedirectResponse:
    """The district the user asks for and may see; clinic staff: a redirect to their clinic's page."""
    if user.role is Role.clinic_staff:
        return RedirectResponse(_clinic_url(user.scope or ""), status_code=303, headers=HEADERS)
    if user.role is Role.district_officer:
        if district is not None and district != user.scope:
            raise HTTPException(404, f"no district {district!r}")
        district_id = user.scope or ""
    else:
        district_id = district or DEMO_DISTRICT
    row = session.get(DistrictRow, district_id)
    if row is None:
        raise HTTPException(404, f"no district {district_id!r}")
    return row


@router.get("/district", response_class=HTMLResponse)
def district_page(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    influx: InfluxDep,
    user: CurrentUser,
    district: DistrictQuery = None,
    lang: Lang = None,
) -> Response:
    """Every clinic of the district at a glance, their compliance ranking this month, open alerts."""
    row = _district(session, user, district)
    if isinstance(row, RedirectResponse):
        return row
    lang = pick_lang(lang, user.language)
    t = texts(lang)
    now = clock.now()
    clinics = list(
        session.execute(
            select(ClinicRow, TownshipRow.name)
            .join(TownshipRow, TownshipRow.id == ClinicRow.township_id)
            .where(TownshipRow.district_id == row.id)
            .order_by(TownshipRow.name, ClinicRow.name, ClinicRow.id)
        )
    )
    names = {c.id: c.name for c, _ in clinics}
    alerts = list(
        session.scalars(
            select(AlertRow).where(AlertRow.clinic.in_(sorted(names)), AlertRow.state.in_(OPEN_STATES))
        )
    )
    try:  # an appliance out of range before any alarm: amber, as on the clinic page
        out_of_range, influx_down = api_alerts.out_of_range_clinics(session, influx, row.id), False
    except InfluxError:
        out_of_range, influx_down = set(), True
    grid = []
    for c, township in clinics:
        mine = [a for a in alerts if a.clinic == c.id]
        state = api_alerts.alert_state(mine)
        early = state == "green" and c.id in out_of_range
        grid.append(
            {
                "id": c.id,
                "name": c.name,
                "township": township,
                "url": _clinic_url(c.id, lang),
                "state": "amber" if early else state,
                "open": len(mine),
                "out_of_range": early,
            }
        )
    people = _people(session)
    alerts.sort(key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.started_at, a.id))
    shown = [
        {
            **_alert_view(api_alerts.alert_out(a), t, lang, now, people),
            "clinic_name": names.get(a.clinic or "", ""),
        }
        for a in alerts
    ]
    today = datetime.fromtimestamp(now, CLINIC_TZ)
    rec = district_report.district_record(request.app.state.engine, row.id, today.year, today.month, now)
    return _render(
        request,
        "district.html",
        lang,
        user,
        title=t["district_title"].format(name=row.name),
        district=row,
        grid=grid,
        influx_down=influx_down,
        alerts=shown,
        ranking=[_ranked_view(c, lang) for c in rec.clinics],
        medians=_district_view(rec, lang),
        reports=_report_links(row.id, rec.month_text, user, lang),
        rules=[
            {"name": component_name(c.key, lang), "weight": f"{c.weight:g}", "rule": describe(c, lang)[1]}
            for c in district_report.RULES.components
        ],
    )


@router.get("/district/report/{month}.pdf", response_class=Response)
def district_report_pdf(
    month: Month,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    district: DistrictQuery = None,
    lang: Lang = None,
) -> Response:
    """The district's compliance report for a month as a PDF."""
    rec = _record(request, session, clock.now(), user, district, month)
    if isinstance(rec, RedirectResponse):
        return rec
    try:
        pdf = district_report.district_pdf(rec, pick_lang(lang, user.language))
    except reports.FontMissing as exc:
        raise HTTPException(503, str(exc)) from None
    return _download(pdf, "application/pdf", f"{rec.district_id}-{rec.month_text}.pdf")


@router.get("/district/report/{month}.csv", response_class=Response)
def district_report_csv(
    month: Month,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    district: DistrictQuery = None,
    lang: Lang = None,
) -> Response:
    """The district's compliance report for a month as CSV (UTF-8)."""
    rec = _record(request, session, clock.now(), user, district, month)
    if isinstance(rec, RedirectResponse):
        return rec
    text = district_report.district_csv(rec, pick_lang(lang, user.language))
    name = f"{rec.district_id}-{rec.month_text}.csv"
    return _download(text.encode("utf-8"), "text/csv; charset=utf-8", name)


# ---------------------------------------------------------------- helpers


def _record(
    request: Request, session: Session, now: float, user: User, district: str | None, month: str
) -> DistrictRecord | RedirectResponse:
    row = _district(session, user, district)
    if isinstance(row, RedirectResponse):
        return row
    try:
        year, mon = reports.parse_month(month)
        return district_report.district_record(request.app.state.engine, row.id, year, mon, now)
    except reports.ReportError as exc:
        raise HTTPException(404, str(exc)) from None


def _ranked_view(c: ClinicCompliance, lang: str) -> dict[str, Any]:
    components = []
    for comp in c.compliance.components:
        value, rule = describe(comp, lang)
        components.append(
            {
                "key": comp.key,
                "name": component_name(comp.key, lang),
                "weight": f"{comp.weight:g}",
                "score": score_text(comp.score),
                "judged": comp.score is not None,
                "value": value,
                "rule": rule,
            }
        )
    return {
        "id": c.id,
        "name": c.name,
        "township": c.township,
        "url": _clinic_url(c.id, lang),
        "rank": c.rank,
        "score": score_text(c.compliance.score),
        "why": score_why(c, lang),
        "waste_rate": percent_text(c.closed_loop_rate),
        "waste_why": waste_why(c, lang),
        "ack": minutes_text(c.median_ack_minutes, lang),
        "ack_why": ack_why(c, lang),
        "components": components,
    }


def _district_view(rec: DistrictRecord, lang: str) -> dict[str, str]:
    bags = sum(c.inputs.bags_old_enough for c in rec.clinics)
    return {
        "month": rec.month_text,
        "ack": minutes_text(rec.median_ack_minutes, lang),
        "acked": str(len(rec.response_minutes)),
        "rate": percent_text(rec.closed_loop_rate),
        "bags": str(bags),
        "score": score_text(rec.median_score),
    }


def _report_links(district_id: str, month: str, user: User, lang: str) -> dict[str, str]:
    query: dict[str, str] = {}
    if user.role is Role.admin:
        query["district"] = district_id
    if lang != ZH:
        query["lang"] = lang
    suffix = f"?{urlencode(query)}" if query else ""
    base = f"/district/report/{month}"
    return {"month": month, "pdf": f"{base}.pdf{suffix}", "csv": f"{base}.csv{suffix}"}
