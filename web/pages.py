"""The HTML pages of the web app for clinic staff and district officers (issue 6), server-rendered, no
JavaScript, zh-CN by default (``?lang=en``), phone first:

- ``GET /``: the user's home (clinic staff: their clinic's page; officer and admin: ``/district``;
  anonymous: ``/login``).
- ``GET /clinics/{clinic_id}``: one card per appliance (the latest temperature in large type, green /
  amber / red, the age of the reading, the allowed range, "out of range since HH:MM" while the rules
  have not alarmed yet, a 24 h chart with the band as inline SVG from ``web.chart``, today's two
  twice-daily check slots with the form to record the open one) with its open alerts and their
  acknowledge and resolve forms; the clinic's other open alerts; the bags of medical waste in the store;
  links to this month's record (PDF, CSV). The status is ``web.api_alerts.clinic_status``'s, the chart
  ``web.api_alerts.temperature_points``' 10-minute buckets: InfluxDB down shows "—", no chart and a note.
- ``POST /alerts/{alert_id}/ack`` and ``POST /alerts/{alert_id}/resolve``: the forms, with the session's
  CSRF token in the ``csrf`` field; the same calls as the API (``web.api_alerts.acknowledge`` /
  ``resolve``: lifecycle, audit log), then back to the clinic page (303). A resolve the lifecycle refuses
  (a critical cold-chain alert without a corrective action) shows the clinic page again with why (422).
- ``POST /equipment/{equipment_id}/checks``: the twice-daily check form (``celsius``, ``note``, ``csrf``):
  ``web.api_checks.record`` (``record_check``, audit log), then back to the clinic page (303); a reading
  that is not a number within −100…100 shows the clinic page again with why (422).
- ``GET /clinics/{clinic_id}/report/{YYYY-MM}.pdf`` and ``.csv``: the monthly record (``web.reports``).
- ``GET /district``: in ``web.district_page``.

Scope as everywhere (``web.auth``): a clinic or alert outside the user's scope is 404; admins look but do
not acknowledge or resolve (403); a page asked for without a login redirects to ``/login``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alerting.checks_store import NOTE_MAX as CHECK_NOTE_MAX
from alerting.checks_store import checks_between
from alerting.messages import EN, ZH
from alerting.rules.types import Severity
from alerting.store import AlertRow
from alerting.waste.profiles import profile_now
from core.clinic_time import DAY_S, day_number, day_start
from core.db import EquipmentRow, PersonRow
from core.influx import InfluxError
from web import api_alerts, api_checks, api_waste, chart, reports
from web.api_alerts import (
    ACT_ROLES,
    CLINIC_TZ,
    DETAIL_MAX,
    NOTE_MAX,
    AckIn,
    ActUser,
    AlertId,
    AlertOut,
    ClinicId,
    CorrectiveAction,
    EquipmentId,
    EquipmentStatus,
    ResolveIn,
)
from web.app import TEMPLATES, ClockDep, InfluxDep, SessionDep, form_field, form_lang
from web.auth import HEADERS, CurrentUser, OptionalUser, User, can_see_clinic, login_redirect
from web.i18n import local_time, pick_lang, texts
from web.users import Role

router = APIRouter(tags=["pages"])

Lang = Annotated[str | None, Query(max_length=16, description="zh-CN (default) or en")]
Month = Annotated[str, Path(max_length=16, description="YYYY-MM", examples=["2026-11"])]
SEVERITY_ORDER = {Severity.critical.value: 0, Severity.warning.value: 1, Severity.info.value: 2}
PRESETS = tuple(c.value for c in CorrectiveAction)
CHART_SPAN_S = 24 * 3600.0
CHART_BUCKET_S = 600  # 10 minutes: 144 points a day


async def _form(request: Request) -> FormData:
    """The posted form (Starlette caches it: the CSRF check has read it already)."""
    return await request.form(max_files=0, max_fields=16)


FormDep = Annotated[FormData, Depends(_form)]


# ---------------------------------------------------------------- home


@router.get("/", response_class=RedirectResponse, status_code=303)
def home(request: Request, user: OptionalUser) -> RedirectResponse:
    """The user's home page."""
    if user is None:
        return login_redirect(request)
    if user.role is Role.clinic_staff:
        target = _clinic_url(user.scope or "")
    else:
        target = "/district"
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------- a clinic


