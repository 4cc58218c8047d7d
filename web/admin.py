"""The admin pages (issue 6), for administrators only, server-rendered like ``web.pages`` (zh-CN by
default, ``?lang=en``):

- ``GET /admin``: links to the three parts, with counts (users, dead letters, what the registry holds).
- ``GET /admin/users``: every login (role, scope and its name, linked person, language, enabled or not)
  and its forms: ``POST /admin/users`` adds a user (``web.users.add_user``'s validation),
  ``POST /admin/users/role`` changes role and scope, ``POST /admin/users/password`` sets a new password
  (the user's sessions end), ``POST /admin/users/active`` disables or enables a login (a disabled login
  is refused at login and its sessions end). An admin cannot demote or disable themself.
- ``GET /admin/registry``: what the registry holds; ``POST /admin/registry/reload`` loads the configured
  file again (``settings.registry_file``, else the shipped demo district) and ``POST
  /admin/registry/upload`` loads a pasted YAML text, validated by the CLI's model
  (``core.registry_model``): every problem is shown as "where: what" and nothing is stored.
- ``GET /admin/deadletters?reason=&page=``: the messages the collector rejected, newest first, 20 a
  page; a payload shows as (escaped, truncated) text, or as hex when it is binary.

Every form posts the session's CSRF token (``csrf``) as ``application/x-www-form-urlencoded``, every
change goes to the audit log (never a password), and a refused change shows the page again with why
(422). Anonymous: a redirect to ``/login``; clinic staff and district officers: 403.

Which services see a reloaded registry: this app reads it from SQL on every request; the collector
reads its device lookup again every 30 s; the alerting service notices the change within
``CHAINWATCH_ALERTING_REGISTRY_CHECK_S`` (30 s) and builds itself again from it (``run_alerting``).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from core.db import (
    ClinicRow,
    DeadLetterRow,
    DeviceRow,
    DistrictRow,
    EquipmentRow,
    PersonRow,
    TownshipRow,
    WasteSiteDeviceRow,
)
from core.registry_model import DEMO_REGISTRY, RegistryFile, load_registry_file, registry_from_text
from core.registry_store import store_registry
from web import users
from web.api_alerts import PAYLOAD_SHOWN
from web.app import ClockDep, SessionDep, SettingsDep, form_field, form_lang, read_form
from web.auth import SESSION_COOKIE, AdminUser, CsrfUser, User, audit
from web.i18n import LANGS, local_time, pick_lang, texts
from web.pages import Lang, _render
from web.users import Role, UserError, UserRow

router = APIRouter(tags=["admin"])

USER_FORM_MAX = 4096  # bytes of a user form
REGISTRY_FORM_MAX = 1024 * 1024  # bytes of the upload form: a registry YAML, URL-encoded
REGISTRY_TEXT_MAX = 512 * 1024  # characters of the YAML itself
PAGE_SIZE = 20
PAGE_MAX = 100_000
HEX_SHOWN = 512  # bytes of a binary payload shown as hex
TOPIC_SHOWN = 300
DETAIL_SHOWN = 1000
DONE = ("user_added", "role_changed", "password_reset", "disabled", "enabled", "reloaded", "uploaded")


# ---------------------------------------------------------------- access and forms


def _admin_form_user(user: CsrfUser) -> User:
    """The current user of a form post: logged in, the CSRF token right, and an admin (else 403)."""
    if not user.is_admin:
        raise HTTPException(403, f"not allowed for the role {user.role.value} (needs: admin)")
    return user


AdminFormUser = Annotated[User, Depends(_admin_form_user)]


async def _user_form(request: Request, _user: AdminFormUser) -> FormData:
    return await read_form(request, USER_FORM_MAX, 16)


async def _registry_form(request: Request, _user: AdminFormUser) -> FormData:
    return await read_form(request, REGISTRY_FORM_MAX, 8)


UserForm = Annotated[FormData, Depends(_user_form)]
RegistryForm = Annotated[FormData, Depends(_registry_form)]
Done = Annotated[str | None, Query(max_length=32, description="what the last form did")]
Name = Annotated[str | None, Query(max_length=64, description="whom the last form changed")]


def _done(path: str, done: str, lang: str, name: str | None = None) -> RedirectResponse:
    """Back to the page after a change, which then says what was done."""
    query: dict[str, str] = {"done": done}
    if name:
        query["name"] = name
    if lang in LANGS and lang != LANGS[0]:
        query["lang"] = lang
    return RedirectResponse(
        f"{path}?{urlencode(query)}", status_code=303, headers={"Cache-Control": "no-store"}
    )


def _done_text(t: dict[str, str], done: str | None, name: str | None) -> str | None:
    if done not in DONE:
        return None
    return t[f"admin_done_{done}"].format(name=name or "")


# ---------------------------------------------------------------- the admin home


@dataclass(frozen=True, slots=True)
class RegistrySummary:
    """What the registry in SQL holds."""

    districts: list[str]  # names
    townships: int
    clinics: int
    equipment: int
    devices: int  # the clinics' gateways and scanners, and the disposal plants' scanners
    people: int


def registry_summary(session: Session) -> RegistrySummary:
    def count(table: Any) -> int:
        return session.scalar(select(func.count()).select_from(table)) or 0

    return RegistrySummary(
        districts=list(session.scalars(select(DistrictRow.name).order_by(DistrictRow.id))),
        townships=count(TownshipRow),
        clinics=count(ClinicRow),
        equipment=count(EquipmentRow),
        devices=count(DeviceRow) + count(WasteSiteDeviceRow),
        people=count(PersonRow),
    )


@router.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request, session: SessionDep, user: AdminUser, lang: Lang = None) -> HTMLResponse:
    """Links to the users, the registry and the dead letters, with how many there are."""
    lang = pick_lang(lang, user.language)
    n_users = session.scalar(select(func.count()).select_from(UserRow)) or 0
    disabled = session.scalar(select(func.count()).where(UserRow.active.is_(False))) or 0
    dead = session.scalar(select(func.count()).select_from(DeadLetterRow)) or 0
    return _render(
        request,
        "admin_home.html",
        lang,
        user,
        title=texts(lang)["admin_title"],
        n_users=n_users,
        disabled=disabled,
        dead=dead,
        reg=registry_summary(session),
    )


# ---------------------------------------------------------------- users


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    lang: Lang = None,
    done: Done = None,
    name: Name = None,
) -> HTMLResponse:
    """Every login, with the forms to add one and to change, reset, disable or enable one."""
    lang = pick_lang(lang, user.language)
    return _users(request, session, user, lang, done=_done_text(texts(lang), done, name))


@router.post("/admin/users", response_class=HTMLResponse, status_code=303)
def add_user_form(
    request: Request, session: SessionDep, clock: ClockDep, user: AdminFormUser, form: UserForm
) -> Response:
    """The add-a-user form: username, role, scope, person, language and the first password."""
    lang = form_lang(form, user.language)
    fields = {
        k: form_field(form, k, 100).strip() for k in ("username", "role", "scope", "person", "language")
    }
    username = fields["username"].lower()
    password = form_field(form, "password", users.PASSWORD_MAX + 1)
    now = clock.now()
    try:
        row = users.add_user(
            session,
            username,
            password,
            fields["role"],
            fields["scope"] or None,
            now,
            person_id=fields["person"] or None,
            language=fields["language"] or None,
        )
    except UserError as exc:
        session.rollback()
        return _users(request, session, user, lang, status=422, error=str(exc), add=fields)
    detail = {"role": row.role, "scope": row.scope, "person": row.person_id, "language": row.language}
    audit(session, request, user, now, "user_added", "user", username, detail)
    session.commit()
    return _done("/admin/users", "user_added", lang, username)


@router.post("/admin/users/role", response_class=HTMLResponse, status_code=303)
def role_form(
    request: Request, session: SessionDep, clock: ClockDep, user: AdminFormUser, form: UserForm
) -> Response:
    """Another role and/or scope for a user; not the admin's own role."""
    lang = form_lang(form, user.language)
    username = form_field(form, "username", 64)
    role, scope = form_field(form, "role", 32), form_field(form, "scope", 64).strip() or None
    try:
        before = users.get_user(session, username)
        old = {"role": before.role, "scope": before.scope}
        row = users.set_role(session, username, role, scope, actor=user.username)
    except UserError as exc:
        session.rollback()
        return _users(request, session, user, lang, status=422, error=str(exc))
    new = {"role": row.role, "scope": row.scope}
    audit(
        session, request, user, clock.now(), "user_role_changed", "user", username, {"from": old, "to": new}
    )
    session.commit()
    return _done("/admin/users", "role_changed", lang, username)


