"""The clinic status page, its acknowledge and resolve forms, the monthly record downloads, the district
overview and the home redirect (web.pages): per role and scope through the TestClient, then one run in
a real headless Chromium (Debian's) on a phone-sized screen."""

from __future__ import annotations

import re
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
    """InfluxDB over raw readings (equipment -> one (epoch s, °C) or a list of them), answering the
    queries the clinic page makes: the clinic's latest readings, an appliance's buckets (mean, min, max),
    and for "out of range since" the last reading in range and the first one after it."""

    def __init__(
        self,
        readings: dict[str, tuple[float, float] | list[tuple[float, float]]] | None = None,
        down: bool = False,
    ) -> None:
        self.readings = {eq: v if isinstance(v, list) else [v] for eq, v in (readings or {}).items()}
        self.down = down
        self.queries: list[str] = []

    def query(self, q: str, params: Any = None, *, epoch: str = "ms") -> list[dict[str, Any]]:
        from core.influx import InfluxError

        self.queries.append(q)
        if self.down:
            raise InfluxError("connection refused", retryable=True)
        if 'GROUP BY "equipment"' in q:  # the latest reading of each appliance
            return [
                {"tags": {"equipment": eq}, "values": [[max(rs)[0] * 1000, max(rs)[1]]]}
                for eq, rs in self.readings.items()
                if rs
            ]
        eq = re.search(r"\"equipment\" = '([^']*)'", q)
        rows = sorted(self.readings.get(eq.group(1) if eq else "", []))
        for op, test in ((">=", lambda t, b: t >= b), ("<=", lambda t, b: t <= b), ("<", lambda t, b: t < b)):
            for bound in re.findall(rf"time {op} (\d+)", q):
                rows = [r for r in rows if test(r[0] * 1e9, int(bound))]
            for bound in re.findall(rf'"celsius" {op} (\S+)', q):
                rows = [r for r in rows if test(r[1], float(bound))]
        if "mean(" in q:
            size = int(re.findall(r"GROUP BY time\((\d+)s\)", q)[0])
            buckets: dict[float, list[float]] = {}
            for t, c in rows:
                buckets.setdefault(t // size * size, []).append(c)
            values = [[b * 1000, sum(cs) / len(cs), min(cs), max(cs)] for b, cs in sorted(buckets.items())]
            return [{"values": values}] if values else []
        if not rows:
            return []
        t, c = rows[-1] if "last(" in q else rows[0]
        return [{"values": [[t * 1000, c]]}]

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


def _day_of_readings(
    now: float, out_from: float | None = None, celsius_out: float = 9.1
) -> list[tuple[float, float]]:
    """A reading a minute for 24 h up to ``now``: 4.5-5.5 °C, ``celsius_out`` from ``out_from`` on."""
    return [
        (t, celsius_out if out_from is not None and t >= out_from else 5.0 + 0.5 * ((i % 20) - 10) / 10)
        for i, t in ((i, now - 86400 + 60 * i) for i in range(1, 1441))
    ]


def test_out_of_range_before_any_alert_is_amber_with_since(staff_client: TestClient, world: World):
    now = world.clock.now()  # 03:14
    out_from = now - 19 * 60  # 02:55
    readings = {"qingshui-fridge2": _day_of_readings(now, out_from), FRIDGE: (now - 60, 5.0)}
    _influx(staff_client, world, readings=readings)
    html = staff_client.get(f"/clinics/{CLINIC}").text
    card = html[html.index('id="eq-qingshui-fridge2"') :]
    card = card[: card.index("</section>")]
    assert 'data-state="amber"' in card
    assert '<p class="oor" role="status">超出允许范围，自 02:55 起（尚未报警）</p>' in card
    assert card.count('class="out"') == 1  # red marks on the chart
    body = staff_client.get(f"/api/clinics/{CLINIC}/status").json()
    fridge2 = next(e for e in body["equipment"] if e["id"] == "qingshui-fridge2")
    assert (fridge2["state"], fridge2["out_of_range_since"]) == ("amber", out_from)
    assert (fridge2["low_c"], fridge2["high_c"]) == (2.0, 8.0)
    en = staff_client.get(f"/clinics/{CLINIC}?lang=en").text
    assert "Out of range since 02:55 (no alarm yet)" in en
    # a probe's error code is a probe fault, not a temperature: no "out of range"
    _influx(staff_client, world, readings={"qingshui-fridge2": (now - 60, 85.0)})
    html = staff_client.get(f"/clinics/{CLINIC}").text
    assert 'id="eq-qingshui-fridge2" data-state="green"' in html and "超出允许范围，自" not in html


def test_the_chart_of_each_appliance_or_a_note(staff_client: TestClient, world: World):
    now = world.clock.now()
    _influx(staff_client, world, readings={"qingshui-fridge2": _day_of_readings(now)})
    html = staff_client.get(f"/clinics/{CLINIC}").text
    card = html[html.index('id="eq-qingshui-fridge2"') :]
    card = card[: card.index("</section>")]
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in card and 'role="img"' in card
    # 145 ten-minute buckets: the 24 h up to 03:14 are not on the 10-minute grid
    assert (
        "疫苗冷藏冰箱 2 过去 24 小时温度：最低 4.5°C，最高 5.5°C；145 个 10 分钟时段中 0 个超出允许范围"
        in card
    )
    assert 'class="out"' not in card
    assert "过去 24 小时无温度读数。" in html  # fridge 1 and the freezer have none
    assert len(html.encode()) < 40_000
    _influx(staff_client, world, down=True)
    html = staff_client.get(f"/clinics/{CLINIC}").text
    assert "<svg" not in html and html.count("温度曲线暂时无法显示") == 3


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
    box = r.text[r.text.index('role="alert"') :]
    box = box[: box.index("</div>")]
    assert box.count("严重冷链警报：必须选择处理措施才能关闭。") == 1  # said once, in Chinese
    assert "resolving it" not in r.text  # not the API's English words on a Chinese page
    r = staff_client.post(url, data={"csrf": csrf, "corrective_action": "not-a-preset"})
    assert r.status_code == 422 and "请从列表中选择处理措施。" in r.text
    r = staff_client.post(url, data={"csrf": csrf, "corrective_action": "other"})  # other needs a detail
    assert r.status_code == 422 and "选择“其他”时，请在说明中写明做了什么。" in r.text
    r = staff_client.post(url, data={"csrf": csrf, "corrective_action": "", "detail": "已处理"})
    assert r.status_code == 422 and "写了说明，请同时从列表中选择处理措施" in r.text
    r = staff_client.post(url, data={"csrf": csrf, "lang": "en", "corrective_action": "other"})
    assert r.status_code == 422 and "say in the detail what was done." in r.text
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
    # closed, but the fridge still reads 9.4 °C: amber until it is back in range
    assert f'id="eq-{FRIDGE}" data-state="amber"' in html and "超出允许范围，自 03:11 起" in html
    assert world.alert_id not in html and "无未关闭警报" in html
    _influx(officer_client, world, readings={FRIDGE: (world.clock.now() - 60, 5.0)})
    html = officer_client.get(f"/clinics/{CLINIC}").text
    assert f'id="eq-{FRIDGE}" data-state="green"' in html and "超出允许范围，自" not in html


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


SCREENSHOTS = Path(__file__).with_name("screenshots")


def test_chart_and_check_in_headless_chromium(users: World):
    """Log in as the nurse, read the charts (fridge 1 had an excursion and is in alarm), record fridge 2's
    morning check through its form; a screenshot for a person to look at."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    now = users.clock.now()
    fridge1 = [
        (t, 9.6 if now - 5 * 3600 <= t < now - 3 * 3600 else c)
        for t, c in _day_of_readings(now, now - 600, 9.4)
    ]
    freezer = [(t, c - 23.0) for t, c in _day_of_readings(now)]
    app = create_app(users.settings, users.clock)
    app.state.influx = FakeInflux(
        {FRIDGE: fridge1, "qingshui-fridge2": _day_of_readings(now), "qingshui-freezer1": freezer}
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    with serving(app) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2)
            page.goto(f"{server}/login?next=/clinics/{CLINIC}")
            page.get_by_label("用户名").fill("staff")
            page.get_by_label("密码").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="登录").click()
            assert page.url == f"{server}/clinics/{CLINIC}"
            chart = page.locator(f"#eq-{FRIDGE} svg")
            assert chart.get_attribute("role") == "img"
            assert "15 个超出允许范围" in (chart.locator("title").text_content() or "")
            box = chart.bounding_box()
            assert box is not None and box["width"] > 280 and box["height"] > 120  # drawn, full width
            assert page.locator(f"#eq-{FRIDGE} svg path.out").count() == 1
            card = page.locator("#eq-qingshui-fridge2")
            card.get_by_label("温度计读数（°C）").fill("4.6")
            card.get_by_label("备注（可选）").fill("门已关好")
            with page.expect_navigation():
                card.get_by_role("button", name="记录上午检查").click()
            assert page.url == f"{server}/clinics/{CLINIC}"
            card = page.locator("#eq-qingshui-fridge2")
            morning = card.locator('[data-slot="morning"]')
            assert morning.get_attribute("data-state") == "done"
            assert morning.inner_text() == "上午 · 已完成：03:14 王秀英，读数 4.6°C"
            assert card.get_by_role("button", name="记录上午检查").count() == 0
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.screenshot(path=str(SCREENSHOTS / "clinic-chart.png"), full_page=True)
        finally:
            browser.close()
    with Session(users.engine) as s:
        (row,) = s.scalars(select(AuditRow).where(AuditRow.action == "equipment_check"))
        assert (row.username, row.target_id, row.detail["celsius"]) == ("staff", "qingshui-fridge2", 4.6)


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
            # closed, but the fridge still reads 9.4 °C: amber, and the card says since when
            assert card.get_attribute("data-state") == "amber"
            assert card.locator(".oor").inner_text() == "超出允许范围，自 03:13 起（尚未报警）"
            assert card.locator(".card").count() == 0  # no alert on the card
            assert page.get_by_text("无未关闭警报").is_visible()
            page.screenshot(path=str(shots / "clinic-resolved.png"), full_page=True)
        finally:
            browser.close()
    alert = world.alert()
    assert alert.state == AlertState.resolved.value
    assert alert.corrective_action == "moved_vaccines: 已转移至冰箱 2"
    print(f"\nscreenshots in {shots}")


def test_switching_language_keeps_what_the_page_shows(admin_client: TestClient, world: World):
    """An admin looking at another district stays on it after switching to English."""
    html = admin_client.get("/district?district=demo-district").text
    assert 'href="?district=demo-district&amp;lang=en"' in html
    html = admin_client.get("/district?district=demo-district&lang=en").text
    assert 'href="?district=demo-district&amp;lang=zh-CN"' in html


def test_pages_are_sent_compressed_to_a_slow_phone(staff_client: TestClient, world: World):
    r = staff_client.get(f"/clinics/{CLINIC}", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(r.content) / 3  # what crosses the link vs the page