@router.get("/clinics/{clinic_id}", response_class=HTMLResponse)
def clinic_page(
    clinic_id: ClinicId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    influx: InfluxDep,
    user: CurrentUser,
    lang: Lang = None,
) -> HTMLResponse:
    """A clinic's appliances, their open alerts, its waste store and its monthly record."""
    return _clinic(request, session, clock.now(), influx, user, clinic_id, pick_lang(lang, user.language))


@router.post("/alerts/{alert_id}/ack", response_class=RedirectResponse, status_code=303)
def ack_form(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    form: FormDep,
) -> Response:
    """The acknowledge button of the clinic page."""
    lang = form_lang(form, user.language)
    note = form_field(form, "note", NOTE_MAX).strip() or None
    out = api_alerts.acknowledge(alert_id, request, session, clock, user, AckIn(note=note))
    return _back(out.alert.clinic, lang)


@router.post("/alerts/{alert_id}/resolve", response_class=RedirectResponse, status_code=303)
def resolve_form(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    influx: InfluxDep,
    user: ActUser,
    form: FormDep,
) -> Response:
    """The resolve form of the clinic page: a corrective-action preset and a note."""
    lang = form_lang(form, user.language)
    t = texts(lang)
    preset = form_field(form, "corrective_action", 64).strip()
    detail = form_field(form, "detail", DETAIL_MAX).strip() or None
    try:
        body = ResolveIn(corrective_action=cast(Any, preset or None), detail=detail)
    except ValidationError:
        body = None
    error: str | None = t["resolve_bad_preset"] if body is None else None
    if body is not None:
        try:
            out = api_alerts.resolve(alert_id, request, session, clock, user, body)
        except HTTPException as exc:
            if exc.status_code != 422:
                raise
            session.rollback()  # the API's write lock (SQLite) or row lock
            error = _refusal(body, t) or str(exc.detail)
        else:
            return _back(out.alert.clinic, lang)
    alert = session.get(AlertRow, alert_id)
    if alert is None or alert.clinic is None or not can_see_clinic(session, user, alert.clinic):
        raise HTTPException(404, f"no alert {alert_id!r}")
    return _clinic(
        request,
        session,
        clock.now(),
        influx,
        user,
        alert.clinic,
        lang,
        status=422,
        error=(t["resolve_failed"], error or ""),
        error_alert=alert_id,
    )


@router.post("/equipment/{equipment_id}/checks", response_class=RedirectResponse, status_code=303)
def check_form(
    equipment_id: EquipmentId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    influx: InfluxDep,
    user: ActUser,
    form: FormDep,
) -> Response:
    """The twice-daily check form of an appliance's card: the thermometer's reading and a note."""
    lang = form_lang(form, user.language)
    t = texts(lang)
    equipment = session.get(EquipmentRow, equipment_id)
    if equipment is None or not can_see_clinic(session, user, equipment.clinic_id):
        raise HTTPException(404, f"no equipment {equipment_id!r}")
    celsius = api_checks.parse_celsius(form_field(form, "celsius", 40))
    note = form_field(form, "note", CHECK_NOTE_MAX).strip() or None
    error = t["check_bad_celsius"]
    if celsius is not None:
        try:
            api_checks.record(
                equipment.id, request, session, clock, user, api_checks.CheckIn(celsius=celsius, note=note)
            )
        except HTTPException as exc:
            if exc.status_code not in (409, 422):
                raise
            session.rollback()
            error = str(exc.detail)
        else:
            return _back(equipment.clinic_id, lang)
    return _clinic(
        request,
        session,
        clock.now(),
        influx,
        user,
        equipment.clinic_id,
        lang,
        status=422,
        error=(t["check_failed"], error),
        error_equipment=equipment.id,
    )


