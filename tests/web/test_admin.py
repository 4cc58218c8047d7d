"""The admin pages (``web.admin``): the admin home, users (add, role and scope, password, disable and
enable: through the forms with the page's CSRF token, refused changes on the page, the audit log), the
registry (reload from the configured file, a pasted YAML, valid or not) and the dead letters (newest
first, paginated, filtered, payloads escaped); then /admin/users in a real headless Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import ClinicRow, DeadLetterRow, DistrictRow
from core.registry_model import DEMO_REGISTRY
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from web.admin import HEX_SHOWN, PAGE_SIZE
from web.app import create_app
from web.users import AuditRow, SessionRow, UserRow

from .auth_helpers import PASSWORD, form_csrf, login
from .conftest import T0, World

NEW_PASSWORD = "another-horse-7"
SCREENSHOTS = Path(__file__).with_name("screenshots")


# ---------------------------------------------------------------- helpers


@pytest.fixture
def admin(admin_client: TestClient) -> TestClient:
    """The admin's client without the CSRF header: the forms carry the token themselves."""
    del admin_client.headers["X-CSRF-Token"]
    return admin_client


def post(client: TestClient, page: str, action: str, **fields: str) -> Any:
    """Submit a form of ``page`` as the browser would: the page's CSRF token in the ``csrf`` field."""
    csrf = form_csrf(client.get(page).text)
    return client.post(action, data={"csrf": csrf, **fields}, follow_redirects=False)


def audit_rows(world: World, action: str) -> list[AuditRow]:
    with Session(world.engine) as s:
        rows = list(s.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))
        s.expunge_all()
        return rows


def user_row(world: World, username: str) -> UserRow | None:
    with Session(world.engine) as s:
        row = s.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is not None:
            s.expunge(row)
        return row


def registry_state(world: World) -> tuple[list[str], int]:
    with Session(world.engine) as s:
        names = list(s.scalars(select(DistrictRow.name)))
        return names, s.scalar(select(func.count()).select_from(ClinicRow)) or 0


def error_text(html: str) -> str:
    m = re.search(r'<div class="card critical" role="alert" id="error">(.*?)</div>', html, re.S)
    assert m, "no error on the page"
    return m.group(1)


def fresh_login(world: World, username: str, password: str) -> int:
    """The status of a login through the form in a new browser (303: logged in)."""
    with TestClient(create_app(world.settings, world.clock)) as c:
        csrf = form_csrf(c.get("/login").text)
        data = {"username": username, "password": password, "csrf": csrf}
        return c.post("/login", data=data, follow_redirects=False).status_code


# ---------------------------------------------------------------- access and the home page


def test_admin_home_links_and_counts(admin: TestClient, world: World):
    r = admin.get("/admin")
    assert r.status_code == 200
    html = r.text
    assert '<html lang="zh-CN">' in html and "<script" not in html
    assert 'href="/admin/users"' in html and 'href="/admin/registry"' in html
    assert 'href="/admin/deadletters"' in html
    assert "3 个账号，其中 0 个已停用" in html  # staff, officer, admin
    assert "示范区（虚构）：10 个乡镇，10 家卫生院，30 台冷链设备，21 个采集器，33 名人员" in html
    assert "0 条被拒消息" in html
    assert 'id="nav-admin"' in html
    en = admin.get("/admin?lang=en").text
    assert "3 logins, 0 disabled" in en and "10 clinics, 30 pieces of equipment" in en


def test_only_admins_see_the_admin_link(staff_client: TestClient, officer_client: TestClient):
    assert 'id="nav-admin"' not in staff_client.get("/clinics/qingshui-thc").text
    assert 'id="nav-admin"' not in officer_client.get("/district").text


PAGES = ["/admin", "/admin/users", "/admin/registry", "/admin/deadletters"]
FORMS = [
    "/admin/users",
    "/admin/users/role",
    "/admin/users/password",
    "/admin/users/active",
    "/admin/registry/reload",
    "/admin/registry/upload",
]


