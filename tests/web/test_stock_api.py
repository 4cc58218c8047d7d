"""The vaccine stock API (web.api_stock) as clinic staff, district officers and admins use it: the
catalogue and lots, every kind of movement, the refusals of the books with their one-line reason,
idempotency keys from the client, scope (own clinic / district / read-only admins), CSRF and the audit
log; the stock per lot and appliance with the lot's exposure."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.exposure import LotExposureRow
from core.stock import StockMovementRow
from web.users import AuditRow

from .auth_helpers import FAR_FRIDGE, add_far_district
from .conftest import CLINIC, FRIDGE, NURSE, World

FRIDGE2 = "qingshui-fridge2"
OTHER_CLINIC, OTHER_FRIDGE = "baihe-thc", "baihe-fridge1"


def _lot(
    client: TestClient, product: str = "hepb", number: str = "HB2026-01", expiry: str = "2027-06-30"
) -> int:
    r = client.post("/api/stock/lots", json={"product": product, "lot_number": number, "expiry": expiry})
    assert r.status_code == 200, r.text
    return r.json()["lot"]["id"]


def _move(client: TestClient, **body: Any) -> Any:
    return client.post("/api/stock/movements", json=body)


def _stock(client: TestClient, clinic: str = CLINIC) -> dict[tuple[str, int], tuple[int, int]]:
    r = client.get("/api/stock", params={"clinic": clinic})
    assert r.status_code == 200, r.text
    return {(x["equipment"], x["lot"]): (x["available"], x["quarantined"]) for x in r.json()["items"]}


def _count(world: World) -> int:
    with Session(world.engine) as s:
        return s.scalar(select(func.count()).select_from(StockMovementRow)) or 0


def test_the_catalogue_and_lots(staff_client: TestClient):
    products = {p["id"]: p for p in staff_client.get("/api/stock/products").json()["items"]}
    assert products["hepb"]["vvm_type"] == 30 and products["hepb"]["freeze_sensitive"]
    r = staff_client.post(
        "/api/stock/lots", json={"product": "hepb", "lot_number": "hb2026-01", "expiry": "2027-06-30"}
    )
    assert r.status_code == 200 and r.json()["created"] and r.json()["lot"]["lot_number"] == "HB2026-01"
    again = staff_client.post("/api/stock/lots", json={"product": "hepb", "lot_number": "HB2026-01"})
    assert again.json() == {"created": False, "lot": r.json()["lot"]}
    wrong = staff_client.post(
        "/api/stock/lots", json={"product": "hepb", "lot_number": "HB2026-01", "expiry": "2027-07-31"}
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == "lot HB2026-01 of hepb expires 2027-06-30, not 2027-07-31"
    new = staff_client.post("/api/stock/lots", json={"product": "hepb", "lot_number": "HB9"})
    assert (new.status_code, new.json()["detail"]) == (422, "lot HB9 of hepb is new: give its expiry date")
    found = staff_client.get("/api/stock/lots", params={"product": "hepb", "lot_number": "hb2026-01"}).json()
    assert [x["id"] for x in found["items"]] == [r.json()["lot"]["id"]] and found["total"] == 1


def test_every_kind_of_movement_through_the_api(staff_client: TestClient, world: World):
    n = _lot(staff_client)
    steps = [
        dict(kind="received", equipment=FRIDGE, doses=100, source="县疾控中心"),
        dict(kind="moved", equipment=FRIDGE, to_equipment=FRIDGE2, doses=40),
        dict(kind="administered", equipment=FRIDGE, doses=10),
        dict(kind="wasted", equipment=FRIDGE, doses=2, reason="broken"),
        dict(kind="quarantined", equipment=FRIDGE, doses=20, reason="excursion", alert_id=world.alert_id),
        dict(kind="released", equipment=FRIDGE, doses=5),
        dict(kind="discarded", equipment=FRIDGE, doses=15, quarantined=True, reason="excursion"),
    ]
    for i, step in enumerate(steps):
        r = _move(staff_client, lot=n, ident=f"step-{i}", **step)
        assert r.status_code == 200, r.text
        m = r.json()["movement"]
        assert r.json()["created"] and m["kind"] == step["kind"] and m["person"] == NURSE
        assert (m["clinic"], m["product"], m["lot_number"]) == (CLINIC, "hepb", "HB2026-01")
    assert _stock(staff_client) == {(FRIDGE, n): (33, 0), (FRIDGE2, n): (40, 0)}
    listed = staff_client.get("/api/stock/movements", params={"clinic": CLINIC, "lot": n}).json()
    assert listed["total"] == 7 and [x["kind"] for x in listed["items"]][:2] == ["discarded", "released"]
    moved = next(x for x in listed["items"] if x["kind"] == "moved")
    assert (moved["to_clinic"], moved["to_equipment"]) == (CLINIC, FRIDGE2)


def test_the_books_refuse_with_their_reason_and_store_nothing(staff_client: TestClient, world: World):
    n = _lot(staff_client)
    assert _move(staff_client, kind="received", lot=n, equipment=FRIDGE, doses=5).status_code == 200
    assert _move(staff_client, kind="quarantined", lot=n, equipment=FRIDGE, doses=5).status_code == 200
    before = _count(world)
    cases = [
        (
            dict(kind="administered", doses=1),
            r"administered of 1 dose\(s\) at .*: only 0 available dose\(s\)",
        ),
        (dict(kind="wasted", doses=1), "wasted needs a reason"),
        (dict(kind="moved", doses=1, to_equipment=FRIDGE), "a move needs another appliance"),
        (dict(kind="administered", doses=0), "doses must be a whole number from 1"),
        (dict(kind="released", doses=9), r"only 5 quarantined dose\(s\)"),
        (dict(kind="administered", doses=1, at="2099-01-01T00:00"), "is in the future"),
    ]
    for body, why in cases:
        r = _move(staff_client, lot=n, equipment=FRIDGE, **body)
        assert r.status_code == 422, (body, r.text)
        assert re.search(why, r.json()["detail"]), r.json()["detail"]
        assert "\n" not in r.json()["detail"]
    assert _count(world) == before
    assert _stock(staff_client) == {(FRIDGE, n): (0, 5)}
    assert _move(staff_client, kind="received", lot=999, equipment=FRIDGE, doses=1).status_code == 404


def test_the_same_idempotency_key_is_stored_once(staff_client: TestClient, world: World):
    n = _lot(staff_client)
    body = dict(kind="received", lot=n, equipment=FRIDGE, doses=30, ident="tap-7f3a")
    first, again = _move(staff_client, **body), _move(staff_client, **body)
    assert first.json()["created"] and not again.json()["created"]
    assert again.json()["movement"]["id"] == first.json()["movement"]["id"]
    assert _stock(staff_client) == {(FRIDGE, n): (30, 0)}
    other = _move(staff_client, **(body | {"doses": 31}))
    assert other.status_code == 422 and "recorded before with other content" in other.json()["detail"]
    assert _count(world) == 1


def test_scope_staff_move_within_their_clinic_and_officers_issue_within_the_district(
    staff_client: TestClient, officer_client: TestClient, admin_client: TestClient, world: World
):
    n = _lot(staff_client)
    assert _move(staff_client, kind="received", lot=n, equipment=FRIDGE, doses=50).status_code == 200
    # clinic staff: another clinic's appliance is not theirs, as source or destination
    assert _move(staff_client, kind="received", lot=n, equipment=OTHER_FRIDGE, doses=1).status_code == 404
    r = _move(staff_client, kind="moved", lot=n, equipment=FRIDGE, to_equipment=OTHER_FRIDGE, doses=5)
    assert r.status_code == 404 and r.json()["detail"] == f"no equipment {OTHER_FRIDGE!r}"
    assert staff_client.get("/api/stock", params={"clinic": OTHER_CLINIC}).status_code == 404
    # the officer issues doses from one clinic of the district to another
    r = _move(officer_client, kind="moved", lot=n, equipment=FRIDGE, to_equipment=OTHER_FRIDGE, doses=5)
    assert r.status_code == 200, r.text
    assert (r.json()["movement"]["to_clinic"], r.json()["movement"]["person"]) == (
        OTHER_CLINIC,
        "bureau-duty1",
    )
    assert _stock(officer_client, OTHER_CLINIC) == {(OTHER_FRIDGE, n): (5, 0)}
    assert {x["clinic"] for x in officer_client.get("/api/stock").json()["items"]} == {CLINIC, OTHER_CLINIC}
    assert {x["clinic"] for x in staff_client.get("/api/stock").json()["items"]} == {CLINIC}
    # the issue shows in the movements of both clinics
    for clinic in (CLINIC, OTHER_CLINIC):
        kinds = [
            x["kind"]
            for x in officer_client.get("/api/stock/movements", params={"clinic": clinic}).json()["items"]
        ]
        assert "moved" in kinds
    # admins read, never write
    assert _stock(admin_client) == {(FRIDGE, n): (45, 0)}
    r = _move(admin_client, kind="administered", lot=n, equipment=FRIDGE, doses=1)
    assert r.status_code == 403 and set(r.json()) == {"error", "detail"}
    assert (
        admin_client.post(
            "/api/stock/lots", json={"product": "hepb", "lot_number": "X1", "expiry": "2027-01-01"}
        ).status_code
        == 403
    )


def test_another_district_is_404(officer_client: TestClient, world: World):
    add_far_district(world.engine)
    n = _lot(officer_client)
    r = _move(officer_client, kind="received", lot=n, equipment=FAR_FRIDGE, doses=1)
    assert r.status_code == 404
    assert officer_client.get("/api/stock", params={"clinic": "far-thc"}).status_code == 404
    assert officer_client.get("/api/stock/movements", params={"clinic": "far-thc"}).status_code == 404


def test_writes_need_the_csrf_token(staff_client: TestClient, world: World):
    n = _lot(staff_client)
    del staff_client.headers["X-CSRF-Token"]
    r = _move(staff_client, kind="received", lot=n, equipment=FRIDGE, doses=1)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert _count(world) == 0


def test_every_movement_is_audited(staff_client: TestClient, world: World):
    n = _lot(staff_client)
    body = dict(kind="received", lot=n, equipment=FRIDGE, doses=12, ident="k1")
    _move(staff_client, **body)
    _move(staff_client, **body)  # the retry: audited too, as not created
    _move(staff_client, kind="administered", lot=n, equipment=FRIDGE, doses=2)
    with Session(world.engine) as s:
        rows = list(
            s.scalars(select(AuditRow).where(AuditRow.action == "stock_movement").order_by(AuditRow.id))
        )
        lots = list(s.scalars(select(AuditRow).where(AuditRow.action == "stock_lot")))
    assert [(r.username, r.detail["kind"], r.detail["doses"], r.detail["created"]) for r in rows] == [
        ("staff", "received", 12, True),
        ("staff", "received", 12, False),
        ("staff", "administered", 2, True),
    ]
    assert rows[0].detail["equipment"] == FRIDGE and rows[0].target_id == rows[1].target_id
    assert [r.detail["lot_number"] for r in lots] == ["HB2026-01"]


def test_the_stock_shows_the_lots_latest_exposure(staff_client: TestClient, world: World):
    hepb, bcg = _lot(staff_client), _lot(staff_client, "bcg", "BCG1", "2027-03-31")
    for n in (hepb, bcg):
        assert _move(staff_client, kind="received", lot=n, equipment=FRIDGE, doses=20).status_code == 200
    now = world.clock.now()
    with Session(world.engine) as s, s.begin():
        s.add(
            LotExposureRow(
                lot_id=hepb,
                computed_at=now - 60,
                covered_until=now - 60,
                heat_budget_used=0.1,
                freeze_minutes=0.0,
                trigger="daily",
            )
        )
        s.add(
            LotExposureRow(
                lot_id=hepb,
                computed_at=now,
                covered_until=now,
                heat_budget_used=0.42,
                freeze_minutes=15.0,
                trigger="manual",
            )
        )
    items = {x["lot"]: x for x in staff_client.get("/api/stock", params={"clinic": CLINIC}).json()["items"]}
    assert (
        items[hepb]["exposure"]["heat_budget_used"] == 0.42
        and items[hepb]["exposure"]["freeze_minutes"] == 15.0
    )
    assert items[bcg]["exposure"] is None
    assert (items[bcg]["product_name"], items[bcg]["expiry"], items[bcg]["equipment_name"]) == (
        "卡介苗",
        "2027-03-31",
        "疫苗冷藏冰箱 1",
    )


def test_movements_by_time_and_pagination(staff_client: TestClient, world: World):
    n = _lot(staff_client)
    now = world.clock.now()
    for h in (30, 20, 10):
        r = _move(staff_client, kind="received", lot=n, equipment=FRIDGE, doses=h, at=str(now - h * 3600))
        assert r.status_code == 200, r.text
    page = staff_client.get(
        "/api/stock/movements", params={"clinic": CLINIC, "start": str(now - 25 * 3600), "limit": 1}
    ).json()
    assert page["total"] == 2 and [x["doses"] for x in page["items"]] == [10]
    bad = staff_client.get("/api/stock/movements", params={"start": str(now), "end": str(now - 1)})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    "path", ["/api/stock", "/api/stock/movements", "/api/stock/products", "/api/stock/lots"]
)
def test_anonymous_is_401(client: TestClient, path: str):
    r = client.get(path)
    assert r.status_code == 401 and set(r.json()) == {"error", "detail"}


HOSTILE = ["../etc/passwd", "' OR 1=1 --", "x" * 5000, "清水镇卫生院", "\u202e\u0000nul", "<script>", "%00"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_404_or_422_never_500(staff_client: TestClient, value: str):
    for path, name in [
        ("/api/stock", "clinic"),
        ("/api/stock/movements", "clinic"),
        ("/api/stock/movements", "lot"),
        ("/api/stock/movements", "start"),
        ("/api/stock/lots", "product"),
    ]:
        r = staff_client.get(path, params={name: value})
        assert r.status_code in (200, 404, 422), (path, name, r.status_code)
        assert r.headers["content-type"].startswith("application/json")
    for body in (
        {"kind": "received", "lot": 1, "equipment": value, "doses": 1},
        {"kind": value, "lot": 1, "equipment": FRIDGE, "doses": 1},
        {"kind": "received", "lot": value, "equipment": FRIDGE, "doses": 1},
        {"kind": "moved", "lot": 1, "equipment": FRIDGE, "to_equipment": value, "doses": 1},
        {"kind": "received", "lot": 1, "equipment": FRIDGE, "doses": 1, "ident": value},
    ):
        r = _move(staff_client, **body)
        assert r.status_code in (404, 422), (body, r.status_code)
    r = staff_client.post(
        "/api/stock/lots", json={"product": "hepb", "lot_number": value, "expiry": "2027-01-01"}
    )
    assert r.status_code == 422
    page = staff_client.get(f"/clinics/{CLINIC}/stock", params={"done": value})
    assert page.status_code in (200, 422) and "<script>" not in page.text


def test_an_issue_through_transit_is_checked_in_by_the_receiving_clinic(
    officer_client: TestClient, staff_client: TestClient, world: World
):
    """docs/stock.md: the officer issues doses from baihe to qingshui's holding place; qingshui's staff
    count them and move them into a refrigerator; what never arrives stays in transit."""
    n = _lot(officer_client)
    assert _move(officer_client, kind="received", lot=n, equipment=OTHER_FRIDGE, doses=30).status_code == 200
    issue = dict(
        kind="moved", lot=n, equipment=OTHER_FRIDGE, to_equipment="transit", to_clinic=CLINIC, doses=20
    )
    r = _move(officer_client, **issue)
    assert r.status_code == 200, r.text
    assert (r.json()["movement"]["to_clinic"], r.json()["movement"]["to_equipment"]) == (CLINIC, "transit")
    assert _stock(staff_client) == {("transit", n): (20, 0)}
    # not given from transit: checked in first
    r = _move(staff_client, kind="administered", lot=n, equipment="transit", clinic=CLINIC, doses=1)
    assert r.status_code == 422 and "checked in" in r.json()["detail"]
    r = _move(
        staff_client, kind="moved", lot=n, equipment="transit", clinic=CLINIC, to_equipment=FRIDGE, doses=18
    )
    assert r.status_code == 200, r.text
    assert _stock(staff_client) == {("transit", n): (2, 0), (FRIDGE, n): (18, 0)}
    # staff cannot reach into another clinic's transit, nor issue to one
    r = _move(
        staff_client, kind="wasted", lot=n, equipment="transit", clinic=OTHER_CLINIC, doses=1, reason="broken"
    )
    assert r.status_code == 404
    r = _move(
        staff_client,
        kind="moved",
        lot=n,
        equipment=FRIDGE,
        to_equipment="transit",
        to_clinic=OTHER_CLINIC,
        doses=1,
    )
    assert r.status_code == 404
    r = _move(staff_client, kind="moved", lot=n, equipment=FRIDGE, to_equipment="transit", doses=1)
    assert r.status_code == 422 and r.json()["detail"] == "transit needs the clinic it belongs to"


def test_transit_is_the_reconciliations_holding_place():
    from alerting.reconcile import TRANSIT
    from web.api_stock import TRANSIT as OURS

    assert OURS == TRANSIT
