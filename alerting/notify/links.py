"""Signed acknowledgement links: the short link in an alert SMS that opens the acknowledgement page.

A link is ``{public_url}/a/{token}`` and acknowledges one alert as one person, until it expires, without
a login: the person it was sent to is who acknowledged.

Design
------
Every link issued is a row (``ack_link``: id, alert, person, created, expires, used, note). The token
names the row and proves it was issued by us::

    tag = base64url(HMAC-SHA256(key, f"{id}|{alert_id}|{person_id}|{expires_at:.0f}"))[:12]
    token = base62(id) + "-" + tag

so ``https://cw.example.cn/a/3D7-kX9_2fQa8LmZ`` is 40 characters: an SMS segment holds 70 Chinese
characters, and the alert text needs most of them. The token carries nothing but the row id; alert,
person and expiry are read from the row, and verification recomputes the tag from them and compares it
with ``hmac.compare_digest`` (constant time).

Why this is safe
----------------
- Only the holder of the key can make a tag. The ids are sequential and not secret; the 12-character
  tag (72 bits of the HMAC: truncating an HMAC is standard, RFC 2104 §5, NIST SP 800-107) is what an
  attacker would have to guess, for a row that exists and has not expired.
- Guessing is online only: the tag depends on the secret key, so nothing an attacker can see (other
  links, the ids, the alert ids) lets them check a guess offline; every guess is an HTTP request to
  our server. At 1,000 requests a second for a whole 72-hour validity, 2.6e8 guesses succeed with
  probability 2.6e8 / 2^72 ≈ 5e-14 per link.
- The tag binds the id to one alert, one person and one expiry: a valid link cannot be pointed at
  another alert, acknowledged as another person or made to last longer, even by someone who can see
  other links (their rows give different tags). A key change (``CHAINWATCH_ACK_LINK_SECRET``, or a new
  ``ack-link.key``) invalidates every outstanding link.
- What a link allows is small on purpose: to see the alert the SMS already told its holder about and
  to acknowledge it (idempotent; it never resolves an alert). Opening it (GET) changes nothing, since
  messaging apps fetch links for previews.

``now`` is always passed in (never read here), as everywhere in alerting. Functions add and flush rows;
the caller commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Double, Engine, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, create_tables
from core.settings import Settings

KEY_FILE = "ack-link.key"
KEY_BYTES = 32
TAG_CHARS = 12  # 72 bits of base64url
ALERT_ID_MAX = 32
PERSON_ID_MAX = 64
_ID_CHARS_MAX = 11  # base62 of a 64-bit id
_ID_MAX = 2**63 - 1  # a signed 64-bit integer: the largest id any SQL database stores
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(rf"([0-9A-Za-z]{{1,{_ID_CHARS_MAX}}})-([A-Za-z0-9_-]{{{TAG_CHARS}}})")

LinkErrorReason = Literal["malformed", "bad_signature", "unknown", "expired"]


class AckLinkRow(Base):
    __tablename__ = "ack_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(ALERT_ID_MAX), index=True)
    person_id: Mapped[str] = mapped_column(String(PERSON_ID_MAX))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    used_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    used_note: Mapped[str | None] = mapped_column(Text, nullable=True)


def init_link_tables(engine: Engine) -> None:
    """Create the ``ack_link`` table (and nothing else) if it does not exist yet."""
    create_tables(engine, [Base.metadata.tables[AckLinkRow.__tablename__]])


@dataclass(frozen=True)
class AckLink:
    id: int
    alert_id: str
    person_id: str
    expires_at: float
    used_at: float | None


class LinkError(Exception):
    """A token that does not open a link; ``reason`` says why (the page shows "invalid" or "expired").
    For "expired" (the tag was right) ``link`` is the link, so the page can say when and to whom."""

    def __init__(self, reason: LinkErrorReason, link: AckLink | None = None) -> None:
        super().__init__(f"acknowledgement link {reason.replace('_', ' ')}")
        self.reason: LinkErrorReason = reason
        self.link = link


# ---------------------------------------------------------------- the key


def link_key(settings: Settings) -> bytes:
    """The HMAC key: ``settings.ack_link_secret`` if set, else a random 32-byte key created once (mode
    0600) in ``settings.data_dir / "ack-link.key"`` and read from there afterwards. Two processes
    starting at once agree on one key (the file appears whole, by a hard link, or not at all)."""
    secret = settings.ack_link_secret.get_secret_value()
    if secret:
        return secret.encode("utf-8")
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # never replaces a key another process wrote first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{path} is damaged ({len(key)} bytes, not {KEY_BYTES}): delete it to make a new key "
            "(links already sent stop working)"
        )
    return key


# ---------------------------------------------------------------- tokens


def _b62(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
        if n == 0:
            return out


def _from_b62(text: str) -> int:
    n = 0
    for ch in text:
        n = n * 62 + BASE62.index(ch)
    return n


def _tag(key: bytes, link_id: int, alert_id: str, person_id: str, expires_at: float) -> str:
    msg = f"{link_id}|{alert_id}|{person_id}|{expires_at:.0f}".encode()
    digest = hmac.new(key, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:TAG_CHARS]


def _check_id(what: str, value: str, limit: int) -> None:
    if not value or len(value) > limit or "|" in value:
        raise ValueError(f"{what} must be 1..{limit} characters without '|': {value!r}")


def issue_link(session: Session, key: bytes, alert_id: str, person_id: str, now: float, ttl_s: float) -> str:
    """Store a new link for (alert, person), valid for ``ttl_s`` seconds from ``now``; return its token.
    Each call makes a new link (one per SMS sent). The caller commits."""
    _check_id("alert id", alert_id, ALERT_ID_MAX)
    _check_id("person id", person_id, PERSON_ID_MAX)
    if not ttl_s > 0:
        raise ValueError(f"link lifetime must be positive, not {ttl_s!r}")
    # whole seconds: the signed text holds exactly the stored expiry
    row = AckLinkRow(
        alert_id=alert_id, person_id=person_id, created_at=now, expires_at=float(round(now + ttl_s))
    )
    session.add(row)
    session.flush()
    return f"{_b62(row.id)}-{_tag(key, row.id, alert_id, person_id, row.expires_at)}"


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/a/{token}"


def verify_link(session: Session, key: bytes, token: str, now: float) -> AckLink:
    """The link a token names, if its tag is right and it has not expired; ``LinkError`` otherwise.
    A link stays valid after it was used (a second tap shows the alert's state) until it expires."""
    m = _TOKEN.fullmatch(token)
    link_id = _from_b62(m[1]) if m else 0
    if m is None or (len(m[1]) > 1 and m[1][0] == "0") or link_id > _ID_MAX:  # one spelling per id
        raise LinkError("malformed")
    row = session.get(AckLinkRow, link_id)
    if row is None:
        raise LinkError("unknown")
    expected = _tag(key, row.id, row.alert_id, row.person_id, row.expires_at)
    if not hmac.compare_digest(expected.encode("ascii"), m[2].encode("ascii")):
        raise LinkError("bad_signature")
    link = AckLink(row.id, row.alert_id, row.person_id, row.expires_at, row.used_at)
    if now >= row.expires_at:
        raise LinkError("expired", link)
    return link


def mark_used(session: Session, link_id: int, note: str | None, now: float) -> bool:
    """Record the first use of a link (when, and the note typed). Later uses change nothing: False."""
    row = session.get(AckLinkRow, link_id)
    if row is None or row.used_at is not None:
        return False
    row.used_at = now
    row.used_note = (note or "").strip() or None
    session.flush()
    return True