@router.get("/clinics/{clinic_id}/report/{month}.pdf", response_class=Response)
def report_pdf(
    clinic_id: ClinicId,
    month: Month,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    lang: Lang = None,
) -> Response:
    """The clinic's monthly cold-chain record as a PDF."""
    rec = _record(request, session, clock.now(), user, clinic_id, month)
    try:
        pdf = reports.record_pdf(rec, pick_lang(lang, user.language))
    except reports.FontMissing as exc:
        raise HTTPException(503, str(exc)) from None
    return _download(pdf, "application/pdf", f"{rec.clinic_id}-{rec.month_text}.pdf")


@router.get("/clinics/{clinic_id}/report/{month}.csv", response_class=Response)
def report_csv(
    clinic_id: ClinicId,
    month: Month,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    lang: Lang = None,
) -> Response:
    """The clinic's monthly cold-chain record as CSV (UTF-8)."""
    rec = _record(request, session, clock.now(), user, clinic_id, month)
    text = reports.record_csv(rec, pick_lang(lang, user.language))
    return _download(text.encode("utf-8"), "text/csv; charset=utf-8", f"{rec.clinic_id}-{rec.month_text}.csv")


# ---------------------------------------------------------------- building the clinic page


def _clinic(
    request: Request,
    session: Session,
    now: float,
    influx: Any,
    user: User,
    clinic_id: str,
    lang: str,
    *,
    status: int = 200,
    error: tuple[str, str] | None = None,
    error_alert: str | None = None,
    error_equipment: str | None = None,
) -> HTMLResponse:
    t = texts(lang)
    st = api_alerts.clinic_status(clinic_id, session, _Clock(now), influx, user)  # 404 outside the scope
    people = _people(session)
    alerts = {a.id: _alert_view(a, t, lang, now, people) for a in st.open_alerts}
    from web.shake_test import add_impacts  # here: web.shake_test imports this module

    add_impacts(session, alerts, t, lang)  # the lots inside at a heat or freeze alarm, and what to do
    on_cards: set[str] = set()
    cards = []
    influx_up = st.influx_error is None
    for e in st.equipment:
        on_cards.update(e.open_alerts)
        chart_svg, chart_note = _chart(influx, e, now, t, lang) if influx_up else (None, t["chart_down"])
        cards.append(
            {
                "id": e.id,
                "name": e.name,
                "state": e.state,
                "state_label": t[f"colour_{e.state}"],
                "temperature": _celsius(e.celsius, lang) if e.celsius is not None else "—",
                "age": _age(e.age_s, t) if e.age_s is not None else None,
                "range": _range(e.low_c, e.high_c, t),
                "out_since": (
                    t["out_of_range_since"].format(time=_clock_time(e.out_of_range_since, now, lang))
                    if e.out_of_range_since is not None
                    else None
                ),
                "chart": chart_svg,
                "chart_note": chart_note,
                "checks": _checks(session, e, now, t, lang, people),
                "alerts": [alerts[a] for a in e.open_alerts if a in alerts],
            }
        )
    month = datetime.fromtimestamp(now, CLINIC_TZ).strftime("%Y-%m")
    base = f"{_clinic_url(st.clinic)}/report/{month}"
    suffix = f"?lang={quote(lang)}"
    return _render(
        request,
        "clinic.html",
        lang,
        user,
        status=status,
        title=st.clinic_name,
        st=st,
        cards=cards,
        other_alerts=[v for k, v in alerts.items() if k not in on_cards],
        influx_down=st.influx_error is not None,
        can_act=user.role in ACT_ROLES,
        presets=[(p, t[f"preset_{p}"]) for p in PRESETS],
        note_max=NOTE_MAX,
        detail_max=DETAIL_MAX,
        report_month=month,
        report_pdf=base + ".pdf" + suffix,
        report_csv=base + ".csv" + suffix,
        waste=_waste(session, st.clinic, now, user, t),
        error=error,
        error_alert=error_alert,
        error_equipment=error_equipment,
        check_note_max=CHECK_NOTE_MAX,
    )


@dataclass(frozen=True, slots=True)
class _Clock:
    """The request's instant, handed to the API functions so that the page is of one moment."""

    t: float

    def now(self) -> float:
        return self.t