def test_anonymous_is_sent_to_login_and_staff_and_officers_get_403(
    staff_client: TestClient, officer_client: TestClient, world: World
):
    with TestClient(create_app(world.settings, world.clock)) as anon:
        for path in PAGES:
            r = anon.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
        for path in FORMS:
            r = anon.post(path, data={"username": "staff", "active": "0"}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    for client in (staff_client, officer_client):
        for path in PAGES:
            assert client.get(path).status_code == 403, path
        for path in FORMS:  # with the session's CSRF token (header): still not an admin
            r = client.post(path, data={"username": "staff", "active": "0", "role": "admin"})
            assert r.status_code == 403, path
    assert user_row(world, "staff").active and user_row(world, "staff").role == "clinic_staff"
    assert audit_rows(world, "user_disabled") == []


def test_a_form_without_the_csrf_token_is_refused(admin: TestClient, world: World):
    r = admin.post("/admin/users/active", data={"username": "staff", "active": "0"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = admin.post("/admin/users/active", data={"username": "staff", "active": "0", "csrf": "forged"})
    assert r.status_code == 403
    assert user_row(world, "staff").active


# ---------------------------------------------------------------- users


def test_the_users_page_lists_every_login(admin: TestClient):
    html = admin.get("/admin/users").text
    staff = re.search(r'<section class="card" id="user-staff".*?</section>', html, re.S)
    assert staff, html
    card = staff.group(0)
    assert "卫生院工作人员" in card and "清水镇卫生院 (qingshui-thc)" in card
    assert "王秀英 (qingshui-nurse1)" in card and "中文" in card and "已启用" in card
    officer = re.search(r'id="user-officer".*?</section>', html, re.S)
    assert officer and "示范区（虚构） (demo-district)" in officer.group(0)
    me = re.search(r'id="user-admin".*?</section>', html, re.S)
    assert me and "（你本人）" in me.group(0)
    assert 'action="/admin/users/active"' not in me.group(0)  # no disable button for oneself
    assert "Clinic staff" in admin.get("/admin/users?lang=en").text


def test_add_a_user_through_the_form(admin: TestClient, world: World):
    fields = {
        "username": "Nurse9",
        "role": "clinic_staff",
        "scope": "baihe-thc",
        "person": "baihe-nurse1",
        "language": "en",
        "password": NEW_PASSWORD,
    }
    r = post(admin, "/admin/users", "/admin/users", **fields)
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/users?done=user_added&name=nurse9"
    page = admin.get(r.headers["location"]).text
    assert "已添加用户 nurse9。" in page and 'id="user-nurse9"' in page
    row = user_row(world, "nurse9")
    assert row is not None and (row.role, row.scope, row.person_id, row.language) == (
        "clinic_staff",
        "baihe-thc",
        "baihe-nurse1",
        "en",
    )
    (event,) = audit_rows(world, "user_added")
    assert (event.username, event.target_type, event.target_id) == ("admin", "user", "nurse9")
    assert event.at == world.clock.now()
    assert event.detail == {
        "role": "clinic_staff",
        "scope": "baihe-thc",
        "person": "baihe-nurse1",
        "language": "en",
    }
    assert NEW_PASSWORD not in json.dumps(event.as_json())
    assert fresh_login(world, "nurse9", NEW_PASSWORD) == 303


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": "x1", "role": "clinic_staff", "scope": "demo-district"}, "registry clinic"),
        ({"username": "x1", "role": "district_officer", "scope": "qingshui-thc"}, "DISTRICT_ID"),
        ({"username": "x1", "role": "admin", "scope": "qingshui-thc"}, "an admin has no scope"),
        ({"username": "x1", "role": "admin", "password": "short"}, "at least 8 characters"),
        ({"username": "staff", "role": "admin"}, "user &#39;staff&#39; exists"),
        ({"username": "bad name", "role": "admin"}, "lower-case letters"),
        ({"username": "x1", "role": "boss"}, "role &#39;boss&#39;: one of"),
        ({"username": "x1", "role": "admin", "person": "nobody"}, "no person &#39;nobody&#39;"),
    ],
)
def test_a_user_the_form_cannot_add_shows_why(admin: TestClient, world: World, fields: dict, message: str):
    r = post(admin, "/admin/users", "/admin/users", **{"password": NEW_PASSWORD, **fields})
    assert r.status_code == 422
    assert "未能保存" in error_text(r.text) and message in error_text(r.text)
    assert f'name="username" value="{fields["username"]}"' in r.text  # the form keeps what was typed
    with Session(world.engine) as s:
        assert s.scalar(select(func.count()).select_from(UserRow)) == 3
    assert audit_rows(world, "user_added") == []


def test_change_role_and_scope(admin: TestClient, staff_client: TestClient, world: World):
    assert staff_client.get("/api/alerts?clinic=baihe-thc").status_code == 404  # not their clinic
    fields = {"username": "staff", "role": "district_officer", "scope": "demo-district"}
    r = post(admin, "/admin/users", "/admin/users/role", **fields)
    assert r.status_code == 303 and "done=role_changed" in r.headers["location"]
    assert "已修改 staff 的角色和范围。" in admin.get(r.headers["location"]).text
    row = user_row(world, "staff")
    assert (row.role, row.scope) == ("district_officer", "demo-district")
    (event,) = audit_rows(world, "user_role_changed")
    assert event.target_id == "staff" and event.username == "admin"
    assert event.detail == {
        "from": {"role": "clinic_staff", "scope": "qingshui-thc"},
        "to": {"role": "district_officer", "scope": "demo-district"},
    }
    assert staff_client.get("/api/alerts?clinic=baihe-thc").status_code == 200  # at once, same session

    r = post(
        admin,
        "/admin/users",
        "/admin/users/role",
        username="staff",
        role="clinic_staff",
        scope="demo-district",
    )
    assert r.status_code == 422 and "registry clinic" in error_text(r.text)
    r = post(admin, "/admin/users", "/admin/users/role", username="ghost", role="admin", scope="")
    assert r.status_code == 422 and "no user &#39;ghost&#39;" in error_text(r.text)
    assert user_row(world, "staff").role == "district_officer"
    assert len(audit_rows(world, "user_role_changed")) == 1


def test_an_admin_cannot_demote_or_disable_themself(admin: TestClient, world: World):
    for role, scope in (("clinic_staff", "qingshui-thc"), ("district_officer", "demo-district")):
        r = post(admin, "/admin/users", "/admin/users/role", username="admin", role=role, scope=scope)
        assert r.status_code == 422
        assert "you cannot take away your own admin role" in error_text(r.text)
    r = post(admin, "/admin/users", "/admin/users/active", username="admin", active="0")
    assert r.status_code == 422 and "you cannot disable your own login" in error_text(r.text)
    row = user_row(world, "admin")
    assert row.role == "admin" and row.active
    assert admin.get("/admin").status_code == 200  # still logged in
    assert audit_rows(world, "user_role_changed") == [] and audit_rows(world, "user_disabled") == []


def test_reset_a_password_ends_the_users_sessions(admin: TestClient, staff_client: TestClient, world: World):
    assert staff_client.get("/api/me").status_code == 200
    r = post(admin, "/admin/users", "/admin/users/password", username="staff", password=NEW_PASSWORD)
    assert r.status_code == 303 and "done=password_reset" in r.headers["location"]
    assert staff_client.get("/api/me").status_code == 401  # the open session ended
    assert fresh_login(world, "staff", PASSWORD) == 401
    assert fresh_login(world, "staff", NEW_PASSWORD) == 303
    (event,) = audit_rows(world, "user_password_reset")
    assert event.target_id == "staff" and event.username == "admin"
    assert NEW_PASSWORD not in json.dumps(event.as_json())
    r = post(admin, "/admin/users", "/admin/users/password", username="staff", password="short")
    assert r.status_code == 422 and "at least 8 characters" in error_text(r.text)
    assert len(audit_rows(world, "user_password_reset")) == 1


def test_an_admin_resetting_their_own_password_stays_logged_in(admin: TestClient, world: World):
    r = post(admin, "/admin/users", "/admin/users/password", username="admin", password=NEW_PASSWORD)
    assert r.status_code == 303
    assert admin.get("/admin").status_code == 200
    assert fresh_login(world, "admin", NEW_PASSWORD) == 303


def test_a_disabled_login_is_refused_and_its_sessions_end(
    admin: TestClient, staff_client: TestClient, world: World
):
    assert staff_client.get("/api/me").status_code == 200
    r = post(admin, "/admin/users", "/admin/users/active", username="staff", active="0")
    assert r.status_code == 303 and "done=disabled" in r.headers["location"]
    page = admin.get(r.headers["location"]).text
    assert "已停用 staff，其会话已结束。" in page and 'id="user-staff" data-active="no"' in page
    assert staff_client.get("/api/me").status_code == 401
    assert staff_client.get("/clinics/qingshui-thc", follow_redirects=False).status_code == 303  # to /login
    with Session(world.engine) as s:
        staff_id = s.scalar(select(UserRow.id).where(UserRow.username == "staff"))
        assert s.scalars(select(SessionRow).where(SessionRow.user_id == staff_id)).first() is None
    assert fresh_login(world, "staff", PASSWORD) == 401
    assert "3 个账号，其中 1 个已停用" in admin.get("/admin").text
    (event,) = audit_rows(world, "user_disabled")
    assert (event.username, event.target_id) == ("admin", "staff")

    r = post(admin, "/admin/users", "/admin/users/active", username="staff", active="1")
    assert r.status_code == 303 and "done=enabled" in r.headers["location"]
    assert fresh_login(world, "staff", PASSWORD) == 303
    assert len(audit_rows(world, "user_enabled")) == 1
    r = post(admin, "/admin/users", "/admin/users/active", username="staff", active="maybe")
    assert r.status_code == 422 and "active is 0 (disable) or 1 (enable)" in error_text(r.text)


# ---------------------------------------------------------------- registry


def demo_yaml() -> dict[str, Any]:
    return yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))


