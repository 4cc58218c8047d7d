"""The excursion impact on the clinic page and in the alert API, and the shake-test pages (web.shake_test):
a freeze alarm over a refrigerator holding hepatitis B, DT and MMR lots, the nurse records each
freeze-sensitive lot's result, the doses are released or discarded, and the alert is closed from it;
who may see and do what; then the whole freeze workflow in a real headless Chromium."""

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
from alerting.impact import record_impacts
from alerting.messages import registry_names
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import AlertRow
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.stock import Balance, Kind, Movement, ensure_products, lot, record, stock
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from web.app import create_app
from web.users import AuditRow

from .auth_helpers import PASSWORD, add_far_district, add_test_users, login
from .conftest import CLINIC, FRIDGE, NURSE, T0, World

H = 3600.0
SCREENSHOTS = Path(__file__).parent / "screenshots"


class FakeInflux:
    """InfluxDB without readings: the clinic page shows "—" and no chart, and the rest of it."""

    def query(self, q: str, params: Any = None, *, epoch: str = "ms") -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def freeze_alarm(world: World) -> tuple[str, dict[str, int]]:
    """Fridge 1 holds HB1 (hepatitis B, 20 doses) and DT1 (DT, 10) - freeze-sensitive - and MMR1 (30);
    it freezes at T0 - 1 h and the freeze alarm fires as the alerting service fires it (lifecycle, then
    the impact in the same transaction)."""
    ensure_products(world.engine)
    with Session(world.engine) as s, s.begin():
        ids = {
            "HB1": lot(s, "hepb", "HB1", "2027-06-30").id,
            "DT1": lot(s, "dt", "DT1", "2027-03-31").id,
            "MMR1": lot(s, "mmr", "MMR1", "2027-09-30").id,
        }
        for name, doses in (("HB1", 20), ("DT1", 10), ("MMR1", 30)):
            m = Movement(ids[name], Kind.received, CLINIC, FRIDGE, doses, T0 - 48 * H, NURSE)
            record(s, m, T0)
        values = {"celsius": -2.5, "threshold_c": -0.5, "minutes": 45, "freeze_sensitive": True}
        d = Decision(
            T0 - H, Rule.freeze_alarm, Severity.critical, Action.fire, FRIDGE, "cold", CLINIC, values
        )
        changes = lifecycle.apply(s, d, T0 - H + 60, names=registry_names(load_registry_file(DEMO_REGISTRY)))
        assert record_impacts(s, changes, T0 - H + 60) == [changes[0].alert_id]
    return changes[0].alert_id, ids


@pytest.fixture
def freeze(world: World, fast_hashing: None) -> tuple[World, str, dict[str, int]]:
    add_far_district(world.engine)
    add_test_users(world.engine, world.clock.now())  # with the far district's officer
    alert_id, ids = freeze_alarm(world)
    return world, alert_id, ids


def client_for(world: World, username: str | None) -> Iterator[TestClient]:
    app = create_app(world.settings, world.clock)
    app.state.influx = FakeInflux()
    with TestClient(app) as c:
        if username is not None:
            login(c, username)
        yield c


@pytest.fixture
def staff(freeze: tuple[World, str, dict[str, int]]) -> Iterator[TestClient]:
    yield from client_for(freeze[0], "staff")


def audit_rows(world: World, action: str) -> list[AuditRow]:
    with Session(world.engine) as s:
        return list(s.scalars(select(AuditRow).where(AuditRow.action == action)))


def books(world: World, lot_id: int) -> Balance | None:
    with Session(world.engine) as s:
        return stock(s, [CLINIC]).get((lot_id, CLINIC, FRIDGE))


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- the impact on the alert


