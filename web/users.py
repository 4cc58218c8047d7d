"""Web users, their sessions, the audit log and the login rate limit: SQL tables and plain functions
(no FastAPI here: ``web.auth`` is the HTTP side, ``chainwatch users`` the command line).

Tables (on ``core.db.Base``, created by ``init_db``):

- ``web_user``: a login. ``role`` is ``clinic_staff`` (``scope``: a clinic id), ``district_officer``
  (``scope``: a district id) or ``admin`` (no scope). ``person_id`` links the login to a registry person:
  what that user acknowledges or resolves is recorded as done by that person (``user:<username>``
  otherwise). Passwords are argon2id hashes (argon2-cffi), rehashed at login when the parameters change.
  ``active`` false: a disabled login (``set_active``): its password is refused and its sessions end.
  The admin pages (``web.admin``) change role, scope, password and ``active`` with the functions here.
- ``web_session``: a logged-in browser. Only the SHA-256 of the random session token is stored (a copy
  of the table lets nobody in); sessions end 12 h after login (``SESSION_TTL_S``) or at logout. Each has
  its CSRF token, which every state-changing request must carry.
- ``audit_event``: who did what, when, to what, from where; append-only.
- ``login_failure``: failed logins of the last 15 minutes, per username and client IP, for the rate
  limit (``LOGIN_MAX_FAILURES`` per username or per IP within ``LOGIN_WINDOW_S``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import JSON, Boolean, Double, Engine, ForeignKey, Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.messages import ZH, normalize_lang
from core.db import Base, ClinicRow, DistrictRow, PersonRow, create_tables, init_db

SESSION_TTL_S = 12 * 3600.0
LOGIN_WINDOW_S = 15 * 60.0
LOGIN_MAX_FAILURES = 5
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,58}")  # "user:<name>" fits a 64-character person id
PASSWORD_MIN = 8
PASSWORD_MAX = 256  # argon2 takes any length; this bounds the work a request can ask for
DEMO_DISTRICT = "demo-district"

HASHER = PasswordHasher()  # argon2id, RFC 9106 "low memory" parameters (64 MiB, t=3, p=4)
_DUMMY_HASH: str | None = None  # verified against for unknown usernames: a miss takes as long as a hit


class Role(StrEnum):
    clinic_staff = "clinic_staff"
    district_officer = "district_officer"
    admin = "admin"


class UserError(ValueError):
    """A user that cannot be added as asked; the message says why."""


class UserRow(Base):
    __tablename__ = "web_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str | None] = mapped_column(String(64), nullable=True)  # clinic id / district id / NULL
    person_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str] = mapped_column(String(16), default=ZH)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Double)


class SessionRow(Base):
    __tablename__ = "web_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id"), index=True)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    csrf: Mapped[str] = mapped_column(String(64))


class AuditRow(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double, index=True)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)  # as typed, for failed logins
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "username": self.username,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "detail": dict(self.detail or {}),
            "client_ip": self.client_ip,
        }


class LoginFailureRow(Base):
    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    client_ip: Mapped[str] = mapped_column(String(64), index=True)


# ---------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (an unknown user) a dummy one is verified, so that
    the time taken does not tell which usernames exist."""
    global _DUMMY_HASH
    if password_hash is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = HASHER.hash(secrets.token_hex(16))
        password_hash = _DUMMY_HASH
        password = ""
    try:
        return HASHER.verify(password_hash, password) and password != ""
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise UserError(f"a password has at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise UserError(f"a password has at most {PASSWORD_MAX} characters")


# ---------------------------------------------------------------- users


@dataclass(frozen=True, slots=True)
class UserInfo:
    username: str
    role: str
    scope: str | None
    person_id: str | None
    language: str
    active: bool


def add_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    scope: str | None,
    now: float,
    *,
    person_id: str | None = None,
    language: str | None = None,
) -> UserRow:
    """A new user (flushed, not committed). Raises ``UserError`` for a taken or malformed username, a
    short password, or a scope or person the registry does not have."""
    if not USERNAME_RE.fullmatch(username):
        raise UserError(
            f"username {username!r}: lower-case letters, digits, '.', '_' and '-', at most 59 characters"
        )
    r = check_role_scope(session, role, scope)
    check_password(password)
    person = None
    if person_id is not None:
        person = session.get(PersonRow, person_id)
        if person is None:
            raise UserError(f"no person {person_id!r} in the registry")
    if session.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
        raise UserError(f"user {username!r} exists")
    lang = normalize_lang(language or (person.language if person else ZH))
    row = UserRow(
        username=username,
        password_hash=hash_password(password),
        role=r.value,
        scope=scope or None,
        person_id=person_id,
        language=lang,
        active=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def check_role_scope(session: Session, role: str, scope: str | None) -> Role:
    """The role, if ``scope`` fits it (clinic_staff: a registry clinic; district_officer: a registry
    district; admin: none); ``UserError`` otherwise."""
    try:
        r = Role(role)
    except ValueError:
        raise UserError(f"role {role!r}: one of {', '.join(x.value for x in Role)}") from None
    if r is Role.clinic_staff:
        if not scope or session.get(ClinicRow, scope) is None:
            raise UserError(f"clinic_staff needs --scope CLINIC_ID of a registry clinic (got {scope!r})")
    elif r is Role.district_officer:
        if not scope or session.get(DistrictRow, scope) is None:
            raise UserError(f"district_officer needs --scope DISTRICT_ID of the registry (got {scope!r})")
    elif scope:
        raise UserError("an admin has no scope")
    return r


def list_users(session: Session) -> list[UserInfo]:
    rows = session.scalars(select(UserRow).order_by(UserRow.username))
    return [UserInfo(u.username, u.role, u.scope, u.person_id, u.language, u.active) for u in rows]


def get_user(session: Session, username: str) -> UserRow:
    """The user called ``username``; ``UserError`` if there is none."""
    row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    if row is None:
        raise UserError(f"no user {username[:64]!r}")
    return row


def set_role(session: Session, username: str, role: str, scope: str | None, *, actor: str) -> UserRow:
    """Give ``username`` another role and/or scope (validated as in ``add_user``). ``actor`` (the admin
    doing it) cannot take their own admin role away: ``UserError``."""
    row = get_user(session, username)
    r = check_role_scope(session, role, scope)
    if username == actor and r is not Role.admin:
        raise UserError("you cannot take away your own admin role: another admin must do it")
    row.role, row.scope = r.value, scope or None
    session.flush()
    return row


def set_password(session: Session, username: str, password: str, *, keep_token: str | None = None) -> UserRow:
    """A new password for ``username``; their sessions end (all but the one of ``keep_token``, the
    browser of an admin resetting their own password)."""
    check_password(password)
    row = get_user(session, username)
    row.password_hash = hash_password(password)
    end_user_sessions(session, row.id, keep_token=keep_token)
    return row


def set_active(session: Session, username: str, active: bool, *, actor: str) -> UserRow:
    """Enable or disable a login. A disabled user cannot log in and their sessions end; ``actor``
    cannot disable themself (``UserError``)."""
    row = get_user(session, username)
    if username == actor and not active:
        raise UserError("you cannot disable your own login: another admin must do it")
    row.active = active
    if not active:
        end_user_sessions(session, row.id)
    session.flush()
    return row


# Demo logins for the demo district: printed by ``make run``, never created for another registry.
DEMO_USERS: tuple[tuple[str, str, Role, str | None, str | None], ...] = (
    # username, password, role, scope, person
    ("qingshui", "qingshui-demo", Role.clinic_staff, "qingshui-thc", "qingshui-nurse1"),
    ("bureau", "bureau-demo", Role.district_officer, DEMO_DISTRICT, "bureau-duty1"),
    ("admin", "admin-demo", Role.admin, None, None),
)


def ensure_demo_users(engine: Engine, now: float | None = None) -> list[tuple[str, str, str, str | None]]:
    """The demo logins (username, password, role, scope), created when the registry is the demo
    district and there is no user yet; an empty list otherwise (nothing is changed)."""
    now = time.time() if now is None else now
    init_db(engine)
    with Session(engine) as s, s.begin():
        districts = list(s.scalars(select(DistrictRow.id)))
        if districts != [DEMO_DISTRICT] or s.scalar(select(func.count()).select_from(UserRow)):
            return []
        out = []
        for username, password, role, scope, person in DEMO_USERS:
            if person is not None and s.get(PersonRow, person) is None:
                person = None
            add_user(s, username, password, role.value, scope, now, person_id=person)
            out.append((username, password, role.value, scope))
        return out


def demo_logins(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    """The demo logins that work as shipped (the user exists, is active, and has the demo password)."""
    init_db(engine)
    out = []
    with Session(engine) as s:
        for username, password, *_ in DEMO_USERS:
            row = s.scalars(select(UserRow).where(UserRow.username == username)).first()
            if row is not None and row.active and verify_password(row.password_hash, password):
                out.append((username, password, row.role, row.scope))
    return out


# ---------------------------------------------------------------- sessions


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session(session: Session, user_id: int, now: float) -> tuple[str, SessionRow]:
    """A session for the user: the token for the cookie (only its hash is stored) and the row."""
    token = secrets.token_urlsafe(32)
    row = SessionRow(
        token_sha256=token_sha256(token),
        user_id=user_id,
        created_at=now,
        expires_at=now + SESSION_TTL_S,
        csrf=secrets.token_urlsafe(32),
    )
    session.add(row)
    session.execute(delete(SessionRow).where(SessionRow.expires_at <= now))  # the expired ones, anyone's
    session.flush()
    return token, row


def find_session(session: Session, token: str, now: float) -> tuple[SessionRow, UserRow] | None:
    """The live session of a cookie's token and its (active) user, or None."""
    if not token or len(token) > 200:
        return None
    row = session.get(SessionRow, token_sha256(token))
    if row is None or row.expires_at <= now:
        return None
    user = session.get(UserRow, row.user_id)
    if user is None or not user.active:
        return None
    return row, user


def end_session(session: Session, token: str) -> None:
    session.execute(delete(SessionRow).where(SessionRow.token_sha256 == token_sha256(token)))


def end_user_sessions(session: Session, user_id: int, *, keep_token: str | None = None) -> None:
    """End every session of the user (but the one of ``keep_token``, if given)."""
    q = delete(SessionRow).where(SessionRow.user_id == user_id)
    if keep_token is not None:
        q = q.where(SessionRow.token_sha256 != token_sha256(keep_token))
    session.execute(q)


# ---------------------------------------------------------------- login rate limit


def login_blocked(session: Session, username: str, client_ip: str, now: float) -> bool:
    """Whether ``LOGIN_MAX_FAILURES`` failed logins for this username, or from this IP, happened within
    the last ``LOGIN_WINDOW_S``."""
    since = now - LOGIN_WINDOW_S
    F = LoginFailureRow
    by_name = session.scalar(select(func.count()).where(F.username == username[:64], F.at > since)) or 0
    by_ip = session.scalar(select(func.count()).where(F.client_ip == client_ip[:64], F.at > since)) or 0
    return by_name >= LOGIN_MAX_FAILURES or by_ip >= LOGIN_MAX_FAILURES


def record_login_failure(session: Session, username: str, client_ip: str, now: float) -> None:
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.at <= now - LOGIN_WINDOW_S))
    session.add(LoginFailureRow(at=now, username=username[:64], client_ip=client_ip[:64]))


