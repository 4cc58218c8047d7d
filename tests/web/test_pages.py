"""The clinic status page, its acknowledge and resolve forms, the monthly record downloads, the district
overview and the home redirect (web.pages): per role and scope through the TestClient, then one run in
a real headless Chromium (Debian's) on a phone-sized screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting import lifecycle
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import AlertState
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from web.app import create_app
from web.users import AuditRow

from .auth_helpers import FAR_CLINIC, FAR_DISTRICT, PASSWORD, add_far_district, form_csrf
from .conftest import CLINIC, FRIDGE, NURSE, T0, World

OTHER = "baihe-thc"


class FakeInflux:
    """InfluxDB answering the clinic's latest readings: ``readings`` equipment -> (epoch s, °C)."""

    def __init__(self, readings: dict[str, tuple[float, float]] | None = None, down: bool = False) -> None:
        self.readings = readings or {}
        self.down = down

    def query(self, q: str, params: Any = None, *, epoch: str = "ms") -> list[dict[str, Any]]:
        from core.influx import InfluxError

        if self.down:
            raise InfluxError("connection refused", retryable=True)
        return [
            {"tags": {"equipment": eq}, "values": [[t * 1000, c]]} for eq, (t, c) in self.readings.items()
        ]

    def close(self) -> None:
        pass


def _influx(client: TestClient, world: World, **kw: Any) -> None:
    app: Any = client.app
    app.state.influx = FakeInflux(**kw) if kw else FakeInflux({FRIDGE: (world.clock.now() - 180, 9.4)})


def _fire(world: World, rule: Rule, severity: Severity, subject: str, clinic: str, t: float) -> str:
    decision = Decision(t, rule, severity, Action.fire, subject, "heat", clinic, {"celsius": 9.0})
    with Session(world.engine) as s, s.begin():
        (change,) = lifecycle.apply(s, decision, t + 30)
        return change.alert_id


def _audit(world: World, action: str) -> list[AuditRow]:
    with Session(world.engine) as s:
        return list(s.scalars(select(AuditRow).where(AuditRow.action == action)))


# ---------------------------------------------------------------- the clinic page