def _chart(
    influx: Any, e: EquipmentStatus, now: float, t: dict[str, str], lang: str
) -> tuple[str | None, str | None]:
    """The appliance's last 24 h as SVG, or None and why not (no readings, InfluxDB failed)."""
    start = now - CHART_SPAN_S
    try:
        series = api_alerts.temperature_points(influx, e.id, start, now, CHART_BUCKET_S)
    except InfluxError:
        return None, t["chart_down"]
    half = CHART_BUCKET_S / 2
    points = [
        chart.Point(
            min(p.t + half, now),
            p.mean,
            p.min if p.min is not None else p.mean,
            p.max if p.max is not None else p.mean,
        )
        for p in series
        if p.mean is not None
    ]
    if not points:
        return None, t["chart_none"]
    band = chart.Band(e.low_c, e.high_c) if e.low_c is not None and e.high_c is not None else None
    summary = chart.summarize(points, band)
    title = t["chart_title"].format(
        name=e.name,
        low=_celsius(summary.lowest or 0.0, lang),
        high=_celsius(summary.highest or 0.0, lang),
        n=summary.points,
        out=summary.out,
    )
    return chart.chart_svg(points, band, start, now, title=title, ident=f"chart-{e.id}"), None


def _checks(
    session: Session, e: EquipmentStatus, now: float, t: dict[str, str], lang: str, people: dict[str, str]
) -> dict[str, Any] | None:
    """Today's twice-daily check of a refrigerator: each slot's line and, if a slot is open, the
    button's label; None for an appliance without the check."""
    settings = api_checks.check_settings_of(session, e.profile)
    if settings is None:
        return None
    start = day_start(day_number(now))
    slots = api_checks.today(checks_between(session, e.id, start, start + DAY_S), now, settings)
    lines, button = [], None
    for s in slots:
        hm = {"opens": _hm(s.opens), "due": _hm(s.due), "end": _hm(s.end, end=True)}
        if s.check is not None:
            c = s.check
            read = _celsius(c.celsius, lang) if c.celsius is not None else "—"
            text = t["check_done"].format(
                time=_hm(c.checked_at), name=people.get(c.person_id, c.person_id), celsius=read
            )
        else:
            text = t[f"check_{s.state}"].format(**hm)
        if s.state in ("due", "late"):
            button = t[f"check_button_{s.slot.value}"]
        lines.append(
            {"slot": s.slot.value, "label": t[f"check_{s.slot.value}"], "state": s.state, "text": text}
        )
    return {"slots": lines, "button": button}


def _alert_view(
    a: AlertOut, t: dict[str, str], lang: str, now: float, people: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": a.id,
        "clinic": a.clinic,
        "severity": a.severity,
        "severity_label": t.get(f"severity_{a.severity}", a.severity),
        "state": a.state,
        "state_label": t.get(f"state_{a.state}", a.state),
        "message": a.message_en if lang == EN else a.message,
        "since": local_time(a.started_at, lang),
        "open_for": _age(max(0.0, now - a.started_at), t),
        "acked": (
            t["acked_by_at"].format(
                name=people.get(a.acknowledged_by, a.acknowledged_by),
                time=local_time(a.acknowledged_at, lang),
            )
            if a.acknowledged_at is not None and a.acknowledged_by
            else None
        ),
        "can_ack": a.state == "firing",
        "needs_action": a.needs_corrective_action,
    }


def _waste(
    session: Session, clinic_id: str, now: float, user: User, t: dict[str, str]
) -> dict[str, Any] | None:
    """Today's waste (``web.api_waste.clinic_days``): the bags generated today and the bags in the
    store with how long they have been there, overdue from the waste profile's warning age on; None for
    a clinic with neither."""
    today = datetime.fromtimestamp(now, CLINIC_TZ).date().isoformat()
    days = api_waste.clinic_days(clinic_id, session, _Clock(now), user, start=today, end=today)
    generated = days.days[0] if days.days else None
    if not days.store and (generated is None or not generated.bags_generated):
        return None
    profile = profile_now(cast(Engine, session.get_bind()))  # as web.api_waste and the alerting service
    bags = [
        {
            "id": b.bag_id,
            "category": t.get(f"waste_{b.category}", b.category),
            "kg": f"{b.kg:.1f}",
            "age": t["stored_h"].format(n=f"{b.age_h:.0f}"),
            "overdue": b.age_h >= profile.storage_warning_h,
        }
        for b in days.store
    ]
    return {
        "generated": generated.bags_generated if generated else 0,
        "kg": f"{sum(generated.kg_by_category.values()) if generated else 0.0:.1f}",
        "bags": bags,
        "limit_h": _num(profile.storage_warning_h),
    }


