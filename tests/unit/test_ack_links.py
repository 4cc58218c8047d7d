"""Signed acknowledgement links: short tokens bound by an HMAC to one alert, one person and one expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from alerting.notify.links import (
    BASE62,
    AckLink,
    AckLinkRow,
    LinkError,
    init_link_tables,
    issue_link,
    link_key,
    link_url,
    mark_used,
    verify_link,
)
from core.clock import ManualClock
from core.settings import Settings

KEY = b"k" * 32
T0 = 1_795_633_920.0
TTL = 72 * 3600.0
ALERT = "A-20261126-0001"
NURSE = "qingshui-nurse1"


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    init_link_tables(engine)
    with Session(engine) as s:
        yield s


def reason(session: Session, token: str, now: float = T0, key: bytes = KEY) -> str:
    with pytest.raises(LinkError) as info:
        verify_link(session, key, token, now)
    return info.value.reason


def test_round_trip(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    link = verify_link(session, KEY, token, T0 + 60)
    assert link == AckLink(id=1, alert_id=ALERT, person_id=NURSE, expires_at=T0 + TTL, used_at=None)
    row = session.get(AckLinkRow, 1)
    assert row is not None
    assert (row.created_at, row.expires_at, row.used_at, row.used_note) == (T0, T0 + TTL, None, None)


def test_token_is_base62_id_and_12_chars_of_the_hmac(session: Session):
    for _ in range(70):
        token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    assert token.startswith("18-")  # id 70 = 1*62 + 8
    msg = f"70|{ALERT}|{NURSE}|{T0 + TTL:.0f}".encode()
    tag = base64.urlsafe_b64encode(hmac.new(KEY, msg, hashlib.sha256).digest()).decode()[:12]
    assert token == f"18-{tag}"
    assert "=" not in token


def test_token_and_url_are_short(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    assert len(token) == 14  # "1-" + 12
    # a million links later the token is still 4 + 1 + 12 characters
    assert len(BASE62) == 62 and 62**4 > 10**6
    url = link_url("https://cw.example.cn/", token)
    assert url == f"https://cw.example.cn/a/{token}"
    assert len(link_url("https://cw.example.cn", "zzzz-" + "x" * 12)) == 41


def test_each_issue_is_a_new_link(session: Session):
    a = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    b = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    assert a != b
    assert verify_link(session, KEY, a, T0).id == 1
    assert verify_link(session, KEY, b, T0).id == 2


def test_tampered_tag_is_bad_signature(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    last = token[-1]
    assert reason(session, token[:-1] + ("A" if last != "A" else "B")) == "bad_signature"
    flipped = token[:2] + token[2:].swapcase()
    assert reason(session, flipped) == "bad_signature"


def test_swapped_id_is_bad_signature(session: Session):
    mine = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    other = issue_link(session, KEY, "A-20261126-0002", "qingshui-nurse2", T0, TTL)
    mine_id, mine_tag = mine.split("-", 1)
    other_id, other_tag = other.split("-", 1)
    assert reason(session, f"{other_id}-{mine_tag}") == "bad_signature"
    assert reason(session, f"{mine_id}-{other_tag}") == "bad_signature"


def test_row_changed_in_the_database_is_bad_signature(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    row = session.get(AckLinkRow, 1)
    assert row is not None
    for field, value in (
        ("person_id", "qingshui-head"),
        ("alert_id", "A-20261126-0009"),
        ("expires_at", T0 + 2 * TTL),
    ):
        original = getattr(row, field)
        setattr(row, field, value)
        assert reason(session, token) == "bad_signature", field
        setattr(row, field, original)
    assert verify_link(session, KEY, token, T0).person_id == NURSE


def test_other_key_is_bad_signature(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    assert reason(session, token, key=b"another key of 32 bytes........!") == "bad_signature"


def test_unknown_id(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    assert reason(session, "zz" + token[token.index("-") :]) == "unknown"


def test_expired(session: Session):
    clock = ManualClock(T0)
    token = issue_link(session, KEY, ALERT, NURSE, clock.now(), TTL)
    clock.advance(TTL - 1)
    assert verify_link(session, KEY, token, clock.now()).alert_id == ALERT
    clock.advance(1)
    with pytest.raises(LinkError) as info:
        verify_link(session, KEY, token, clock.now())
    assert info.value.reason == "expired"
    assert info.value.link is not None and info.value.link.person_id == NURSE  # the tag was right


def test_expiry_is_whole_seconds(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0 + 0.6, 10.0)
    assert verify_link(session, KEY, token, T0).expires_at == T0 + 11
    assert reason(session, token, now=T0 + 11) == "expired"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "-",
        "1-",
        "1-short",
        "1-abcdefghijklm",  # 13 characters of tag
        "-abcdefghijkl",
        "1_abcdefghijkl",
        "1-abcdefghij=l",
        "01-abcdefghijkl",  # a second spelling of id 1
        "zzzzzzzzzzz-abcdefghijkl",  # beyond a 64-bit id
        "zzzzzzzzzzzz-abcdefghijkl",
        "é-abcdefghijkl",
        "1-abcdefghijk\u00e9",
        "1-abcdefghijkl/x",
        "1 -abcdefghijkl",
        "1-abcdefghijkl\n",
    ],
)
def test_garbage_is_malformed(session: Session, garbage: str):
    issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    assert reason(session, garbage) == "malformed"


def test_issue_checks_its_arguments(session: Session):
    with pytest.raises(ValueError):
        issue_link(session, KEY, "", NURSE, T0, TTL)
    with pytest.raises(ValueError):
        issue_link(session, KEY, ALERT, "a|b", T0, TTL)
    with pytest.raises(ValueError):
        issue_link(session, KEY, ALERT, "p" * 65, T0, TTL)
    with pytest.raises(ValueError):
        issue_link(session, KEY, ALERT, NURSE, T0, 0)


def test_mark_used_keeps_the_first_use(session: Session):
    token = issue_link(session, KEY, ALERT, NURSE, T0, TTL)
    link = verify_link(session, KEY, token, T0)
    assert mark_used(session, link.id, "  已到现场  ", T0 + 10)
    assert not mark_used(session, link.id, "again", T0 + 20)
    row = session.get(AckLinkRow, link.id)
    assert row is not None and (row.used_at, row.used_note) == (T0 + 10, "已到现场")
    assert verify_link(session, KEY, token, T0 + 30).used_at == T0 + 10  # still opens: shows the state


# ---------------------------------------------------------------- the key


def test_link_key_from_settings(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path, ack_link_secret=SecretStr("a configured secret"))
    assert link_key(s) == b"a configured secret"
    assert not (tmp_path / "ack-link.key").exists()


def test_link_key_file_is_created_once_0600_and_reused(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path / "data", ack_link_secret=SecretStr(""))
    key = link_key(s)
    path = tmp_path / "data" / "ack-link.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key
    assert link_key(s) == key
    assert link_key(Settings(_env_file=None, data_dir=tmp_path / "data")) == key
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    other = link_key(Settings(_env_file=None, data_dir=tmp_path / "elsewhere", ack_link_secret=SecretStr("")))
    assert other != key


def test_link_key_file_damaged(tmp_path):
    (tmp_path / "ack-link.key").write_bytes(b"short")
    with pytest.raises(ValueError, match="damaged"):
        link_key(Settings(_env_file=None, data_dir=tmp_path, ack_link_secret=SecretStr("")))


def test_tokens_survive_a_restart_with_the_key_file(tmp_path, session: Session):
    s = Settings(_env_file=None, data_dir=tmp_path, ack_link_secret=SecretStr(""))
    token = issue_link(session, link_key(s), ALERT, NURSE, T0, TTL)
    assert verify_link(session, link_key(s), token, T0).alert_id == ALERT
