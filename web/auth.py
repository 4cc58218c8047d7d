"""Login, sessions, CSRF, and who may see and do what (the HTTP side of ``web.users``).

Authentication
--------------
``POST /login`` (the form of ``GET /login``) checks the password and sets the session cookie
``cw_session`` (HttpOnly, SameSite=Lax, path /, Secure when ``public_url`` is https, 12 h); the login
form itself carries a pre-session CSRF token (a random cookie ``cw_login_csrf`` and, in the form, its
HMAC under the app's key), so another site cannot log a browser in under its own account. 5 failed
logins for a username, or from an IP, within 15 minutes: 429 until the window has passed; a successful
login clears the username's count. Every login, failed login and logout goes to the audit log.

Authorization
-------------
Handlers declare what they need with the ``Annotated`` aliases below:

- ``CurrentUser``: logged in (else 401 JSON under ``/api``, a redirect to ``/login`` for pages);
- ``require_roles(Role.admin, ...)``: one of these roles (else 403);
- ``CsrfUser``: logged in and the request carries the session's CSRF token (``X-CSRF-Token`` header
  or ``csrf`` form field; else 403): every state-changing request;
- scope: ``visible_clinics`` / ``can_see_clinic`` (clinic_staff: their clinic; district_officer: every
  clinic whose township is in their district; admin: all). A thing outside the user's scope is answered
  404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alerting.messages import EN, ZH
from core.db import ClinicRow, TownshipRow
from core.settings import Network
from web import users
from web.app import TEMPLATES, ClockDep, LinkKeyDep, SessionDep, SettingsDep, form_field, read_form
from web.i18n import pick_lang, texts
from web.users import Role, UserRow

SESSION_COOKIE = "cw_session"
LOGIN_CSRF_COOKIE = "cw_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
FORM_MAX_BYTES = 4096
NEXT_MAX = 500
DEFAULT_NEXT = "/"  # after login: the user's home (web.pages: their clinic, or the district)
LOGIN_PATH = "/login"

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(frozen=True, slots=True)
class User:
    """The logged-in user of a request (detached from any SQL session)."""

    id: int
    username: str
    role: Role
    scope: str | None
    person_id: str | None
    language: str
    csrf: str

    @property
    def actor(self) -> str:
        """Who acts, in alert records: the registry person if linked, else ``user:<username>``."""
        return self.person_id or f"user:{self.username}"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin


# ---------------------------------------------------------------- dependencies


def client_ip(request: Request) -> str:
    """The client's address, for the login rate limit and the audit log. Behind a reverse proxy listed
    in ``web_trusted_proxies``, it is the right-most ``X-Forwarded-For`` entry that is not itself a
    trusted proxy: entries further left are whatever the client wrote, and are not believed."""
    peer = request.client.host if request.client else "unknown"
    trusted: tuple[Network, ...] = getattr(request.app.state, "trusted_proxies", ())
    if not trusted or not _among(peer, trusted):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _among(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer


def _among(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _optional_user(request: Request) -> User | None:
    """The user of the request's session cookie, or None. Its own short SQL session: the handler's
    stays untouched (so a handler may still begin its own transaction)."""
    cached = getattr(request.state, "user", False)
    if cached is not False:
        return cached
    user = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with Session(request.app.state.engine) as s:
            found = users.find_session(s, token, request.app.state.clock.now())
            if found is not None:
                row, u = found
                user = User(u.id, u.username, Role(u.role), u.scope, u.person_id, u.language, row.csrf)
    request.state.user = user
    return user


def _current_user(user: Annotated[User | None, Depends(_optional_user)]) -> User:
    if user is None:
        # web.app turns this into 401 JSON under /api and a redirect to /login for pages
        raise HTTPException(401, "not logged in: log in at /login")
    return user


OptionalUser = Annotated[User | None, Depends(_optional_user)]
CurrentUser = Annotated[User, Depends(_current_user)]


def require_roles(*roles: Role) -> Any:
    """A dependency: the current user, if their role is one of ``roles`` (403 otherwise)."""
    allowed = frozenset(roles)

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(403, f"not allowed for the role {user.role.value} (needs: {names})")
        return user

    return Depends(check)


AdminUser = Annotated[User, require_roles(Role.admin)]


async def _csrf_user(request: Request, user: CurrentUser) -> User:
    token = request.headers.get(CSRF_HEADER)
    if token is None and _is_form(request):
        form = await request.form(max_files=0, max_fields=16)
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not token or not hmac.compare_digest(token.encode(), user.csrf.encode()):
        raise HTTPException(
            403, f"missing or wrong CSRF token: send the session's token in {CSRF_HEADER} (GET /api/me)"
        )
    return user


CsrfUser = Annotated[User, Depends(_csrf_user)]


def _is_form(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype in ("application/x-www-form-urlencoded", "multipart/form-data")


# ---------------------------------------------------------------- scope


def visible_clinics(session: Session, user: User) -> set[str] | None:
    """The clinic ids the user may see; None: every clinic (admin)."""
    if user.role is Role.admin:
        return None
    if user.role is Role.clinic_staff:
        return {user.scope} if user.scope and session.get(ClinicRow, user.scope) is not None else set()
    q = select(ClinicRow.id).join(TownshipRow, TownshipRow.id == ClinicRow.township_id)
    return set(session.scalars(q.where(TownshipRow.district_id == (user.scope or ""))))


def can_see_clinic(session: Session, user: User, clinic_id: str | None) -> bool:
    """Whether ``clinic_id`` is in the user's scope: clinic -> township -> district. A thing of no clinic
    (``None``) only for admins."""
    if user.role is Role.admin:
        return True
    if clinic_id is None:
        return False
    if user.role is Role.clinic_staff:
        return clinic_id == user.scope
    q = (
        select(TownshipRow.district_id)
        .join(ClinicRow, ClinicRow.township_id == TownshipRow.id)
        .where(ClinicRow.id == clinic_id)
    )
    district = session.scalar(q)
    return district is not None and district == user.scope


def audit(
    session: Session,
    request: Request,
    user: User,
    at: float,
    action: str,
    target_type: str,
    target_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """An audit row for ``user`` doing ``action`` to a target (committed with the caller's transaction)."""
    users.audit(
        session,
        at,
        action,
        username=user.username,
        user_id=user.id,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        client_ip=client_ip(request),
    )


# ---------------------------------------------------------------- login pages

router = APIRouter(include_in_schema=False)


def _login_token(key: bytes, nonce: str) -> str:
    derived = hashlib.sha256(b"chainwatch-login-csrf|" + key).digest()
    return hmac.new(derived, nonce.encode(), "sha256").hexdigest()


def _secure(settings: Any) -> bool:
    return str(settings.public_url).lower().startswith("https:")


def _safe_next(value: str | None) -> str:
    """Where to go after login: a path of this site only (no scheme, no ``//host``)."""
    if not value or len(value) > NEXT_MAX or not value.startswith("/") or value.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    if any(c in value for c in "\r\n\\") or value.startswith("/login") or value.startswith("/logout"):
        return DEFAULT_NEXT
    return value


def _render_login(
    request: Request,
    key: bytes,
    settings: Any,
    lang: str,
    status: int = 200,
    *,
    error: str | None = None,
    user: User | None = None,
    next_url: str = DEFAULT_NEXT,
    username: str = "",
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    context = {
        "lang": lang,
        "t": texts(lang),
        "other_lang": ZH if lang == EN else EN,
        "error": error,
        "user": user,
        "csrf": user.csrf if user else _login_token(key, nonce),
        "next": next_url,
        "username": username,
    }
    resp = TEMPLATES.TemplateResponse(request, "login.html", context, status_code=status, headers=HEADERS)
    if user is None:
        resp.set_cookie(
            LOGIN_CSRF_COOKIE,
            nonce,
            max_age=3600,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=_secure(settings),
        )
    return resp


async def _read_form(request: Request) -> FormData:
    return await read_form(request, FORM_MAX_BYTES, 16)


@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse(LOGIN_PATH, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    key: LinkKeyDep,
    settings: SettingsDep,
    user: OptionalUser,
    lang: str | None = None,
    next: str | None = None,
) -> HTMLResponse:
    return _render_login(
        request,
        key,
        settings,
        pick_lang(lang, user.language if user else None),
        user=user,
        next_url=_safe_next(next),
    )


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request, session: SessionDep, clock: ClockDep, key: LinkKeyDep, settings: SettingsDep
) -> Response:
    form = await _read_form(request)
    lang = pick_lang(form_field(form, "lang", 300) or request.query_params.get("lang"))
    t = texts(lang)
    next_url = _safe_next(form_field(form, "next", NEXT_MAX + 1))
    username = form_field(form, "username", 100).strip().lower()
    password = form_field(form, "password", users.PASSWORD_MAX + 1)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = form_field(form, CSRF_FIELD, 200)
    if not nonce or not sent or not hmac.compare_digest(sent, _login_token(key, nonce)):
        return _render_login(request, key, settings, lang, 403, error=t["login_csrf"], next_url=next_url)
    now, ip = clock.now(), client_ip(request)
    again = {"next_url": next_url, "username": username}
    if users.login_blocked(session, username, ip, now):
        users.audit(session, now, "login_blocked", username=username, client_ip=ip)
        session.commit()
        resp = _render_login(request, key, settings, lang, 429, error=t["login_blocked"], **again)
        resp.headers["Retry-After"] = str(int(users.LOGIN_WINDOW_S))
        return resp
    row = session.scalars(select(UserRow).where(UserRow.username == username)).first() if username else None
    ok = users.verify_password(row.password_hash if row is not None else None, password)
    if row is None or not row.active or not ok:
        reason = "unknown_user" if row is None else ("inactive" if not row.active else "wrong_password")
        users.record_login_failure(session, username, ip, now)
        users.audit(session, now, "login_failed", username=username, detail={"reason": reason}, client_ip=ip)
        session.commit()
        return _render_login(request, key, settings, lang, 401, error=t["login_failed"], **again)
    if users.HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = users.hash_password(password)
    users.reset_login_failures(session, username)
    token, srow = users.new_session(session, row.id, now)
    users.audit(session, now, "login", username=username, user_id=row.id, client_ip=ip)
    session.commit()
    resp = RedirectResponse(next_url, status_code=303, headers={"Cache-Control": "no-store"})
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(srow.expires_at - now),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
async def logout(request: Request, session: SessionDep, clock: ClockDep, user: OptionalUser) -> Response:
    resp = RedirectResponse(LOGIN_PATH, status_code=303, headers={"Cache-Control": "no-store"})
    if user is None:
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp
    await _csrf_user(request, user)
    users.end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    users.audit(
        session, clock.now(), "logout", username=user.username, user_id=user.id, client_ip=client_ip(request)
    )
    session.commit()
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# ---------------------------------------------------------------- who am I (API)

api_router = APIRouter(prefix="/api", tags=["auth"])


@api_router.get("/me")
def me(user: CurrentUser) -> dict[str, Any]:
    """The logged-in user, and the CSRF token every POST under /api must send in ``X-CSRF-Token``."""
    return {
        "username": user.username,
        "role": user.role.value,
        "scope": user.scope,
        "person_id": user.person_id,
        "language": user.language,
        "csrf_token": user.csrf,
    }


def login_redirect(request: Request) -> RedirectResponse:
    """For a page asked for without a session: to the login form, and back after it."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(_safe_next(path), safe='/')}", status_code=303)
