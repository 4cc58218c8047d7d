"""The vaccine stock pages (web.stock_pages): the clinic's stock per appliance with its quick-entry
forms (CSRF, a double tap stored once, one-line errors and nothing stored, zh-CN and English), the
bureau's stock by clinic and product, the demo district's opening stock (core.stock_demo), and the
clinic's page in a real headless Chromium at a phone's width."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.exposure import LotExposureRow
from core.clinic_time import CLINIC_TZ
from core.stock import StockMovementRow, VaccineLotRow
from core.stock_demo import seed_demo_stock
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from web.app import create_app

from .auth_helpers import FAR_DISTRICT, PASSWORD, add_far_district, form_csrf
from .conftest import CLINIC, FRIDGE, World

FRIDGE2 = "qingshui-fridge2"
STOCK = f"/clinics/{CLINIC}/stock"
SCREENSHOTS = Path(__file__).with_name("screenshots")


class NoInflux:
    def query(self, q: str, params: Any = None, *, epoch: str = "ms") -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def _today(world: World) -> date:
    return datetime.fromtimestamp(world.clock.now(), CLINIC_TZ).date()


def _receive(client: TestClient, number: str, expiry: str, doses: int, equipment: str = FRIDGE) -> int:
    lot = client.post("/api/stock/lots", json={"product": "hepb", "lot_number": number, "expiry": expiry})
    n = lot.json()["lot"]["id"]
    r = client.post(
        "/api/stock/movements", json={"kind": "received", "lot": n, "equipment": equipment, "doses": doses}
    )
    assert r.status_code == 200, r.text
    return n


def _post(client: TestClient, page: str, **fields: str) -> Any:
    """A quick-entry form as the page sends it: its own csrf, lang and ident."""
    kind = fields["kind"]
    form = re.search(rf'<form class="card" id="form-{kind}".*?</form>', page, re.S)
    assert form, f"no {kind} form on the page"
    hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
    return client.post(f"{STOCK}", data=hidden | fields, follow_redirects=False)


def _movements(world: World) -> int:
    with Session(world.engine) as s:
        return s.scalar(select(func.count()).select_from(StockMovementRow)) or 0


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- the clinic's page


def test_the_clinic_stock_per_appliance(staff_client: TestClient, world: World):
    today = _today(world)
    soon = _receive(staff_client, "HB-SOON", (today + timedelta(days=12)).isoformat(), 8)
    later = _receive(staff_client, "HB-LATER", (today + timedelta(days=200)).isoformat(), 30, FRIDGE2)
    now = world.clock.now()
    with Session(world.engine) as s, s.begin():
        s.add(
            LotExposureRow(
                lot_id=later,
                computed_at=now,
                covered_until=now,
                heat_budget_used=0.42,
                freeze_minutes=None,
                trigger="daily",
            )
        )
    r = staff_client.get(STOCK)
    assert r.status_code == 200
    fridge1 = _text(
        re.search(rf'<section class="card" id="stock-{FRIDGE}">.*?</section>', r.text, re.S).group(0)
    )
    assert "乙型肝炎疫苗 · HB-SOON" in fridge1 and "可用 8 剂" in fridge1 and "12 天后过期" in fridge1
    assert "热稳定性余量" not in fridge1  # not computed yet: nothing said
    fridge2 = _text(
        re.search(rf'<section class="card" id="stock-{FRIDGE2}">.*?</section>', r.text, re.S).group(0)
    )
    assert "HB-LATER" in fridge2 and "可用 30 剂" in fridge2 and "热稳定性余量 58%" in fridge2
    assert "过期" not in fridge2
    freezer = _text(
        re.search(r'<section class="card" id="stock-qingshui-freezer1">.*?</section>', r.text, re.S).group(0)
    )
    assert "此设备中没有疫苗。" in freezer
    lot_input = re.search(r'<input type="text" id="received-lot"[^>]*>', r.text).group(0)
    assert 'inputmode="text"' in lot_input and 'autocapitalize="characters"' in lot_input
    assert "<script" not in r.text
    assert soon != later


def test_in_english(staff_client: TestClient, world: World):
    _receive(staff_client, "HB1", (_today(world) + timedelta(days=3)).isoformat(), 5)
    text = _text(staff_client.get(STOCK, params={"lang": "en"}).text)
    assert "Hepatitis B · HB1" in text and "5 doses available" in text and "Expires in 3 days" in text
    assert "Receive a delivery" in text and "Record doses given" in text


def test_receive_through_the_form_with_a_new_lot(staff_client: TestClient, world: World):
    page = staff_client.get(STOCK).text
    r = _post(
        staff_client,
        page,
        kind="received",
        product="dtap",
        lot_number="dt2026-77",
        expiry="2027-09-30",
        doses="40",
        equipment=FRIDGE2,
        source="县疾控中心",
    )
    assert r.status_code == 303 and r.headers["location"] == f"{STOCK}?done=received#done"
    after = staff_client.get(r.headers["location"]).text
    assert "已记录入库。" in after
    section = _text(re.search(rf'id="stock-{FRIDGE2}">.*?</section>', after, re.S).group(0))
    assert (
        "百白破疫苗 · DT2026-77" in section and "可用 40 剂" in section and "有效期至 2027-09-30" in section
    )
    with Session(world.engine) as s:
        (m,) = s.scalars(select(StockMovementRow))
        assert (m.kind, m.source, m.person_id, m.doses) == ("received", "县疾控中心", "qingshui-nurse1", 40)


def test_a_double_tap_is_stored_once(staff_client: TestClient, world: World):
    page = staff_client.get(STOCK).text
    fields = dict(
        kind="received", product="hepb", lot_number="HB5", expiry="2027-01-31", doses="10", equipment=FRIDGE
    )
    assert _post(staff_client, page, **fields).status_code == 303
    assert _post(staff_client, page, **fields).status_code == 303  # the same form sent again
    assert _movements(world) == 1
    assert "可用 10 剂" in _text(staff_client.get(STOCK).text)


def test_administered_moved_and_wasted_through_the_forms(staff_client: TestClient, world: World):
    n = _receive(staff_client, "HB7", "2027-05-31", 50)
    place = f"{n}@{FRIDGE}"
    for fields in (
        dict(kind="administered", place=place, doses="6"),
        dict(kind="moved", place=place, to_equipment=FRIDGE2, doses="20"),
        dict(kind="wasted", place=place, reason="opened_vial_expiry", doses="4"),
    ):
        r = _post(staff_client, staff_client.get(STOCK).text, **fields)
        assert r.status_code == 303, r.text[:500]
        assert r.headers["location"] == f"{STOCK}?done={fields['kind']}#done"
    stock = {
        (x["equipment"], x["lot"]): x["available"] for x in staff_client.get("/api/stock").json()["items"]
    }
    assert stock == {(FRIDGE, n): 20, (FRIDGE2, n): 20}
    with Session(world.engine) as s:
        wasted = s.scalars(select(StockMovementRow).where(StockMovementRow.kind == "wasted")).one()
        assert wasted.reason == "opened_vial_expiry"


@pytest.mark.parametrize(
    ("lang", "fields", "error"),
    [
        ("zh-CN", dict(kind="administered", doses="9"), "未记录：该批次在此设备中只有 5 剂可用。"),
        (
            "en",
            dict(kind="administered", doses="9"),
            "Not recorded: only 5 doses of this lot are available in that appliance.",
        ),
        ("zh-CN", dict(kind="administered", doses="0"), "未记录：剂次数须为 1 至 1000000 的整数。"),
        ("zh-CN", dict(kind="wasted", doses="1", reason=""), "未记录：请选择原因。"),
        ("zh-CN", dict(kind="moved", doses="1", to_equipment=FRIDGE), "未记录：请选择另一台设备。"),
        (
            "zh-CN",
            dict(kind="received", product="hepb", lot_number="HB-NEW", doses="5", equipment=FRIDGE),
            "未记录：这是新批号，请填写有效期。",
        ),
        (
            "en",
            dict(
                kind="received",
                product="hepb",
                lot_number="HB1",
                expiry="2028-01-31",
                doses="5",
                equipment=FRIDGE,
            ),
            "Not recorded: lot and expiry do not match",
        ),
        (
            "zh-CN",
            dict(
                kind="received",
                product="hepb",
                lot_number="<b>",
                expiry="2028-01-31",
                doses="5",
                equipment=FRIDGE,
            ),
            "未记录：批号只能包含字母、数字和 . _ / -，最多 40 个字符。",
        ),
        (
            "zh-CN",
            dict(
                kind="received",
                product="hepb",
                lot_number="HB9",
                expiry="2028-01-31",
                doses="5",
                equipment="baihe-fridge1",
            ),
            "未记录：请选择本院的设备。",
        ),
    ],
)
def test_a_refused_form_says_why_in_one_line_and_stores_nothing(
    staff_client: TestClient, world: World, lang: str, fields: dict[str, str], error: str
):
    n = _receive(staff_client, "HB1", "2027-06-30", 5)
    before = _movements(world)
    page = staff_client.get(STOCK, params={"lang": lang}).text
    if fields["kind"] != "received":
        fields = {"place": f"{n}@{FRIDGE}"} | fields
    r = _post(staff_client, page, **fields)
    assert r.status_code == 422
    shown = re.search(rf'<p class="err" role="alert" id="error-{fields["kind"]}">([^<]*)</p>', r.text)
    assert shown and shown.group(1).startswith(error.replace("&", "&amp;")), r.text[:300]
    assert _movements(world) == before
    with Session(world.engine) as s:
        assert s.scalar(select(func.count()).select_from(VaccineLotRow)) == 1  # no lot added either


def test_the_books_own_refusal_is_shown_in_one_line(staff_client: TestClient, world: World):
    """A refusal the page does not foresee comes from core.stock, after "未记录：": here the same form
    sent again with another number of doses (the first one was recorded)."""
    n = _receive(staff_client, "HB1", "2027-06-30", 9)
    page = staff_client.get(STOCK).text
    assert _post(staff_client, page, kind="administered", place=f"{n}@{FRIDGE}", doses="2").status_code == 303
    r = _post(staff_client, page, kind="administered", place=f"{n}@{FRIDGE}", doses="3")
    assert r.status_code == 422
    shown = re.search(r'id="error-administered">([^<]*)</p>', r.text)
    assert shown and re.fullmatch(
        r"未记录：movement k:\d+:\S+ was recorded before with other content", shown.group(1)
    )
    assert "可用 7 剂" in _text(r.text)


def test_a_forged_ident_is_refused_not_a_server_error(staff_client: TestClient, world: World):
    page = staff_client.get(STOCK).text
    fields = dict(kind="received", product="hepb", lot_number="HB5", expiry="2027-01-31", doses="10")
    r = _post(staff_client, page, equipment=FRIDGE, ident="<x y>", **fields)
    assert r.status_code == 422 and 'id="error-received">未记录：' in r.text
    assert _movements(world) == 0


def test_forms_need_csrf_and_admins_do_not_record(
    staff_client: TestClient, admin_client: TestClient, world: World
):
    page = staff_client.get(STOCK).text
    del staff_client.headers["X-CSRF-Token"]
    fields = dict(
        kind="received", product="hepb", lot_number="HB5", expiry="2027-01-31", doses="10", equipment=FRIDGE
    )
    form = {k: v for k, v in dict(re.findall(r'name="(\w+)" value="([^"]*)"', page)).items() if k != "csrf"}
    r = staff_client.post(STOCK, data=form | fields, follow_redirects=False)
    assert r.status_code == 403
    admin_page = admin_client.get(STOCK)
    assert admin_page.status_code == 200 and '<form class="card"' not in admin_page.text
    assert admin_client.post(STOCK, data=fields | {"csrf": form_csrf(admin_page.text)}).status_code == 403
    assert _movements(world) == 0


def test_scope_of_the_clinic_page(staff_client: TestClient, officer_client: TestClient, client: TestClient):
    assert staff_client.get("/clinics/baihe-thc/stock").status_code == 404
    assert officer_client.get("/clinics/baihe-thc/stock").status_code == 200
    r = client.get(STOCK, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_the_clinic_and_district_pages_link_to_the_stock(
    staff_client: TestClient, officer_client: TestClient
):
    for c in (staff_client, officer_client):
        c.app.state.influx = NoInflux()  # type: ignore[attr-defined]
    assert f'href="{STOCK}"' in staff_client.get(f"/clinics/{CLINIC}").text
    assert f'href="{STOCK}?lang=en"' in staff_client.get(f"/clinics/{CLINIC}", params={"lang": "en"}).text
    link = re.search(r'<a href="([^"]+)" id="stock-link">', officer_client.get("/district").text)
    assert link and officer_client.get(link.group(1).replace("&amp;", "&")).status_code == 200


# ---------------------------------------------------------------- the bureau's page


def test_the_district_stock_by_clinic_and_product(
    staff_client: TestClient, officer_client: TestClient, world: World
):
    today = _today(world)
    soon = _receive(staff_client, "HB-SOON", (today + timedelta(days=20)).isoformat(), 8)
    warm = _receive(staff_client, "HB-WARM", (today + timedelta(days=300)).isoformat(), 30, FRIDGE2)
    staff_client.post(
        "/api/stock/movements",
        json={"kind": "quarantined", "lot": warm, "equipment": FRIDGE2, "doses": 10, "reason": "excursion"},
    )
    now = world.clock.now()
    with Session(world.engine) as s, s.begin():
        s.add(
            LotExposureRow(
                lot_id=warm,
                computed_at=now,
                covered_until=now,
                heat_budget_used=0.64,
                freeze_minutes=None,
                trigger="daily",
            )
        )
        s.add(
            LotExposureRow(
                lot_id=soon,
                computed_at=now,
                covered_until=now,
                heat_budget_used=0.2,
                freeze_minutes=None,
                trigger="daily",
            )
        )
    r = officer_client.get("/district/stock")
    assert r.status_code == 200
    card = re.search(rf'<section class="card" id="clinic-{CLINIC}">.*?</section>', r.text, re.S).group(0)
    row = _text(re.search(r'<tr data-product="hepb">.*?</tr>', card, re.S).group(0))
    assert row.split() == ["乙型肝炎疫苗", "28", "10"]
    expiring = _text(re.search(r'<ul class="expiring">.*?</ul>', card, re.S).group(0))
    assert expiring.strip() == "乙型肝炎疫苗 HB-SOON（8 剂）：20 天后过期"
    spent = _text(re.search(r'<ul class="spent">.*?</ul>', card, re.S).group(0))
    assert spent.strip() == "乙型肝炎疫苗 HB-WARM（30 剂）：热稳定性已用 64%"
    other = re.search(r'<section class="card" id="clinic-baihe-thc">.*?</section>', r.text, re.S).group(0)
    assert "没有库存记录。" in other
    en = _text(officer_client.get("/district/stock", params={"lang": "en"}).text)
    assert "Hepatitis B HB-SOON (8 doses): Expires in 20 days" in en


def test_district_stock_scope(
    staff_client: TestClient, officer_client: TestClient, admin_client: TestClient, world: World
):
    add_far_district(world.engine)
    r = staff_client.get("/district/stock", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/clinics/{CLINIC}"
    assert officer_client.get("/district/stock", params={"district": FAR_DISTRICT}).status_code == 404
    assert admin_client.get("/district/stock").status_code == 200
    far = admin_client.get("/district/stock", params={"district": FAR_DISTRICT})
    assert far.status_code == 200 and "远镇卫生院" in far.text and "清水镇卫生院" not in far.text


# ---------------------------------------------------------------- the demo's opening stock


def test_the_demo_district_gets_a_small_opening_stock_once(world: World):
    now = world.clock.now()
    added = seed_demo_stock(world.engine, now)
    assert added == 10 * 9  # 10 clinics, 4 products in 2-3 lots each
    assert seed_demo_stock(world.engine, now + 86400) == 0
    today = _today(world)
    with Session(world.engine) as s:
        rows = list(s.scalars(select(StockMovementRow)))
        lots = list(s.scalars(select(VaccineLotRow)))
    assert {r.kind for r in rows} == {"received"} and len({r.clinic_id for r in rows}) == 10
    assert all(r.equipment_id.split("-")[1].startswith("fridge") for r in rows)
    assert all(5 <= r.doses <= 120 and r.at < now for r in rows)
    for lot in lots:
        months = (date.fromisoformat(lot.expiry) - today).days / 30.4
        assert 6 <= months <= 19, lot.expiry


# ---------------------------------------------------------------- in a browser


def test_the_stock_page_in_headless_chromium(users: World):
    """The nurse records a delivery by typing the lot as a scanner keyboard would, on a 390 px phone;
    the screenshot is for a person to look at."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    seed_demo_stock(users.engine, users.clock.now())
    with Session(users.engine) as s, s.begin():
        lot = s.scalars(select(VaccineLotRow).where(VaccineLotRow.lot_number == "HB202605C")).one()
        now = users.clock.now()
        s.add(
            LotExposureRow(
                lot_id=lot.id,
                computed_at=now,
                covered_until=now,
                heat_budget_used=0.55,
                freeze_minutes=None,
                trigger="daily",
            )
        )
    app = create_app(users.settings, users.clock)
    SCREENSHOTS.mkdir(exist_ok=True)
    with serving(app) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            page.goto(f"{server}/login?next={STOCK}")
            page.get_by_label("用户名").fill("staff")
            page.get_by_label("密码").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="登录").click()
            assert page.url == f"{server}{STOCK}"
            form = page.locator("#form-received")
            form.get_by_label("疫苗").select_option(label="百白破疫苗")
            form.get_by_label("批号（输入或扫码）").fill("dt2027-0042")
            form.get_by_label("有效期").fill("2027-12-31")
            form.get_by_label("剂次数").fill("20")
            form.get_by_label("放入").select_option(label="疫苗冷藏冰箱 2")
            with page.expect_navigation():
                form.get_by_role("button", name="记录入库").click()
            assert page.url == f"{server}{STOCK}?done=received#done"
            assert page.locator("#done").inner_text() == "已记录入库。"
            assert "百白破疫苗 · DT2027-0042" in page.locator(f"#stock-{FRIDGE2}").inner_text()
            form = page.locator("#form-administered")
            form.get_by_label("疫苗批次").select_option(index=1)
            form.get_by_label("剂次数").fill("999")
            with page.expect_navigation():
                form.get_by_role("button", name="记录接种").click()
            error = page.locator("#error-administered")
            assert re.fullmatch(r"未记录：该批次在此设备中只有 \d+ 剂可用。", error.inner_text())
            assert error.is_visible() and page.url.endswith("#form-administered")  # scrolled to it
            page.screenshot(path=str(SCREENSHOTS / "stock-error.png"))  # what the phone shows
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            box = page.get_by_role("button", name="记录入库").bounding_box()
            assert box is not None and box["height"] >= 48 and box["width"] > 300  # a big button
            page.goto(f"{server}{STOCK}")
            page.screenshot(path=str(SCREENSHOTS / "stock.png"), full_page=True)
        finally:
            browser.close()