def test_the_clinic_page_shows_the_lots_at_risk_and_what_to_do(freeze, staff: TestClient):
    _world, alert_id, _ids = freeze
    page = staff.get(f"/clinics/{CLINIC}")
    assert page.status_code == 200
    block = page.text.split(f'id="impact-{alert_id}"')[1].split("</div>")[0]
    words = text_of(block)
    assert "警报开始时设备内的疫苗：30 剂受影响" in words
    assert "乙型肝炎疫苗 批号 HB1 · 20 剂" in words and "有效期至 2027-06-30" in words
    assert 'data-lot="HB1" data-recommendation="quarantine_shake_test"' in block
    assert 'data-lot="MMR1" data-recommendation="use"' in block
    assert "建议：隔离，待振荡试验" in words and "冻结敏感疫苗，可能已冻结" in words
    assert "建议：可以使用" in words and "冻结不损害此疫苗" in words
    assert f'href="/alerts/{alert_id}/shake-test"' in block
    en = text_of(staff.get(f"/clinics/{CLINIC}?lang=en").text)
    assert "Vaccines inside when it began: 30 doses at risk" in en
    assert "Hepatitis B lot HB1 · 20 doses" in en and "Advice: Quarantine pending a shake test" in en


def test_the_alert_api_gives_the_impact(freeze, staff: TestClient):
    _world, alert_id, ids = freeze
    body = staff.get(f"/api/alerts/{alert_id}").json()
    assert body["values"]["doses_at_risk"] == 30
    impact = body["impact"]
    assert (impact["alarm"], impact["equipment_id"], impact["doses_at_risk"]) == ("freeze", FRIDGE, 30)
    lots = {x["lot_number"]: x for x in impact["lots"]}
    assert set(lots) == {"HB1", "DT1", "MMR1"}
    assert lots["HB1"]["lot_id"] == ids["HB1"] and lots["HB1"]["doses_available"] == 20
    assert lots["HB1"]["recommendation"] == "quarantine_shake_test"
    assert lots["HB1"]["reasons"] == ["freeze_sensitive"] and lots["HB1"]["shake_result"] is None
    assert lots["MMR1"]["at_risk"] is False and lots["MMR1"]["recommendation"] == "use"
    heat = staff.get(f"/api/alerts/{freeze[0].alert_id}").json()
    assert heat["impact"] is None  # opened without the service: nothing was counted


# ---------------------------------------------------------------- the shake test


def test_the_page_guides_the_test_for_each_freeze_sensitive_lot(freeze, staff: TestClient):
    _world, alert_id, ids = freeze
    page = staff.get(f"/alerts/{alert_id}/shake-test")
    assert page.status_code == 200
    words = text_of(page.text)
    for step in (
        "冷冻到完全结冰后融化，作为对照",
        "用力摇晃 10 到 15 秒",
        "静置",
        "待检疫苗比对照沉得慢 = 通过",
    ):
        assert step in words
    assert f'id="lot-{ids["HB1"]}"' in page.text and f'id="lot-{ids["DT1"]}"' in page.text
    assert f'id="lot-{ids["MMR1"]}"' not in page.text  # freezing does not harm it
    assert page.text.count('name="result" value="passed"') == 2
    assert "按试验结果关闭警报" not in page.text
    assert "Compare how they settle" in staff.get(f"/alerts/{alert_id}/shake-test?lang=en").text