@router.post("/admin/users/password", response_class=HTMLResponse, status_code=303)
def password_form(
    request: Request, session: SessionDep, clock: ClockDep, user: AdminFormUser, form: UserForm
) -> Response:
    """A new password for a user; their sessions end (not the admin's own, for their own password)."""
    lang = form_lang(form, user.language)
    username = form_field(form, "username", 64)
    password = form_field(form, "password", users.PASSWORD_MAX + 1)
    keep = request.cookies.get(SESSION_COOKIE) if username == user.username else None
    try:
        users.set_password(session, username, password, keep_token=keep)
    except UserError as exc:
        session.rollback()
        return _users(request, session, user, lang, status=422, error=str(exc))
    audit(
        session, request, user, clock.now(), "user_password_reset", "user", username, {"sessions_ended": True}
    )
    session.commit()
    return _done("/admin/users", "password_reset", lang, username)


@router.post("/admin/users/active", response_class=HTMLResponse, status_code=303)
def active_form(
    request: Request, session: SessionDep, clock: ClockDep, user: AdminFormUser, form: UserForm
) -> Response:
    """Disable (``active=0``: no login, sessions end) or enable (``active=1``) a login; not one's own."""
    lang = form_lang(form, user.language)
    username = form_field(form, "username", 64)
    value = form_field(form, "active", 8)
    try:
        if value not in ("0", "1"):
            raise UserError(f"active is 0 (disable) or 1 (enable), not {value!r}")
        row = users.set_active(session, username, value == "1", actor=user.username)
    except UserError as exc:
        session.rollback()
        return _users(request, session, user, lang, status=422, error=str(exc))
    action = "enabled" if row.active else "disabled"
    audit(session, request, user, clock.now(), f"user_{action}", "user", username)
    session.commit()
    return _done("/admin/users", action, lang, username)