def test_a_delivery_in_transit_is_checked_in_through_the_move_form(
    officer_client: TestClient, staff_client: TestClient, world: World
):
    lot = officer_client.post(
        "/api/stock/lots", json={"product": "mmr", "lot_number": "MMR1", "expiry": "2027-08-31"}
    )
    n = lot.json()["lot"]["id"]
    for body in (
        {"kind": "received", "lot": n, "equipment": "baihe-fridge1", "doses": 20},
        {
            "kind": "moved",
            "lot": n,
            "equipment": "baihe-fridge1",
            "to_equipment": "transit",
            "to_clinic": CLINIC,
            "doses": 20,
        },
    ):
        assert officer_client.post("/api/stock/movements", json=body).status_code == 200
    page = staff_client.get(STOCK).text
    card = _text(re.search(r'<section class="card" id="stock-transit">.*?</section>', page, re.S).group(0))
    assert "在途（已发放，待入库）" in card and "麻腮风联合减毒活疫苗 · MMR1" in card and "可用 20 剂" in card
    administered = re.search(r'<form class="card" id="form-administered".*?</form>', page, re.S)
    assert administered is None  # nothing to give: only doses in transit
    r = _post(staff_client, page, kind="moved", place=f"{n}@transit", to_equipment=FRIDGE, doses="20")
    assert r.status_code == 303
    after = staff_client.get(STOCK).text
    assert 'id="stock-transit"' not in after
    assert "MMR1" in _text(re.search(rf'id="stock-{FRIDGE}">.*?</section>', after, re.S).group(0))


