"""The district page's compliance ranking (issue 6): the clinics best first with their rank, every score
with its components in words (zh-CN and English), the waste closed-loop rate and the median time to
acknowledge per clinic and for the district, "—" with why for a clinic with nothing to judge; the
district report downloads and who may have them; and the page on a phone-sized headless Chromium.

The month is ``tests.unit.test_district_report.seed_month``'s November 2026, seen on the 26th (T0), with
the web fixtures' open heat alarm at 清水镇卫生院 (not acknowledged: one more alert for that clinic)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.test_district_report import EMPTY, seed_month
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from web.app import create_app

from .auth_helpers import FAR_CLINIC, FAR_DISTRICT, PASSWORD, add_far_district
from .conftest import CLINIC, World

BAIHE, SHIQIAO = "baihe-thc", "shiqiao-thc"


@pytest.fixture
def month(users: World) -> World:
    seed_month(users.engine)
    add_far_district(users.engine)
    return users


def _card(html: str, clinic: str) -> str:
    """The ranking card of one clinic."""
    start = html.index(f'id="rank-{clinic}"')
    return html[start : html.index("</table>", start)]


def test_the_ranking_best_first_with_components_in_chinese(officer_client: TestClient, month: World):
    r = officer_client.get("/district")
    assert r.status_code == 200
    html = r.text
    order = [html.index(f'id="rank-{c}"') for c in (BAIHE, CLINIC, SHIQIAO, EMPTY)]
    assert order == sorted(order)
    assert f'id="rank-{BAIHE}" data-rank="1" data-score="100.0"' in html
    assert f'id="rank-{CLINIC}" data-rank="9" data-score="70.7"' in html
    assert f'id="rank-{SHIQIAO}" data-rank="10"' in html
    q = _card(html, CLINIC)
    assert "第 9 名" in q and "清水镇卫生院" in q
    # every component with its score and its measure in words
    for name, points, measure in (
        ("温度超出范围", "96.7", "每台设备超出范围 0.7 小时（共 120 分钟，3 台设备）"),
        ("30 分钟内确认警报", "33.3", "3 条警报中 1 条在 30 分钟内确认"),
        ("确认用时中位数", "85.7", "确认用时中位数 30 分钟（已确认 2 条）"),
        ("每日两次温度检查", "100.0", "应做 150 次每日两次检查，漏检 0 次"),
        ("医疗废物闭环", "0.0", "闭环率 0.0%（1 袋中 0 袋）"),
    ):
        assert name in q and f">{points}<" in q and measure in q, name
    assert "医废闭环率：<b>0.0%</b>" in q and '<b class="ack">30 分钟</b>' in q
    # the district: every acknowledged alert (5, 10, 50 min), every bag (2 of 3 closed)
    assert '<b id="district-ack">10 分钟</b>' in html and "全辖区已确认 3 条警报" in html
    assert '<b id="district-rate">66.7%</b>' in html
    # a clinic that has no acknowledged alert, and one with nothing to judge: "—" and why, never 0
    s = _card(html, SHIQIAO)
    assert '<b class="ack">—</b>（无已确认的警报）' in s and "不计" in s
    e = _card(html, EMPTY)
    assert 'data-rank="" data-score="—"' in e and "不排名" in e
    assert "无可评内容：无每日统计数据；本月无警报；无应做的检查；无医疗废物追踪记录" in e
    assert "各项计分方法" in html and "100 − 每台设备每超出范围 1 小时扣 5 分" in html


def test_the_ranking_in_english(officer_client: TestClient, month: World):
    html = officer_client.get("/district?lang=en").text
    q = _card(html, CLINIC)
    assert "#9" in q and "Temperature out of range" in q and "0.7 h out of range per appliance" in q
    assert "1 of 3 alert(s) acknowledged within 30 min" in q and '<b class="ack">30 min</b>' in q
    assert '<b id="district-ack">10 min</b>' in html and "Compliance ranking (2026-11 so far)" in html
    e = _card(html, EMPTY)
    assert "Not ranked" in e and "Nothing to judge: no daily statistics; no alert" in e
    assert "温度超出范围" not in html
    assert 'href="/district/report/2026-11.pdf?lang=en"' in html


def test_scope_of_the_ranking(officer_client: TestClient, admin_client: TestClient, month: World):
    html = officer_client.get("/district").text
    assert FAR_CLINIC not in html
    assert officer_client.get(f"/district?district={FAR_DISTRICT}").status_code == 404
    far = admin_client.get(f"/district?district={FAR_DISTRICT}").text
    assert f'id="rank-{FAR_CLINIC}"' in far and f'id="rank-{CLINIC}"' not in far
    assert f'href="/district/report/2026-11.pdf?district={FAR_DISTRICT}"' in far


def test_the_report_downloads(
    officer_client: TestClient, admin_client: TestClient, staff_client: TestClient, month: World
):
    html = officer_client.get("/district").text
    assert 'href="/district/report/2026-11.pdf"' in html and 'href="/district/report/2026-11.csv"' in html
    r = officer_client.get("/district/report/2026-11.pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert r.headers["content-disposition"] == 'attachment; filename="demo-district-2026-11.pdf"'
    r = officer_client.get("/district/report/2026-11.csv")
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    (q,) = [row for row in rows if len(row) > 4 and row[1] == CLINIC]
    assert (q[0], q[4], q[7]) == ("9", "70.7", "30.0")
    assert officer_client.get(f"/district/report/2026-11.csv?district={FAR_DISTRICT}").status_code == 404
    assert officer_client.get("/district/report/2026-13.csv").status_code == 404
    assert officer_client.get("/district/report/2099-01.pdf").status_code == 404  # not begun
    r = admin_client.get(f"/district/report/2026-11.csv?district={FAR_DISTRICT}")
    assert r.status_code == 200 and FAR_CLINIC in r.text and CLINIC not in r.text
    r = staff_client.get("/district/report/2026-11.pdf", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/clinics/{CLINIC}"


def test_the_ranking_fits_a_phone_in_headless_chromium(month: World, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    shots = Path(__file__).resolve().parents[1] / "e2e" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with serving(create_app(month.settings, month.clock)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2)
            page.goto(f"{url}/login?next=/district")
            page.get_by_label("用户名").fill("officer")
            page.get_by_label("密码").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="登录").click()
            page.locator("#ranking").scroll_into_view_if_needed()
            assert page.locator(".rank").count() == 11
            assert page.locator(f"#rank-{CLINIC} .score").inner_text() == "70.7"
            # nothing wider than the phone: no sideways scrolling
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.screenshot(path=str(shots / "district-ranking.png"), full_page=True)
        finally:
            browser.close()


class _LatestInflux:
    """InfluxDB answering the district's latest readings per clinic and appliance."""

    def __init__(self, latest: dict[tuple[str, str], float]) -> None:
        self.latest = latest

    def query(self, q: str, params: object = None, *, epoch: str = "ms") -> list[dict[str, object]]:
        assert 'GROUP BY "clinic", "equipment"' in q, q
        return [
            {"name": "temperature", "tags": {"clinic": c, "equipment": e}, "columns": ["time", "last"],
             "values": [[1_795_633_800_000, v]]}
            for (c, e), v in self.latest.items()
        ]  # fmt: skip