def smaller_registry() -> str:
    """The demo district renamed, with its first township (清水镇, 1 clinic) left out."""
    raw = demo_yaml()
    raw["district"]["name"] = "试点区"
    raw["district"]["townships"] = raw["district"]["townships"][1:]
    raw["rota"] = [r for r in raw.get("rota", []) if not r["site"].startswith("qingshui")]
    raw["escalation"] = [
        e for e in raw.get("escalation", []) if not str(e.get("clinic")).startswith("qingshui")
    ]
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def test_the_registry_page_shows_what_is_loaded_and_when_the_services_see_a_new_one(admin: TestClient):
    html = admin.get("/admin/registry").text
    loaded = re.search(r'<section class="card" id="loaded">.*?</section>', html, re.S)
    assert loaded
    text = re.sub(r"<[^>]+>", " ", loaded.group(0))
    for words in (
        "区县 示范区（虚构）",
        "乡镇 10",
        "卫生院 10",
        "冷链设备 30",
        "人员 33",
        "清水镇：1 家卫生院",
    ):
        assert words in " ".join(text.split()), words
    assert "随系统提供的示范区" in html
    assert "警报服务（alerting）30 秒内发现变化并按新的登记信息重新构建" in html and "必须重启" not in html
    assert "builds itself again from it" in admin.get("/admin/registry?lang=en").text