def test_the_bureau_sees_this_months_books_that_do_not_add_up(officer_client: TestClient, world: World):
    """The district store issued 20 doses; 5 days later the clinic has checked in only 10."""
    from alerting.reconcile import TRANSIT
    from core.stock import Kind, Movement, lot, record

    now = world.clock.now()
    issued_at = now - 5 * 86400
    if datetime.fromtimestamp(issued_at, CLINIC_TZ).month != _today(world).month:
        issued_at = now - 3.5 * 86400  # still this month, and past the 3 days a delivery may take
    with Session(world.engine) as s, s.begin():
        n = lot(s, "hepb", "HB-SHORT", "2027-12-31").id
        store, keeper, nurse = ("demo-bureau", "demo-bureau-store"), "bureau-keeper", "qingshui-nurse1"
        issue = {"to_clinic_id": CLINIC, "to_equipment_id": TRANSIT}
        for m in (
            Movement(n, Kind.received, *store, 20, issued_at - 3600, keeper, source="华兰生物"),
            Movement(n, Kind.moved, *store, 20, issued_at, keeper, **issue),  # type: ignore[arg-type]
            Movement(n, Kind.moved, CLINIC, TRANSIT, 10, issued_at + 3600, nurse, to_equipment_id=FRIDGE),
        ):
            record(s, m, now)
    html = officer_client.get("/district/stock").text
    section = html[html.index(f'id="clinic-{CLINIC}"') :]
    section = section[: section.index("</section>")]
    assert "账目不符" in section and "HB-SHORT" in section and "10" in section
    other = html[html.index('id="clinic-baihe-thc"') :]
    assert "账目不符" not in other[: other.index("</section>")]
    assert "books that do not add up" in officer_client.get("/district/stock?lang=en").text