class _DownInflux:
    def query(self, q: str, params: object = None, *, epoch: str = "ms") -> list[dict[str, object]]:
        from core.influx import InfluxError

        raise InfluxError("connection refused", retryable=True)


def _grid_tile(html: str, clinic: str) -> str:
    start = html.index(f'id="clinic-{clinic}"')
    return html[start : html.index("</a>", start)]


def test_a_clinic_out_of_range_before_any_alarm_is_amber_in_the_grid(users: World):
    """The bureau sees the fridge warming before the alarm, as the nurse does on her page."""
    from .auth_helpers import login

    app = create_app(users.settings, users.clock)
    app.state.influx = _LatestInflux(
        {
            (BAIHE, "baihe-fridge1"): 9.4,  # out of range, no alert yet
            (SHIQIAO, "shiqiao-fridge1"): 5.0,  # in range
            (SHIQIAO, "shiqiao-freezer1"): 85.0,  # a DS18B20 error code: a probe fault, not this
        }
    )
    with TestClient(app) as c:
        login(c, "officer")
        html = c.get("/district").text
        assert 'data-state="amber"' in _grid_tile(html, BAIHE) and "温度超出范围，尚未报警" in html
        assert 'data-state="green"' in _grid_tile(html, SHIQIAO)
        assert "尚未报警" not in _grid_tile(html, CLINIC)  # its alarm is open: coloured by the alarm
        assert "Out of range, no alarm yet" in c.get("/district?lang=en").text


def test_the_grid_without_influxdb_says_so_and_still_shows_the_alerts(users: World):
    from .auth_helpers import login

    app = create_app(users.settings, users.clock)
    app.state.influx = _DownInflux()
    with TestClient(app) as c:
        login(c, "officer")
        r = c.get("/district")
        assert r.status_code == 200
        assert 'class="card warning"' in r.text and 'data-state="red"' in _grid_tile(r.text, CLINIC)