def _users(
    request: Request,
    session: Session,
    user: User,
    lang: str,
    *,
    status: int = 200,
    error: str | None = None,
    done: str | None = None,
    add: dict[str, str] | None = None,
) -> HTMLResponse:
    t = texts(lang)
    districts = {d.id: d.name for d in session.scalars(select(DistrictRow).order_by(DistrictRow.id))}
    clinics = list(
        session.execute(
            select(ClinicRow.id, ClinicRow.name, TownshipRow.name)
            .join(TownshipRow, TownshipRow.id == ClinicRow.township_id)
            .order_by(TownshipRow.name, ClinicRow.name, ClinicRow.id)
        )
    )
    clinic_names = {cid: name for cid, name, _ in clinics}
    people = list(session.scalars(select(PersonRow).order_by(PersonRow.site_id, PersonRow.id)))
    person_names = {p.id: p.name for p in people}
    rows = []
    for u in users.list_users(session):
        scope_name = clinic_names.get(u.scope or "") or districts.get(u.scope or "")
        rows.append(
            {
                "username": u.username,
                "role": u.role,
                "role_label": t.get(f"role_{u.role}", u.role),
                "scope": u.scope,
                "scope_name": scope_name,
                "scope_missing": u.scope is not None and scope_name is None,
                "person": u.person_id,
                "person_name": person_names.get(u.person_id or ""),
                "language": u.language,
                "active": u.active,
                "me": u.username == user.username,
            }
        )
    return _render(
        request,
        "admin_users.html",
        lang,
        user,
        status=status,
        title=t["admin_users_title"],
        users=rows,
        roles=[(r.value, t[f"role_{r.value}"]) for r in Role],
        districts=list(districts.items()),
        clinics=clinics,
        people=[(p.id, p.name) for p in people],
        langs=LANGS,
        error=error,
        done=done,
        add=add or {},
        password_min=users.PASSWORD_MIN,
        password_max=users.PASSWORD_MAX,
    )