def reset_login_failures(session: Session, username: str) -> None:
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.username == username[:64]))


# ---------------------------------------------------------------- audit


def audit(
    session: Session,
    at: float,
    action: str,
    *,
    username: str | None = None,
    user_id: int | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> None:
    """One audit row (added, committed with the caller's transaction)."""
    session.add(
        AuditRow(
            at=at,
            username=username[:64] if username is not None else None,
            user_id=user_id,
            action=action,
            target_type=target_type,
            target_id=target_id[:200] if target_id is not None else None,
            detail=detail or {},
            client_ip=client_ip[:64] if client_ip is not None else None,
        )
    )


WEB_TABLE_NAMES = ("web_user", "web_session", "audit_event", "login_failure")


def init_web_tables(engine: Engine) -> None:
    """Create the tables of this module (and nothing else) if they do not exist yet."""
    create_tables(engine, [Base.metadata.tables[n] for n in WEB_TABLE_NAMES])


# ---------------------------------------------------------------- chainwatch users


def users_main(
    action: str,
    engine: Engine,
    now: float,
    out: Any,
    *,
    username: str | None = None,
    role: str | None = None,
    scope: str | None = None,
    person: str | None = None,
    language: str | None = None,
    password: str | None = None,
) -> int:
    """``chainwatch users add|list``; ``password`` is read by the caller (getpass or stdin)."""
    init_web_tables(engine)
    if action == "list":
        with Session(engine) as s:
            users = list_users(s)
        if not users:
            print("no users yet (chainwatch users add USERNAME --role ROLE [--scope ID])", file=out)
        for u in users:
            extra = f" person={u.person_id}" if u.person_id else ""
            state = "" if u.active else " (inactive)"
            print(f"{u.username}\t{u.role}\t{u.scope or '-'}\t{u.language}{extra}{state}", file=out)
        return 0
    assert username is not None and role is not None and password is not None
    with Session(engine) as s, s.begin():
        add_user(s, username, password, role, scope, now, person_id=person, language=language)
        audit(
            s,
            now,
            "user_added",
            target_type="user",
            target_id=username,
            detail={"role": role, "scope": scope},
        )
    print(f"added {username} ({role}{' of ' + scope if scope else ''})", file=out)
    return 0
