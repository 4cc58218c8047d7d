"""``/outbox``: the demo's SMS. With the ``outbox`` channel (the demo's default) nothing reaches a phone;
this page shows what would have, newest first, with the acknowledgement links live, so a visitor can
follow an alert from the SMS to the acknowledgement as a nurse would.

It exists only while ``outbox`` is one of ``CHAINWATCH_NOTIFY_CHANNELS`` (404 otherwise), and only for
admins (the texts carry working links). Phone numbers show their last four digits.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from alerting.notify.channels import channel_names
from alerting.notify.dispatcher import mask_phone
from alerting.notify.outbox import OutboxRow
from core.db import PersonRow
from web.app import TEMPLATES, SessionDep, SettingsDep
from web.auth import AdminUser
from web.i18n import local_time, pick_lang, texts

router = APIRouter()

LIMIT = 100


@router.get("/outbox", response_class=HTMLResponse)
def outbox(
    request: Request, session: SessionDep, settings: SettingsDep, user: AdminUser, lang: str | None = None
) -> Any:
    if "outbox" not in channel_names(settings):
        raise HTTPException(404, "the outbox channel is not in use: SMS go to the providers")
    lang = pick_lang(lang, user.language)
    rows = list(session.scalars(select(OutboxRow).order_by(OutboxRow.id.desc()).limit(LIMIT)))
    people = {p.id: p.name for p in session.scalars(select(PersonRow))}
    messages = [
        {
            "time": local_time(r.created_at, lang),
            "to": mask_phone(r.to),
            "who": people.get(r.person_id or "", r.person_id or ""),
            "text": r.text,
        }
        for r in rows
    ]
    t = texts(lang)
    context = {"lang": lang, "other_lang": "en" if lang != "en" else "zh-CN", "t": t, "messages": messages}
    return TEMPLATES.TemplateResponse(
        request,
        "outbox.html",
        context,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