# ---------------------------------------------------------------- registry


def registry_problems(exc: Exception) -> list[str]:
    """Why a registry text is not valid: one "where: what" per problem."""
    if isinstance(exc, ValidationError):
        out = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "registry"
            out.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        return out
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"YAML line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "YAML"
        return [f"{where}: {getattr(exc, 'problem', None) or exc}"]
    if isinstance(exc, OSError) and exc.strerror:
        return [exc.strerror]
    return [f"registry: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"]


def _registry_file(settings: Any) -> Path:
    return settings.registry_file or DEMO_REGISTRY


@router.get("/admin/registry", response_class=HTMLResponse)
def registry_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: AdminUser,
    lang: Lang = None,
    done: Done = None,
) -> HTMLResponse:
    """What the registry holds, and the forms to reload the configured file or load a pasted YAML."""
    lang = pick_lang(lang, user.language)
    return _registry(request, session, settings, user, lang, done=_done_text(texts(lang), done, None))


@router.post("/admin/registry/reload", response_class=HTMLResponse, status_code=303)
def reload_form(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: AdminFormUser,
    form: RegistryForm,
) -> Response:
    """Load the configured registry file again (it replaces the registry)."""
    lang = form_lang(form, user.language)
    path = _registry_file(settings)
    try:
        reg = load_registry_file(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValidationError is a ValueError
        problems = [f"{path}: {p}" for p in registry_problems(exc)]
        return _registry(request, session, settings, user, lang, status=422, problems=problems)
    return _store(
        request, session, clock.now(), settings, user, lang, reg, "registry_reloaded", {"file": str(path)}
    )


@router.post("/admin/registry/upload", response_class=HTMLResponse, status_code=303)
def upload_form(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: AdminFormUser,
    form: RegistryForm,
) -> Response:
    """Load a registry YAML pasted into the form (it replaces the registry); nothing changes if invalid."""
    lang = form_lang(form, user.language)
    t = texts(lang)
    text = form_field(form, "yaml", REGISTRY_TEXT_MAX + 1)
    problems: list[str] = []
    reg = None
    if not text.strip():
        problems = [t["admin_registry_empty"]]
    elif len(text) > REGISTRY_TEXT_MAX:
        problems = [t["admin_registry_too_big"].format(n=REGISTRY_TEXT_MAX)]
    else:
        try:
            reg = registry_from_text(text)
        except (ValueError, yaml.YAMLError) as exc:
            problems = registry_problems(exc)
    if reg is None:
        return _registry(request, session, settings, user, lang, status=422, problems=problems, text=text)
    detail = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "chars": len(text)}
    return _store(
        request, session, clock.now(), settings, user, lang, reg, "registry_uploaded", detail, text=text
    )


def _store(
    request: Request,
    session: Session,
    now: float,
    settings: Any,
    user: User,
    lang: str,
    reg: RegistryFile,
    action: str,
    detail: dict[str, Any],
    text: str = "",
) -> Response:
    """Store a valid registry (one transaction), audit it, and go back to the registry page."""
    try:
        store_registry(request.app.state.engine, reg)
    except SQLAlchemyError as exc:
        problem = f"database: {str(exc).splitlines()[0]}"
        return _registry(request, session, settings, user, lang, status=422, problems=[problem], text=text)
    clinics = reg.clinics()
    counts = {
        "district": reg.district.id,
        "clinics": len(clinics),
        "equipment": sum(len(c.equipment) for c in clinics),
        "devices": sum(len(c.devices) for c in clinics)
        + sum(len(p.devices) for p in reg.district.waste.plants),
        "people": len(reg.people()),
    }
    audit(session, request, user, now, action, "registry", reg.district.id, {**detail, **counts})
    session.commit()
    return _done("/admin/registry", action.removeprefix("registry_"), lang)