def test_passed_releases_failed_discards_and_the_alert_closes_with_the_results(freeze, staff: TestClient):
    world, alert_id, ids = freeze
    url = f"/alerts/{alert_id}/shake-test"
    r = staff.post(url, data={"lot": str(ids["HB1"]), "result": "passed"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, url)
    assert books(world, ids["HB1"]) == Balance(20, 0)  # quarantined, then released
    page = staff.get(url)
    assert "通过：20 剂已解除隔离，可以使用。王秀英" in text_of(page.text)
    r = staff.post(f"{url}/close", data={}, follow_redirects=False)
    assert r.status_code == 422 and "请先记录每个批号的试验结果" in r.text
    r = staff.post(url, data={"lot": str(ids["DT1"]), "result": "failed"}, follow_redirects=False)
    assert r.status_code == 303
    assert books(world, ids["DT1"]) is None  # all 10 discarded
    page = staff.get(url)
    assert "未通过：10 剂已销毁（冻结）" in text_of(page.text)
    assert "按试验结果关闭警报" in page.text
    r = staff.post(f"{url}/close", data={}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/clinics/{CLINIC}")
    alert = staff.get(f"/api/alerts/{alert_id}").json()
    assert alert["state"] == "resolved" and alert["resolved_by"] == NURSE
    # the detail in the nurse's language, as one she typed would be; the page shows the preset's name
    assert alert["corrective_action"] == "shake_test_done: DT1 未通过（已销毁 10 剂），HB1 通过"
    lots = {x["lot_number"]: x for x in alert["impact"]["lots"]}
    assert (lots["HB1"]["shake_result"], lots["HB1"]["shake_by"], lots["HB1"]["shake_doses"]) == (
        "passed",
        NURSE,
        20,
    )
    results = audit_rows(world, "shake_test_result")
    assert [(a.username, a.target_id, a.detail["result"]) for a in results] == [
        ("staff", alert_id, "passed"),
        ("staff", alert_id, "failed"),
    ]
    assert results[1].detail["discarded"] == 10 and results[0].detail["quarantined"] == 20
    (closed,) = audit_rows(world, "alert_resolve")
    assert closed.detail["via"] == "shake_test" and closed.detail["corrective_action"].startswith(
        "shake_test_done"
    )
    assert "警报已关闭：已做振荡试验：DT1 未通过" in text_of(staff.get(url).text)  # by its name, not its code


def test_a_result_is_not_recorded_twice_nor_changed(freeze, staff: TestClient):
    world, alert_id, ids = freeze
    url = f"/alerts/{alert_id}/shake-test"
    assert (
        staff.post(url, data={"lot": str(ids["HB1"]), "result": "failed"}, follow_redirects=False).status_code
        == 303
    )
    again = staff.post(url, data={"lot": str(ids["HB1"]), "result": "failed"}, follow_redirects=False)
    assert again.status_code == 303  # a double tap: nothing more
    assert len([m for m in _movements(world, alert_id) if m == ("discarded", 20)]) == 1
    other = staff.post(url, data={"lot": str(ids["HB1"]), "result": "passed"})
    assert other.status_code == 422 and "recorded as failed already" in other.text
    assert books(world, ids["HB1"]) is None


def _movements(world: World, alert_id: str) -> list[tuple[str, int]]:
    from core.stock import StockMovementRow

    with Session(world.engine) as s:
        q = select(StockMovementRow).where(StockMovementRow.alert_id == alert_id)
        return [(m.kind, m.doses) for m in s.scalars(q)]


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"result": "passed"}, "请选择试验结果"),
        ({"lot": "1", "result": "maybe"}, "请选择试验结果"),
        ({"lot": "MMR1", "result": "passed"}, "请选择试验结果"),
        ({"lot": "99999", "result": "passed"}, "lot 99999 was not in the appliance"),
        ({"lot": "9" * 20, "result": "passed"}, "请选择试验结果"),  # not a 500 from an integer overflow
    ],
)
def test_a_bad_form_shows_the_page_again_with_why(freeze, staff: TestClient, form: dict[str, str], says: str):
    world, alert_id, _ids = freeze
    r = staff.post(f"/alerts/{alert_id}/shake-test", data=form)
    assert r.status_code == 422 and says in r.text
    assert _movements(world, alert_id) == []


def test_a_lot_the_test_is_not_for_is_refused(freeze, staff: TestClient):
    world, alert_id, ids = freeze
    r = staff.post(f"/alerts/{alert_id}/shake-test", data={"lot": str(ids["MMR1"]), "result": "failed"})
    assert r.status_code == 422 and "needs no shake test" in r.text
    assert books(world, ids["MMR1"]) == Balance(30, 0)


def test_a_heat_alarm_has_no_shake_test(freeze, staff: TestClient):
    world, _alert_id, ids = freeze
    url = f"/alerts/{world.alert_id}/shake-test"
    assert "此警报不需要振荡试验" in staff.get(url).text
    r = staff.post(url, data={"lot": str(ids["HB1"]), "result": "failed"})
    assert r.status_code == 200 and "此警报不需要振荡试验" in r.text
    assert books(world, ids["HB1"]) == Balance(20, 0)
    assert audit_rows(world, "shake_test_result") == []


# ---------------------------------------------------------------- who may


def test_admins_look_but_do_not_record(freeze):
    world, alert_id, ids = freeze
    for c in client_for(world, "admin"):
        page = c.get(f"/alerts/{alert_id}/shake-test")
        assert page.status_code == 200 and 'name="result"' not in page.text and "尚未记录结果" in page.text
        r = c.post(f"/alerts/{alert_id}/shake-test", data={"lot": str(ids["HB1"]), "result": "passed"})
        assert r.status_code == 403
        assert c.post(f"/alerts/{alert_id}/shake-test/close", data={}).status_code == 403
    assert books(world, ids["HB1"]) == Balance(20, 0)


