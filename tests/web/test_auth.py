"""Logins (``web.auth``, ``web.users``): the form and its CSRF token, sessions (cookie flags, expiry,
logout), the login rate limit, CSRF on state-changing requests, the audit log, ``chainwatch users`` and
the demo users."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from web.app import create_app
from web.users import (
    AuditRow,
    SessionRow,
    UserError,
    UserRow,
    add_user,
    demo_logins,
    ensure_demo_users,
    users_main,
)

from .auth_helpers import PASSWORD, form_csrf, login
from .conftest import World


@pytest.fixture
def anon(users: World) -> Iterator[TestClient]:
    with TestClient(create_app(users.settings, users.clock)) as c:
        yield c


def post_login(c: TestClient, username: str, password: str, **extra: str) -> object:
    csrf = form_csrf(c.get("/login").text)
    return c.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf, **extra},
        follow_redirects=False,
    )


def audit_rows(world: World, action: str) -> list[AuditRow]:
    with world.session() as s:
        rows = list(s.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))
        s.expunge_all()
        return rows


def test_the_login_page_in_chinese_by_default_and_english(anon: TestClient):
    r = anon.get("/login")
    assert r.status_code == 200
    assert '<html lang="zh-CN">' in r.text and "用户名" in r.text and "<script" not in r.text
    assert 'name="csrf"' in r.text and "cw_login_csrf" in r.headers["set-cookie"]
    assert r.headers["cache-control"] == "no-store"
    en = anon.get("/login?lang=en")
    assert '<html lang="en">' in en.text and "Username" in en.text
    assert len(r.content) < 6000  # small, for a slow link


def test_login_sets_a_session_cookie_and_logout_ends_it(anon: TestClient, users: World):
    r = post_login(anon, "staff", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/"  # the user's home
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("cw_session="))
    flags = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= flags and "secure" not in flags  # http public_url
    assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]
    with users.session() as s:
        (row,) = s.scalars(select(SessionRow))
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()  # only the hash is stored
        assert row.expires_at - row.created_at == 12 * 3600
    me = anon.get("/api/me").json()
    assert me["username"] == "staff" and me["role"] == "clinic_staff" and me["scope"] == "qingshui-thc"
    assert "王秀英" not in anon.get("/login").text and "staff" in anon.get("/login").text  # who is logged in
    (login_audit,) = audit_rows(users, "login")
    assert login_audit.username == "staff" and login_audit.client_ip == "testclient"

    assert anon.post("/logout", follow_redirects=False).status_code == 403  # no CSRF token
    assert anon.post("/logout", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    out = anon.post("/logout", data={"csrf": me["csrf_token"]}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert anon.get("/api/me").status_code == 401
    with users.session() as s:
        assert list(s.scalars(select(SessionRow))) == []
    assert len(audit_rows(users, "logout")) == 1


def test_the_cookie_is_secure_behind_https(users: World):
    settings = users.settings.model_copy(update={"public_url": "https://chainwatch.example.org"})
    with TestClient(create_app(settings, users.clock), base_url="https://testserver") as c:
        r = post_login(c, "admin", PASSWORD)
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("cw_session="))
        assert "secure" in cookie.lower()
        assert c.get("/api/me").status_code == 200


def test_wrong_password_and_unknown_user_are_refused_alike_and_audited(anon: TestClient, users: World):
    wrong = post_login(anon, "staff", "not-the-password", lang="en")
    unknown = post_login(anon, "nobody", "not-the-password", lang="en")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Wrong username or password." in r.text
        assert "cw_session" not in r.headers.get("set-cookie", "")
    assert anon.get("/api/me").status_code == 401
    rows = audit_rows(users, "login_failed")
    assert [(a.username, a.detail["reason"]) for a in rows] == [
        ("staff", "wrong_password"),
        ("nobody", "unknown_user"),
    ]


def test_an_inactive_user_cannot_log_in(anon: TestClient, users: World):
    with users.session() as s, s.begin():
        s.scalars(select(UserRow).where(UserRow.username == "staff")).one().active = False
    assert post_login(anon, "staff", PASSWORD).status_code == 401


def test_the_login_form_needs_its_csrf_token(anon: TestClient):
    anon.get("/login")
    r = anon.post("/login", data={"username": "staff", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    r = anon.post("/login", data={"username": "staff", "password": PASSWORD, "csrf": "0" * 64})
    assert r.status_code == 403
    # a token from another browser (its own cookie) does not fit this browser's cookie
    with TestClient(anon.app) as other:
        token = form_csrf(other.get("/login").text)
    r = anon.post("/login", data={"username": "staff", "password": PASSWORD, "csrf": token})
    assert r.status_code == 403
    assert anon.get("/api/me").status_code == 401


def test_rate_limit_after_5_failures_for_a_username(anon: TestClient, users: World):
    for _ in range(5):
        assert post_login(anon, "staff", "wrong-password").status_code == 401
    r = post_login(anon, "staff", PASSWORD, lang="en")  # even the right password
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert r.headers["retry-after"] == "900"
    assert audit_rows(users, "login_blocked")
    users.clock.advance(15 * 60 + 1)
    assert post_login(anon, "staff", PASSWORD).status_code == 303


def test_rate_limit_per_ip_across_usernames(anon: TestClient, users: World):
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert post_login(anon, name, "wrong-password").status_code == 401
    assert post_login(anon, "admin", PASSWORD).status_code == 429


def test_a_successful_login_resets_the_usernames_count(anon: TestClient, users: World):
    for _ in range(4):
        post_login(anon, "officer", "wrong-password")
    assert post_login(anon, "officer", PASSWORD).status_code == 303
    anon.cookies.clear()  # another browser
    users.clock.advance(16 * 60)  # the IP's failures age out; the username's were reset at login
    for _ in range(4):
        assert post_login(anon, "officer", "wrong-password").status_code == 401
    assert post_login(anon, "officer", PASSWORD).status_code == 303


def test_sessions_expire_after_12_hours(anon: TestClient, users: World):
    login(anon, "staff")
    users.clock.advance(12 * 3600 - 1)
    assert anon.get("/api/me").status_code == 200
    users.clock.advance(2)
    r = anon.get("/api/me")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    page = anon.get("/outbox", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/outbox"


def test_not_logged_in_api_is_401_json_and_pages_redirect_to_login(anon: TestClient):
    r = anon.get("/api/alerts")
    assert r.status_code == 401 and r.json() == {
        "error": "unauthorized",
        "detail": "not logged in: log in at /login",
    }
    page = anon.get("/outbox?lang=en", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/outbox%3Flang%3Den"
    assert anon.get("/api/health").status_code == 200
    assert anon.get("/docs").status_code == 200


def test_after_login_back_to_the_page_asked_for_but_never_to_another_site(anon: TestClient):
    r = post_login(anon, "admin", PASSWORD, next="/outbox?lang=en")
    assert r.headers["location"] == "/outbox?lang=en"
    for evil in ("//evil.example", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        anon.cookies.clear()
        r = post_login(anon, "admin", PASSWORD, next=evil)
        assert r.status_code == 303 and r.headers["location"] == "/", evil


def test_csrf_on_api_posts(staff_client: TestClient, world: World):
    token = staff_client.headers.pop("X-CSRF-Token")
    url = f"/api/alerts/{world.alert_id}/ack"
    assert staff_client.post(url, json={"note": "x"}).status_code == 403
    r = staff_client.post(url, json={"note": "x"}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert world.alert().state == "firing"
    assert staff_client.post(url, json={"note": "x"}, headers={"X-CSRF-Token": token}).status_code == 200
    assert world.alert().state == "acknowledged"


def test_a_session_token_of_another_login_does_not_fit(staff_client: TestClient, officer_client: TestClient):
    officer_token = officer_client.get("/api/me").json()["csrf_token"]
    r = staff_client.post("/api/alerts/x/ack", headers={"X-CSRF-Token": officer_token})
    assert r.status_code == 403


# ---------------------------------------------------------------- users on the command line, demo users


def test_users_add_and_list(users: World):
    out = io.StringIO()
    users_main(
        "add",
        users.engine,
        0.0,
        out,
        username="nurse2",
        role="clinic_staff",
        scope="baihe-thc",
        password="long-enough",
    )
    users_main("list", users.engine, 0.0, out)
    text = out.getvalue()
    assert "added nurse2 (clinic_staff of baihe-thc)" in text
    assert "nurse2\tclinic_staff\tbaihe-thc\tzh-CN" in text and "admin\tadmin\t-" in text
    with Session(users.engine) as s:
        for bad, message in (
            (dict(username="x", role="clinic_staff", scope="no-such-clinic"), "registry clinic"),
            (dict(username="x", role="district_officer", scope="qingshui-thc"), "DISTRICT_ID"),
            (dict(username="x", role="admin", scope="demo-district"), "no scope"),
            (dict(username="x", role="boss", scope=None), "role"),
            (dict(username="Bad Name", role="admin", scope=None), "username"),
            (dict(username="staff", role="admin", scope=None), "exists"),
        ):
            with pytest.raises(UserError, match=message):
                add_user(s, password="long-enough", now=0.0, **bad)  # type: ignore[arg-type]
        with pytest.raises(UserError, match="at least 8"):
            add_user(s, "y", "short", "admin", None, 0.0)
        with pytest.raises(UserError, match="no person"):
            add_user(s, "y", "long-enough", "admin", None, 0.0, person_id="nobody")


def test_the_cli_reads_the_password_from_stdin(world: World, monkeypatch: pytest.MonkeyPatch, capsys):
    from core.cli import main

    monkeypatch.setenv("CHAINWATCH_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("CHAINWATCH_DATABASE_URL", "")
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    argv = ["users", "add", "bureau2", "--role", "district_officer", "--scope", "demo-district"]
    assert main([*argv, "--person", "bureau-duty2", "--password-stdin"]) == 0
    assert main(["users", "list"]) == 0
    assert "bureau2\tdistrict_officer\tdemo-district\tzh-CN person=bureau-duty2" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    assert main([*argv, "--password-stdin"]) == 1
    assert "exists" in capsys.readouterr().err


def test_demo_users_only_for_the_demo_district_and_only_once(tmp_path, fast_hashing: None):
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    assert ensure_demo_users(engine) == []  # no registry yet
    store_registry(engine, load_registry_file(DEMO_REGISTRY))
    created = ensure_demo_users(engine)
    assert [(u, r, s) for u, _p, r, s in created] == [
        ("qingshui", "clinic_staff", "qingshui-thc"),
        ("bureau", "district_officer", "demo-district"),
        ("admin", "admin", None),
    ]
    assert ensure_demo_users(engine) == []  # users exist: nothing changes
    assert demo_logins(engine) == created
    with Session(engine) as s:
        linked = {u.username: u.person_id for u in s.scalars(select(UserRow))}
    assert linked == {"qingshui": "qingshui-nurse1", "bureau": "bureau-duty1", "admin": None}
    engine.dispose()


def test_no_demo_users_for_another_registry(tmp_path, fast_hashing: None):
    reg = load_registry_file(DEMO_REGISTRY)
    other = reg.model_copy(update={"district": reg.district.model_copy(update={"id": "real-district"})})
    engine = make_engine(f"sqlite:///{tmp_path / 'real.sqlite'}")
    store_registry(engine, other)
    assert ensure_demo_users(engine) == []
    assert demo_logins(engine) == []
    engine.dispose()


# ---------------------------------------------------------------- behind a reverse proxy


def _via(users: World, peer: str, proxies: str) -> TestClient:
    settings = users.settings.model_copy(update={"web_trusted_proxies": proxies})
    return TestClient(create_app(settings, users.clock), client=(peer, 40000))


def _fail_5_logins(c: TestClient, forwarded_for: str) -> None:
    for name in ("a1", "a2", "a3", "a4", "a5"):
        csrf = form_csrf(c.get("/login").text)
        r = c.post(
            "/login",
            data={"username": name, "password": "wrong-password", "csrf": csrf},
            headers={"X-Forwarded-For": forwarded_for},
            follow_redirects=False,
        )
        assert r.status_code == 401


def _login_from(c: TestClient, forwarded_for: str) -> int:
    csrf = form_csrf(c.get("/login").text)
    r = c.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf": csrf},
        headers={"X-Forwarded-For": forwarded_for},
        follow_redirects=False,
    )
    return r.status_code


def test_behind_a_trusted_proxy_the_limit_is_per_real_client(users: World):
    """Behind nginx every request comes from the proxy's address: without the setting, one client's
    failures would lock everyone out; with it, each client is counted on its own."""
    with _via(users, "10.0.0.5", "10.0.0.0/24") as c:
        _fail_5_logins(c, "203.0.113.7")
        assert _login_from(c, "203.0.113.7") == 429
        assert _login_from(c, "198.51.100.9") == 303  # another nurse's phone behind the same proxy
    failures = audit_rows(users, "login_failed")
    assert {r.client_ip for r in failures} == {"203.0.113.7"}


def test_a_client_cannot_escape_the_limit_by_writing_its_own_forwarded_for(users: World):
    """The proxy appends the address it saw: only the right-most untrusted entry is believed."""
    with _via(users, "10.0.0.5", "10.0.0.5") as c:
        for i in range(5):
            csrf = form_csrf(c.get("/login").text)
            r = c.post(
                "/login",
                data={"username": f"a{i}", "password": "wrong-password", "csrf": csrf},
                headers={"X-Forwarded-For": f"192.0.2.{i}, 203.0.113.7"},  # spoofed, then the proxy's
                follow_redirects=False,
            )
            assert r.status_code == 401
        assert _login_from(c, "192.0.2.99, 203.0.113.7") == 429


def test_forwarded_for_from_an_untrusted_peer_is_ignored(users: World):
    with _via(users, "198.51.100.1", "10.0.0.0/8") as c:  # the client talks to us directly
        _fail_5_logins(c, "203.0.113.7")
        assert _login_from(c, "192.0.2.1") == 429  # a made-up header changes nothing
    assert {r.client_ip for r in audit_rows(users, "login_failed")} == {"198.51.100.1"}


def test_a_bad_trusted_proxy_entry_stops_the_service_with_its_name():
    from pydantic import ValidationError

    from core.settings import Settings

    with pytest.raises(ValidationError, match="'nginx' is not an IP address or network"):
        Settings(web_trusted_proxies="10.0.0.1, nginx")