def test_upload_a_valid_registry(admin: TestClient, world: World):
    text = smaller_registry()
    r = post(admin, "/admin/registry", "/admin/registry/upload", yaml=text)
    assert r.status_code == 303 and r.headers["location"] == "/admin/registry?done=uploaded"
    assert registry_state(world) == (["试点区"], 9)
    page = admin.get(r.headers["location"]).text
    assert "已加载上传的登记信息。" in page and "试点区" in page
    staff = re.search(r'id="user-staff".*?</section>', admin.get("/admin/users").text, re.S)
    assert staff and '(qingshui-thc) <span class="overdue">不在登记信息中</span>' in staff.group(0)
    (event,) = audit_rows(world, "registry_uploaded")
    assert (event.username, event.target_type, event.target_id) == ("admin", "registry", "demo-district")
    assert event.detail["clinics"] == 9 and event.detail["chars"] == len(text)
    assert len(event.detail["sha256"]) == 64


def test_an_invalid_registry_changes_nothing_and_every_problem_is_shown(admin: TestClient, world: World):
    raw = demo_yaml()
    clinic = raw["district"]["townships"][0]["clinics"][0]
    clinic["devices"][0]["interval_s"] = 1
    clinic["equipment"][0]["profile"] = "wine_cooler"
    raw["district"]["townships"][1]["clinics"][0]["id"] = clinic["id"]  # a duplicate clinic id
    text = yaml.safe_dump(raw, allow_unicode=True) + "# <script>alert(1)</script>\n"
    r = post(admin, "/admin/registry", "/admin/registry/upload", yaml=text)
    assert r.status_code == 422
    problems = re.search(r'id="problems">(.*?)</div>', r.text, re.S)
    assert problems and "登记信息有误，未做任何更改" in problems.group(1)
    items = re.findall(r"<li>(.*?)</li>", problems.group(1))
    where = "district.townships.0.clinics.0"
    assert f"{where}.devices.0.interval_s: Input should be greater than or equal to 5" in items
    assert any(i.startswith(f"{where}.equipment.0.profile: Input should be") for i in items), items
    assert len(items) == 2  # the duplicate id is checked once the clinics themselves are valid
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>" not in r.text  # the text, kept
    assert registry_state(world) == (["示范区（虚构）"], 10)
    assert audit_rows(world, "registry_uploaded") == []

    raw = demo_yaml()
    raw["district"]["townships"][1]["clinics"][0]["id"] = "qingshui-thc"
    r = post(admin, "/admin/registry", "/admin/registry/upload", yaml=yaml.safe_dump(raw, allow_unicode=True))
    assert r.status_code == 422 and "<li>district: duplicate clinic id(s): qingshui-thc</li>" in r.text

    r = post(admin, "/admin/registry", "/admin/registry/upload", yaml="district:\n  id: [unclosed\n")
    assert r.status_code == 422
    assert re.search(r"<li>YAML line 3, column 1: .+</li>", r.text), r.text
    r = post(admin, "/admin/registry", "/admin/registry/upload", yaml="   ")
    assert r.status_code == 422 and "<li>请粘贴登记信息 YAML。</li>" in r.text
    r = post(admin, "/admin/registry", "/admin/registry/upload", yaml="- just\n- a list\n")
    assert r.status_code == 422 and "<li>registry: Input should be a valid dictionary" in r.text
    assert registry_state(world) == (["示范区（虚构）"], 10)