def test_outside_the_scope_is_404_and_without_login_is_the_login_page(freeze):
    world, alert_id, ids = freeze
    url = f"/alerts/{alert_id}/shake-test"
    for c in client_for(world, "farofficer"):
        assert c.get(url).status_code == 404
        assert c.post(url, data={"lot": str(ids["HB1"]), "result": "passed"}).status_code == 404
        assert c.get(f"/api/alerts/{alert_id}").status_code == 404
    for c in client_for(world, "officer"):  # the district's officer acts for the clinic
        assert c.get(url).status_code == 200
    for c in client_for(world, None):
        r = c.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={url}"
    assert books(world, ids["HB1"]) == Balance(20, 0)


def test_a_form_without_the_csrf_token_is_refused(freeze, staff: TestClient):
    world, alert_id, ids = freeze
    del staff.headers["X-CSRF-Token"]
    r = staff.post(f"/alerts/{alert_id}/shake-test", data={"lot": str(ids["HB1"]), "result": "passed"})
    assert r.status_code == 403
    assert books(world, ids["HB1"]) == Balance(20, 0)


# ---------------------------------------------------------------- in the browser


def test_the_freeze_workflow_in_headless_chromium(freeze):
    """Alert -> shake test recorded -> lots released and discarded -> alert closed, on a phone screen."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    world, alert_id, ids = freeze
    app = create_app(world.settings, world.clock)
    app.state.influx = FakeInflux()
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
            block = page.locator(f"#alert-{alert_id}")
            assert block.get_by_text("警报开始时设备内的疫苗：30 剂受影响").is_visible()
            block.screenshot(path=str(SCREENSHOTS / "shake-test-alert.png"))
            with page.expect_navigation():
                block.get_by_role("link", name="做振荡试验").click()
            assert page.url == f"{server}/alerts/{alert_id}/shake-test"
            page.locator(f"#lot-{ids['HB1']}").screenshot(path=str(SCREENSHOTS / "shake-test-form.png"))

            hb = page.locator(f"#lot-{ids['HB1']}")
            hb.get_by_label("通过：待检疫苗沉得慢").check()
            with page.expect_navigation():
                hb.get_by_role("button", name="记录 HB1 的结果").click()
            assert page.locator(f"#lot-{ids['HB1']}").get_attribute("data-result") == "passed"

            dt = page.locator(f"#lot-{ids['DT1']}")
            dt.get_by_label("未通过：沉得一样快或更快").check()
            with page.expect_navigation():
                dt.get_by_role("button", name="记录 DT1 的结果").click()
            assert page.locator(f"#lot-{ids['DT1']}").get_attribute("data-result") == "failed"
            assert page.get_by_text("未通过：10 剂已销毁（冻结）").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.screenshot(path=str(SCREENSHOTS / "shake-test.png"), full_page=True)

            with page.expect_navigation():
                page.get_by_role("button", name="按试验结果关闭警报").click()
            assert page.url == f"{server}/clinics/{CLINIC}"
            assert page.locator(f"#alert-{alert_id}").count() == 0  # closed: no longer among the open
        finally:
            browser.close()
    assert books(world, ids["HB1"]) == Balance(20, 0)
    assert books(world, ids["DT1"]) is None
    with Session(world.engine) as s:
        alert = s.get(AlertRow, alert_id)
        assert alert is not None and alert.state == "resolved"
        assert alert.corrective_action == "shake_test_done: DT1 未通过（已销毁 10 剂），HB1 通过"


def test_the_closing_words_are_in_the_page_language_and_the_preset_by_its_name() -> None:
    from web.i18n import corrective_action_text

    stored = "shake_test_done: DT1 未通过（已销毁 10 剂），HB1 通过"
    assert corrective_action_text(stored, "zh-CN") == "已做振荡试验：DT1 未通过（已销毁 10 剂），HB1 通过"
    assert corrective_action_text("moved_vaccines: to fridge 2", "en") == (
        "Moved the vaccines to a backup appliance: to fridge 2"
    )
    assert corrective_action_text("power_restored", "zh-CN") == "已恢复供电"
    assert corrective_action_text("typed by hand", "zh-CN") == "typed by hand"  # not a preset: as it is