def _registry(
    request: Request,
    session: Session,
    settings: Any,
    user: User,
    lang: str,
    *,
    status: int = 200,
    problems: list[str] | None = None,
    text: str = "",
    done: str | None = None,
) -> HTMLResponse:
    t = texts(lang)
    path = settings.registry_file
    return _render(
        request,
        "admin_registry.html",
        lang,
        user,
        status=status,
        title=t["admin_registry_title"],
        reg=registry_summary(session),
        townships=list(
            session.execute(
                select(TownshipRow.name, func.count(ClinicRow.id))
                .join(ClinicRow, ClinicRow.township_id == TownshipRow.id, isouter=True)
                .group_by(TownshipRow.id, TownshipRow.name)
                .order_by(TownshipRow.name)
            )
        ),
        source=str(path) if path else t["admin_registry_demo"],
        problems=problems or [],
        text=text,
        text_max=REGISTRY_TEXT_MAX,
        done=done,
    )


# ---------------------------------------------------------------- dead letters


@dataclass(frozen=True, slots=True)
class Payload:
    """A dead letter's payload as the page shows it."""

    text: str  # the start of the text, or of its bytes in hex
    binary: bool
    size: int  # bytes
    truncated: bool


def payload_view(payload: bytes) -> Payload:
    """Text when the payload is UTF-8 without control characters (but tab and newlines), its first
    ``PAYLOAD_SHOWN`` characters; hex otherwise, its first ``HEX_SHOWN`` bytes. The template escapes it."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        return Payload(text[:PAYLOAD_SHOWN], False, len(payload), len(text) > PAYLOAD_SHOWN)
    return Payload(payload[:HEX_SHOWN].hex(" "), True, len(payload), len(payload) > HEX_SHOWN)


@router.get("/admin/deadletters", response_class=HTMLResponse)
def deadletters_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    reason: Annotated[str | None, Query(max_length=64, description="only this reason")] = None,
    page: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 1,
    lang: Lang = None,
) -> HTMLResponse:
    """The messages the collector rejected, newest first, 20 a page, optionally of one reason."""
    lang = pick_lang(lang, user.language)
    t = texts(lang)
    reason = reason or None
    reasons = list(
        session.execute(
            select(DeadLetterRow.reason, func.count())
            .group_by(DeadLetterRow.reason)
            .order_by(DeadLetterRow.reason)
        )
    )
    q = select(DeadLetterRow)
    if reason is not None:
        q = q.where(DeadLetterRow.reason == reason)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(DeadLetterRow.received_at.desc(), DeadLetterRow.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    letters = []
    for r in rows:
        at = (
            r.received_at.timestamp()
            if r.received_at.tzinfo
            else r.received_at.replace(tzinfo=UTC).timestamp()
        )
        letters.append(
            {
                "id": r.id,
                "time": local_time(at, lang),
                "topic": r.topic[:TOPIC_SHOWN],
                "reason": r.reason,
                "detail": r.detail[:DETAIL_SHOWN],
                "payload": payload_view(bytes(r.payload or b"")),
            }
        )
    pages = max(1, -(-total // PAGE_SIZE))

    def link(p: int) -> str:
        query = {k: v for k, v in (("reason", reason), ("page", str(p)), ("lang", lang)) if v}
        return f"/admin/deadletters?{urlencode(query)}"

    return _render(
        request,
        "admin_deadletters.html",
        lang,
        user,
        title=t["admin_dead_title"],
        letters=letters,
        reasons=reasons,
        reason=reason,
        total=total,
        page=page,
        pages=pages,
        prev_url=link(page - 1) if page > 1 else None,
        next_url=link(page + 1) if page < pages else None,
    )
