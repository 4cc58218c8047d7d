"""``/a/{token}``: the page an alert SMS links to. No login: the signed token in the path says which
alert and which person (``alerting.notify.links``), and who acknowledges is the person it was sent to.

- ``GET`` shows the alert (text, place, since when, state) and the acknowledge form. It changes nothing:
  SMS and WeChat fetch links to draw previews.
- ``POST`` (the form) acknowledges the alert as the link's person, with the note, and records the
  link's first use. Acknowledging is idempotent: a second tap, or a link to an alert someone else has
  acknowledged or that is closed, shows who did what and when.
- A link past its expiry: 410 and what to do instead. A token that is not ours: 404 "invalid".
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alerting import lifecycle
from alerting.messages import EN, ZH
from alerting.notify.links import AckLink, LinkError, mark_used, verify_link
from alerting.rules.types import COLD_CHAIN_RULES, Rule
from alerting.store import SYSTEM, AlertRow, AlertState
from core.db import ClinicRow, EquipmentRow, PersonRow
from web.api_alerts import lock_alert
from web.app import TEMPLATES, ClockDep, LinkKeyDep, SessionDep, form_field, read_form
from web.i18n import local_time, pick_lang, texts

router = APIRouter()

NOTE_MAX = 500  # characters
FORM_MAX_BYTES = 8192  # a note of NOTE_MAX Chinese characters, percent-encoded, is 4.5 KB
TEMPERATURE_RULES = {r.value for r in (*COLD_CHAIN_RULES, Rule.early_warning)}
CLINIC_HEAD = "clinic_head"

# No cache (the state changes), no Referer (the URL is the secret), no framing (one button acts).
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


async def _form(request: Request) -> FormData:
    """The acknowledge form's fields.

    No CSRF token: the page has no login and no cookie for a forged request to ride on; what authorises
    the POST is the token in the path, which another site cannot know. So only what our own form sends
    is accepted: ``application/x-www-form-urlencoded`` with a Content-Length, a few KB at most (no JSON,
    no multipart, no uploads).
    """
    return await read_form(request, FORM_MAX_BYTES, 8)


FormDep = Annotated[FormData, Depends(_form)]


# ---------------------------------------------------------------- routes


@router.get("/a/{token}", response_class=HTMLResponse)
def ack_page(
    token: str,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    key: LinkKeyDep,
    lang: str | None = None,
) -> HTMLResponse:
    try:
        link = verify_link(session, key, token, clock.now())
    except LinkError as exc:
        return _link_error(request, session, exc, lang)
    alert = session.get(AlertRow, link.alert_id)
    if alert is None:
        return _invalid(request, pick_lang(lang))
    person = session.get(PersonRow, link.person_id)
    return _alert_page(request, session, alert, link, _lang(lang, person), person)


@router.post("/a/{token}", response_class=HTMLResponse)
def ack_submit(
    token: str,
    request: Request,
    form: FormDep,
    session: SessionDep,
    clock: ClockDep,
    key: LinkKeyDep,
) -> HTMLResponse:
    requested = form_field(form, "lang") or request.query_params.get("lang")
    note = form_field(form, "note").strip() or None
    now = clock.now()
    with session.begin():
        try:
            link = verify_link(session, key, token, now)
        except LinkError as exc:
            return _link_error(request, session, exc, requested)
        person = session.get(PersonRow, link.person_id)
        lang = _lang(requested, person)
        if note is not None and len(note) > NOTE_MAX:
            t = texts(lang)
            return _message(request, lang, 400, t["bad_form_title"], [t["bad_form"].format(n=NOTE_MAX)])
        lock_alert(session, link.alert_id)
        try:
            changes = lifecycle.acknowledge(session, link.alert_id, by=link.person_id, note=note, now=now)
        except lifecycle.AlertNotFound:
            return _invalid(request, lang)
        mark_used(session, link.id, note, now)
        alert = lifecycle.get_alert(session, link.alert_id)
        return _alert_page(request, session, alert, link, lang, person, done=bool(changes))


# ---------------------------------------------------------------- pages


def _alert_page(
    request: Request,
    session: Session,
    alert: AlertRow,
    link: AckLink,
    lang: str,
    person: PersonRow | None,
    *,
    done: bool = False,
) -> HTMLResponse:
    t = texts(lang)
    en = lang == EN
    status_text, status_note = _status(session, alert, t, lang)
    celsius = (alert.values or {}).get("celsius")
    temperature = None
    if alert.rule in TEMPERATURE_RULES and isinstance(celsius, int | float) and not isinstance(celsius, bool):
        temperature = f"{celsius:.1f} °C" if en else f"{celsius:.1f}°C"
    return _render(
        request,
        "ack.html",
        lang,
        200,
        alert=alert,
        severity_label=t.get(f"severity_{alert.severity}", alert.severity),
        temperature=temperature,
        message=alert.message_en if en else alert.message,
        where=_where(session, alert),
        since=local_time(alert.started_at, lang),
        state_label=t.get(f"state_{alert.state}", alert.state),
        status_text=status_text,
        status_note=status_note,
        done=done,
        can_ack=alert.state == AlertState.firing.value and not done,
        person_name=person.name if person else link.person_id,
        note_max=NOTE_MAX,
    )


def _status(session: Session, alert: AlertRow, t: dict[str, str], lang: str) -> tuple[str | None, str | None]:
    """Who acknowledged or closed the alert, and when (and the acknowledgement's note)."""
    if alert.state == AlertState.resolved.value and alert.resolved_at is not None:
        when = local_time(alert.resolved_at, lang)
        if alert.resolved_by in (None, SYSTEM):
            return t["resolved_auto"].format(time=when), None
        return t["resolved_by"].format(name=_person_name(session, alert.resolved_by), time=when), None
    if alert.state == AlertState.acknowledged.value and alert.acknowledged_at is not None:
        name = _person_name(session, alert.acknowledged_by or "")
        when = local_time(alert.acknowledged_at, lang)
        return t["already_acked"].format(name=name, time=when), alert.acknowledged_note
    return None, None


def _link_error(request: Request, session: Session, exc: LinkError, requested: str | None) -> HTMLResponse:
    if exc.reason != "expired" or exc.link is None:
        return _invalid(request, pick_lang(requested))
    link = exc.link
    lang = _lang(requested, session.get(PersonRow, link.person_id))
    t = texts(lang)
    alert = session.get(AlertRow, link.alert_id)
    contact = _clinic_head(session, alert.clinic) if alert is not None and alert.clinic else None
    lines = [t["expired"].format(time=local_time(link.expires_at, lang)), t["expired_todo"]]
    return _message(request, lang, 410, t["expired_title"], lines, contact=contact)


def _invalid(request: Request, lang: str) -> HTMLResponse:
    t = texts(lang)
    return _message(request, lang, 404, t["invalid_title"], [t["invalid"]])


def _message(
    request: Request, lang: str, status: int, title: str, lines: list[str], **ctx: Any
) -> HTMLResponse:
    tone = "warning" if status == 410 else "critical"
    return _render(request, "message.html", lang, status, title=title, lines=lines, tone=tone, **ctx)


def _render(request: Request, template: str, lang: str, status: int, **ctx: Any) -> HTMLResponse:
    context = {"lang": lang, "t": texts(lang), "other_lang": ZH if lang == EN else EN, **ctx}
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)


# ---------------------------------------------------------------- lookups


def _lang(requested: str | None, person: PersonRow | None) -> str:
    return pick_lang(requested, person.language if person else None)


def _person_name(session: Session, person_id: str) -> str:
    person = session.get(PersonRow, person_id)
    return person.name if person else person_id


def _where(session: Session, alert: AlertRow) -> str:
    """ "清水镇卫生院 · 疫苗冷藏冰箱 1": the clinic, and the equipment (or device) the alert is about."""
    clinic = session.get(ClinicRow, alert.clinic) if alert.clinic else None
    parts = [clinic.name if clinic else (alert.clinic or "")]
    if alert.subject != alert.clinic:
        equipment = session.get(EquipmentRow, alert.subject)
        parts.append(equipment.name if equipment else alert.subject)
    return " · ".join(p for p in parts if p)


def _clinic_head(session: Session, clinic_id: str) -> dict[str, str] | None:
    q = select(PersonRow).where(PersonRow.site_id == clinic_id, PersonRow.role == CLINIC_HEAD)
    head = session.scalars(q.order_by(PersonRow.id).limit(1)).first()
    if head is None:
        return None
    return {"name": head.name, "phone": head.phone, "tel": re.sub(r"[^0-9+]", "", head.phone)}