def test_clinic_page_for_its_staff(staff_client: TestClient, world: World):
    _influx(staff_client, world)
    r = staff_client.get(f"/clinics/{CLINIC}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<html lang="zh-CN">' in html and "<script" not in html
    assert "清水镇卫生院" in html
    assert f'id="eq-{FRIDGE}" data-state="red"' in html  # the heat alarm, condition still on
    assert 'id="eq-qingshui-fridge2" data-state="green"' in html
    assert "允许范围 \u221225 至 \u221215°C" in html  # the freezer
    assert "9.4°C" in html and "读数：3 分钟前" in html and "允许范围 2–8°C" in html
    assert world.alert().message in html
    assert f'action="/alerts/{world.alert_id}/ack"' in html
    assert f'action="/alerts/{world.alert_id}/resolve"' in html
    assert '<option value="moved_vaccines">已将疫苗转移至备用设备</option>' in html
    assert form_csrf(html)  # the forms carry the session's CSRF token
    assert f'href="/clinics/{CLINIC}/report/2026-11.pdf?lang=zh-CN"' in html
    assert "退出登录" in html  # the nav line
    assert len(r.content) < 30_000


def test_clinic_page_in_english_and_with_influx_down(staff_client: TestClient, world: World):
    _influx(staff_client, world, down=True)
    r = staff_client.get(f"/clinics/{CLINIC}?lang=en")
    assert r.status_code == 200
    html = r.text
    assert '<html lang="en">' in html
    assert world.alert().message_en in html
    assert "Temperatures are unavailable right now" in html
    assert '<p class="temp">—</p>' in html
    assert "Allowed range 2–8 °C" in html


@pytest.mark.parametrize(
    ("who", "clinic", "status"),
    [
        ("staff", CLINIC, 200),
        ("staff", OTHER, 404),
        ("staff", "no-such-clinic", 404),
        ("officer", CLINIC, 200),
        ("officer", OTHER, 200),
        ("admin", OTHER, 200),
    ],
)
def test_clinic_page_scope(request: pytest.FixtureRequest, world: World, who: str, clinic: str, status: int):
    client: TestClient = request.getfixturevalue(f"{who}_client")
    _influx(client, world)
    assert client.get(f"/clinics/{clinic}").status_code == status


def test_clinic_page_of_another_district_is_404(officer_client: TestClient, world: World):
    add_far_district(world.engine)
    assert officer_client.get(f"/clinics/{FAR_CLINIC}").status_code == 404


def test_anonymous_is_sent_to_login(client: TestClient):
    r = client.get(f"/clinics/{CLINIC}", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next=/clinics/{CLINIC}"
    r = client.get(f"/clinics/{CLINIC}/report/2026-11.pdf", follow_redirects=False)
    assert r.status_code == 303


def test_admin_sees_no_forms_and_cannot_act(admin_client: TestClient, world: World):
    _influx(admin_client, world)
    html = admin_client.get(f"/clinics/{CLINIC}").text
    assert "/ack" not in html and "/resolve" not in html
    assert admin_client.post(f"/alerts/{world.alert_id}/ack", data={}).status_code == 403


# ---------------------------------------------------------------- acknowledge and resolve forms


def test_acknowledge_through_the_form(staff_client: TestClient, world: World):
    _influx(staff_client, world)
    csrf = form_csrf(staff_client.get(f"/clinics/{CLINIC}").text)
    del staff_client.headers["X-CSRF-Token"]  # a browser sends only the form
    url = f"/alerts/{world.alert_id}/ack"
    assert staff_client.post(url, data={"lang": "zh-CN"}, follow_redirects=False).status_code == 403
    assert staff_client.post(url, data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert world.alert().state == AlertState.firing.value
    r = staff_client.post(url, data={"csrf": csrf, "lang": "en"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/clinics/{CLINIC}?lang=en"
    alert = world.alert()
    assert (alert.state, alert.acknowledged_by) == (AlertState.acknowledged.value, NURSE)
    (row,) = _audit(world, "alert_ack")
    assert (row.username, row.target_id, row.detail["changed"]) == ("staff", world.alert_id, True)
    html = staff_client.get(r.headers["location"]).text
    assert f'action="/alerts/{world.alert_id}/ack"' not in html  # acknowledged: no button
    assert "Acknowledged by 王秀英" in html


def test_resolve_a_critical_alert_without_a_preset_shows_why(staff_client: TestClient, world: World):
    _influx(staff_client, world)
    csrf = form_csrf(staff_client.get(f"/clinics/{CLINIC}").text)
    del staff_client.headers["X-CSRF-Token"]
    url = f"/alerts/{world.alert_id}/resolve"
    assert staff_client.post(url, data={"corrective_action": "moved_vaccines"}).status_code == 403
    r = staff_client.post(url, data={"csrf": csrf, "corrective_action": "", "detail": ""})
    assert r.status_code == 422
    assert "警报未关闭" in r.text
    assert "严重冷链警报：必须选择处理措施才能关闭。" in r.text
    assert "resolving it needs the corrective action taken" in r.text  # the lifecycle's own words
    r = staff_client.post(url, data={"csrf": csrf, "corrective_action": "not-a-preset"})
    assert r.status_code == 422 and "请从列表中选择处理措施。" in r.text
    r = staff_client.post(url, data={"csrf": csrf, "corrective_action": "other"})  # other needs a detail
    assert r.status_code == 422 and "needs a detail" in r.text
    assert world.alert().state == AlertState.firing.value
    assert _audit(world, "alert_resolve") == []


def test_resolve_through_the_form(officer_client: TestClient, world: World):
    _influx(officer_client, world)
    csrf = form_csrf(officer_client.get(f"/clinics/{CLINIC}").text)
    del officer_client.headers["X-CSRF-Token"]
    form = {"csrf": csrf, "corrective_action": "moved_vaccines", "detail": "转移至冰箱 2"}
    r = officer_client.post(f"/alerts/{world.alert_id}/resolve", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/clinics/{CLINIC}"
    alert = world.alert()
    assert alert.state == AlertState.resolved.value
    assert alert.corrective_action == "moved_vaccines: 转移至冰箱 2"
    assert alert.resolved_by == "bureau-duty1"
    (row,) = _audit(world, "alert_resolve")
    assert row.username == "officer"
    html = officer_client.get(f"/clinics/{CLINIC}").text
    assert f'id="eq-{FRIDGE}" data-state="green"' in html
    assert world.alert_id not in html and "无未关闭警报" in html


def test_forms_on_an_alert_out_of_scope_are_404(staff_client: TestClient, world: World):
    other = _fire(world, Rule.heat_alarm, Severity.critical, "baihe-fridge1", OTHER, T0)
    for action in ("ack", "resolve"):
        r = staff_client.post(f"/alerts/{other}/{action}", data={"corrective_action": "x"})
        assert r.status_code == 404


# ---------------------------------------------------------------- monthly record downloads


def test_report_downloads(staff_client: TestClient, world: World):
    r = staff_client.get(f"/clinics/{CLINIC}/report/2026-11.pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    assert r.headers["content-disposition"] == f'attachment; filename="{CLINIC}-2026-11.pdf"'
    r = staff_client.get(f"/clinics/{CLINIC}/report/2026-11.csv?lang=en")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "Qingshui" in r.text or "清水镇卫生院" in r.text
    assert staff_client.get(f"/clinics/{OTHER}/report/2026-11.pdf").status_code == 404
    assert staff_client.get(f"/clinics/{CLINIC}/report/2026-13.csv").status_code == 404
    assert staff_client.get(f"/clinics/{CLINIC}/report/2027-01.csv").status_code == 404  # not begun


# ---------------------------------------------------------------- the district and home


def test_district_grid_and_alerts(officer_client: TestClient, world: World):
    add_far_district(world.engine)
    _fire(world, Rule.heat_alarm, Severity.critical, "far-fridge1", FAR_CLINIC, T0)
    warning = _fire(world, Rule.heat_warning, Severity.warning, "baihe-fridge1", OTHER, T0 - 7200)
    r = officer_client.get("/district")
    assert r.status_code == 200
    html = r.text
    assert f'id="clinic-{CLINIC}" data-state="red"' in html
    assert f'id="clinic-{OTHER}" data-state="amber"' in html
    assert FAR_CLINIC not in html and "远镇卫生院" not in html
    assert f'href="/clinics/{CLINIC}"' in html
    assert "1 条未关闭警报" in html
    # the critical alert first, though the warning is older
    assert html.index(world.alert().message) < html.index(_message(world, warning))
    assert officer_client.get(f"/district?district={FAR_DISTRICT}").status_code == 404


def _message(world: World, alert_id: str) -> str:
    from alerting.store import AlertRow

    with Session(world.engine) as s:
        row = s.get(AlertRow, alert_id)
        assert row is not None
        return row.message


def test_district_for_admin_and_staff(admin_client: TestClient, staff_client: TestClient, world: World):
    add_far_district(world.engine)
    html = admin_client.get("/district").text
    assert CLINIC in html and OTHER in html and FAR_CLINIC not in html
    r = admin_client.get(f"/district?district={FAR_DISTRICT}")
    assert r.status_code == 200
    assert FAR_CLINIC in r.text and CLINIC not in r.text
    assert admin_client.get("/district?district=nowhere").status_code == 404
    r = staff_client.get("/district", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/clinics/{CLINIC}"


def test_home(client: TestClient, users: World):
    from .auth_helpers import login

    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/")
    for username, home in (("staff", f"/clinics/{CLINIC}"), ("officer", "/district"), ("admin", "/district")):
        with TestClient(create_app(users.settings, users.clock)) as c:
            login(c, username)
            r = c.get("/", follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, home)


# ---------------------------------------------------------------- a real browser


@pytest.fixture
def server(users: World) -> Iterator[str]:
    """The app served by uvicorn in a thread on a free loopback port, with a reading of 9.4 °C."""
    app = create_app(users.settings, users.clock)
    app.state.influx = FakeInflux({FRIDGE: (users.clock.now() - 60, 9.4)})
    with serving(app) as url:
        yield url


def test_clinic_page_in_headless_chromium(world: World, server: str, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2)
            page.goto(f"{server}/")
            assert page.url.startswith(f"{server}/login?next=/")
            page.get_by_label("用户名").fill("staff")
            page.get_by_label("密码").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="登录").click()
            assert page.url == f"{server}/clinics/{CLINIC}"
            card = page.locator(f"#eq-{FRIDGE}")
            assert card.get_attribute("data-state") == "red"
            assert card.locator(".temp").inner_text() == "9.4°C"
            assert card.get_by_text("严重警报 · 未确认").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.screenshot(path=str(shots / "clinic-red.png"), full_page=True)

            with page.expect_navigation():
                card.get_by_role("button", name="确认收到").click()
            card = page.locator(f"#eq-{FRIDGE}")
            assert card.get_by_text("严重警报 · 已确认").is_visible()
            assert card.get_by_role("button", name="确认收到").count() == 0

            card.get_by_label("处理措施").select_option("moved_vaccines")
            card.get_by_label("说明（摇晃试验结果、批号等）").fill("已转移至冰箱 2")
            with page.expect_navigation():
                card.get_by_role("button", name="关闭警报").click()
            card = page.locator(f"#eq-{FRIDGE}")
            assert card.get_attribute("data-state") == "green"
            assert card.locator(".card").count() == 0  # no alert on the card
            assert page.get_by_text("无未关闭警报").is_visible()
            page.screenshot(path=str(shots / "clinic-resolved.png"), full_page=True)
        finally:
            browser.close()
    alert = world.alert()
    assert alert.state == AlertState.resolved.value
    assert alert.corrective_action == "moved_vaccines: 已转移至冰箱 2"
    print(f"\nscreenshots in {shots}")
