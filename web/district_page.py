"""The district overview page (issue 6): ``GET /district``: every clinic of the district (name, worst
colour, open alerts) and the district's open alerts, most severe first, oldest first within a severity.
Officers see their district, admins the demo district or ``?district=``; clinic staff are sent to their
clinic's page. Built from the helpers of ``web.pages``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from alerting.store import AlertRow
from core.db import ClinicRow, DistrictRow, TownshipRow
from web import api_alerts
from web.api_alerts import OPEN_STATES
from web.app import ClockDep, SessionDep
from web.auth import HEADERS, CurrentUser
from web.i18n import pick_lang, texts
from web.pages import SEVERITY_ORDER, Lang, _alert_view, _clinic_url, _people, _render
from web.users import DEMO_DISTRICT, Role

router = APIRouter(tags=["pages"])


@router.get("/district", response_class=HTMLResponse)
def district_page(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    district: Annotated[str | None, Query(max_length=64, description="admins: which district")] = None,
    lang: Lang = None,
) -> Response:
    """Every clinic of the district at a glance, and its open alerts."""
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
    grid = []
    for c, township in clinics:
        mine = [a for a in alerts if a.clinic == c.id]
        grid.append(
            {
                "id": c.id,
                "name": c.name,
                "township": township,
                "url": _clinic_url(c.id, lang),
                "state": api_alerts.alert_state(mine),
                "open": len(mine),
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
    return _render(
        request,
        "district.html",
        lang,
        user,
        title=t["district_title"].format(name=row.name),
        district=row,
        grid=grid,
        alerts=shown,
    )
