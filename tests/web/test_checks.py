"""The twice-daily check over HTTP (web.api_checks) and on the clinic page (web.pages): recording through
the API and the form as the logged-in person, the audit log, bad readings, authorization like
acknowledging (scope -> 404, admins 403, CSRF), the paginated list, and today's slots as the card shows
them (done / due / late / missed / not open yet)."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.checks_store import EquipmentCheckRow, record_check
from alerting.rules.checks import CheckSettings, Slot
from core.clinic_time import CLINIC_TZ
from core.db import EquipmentRow
from web.api_checks import today
from web.users import AuditRow

from .auth_helpers import form_csrf
from .conftest import CLINIC, FRIDGE, NURSE, World
from .test_pages import FakeInflux

OTHER_FRIDGE = "baihe-fridge1"
URL = f"/api/equipment/{FRIDGE}/checks"


def _rows(world: World, equipment: str = FRIDGE) -> list[EquipmentCheckRow]:
    with Session(world.engine) as s:
        rows = list(s.scalars(select(EquipmentCheckRow).where(EquipmentCheckRow.equipment_id == equipment)))
        s.expunge_all()
        return rows


def _audit(world: World) -> list[AuditRow]:
    with Session(world.engine) as s:
        return list(
            s.scalars(select(AuditRow).where(AuditRow.action == "equipment_check").order_by(AuditRow.id))
        )


def _at(hhmm: str) -> float:
    """2026-11-26 ``hhmm`` clinic time (the test day: T0 is 03:12)."""
    h, m = hhmm.split(":")
    return datetime(2026, 11, 26, int(h), int(m), tzinfo=CLINIC_TZ).timestamp()


# ---------------------------------------------------------------- the API


def test_record_a_check_as_the_linked_person_audited_and_idempotent(staff_client: TestClient, users: World):
    r = staff_client.post(URL, json={"celsius": 4.6, "note": " 门已关好 "})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] is True
    check = body["check"]
    assert (check["person"], check["person_name"], check["celsius"], check["note"]) == (
        NURSE,
        "王秀英",
        4.6,
        "门已关好",
    )
    assert check["checked_at"] == check["recorded_at"] == users.clock.now()
    again = staff_client.post(URL, json={"celsius": 4.6, "note": "门已关好"})  # a double tap, same moment
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(_rows(users)) == 1
    first, second = _audit(users)
    assert (first.username, first.target_type, first.target_id) == ("staff", "equipment", FRIDGE)
    assert first.detail["created"] is True and first.detail["celsius"] == 4.6
    assert second.detail["created"] is False
    # the same person and moment with another reading: records are not changed
    r = staff_client.post(URL, json={"celsius": 5.0})
    assert r.status_code == 409 and "records are not changed" in r.json()["detail"]


def test_a_check_typed_in_later_keeps_when_it_was_read(officer_client: TestClient, users: World):
    r = officer_client.post(URL, json={"celsius": -18.2, "checked_at": "2026-11-26T02:30:00"})
    assert r.status_code == 200, r.text
    check = r.json()["check"]
    assert check["checked_at"] == _at("02:30") and check["recorded_at"] == users.clock.now()
    assert check["person"] == "bureau-duty1"
    r = officer_client.post(URL, json={"celsius": 4.0, "checked_at": str(users.clock.now() + 3600)})
    assert r.status_code == 422 and "in the future" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"celsius": "abc"},
        {"celsius": 150},
        {"celsius": -100.5},
        {"celsius": None},
        {},
        {"celsius": 4.0, "note": "x" * 1001},
        {"celsius": 4.0, "checked_at": "yesterday"},
    ],
)
def test_bad_readings_are_422_and_nothing_is_stored(staff_client: TestClient, users: World, body: dict):
    r = staff_client.post(URL, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request" and r.json()["detail"]
    assert _rows(users) == [] and _audit(users) == []


def test_not_a_number_at_all_is_422(staff_client: TestClient, users: World):
    r = staff_client.post(URL, content=b'{"celsius": NaN}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and _rows(users) == []


def test_an_appliance_without_the_check_is_422(staff_client: TestClient, users: World):
    with Session(users.engine) as s, s.begin():
        fridge = s.get(EquipmentRow, FRIDGE)
        assert fridge is not None
        store = EquipmentRow(id="qingshui-store1", clinic_id=CLINIC, name="医废暂存间", profile="waste_store")
        store.device_id, store.probe = fridge.device_id, "p9"
        s.add(store)
    r = staff_client.post("/api/equipment/qingshui-store1/checks", json={"celsius": 12.0})
    assert r.status_code == 422 and "no twice-daily check" in r.json()["detail"]


def test_authorization_like_acknowledging(
    staff_client: TestClient, admin_client: TestClient, client: TestClient, users: World
):
    other = f"/api/equipment/{OTHER_FRIDGE}/checks"
    assert staff_client.post(other, json={"celsius": 4.0}).status_code == 404
    assert staff_client.get(other).status_code == 404
    assert staff_client.post("/api/equipment/no-such/checks", json={"celsius": 4.0}).status_code == 404
    r = admin_client.post(URL, json={"celsius": 4.0})
    assert r.status_code == 403 and "administrators" in r.json()["detail"]
    assert admin_client.get(URL).status_code == 200  # admins look
    assert client.post(URL, json={"celsius": 4.0}).status_code == 401
    del staff_client.headers["X-CSRF-Token"]
    r = staff_client.post(URL, json={"celsius": 4.0})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert _rows(users) == [] and _rows(users, OTHER_FRIDGE) == []


def test_the_list_newest_first_in_a_range_paginated(staff_client: TestClient, users: World):
    with Session(users.engine) as s, s.begin():
        for i, hhmm in enumerate(("00:30", "01:30", "02:30")):
            record_check(s, FRIDGE, CLINIC, NURSE, _at(hhmm), 4.0 + i, None, users.clock.now())
        record_check(s, FRIDGE, CLINIC, NURSE, _at("02:30") - 40 * 86400, 5.0, None, users.clock.now())
    body = staff_client.get(URL, params={"limit": 2}).json()
    assert body["total"] == 3 and body["limit"] == 2 and body["offset"] == 0  # the default: 31 days
    assert [c["celsius"] for c in body["items"]] == [6.0, 5.0]
    body = staff_client.get(URL, params={"limit": 2, "offset": 2}).json()
    assert [c["celsius"] for c in body["items"]] == [4.0]
    body = staff_client.get(URL, params={"start": "2026-11-26T01:00:00", "end": "2026-11-26T02:00:00"}).json()
    assert [c["checked_at"] for c in body["items"]] == [_at("01:30")]
    assert staff_client.get(URL, params={"start": "2026-11-27", "end": "2026-11-26"}).status_code == 422
    assert staff_client.get(URL, params={"limit": 0}).status_code == 422


# ---------------------------------------------------------------- the page's form


def _page(client: TestClient, world: World) -> str:
    client.app.state.influx = FakeInflux({FRIDGE: (world.clock.now() - 60, 4.8)})  # type: ignore[attr-defined]
    r = client.get(f"/clinics/{CLINIC}")
    assert r.status_code == 200
    return r.text


def _card(html: str, equipment: str = FRIDGE) -> str:
    start = html.index(f'id="eq-{equipment}"')
    return html[start : html.index("</section>", start)]


def test_record_through_the_form(staff_client: TestClient, users: World):
    card = _card(_page(staff_client, users))
    assert '<p class="slot due" data-slot="morning" data-state="due">上午 · 待检查（10:00 前）</p>' in card
    assert 'data-slot="afternoon" data-state="later">下午 · 12:00 后检查（16:00 前）' in card
    assert f'action="/equipment/{FRIDGE}/checks"' in card and "记录上午检查" in card
    csrf = form_csrf(card)
    del staff_client.headers["X-CSRF-Token"]  # a browser sends only the form
    url = f"/equipment/{FRIDGE}/checks"
    assert staff_client.post(url, data={"celsius": "4.6"}, follow_redirects=False).status_code == 403
    r = staff_client.post(
        url, data={"csrf": csrf, "celsius": "4,6", "note": "正常", "lang": "en"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"/clinics/{CLINIC}?lang=en"
    (row,) = _rows(users)
    assert (row.person_id, row.celsius, row.note, row.checked_at) == (NURSE, 4.6, "正常", users.clock.now())
    (audit,) = _audit(users)
    assert audit.username == "staff" and audit.detail["check_id"] == row.id
    card = _card(staff_client.get(r.headers["location"]).text)
    assert "Morning · done: 03:14 by 王秀英, read 4.6 °C" in card
    assert "Afternoon · from 12:00 (due by 16:00)" in card
    assert f'action="/equipment/{FRIDGE}/checks"' not in card  # nothing open now: no button


@pytest.mark.parametrize("value", ["", "abc", "150", "nan", "1e400"])
def test_a_bad_reading_on_the_form_says_why(staff_client: TestClient, users: World, value: str):
    csrf = form_csrf(_page(staff_client, users))
    r = staff_client.post(f"/equipment/{FRIDGE}/checks", data={"csrf": csrf, "celsius": value})
    assert r.status_code == 422
    card = _card(r.text)
    assert "检查未记录" in card and "请填写温度计读数：−100 至 100 之间的数字。" in card
    assert _rows(users) == [] and _audit(users) == []


def test_the_form_out_of_scope_and_for_admins(
    staff_client: TestClient, admin_client: TestClient, users: World
):
    assert staff_client.post(f"/equipment/{OTHER_FRIDGE}/checks", data={"celsius": "4"}).status_code == 404
    assert staff_client.post("/equipment/nowhere/checks", data={"celsius": "4"}).status_code == 404
    assert admin_client.post(f"/equipment/{FRIDGE}/checks", data={"celsius": "4"}).status_code == 403
    html = _page(admin_client, users)
    assert "/checks" not in html and "今日温度检查" in html  # admins see the slots, not the form
    assert _rows(users) == []


# ---------------------------------------------------------------- today's slots


def _check(hhmm: str, person: str = NURSE) -> EquipmentCheckRow:
    return EquipmentCheckRow(
        equipment_id=FRIDGE, clinic_id=CLINIC, checked_at=_at(hhmm), person_id=person, recorded_at=_at(hhmm)
    )


def _states(rows: list[EquipmentCheckRow], now: str) -> dict[Slot, str]:
    return {s.slot: s.state for s in today(rows, _at(now), CheckSettings())}


def test_slots_through_the_day():
    assert _states([], "08:00") == {Slot.morning: "due", Slot.afternoon: "later"}
    assert _states([], "10:30") == {Slot.morning: "late", Slot.afternoon: "later"}
    assert _states([], "12:30") == {Slot.morning: "missed", Slot.afternoon: "due"}
    assert _states([], "16:30") == {Slot.morning: "missed", Slot.afternoon: "late"}
    morning = _check("08:10")
    assert _states([morning], "13:00") == {Slot.morning: "done", Slot.afternoon: "later"}  # 6 h after 08:10
    assert _states([morning], "14:30") == {Slot.morning: "done", Slot.afternoon: "due"}
    afternoon = _check("14:10", "qingshui-nurse2")
    slots = today([morning, afternoon], _at("15:00"), CheckSettings())
    assert [(s.state, s.check) for s in slots] == [("done", morning), ("done", afternoon)]


def test_a_late_morning_check_moves_the_afternoon():
    late = _check("11:00")
    (m, a) = today([late], _at("13:00"), CheckSettings())
    assert m.state == "done"
    assert (a.state, a.opens, a.due) == ("later", _at("17:00"), _at("17:00"))
    too_early = _check("13:30")  # less than 6 h after the morning check: does not count
    (_, a) = today([late, too_early], _at("17:30"), CheckSettings())
    assert a.state == "late" and a.check is None


@pytest.mark.parametrize(
    "value", ["../etc/passwd", "' OR 1=1 --", "x" * 5000, "清水镇卫生院", "%00", "<script>"]
)
def test_hostile_ids_are_404_or_422_never_500(staff_client: TestClient, users: World, value: str):
    from urllib.parse import quote

    url = f"/api/equipment/{quote(value, safe='')}/checks"
    for method, kw in (("GET", {}), ("POST", {"json": {"celsius": 4.0}})):
        r = staff_client.request(method, url, **kw)
        assert r.status_code in (404, 422), (method, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/json")
    r = staff_client.post(f"/equipment/{quote(value, safe='')}/checks", data={"celsius": "4"})
    assert r.status_code in (404, 422)
    assert _rows(users) == []
