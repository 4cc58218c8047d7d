"""``GET /api/stock/reconciliation`` (``web.api_reconcile``) through FastAPI's TestClient, on SQLite in
tmp_path: books recorded by ``core.stock.record``, then a clinic's month as the bureau reads it, within
the user's scope (the whole matrix: test_authz_matrix)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from alerting.reconcile import TRANSIT
from core.clinic_time import CLINIC_TZ
from core.stock import Kind, Movement, ensure_products, lot, record

from .conftest import CLINIC, FRIDGE, World

URL = "/api/stock/reconciliation"
OTHER = "baihe-thc"
STORE = "demo-bureau"


def at(month: int, day: int, hour: float = 9.0) -> float:
    return datetime(2026, month, day, tzinfo=CLINIC_TZ).timestamp() + hour * 3600


@pytest.fixture
def books(users: World) -> World:
    """The district store issued 100 doses of hepatitis B to 清水镇卫生院 on 10 October; the clinic
    checked in 90 and gave 12 in October and 3 in November."""
    ensure_products(users.engine)
    with Session(users.engine) as s, s.begin():
        hb = lot(s, "hepb", "HB2610A", "2027-09-30").id
        store, nurse = (STORE, "demo-bureau-store", "bureau-duty1"), (CLINIC, FRIDGE, "qingshui-nurse1")
        issue = Movement(hb, Kind.moved, STORE, store[1], 100, at(10, 10), store[2], to_clinic_id=CLINIC)
        for m in (
            Movement(hb, Kind.received, *store[:2], 100, at(10, 10, 8), store[2], source="厂家"),
            replace(issue, to_equipment_id=TRANSIT),
            Movement(hb, Kind.moved, CLINIC, TRANSIT, 90, at(10, 10, 14), nurse[2], to_equipment_id=FRIDGE),
            Movement(hb, Kind.administered, *nurse[:2], 12, at(10, 20), nurse[2]),
            Movement(hb, Kind.administered, *nurse[:2], 3, at(11, 3), nurse[2]),
        ):
            record(s, m, m.at)
    return users


def test_a_month_with_what_does_not_add_up_in_both_languages(books: World, officer_client: TestClient):
    r = officer_client.get(URL, params={"clinic": CLINIC, "month": "2026-10"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["clinic"], doc["clinic_name"], doc["month"]) == (CLINIC, "清水镇卫生院", "2026-10")
    (line,) = doc["lots"]
    assert line["lot_number"] == "HB2610A" and line["product"] == "乙型肝炎疫苗"
    counts = [line[k] for k in ("opening", "moved_in", "administered", "closing", "closing_books")]
    assert counts == [0, 100, 12, 88, 88]
    assert (line["in_transit"], line["unaccounted"], line["tolerance"]) == (10, 10, 0)
    (flag,) = doc["flags"]
    assert flag["kind"] == "unaccounted" and flag["doses"] == 10
    assert "10 剂未入账" in flag["text"] and "示范区卫生健康局" in flag["text"]
    assert "10 doses not accounted for" in flag["text_en"]
    assert doc["wastage"] == [
        {
            "product_id": "hepb",
            "product": "乙型肝炎疫苗",
            "product_en": "Hepatitis B",
            "administered": 12,
            "wasted": 0,
            "rate": 0.0,
            "threshold": 0.05,
            "judged": False,
        }
    ]


def test_the_default_month_is_the_one_under_way_judged_up_to_now(books: World, staff_client: TestClient):
    doc = staff_client.get(URL, params={"clinic": CLINIC}).json()
    assert doc["month"] == "2026-11" and doc["until"] == books.clock.now()
    (line,) = doc["lots"]
    assert (line["opening"], line["administered"], line["closing"]) == (88, 3, 85)
    assert [f["kind"] for f in doc["flags"]] == ["unaccounted"]  # still not checked in


def test_a_clinic_outside_the_scope_is_not_found(books: World, staff_client: TestClient):
    r = staff_client.get(URL, params={"clinic": OTHER, "month": "2026-10"})
    assert r.status_code == 404 and r.json() == {"error": "not_found", "detail": f"no clinic {OTHER!r}"}


def test_another_clinic_without_stock_has_an_empty_month(books: World, officer_client: TestClient):
    doc = officer_client.get(URL, params={"clinic": OTHER, "month": "2026-10"}).json()
    assert (doc["lots"], doc["flags"], doc["wastage"]) == ([], [], [])


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"clinic": CLINIC, "month": "2026-13"}, 422, "bad month"),
        ({"clinic": CLINIC, "month": "十一月"}, 422, "bad month"),
        ({"clinic": CLINIC, "month": "2027-01"}, 422, "has not started yet"),
        ({"clinic": "../etc/passwd"}, 404, "no clinic"),
        ({}, 422, "clinic"),
    ],
)
def test_bad_parameters_are_one_clear_json_error(
    books: World, admin_client: TestClient, params: dict, status: int, detail: str
):
    r = admin_client.get(URL, params=params)
    assert r.status_code == status and detail in r.json()["detail"]


def test_without_a_login_it_is_401(books: World, client: TestClient):
    r = client.get(URL, params={"clinic": CLINIC})
    assert r.status_code == 401 and set(r.json()) == {"error", "detail"}


def test_it_is_in_the_openapi_document(admin_client: TestClient):
    paths = admin_client.get("/api/openapi.json").json()["paths"]
    assert set(paths[URL]) == {"get"}