# ---------------------------------------------------------------- helpers


def _record(
    request: Request, session: Session, now: float, user: User, clinic_id: str, month: str
) -> reports.MonthlyRecord:
    clinic = api_alerts.clinic_or_404(session, user, clinic_id)
    try:
        year, mon = reports.parse_month(month)
        return reports.monthly_record(request.app.state.engine, clinic.id, year, mon, now)
    except reports.ReportError as exc:
        raise HTTPException(404, str(exc)) from None


def _download(body: bytes, media_type: str, filename: str) -> Response:
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{quote(filename)}"'}
    return Response(body, media_type=media_type, headers=headers)


def _render(
    request: Request, template: str, lang: str, user: User, status: int = 200, **ctx: Any
) -> HTMLResponse:
    context = {
        "lang": lang,
        "t": texts(lang),
        "other_lang": ZH if lang == EN else EN,
        "user": user,
        "csrf": user.csrf,
        "nav": True,
        **ctx,
    }
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)


def _back(clinic: str | None, lang: str) -> RedirectResponse:
    target = _clinic_url(clinic, lang) if clinic else "/"
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


def _clinic_url(clinic_id: str, lang: str | None = None) -> str:
    return lang_url(f"/clinics/{quote(clinic_id, safe='')}", lang)


def lang_url(url: str, lang: str | None) -> str:
    """A page's address in ``lang``: zh-CN (the default) needs no ``?lang=``."""
    return f"{url}?lang={quote(lang)}" if lang and lang != ZH else url


def _people(session: Session) -> dict[str, str]:
    return {p.id: p.name for p in session.scalars(select(PersonRow))}


def _refusal(body: ResolveIn, t: dict[str, str]) -> str | None:
    """Why the API refused to close an alert, in the page's language (the API's own detail is English)."""
    if body.corrective_action is None:
        return t["resolve_detail_needs_preset"] if body.detail else t["needs_action"]
    if body.corrective_action is CorrectiveAction.other and not body.detail:
        return t["resolve_other_needs_detail"]
    return None


def _hm(t: float, end: bool = False) -> str:
    """ "HH:MM" in clinic time; an ``end`` at midnight is "24:00"."""
    if end and t == day_start(day_number(t)):
        return "24:00"
    return f"{datetime.fromtimestamp(t, CLINIC_TZ):%H:%M}"


def _clock_time(t: float, now: float, lang: str) -> str:
    """ "HH:MM" for today (clinic time), the date too for an earlier day."""
    return _hm(t) if day_number(t) == day_number(now) else local_time(t, lang)


def _celsius(c: float, lang: str) -> str:
    return f"{c:.1f} °C" if lang == EN else f"{c:.1f}°C"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _range(low: float | None, high: float | None, t: dict[str, str]) -> str | None:
    """ "允许范围 2–8°C"; "允许范围 −25 至 −15°C" when a dash would read as a minus sign."""
    if low is None or high is None:
        return None
    lo, hi = _num(low).replace("-", "\u2212"), _num(high).replace("-", "\u2212")
    span = f"{lo}–{hi}" if low >= 0 and high >= 0 else t["range_to"].format(low=lo, high=hi)
    return t["range"].format(span=span)


def _age(seconds: float, t: dict[str, str]) -> str:
    """ "3 分钟前" / "3 min ago"; hours past 2 h, days past 2 days."""
    if seconds < 60:
        return t["age_now"]
    if seconds < 7200:
        return t["age_min"].format(n=int(seconds // 60))
    if seconds < 2 * 86400:
        return t["age_h"].format(n=int(seconds // 3600))
    return t["age_d"].format(n=int(seconds // 86400))