@pytest.fixture
def file_admin(users: World, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """An admin's client of an app whose ``registry_file`` is a file in tmp_path (the demo district)."""
    path = tmp_path / "registry.yaml"
    path.write_text(DEMO_REGISTRY.read_text(encoding="utf-8"), encoding="utf-8")
    settings = users.settings.model_copy(update={"registry_file": path})
    with TestClient(create_app(settings, users.clock)) as c:
        login(c, "admin")
        del c.headers["X-CSRF-Token"]
        yield c, path


def test_reload_the_configured_file(file_admin: tuple[TestClient, Path], world: World):
    client, path = file_admin
    assert f"配置的文件：{path}" in client.get("/admin/registry").text
    path.write_text(smaller_registry(), encoding="utf-8")
    r = post(client, "/admin/registry", "/admin/registry/reload", lang="en")
    assert r.status_code == 303 and r.headers["location"] == "/admin/registry?done=reloaded&lang=en"
    assert registry_state(world) == (["试点区"], 9)
    assert "The registry was reloaded from the file." in client.get(r.headers["location"]).text
    (event,) = audit_rows(world, "registry_reloaded")
    assert event.detail["file"] == str(path) and event.detail["clinics"] == 9

    path.write_text("district:\n  id: x\n", encoding="utf-8")
    r = post(client, "/admin/registry", "/admin/registry/reload")
    assert r.status_code == 422 and f"<li>{path}: district.name: Field required</li>" in r.text
    path.unlink()
    r = post(client, "/admin/registry", "/admin/registry/reload")
    assert r.status_code == 422 and f"<li>{path}: No such file or directory</li>" in r.text
    assert registry_state(world) == (["试点区"], 9)
    assert len(audit_rows(world, "registry_reloaded")) == 1


def test_reload_without_a_configured_file_loads_the_demo_district(admin: TestClient, world: World):
    assert (
        post(admin, "/admin/registry", "/admin/registry/upload", yaml=smaller_registry()).status_code == 303
    )
    assert registry_state(world) == (["试点区"], 9)
    r = post(admin, "/admin/registry", "/admin/registry/reload")
    assert r.status_code == 303
    assert registry_state(world) == (["示范区（虚构）"], 10)
    assert audit_rows(world, "registry_reloaded")[0].detail["file"] == str(DEMO_REGISTRY)


# ---------------------------------------------------------------- dead letters


def add_dead_letters(world: World, letters: list[tuple[float, str, bytes, str]]) -> None:
    with Session(world.engine) as s, s.begin():
        for t, reason, payload, detail in letters:
            s.add(
                DeadLetterRow(
                    received_at=datetime.fromtimestamp(t, UTC),
                    topic="cw/v1/qingshui-thc/qingshui-gw1/telemetry",
                    payload=payload,
                    reason=reason,
                    detail=detail,
                )
            )


def test_dead_letters_newest_first_paginated_and_filtered(admin: TestClient, world: World):
    add_dead_letters(world, [(T0 - 60 * i, "bad_json", f"msg-{i}".encode(), f"d{i}") for i in range(23)])
    add_dead_letters(world, [(T0 - 30, "unknown_device", b"{}", "no device x")])
    html = admin.get("/admin/deadletters").text
    assert "第 1 / 2 页，共 24 条" in html
    assert html.count('<section class="card warning"') == PAGE_SIZE
    order = re.findall(r"<pre>(.*?)</pre>", html)
    assert order[:3] == ["msg-0", "{}", "msg-1"]  # newest first
    assert 'href="/admin/deadletters?page=2&amp;lang=zh-CN"' in html and "下一页" in html
    page2 = admin.get("/admin/deadletters?page=2").text
    assert re.findall(r"<pre>(.*?)</pre>", page2) == ["msg-19", "msg-20", "msg-21", "msg-22"]
    assert "上一页" in page2 and "下一页" not in page2
    only = admin.get("/admin/deadletters?reason=unknown_device").text
    assert "共 1 条" in only and "no device x" in only and "msg-0" not in only
    assert '<option value="unknown_device" selected>unknown_device (1)</option>' in only
    assert '<option value="bad_json">bad_json (23)</option>' in only
    assert admin.get("/admin/deadletters?page=0").status_code == 422


def test_dead_letter_payloads_are_shown_safely(admin: TestClient, world: World):
    script = b'{"x": "<script>alert(1)</script>"}'
    binary = bytes(range(256)) * 3
    long_text = ("温" * 3000).encode()
    add_dead_letters(
        world,
        [
            (T0, "bad_json", script, "<img src=x onerror=alert(2)>"),
            (T0 - 1, "bad_encoding", binary, "not UTF-8"),
            (T0 - 2, "too_large", long_text, "too long"),
        ],
    )
    html = admin.get("/admin/deadletters").text
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    shown = re.findall(r"<pre>(.*?)</pre>", html, re.S)
    assert shown[1] == binary[:HEX_SHOWN].hex(" ") and shown[1].startswith("00 01 02")
    assert "内容（768 字节） · 二进制，以十六进制显示 （已截断）" in html
    assert shown[2] == "温" * 2000 and "内容（9000 字节） （已截断）" in html


# ---------------------------------------------------------------- in Chromium


def test_the_users_page_in_headless_chromium(users: World):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    SCREENSHOTS.mkdir(exist_ok=True)
    app = create_app(users.settings, users.clock)
    with serving(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2)
            page.goto(f"{url}/admin/users")
            page.get_by_label("用户名").fill("admin")
            page.get_by_label("密码").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="登录").click()
            assert page.url == f"{url}/admin/users"
            page.locator("#user-staff summary", has_text="修改角色和范围").click()
            page.locator("#user-staff").get_by_label("角色").select_option("district_officer")
            page.locator("#user-staff").get_by_label("范围").select_option("demo-district")
            with page.expect_navigation():
                page.locator("#user-staff").get_by_role("button", name="保存").click()
            assert page.get_by_text("已修改 staff 的角色和范围。").is_visible()
            assert "区卫生健康局" in page.locator("#user-staff .sev").inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.screenshot(path=str(SCREENSHOTS / "admin-users.png"), full_page=True)
        finally:
            browser.close()
    assert user_row(users, "staff").role == "district_officer"
    print(f"\nscreenshot: {SCREENSHOTS / 'admin-users.png'}")
