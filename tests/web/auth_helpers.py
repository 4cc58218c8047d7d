"""Helpers for the tests of logins, roles and scopes: test users, logging a TestClient in, and a second
district (the registry store holds one district, so its rows are written directly)."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import ClinicRow, DeviceRow, DistrictRow, EquipmentRow, TownshipRow
from web.users import Role, add_user, init_web_tables

PASSWORD = "correct-horse-9"
# cheap argon2 parameters: the tests log in many times; production uses argon2-cffi's defaults
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

DISTRICT = "demo-district"
OTHER_CLINIC = "baihe-thc"  # same district as qingshui-thc
FAR_DISTRICT = "far-district"
FAR_CLINIC = "far-thc"
FAR_FRIDGE = "far-fridge1"

# username, role, scope, registry person
TEST_USERS: tuple[tuple[str, Role, str | None, str | None], ...] = (
    ("staff", Role.clinic_staff, "qingshui-thc", "qingshui-nurse1"),
    ("officer", Role.district_officer, DISTRICT, "bureau-duty1"),
    ("admin", Role.admin, None, None),
    ("farofficer", Role.district_officer, FAR_DISTRICT, None),
)


def add_far_district(engine: Engine) -> None:
    """A second district with one township, clinic, gateway and refrigerator."""
    with Session(engine) as s, s.begin():
        s.add(DistrictRow(id=FAR_DISTRICT, name="远区", bureau_id="far-bureau", bureau_name="远区卫健局"))
        s.flush()
        s.add(TownshipRow(id="far-town", district_id=FAR_DISTRICT, name="远镇"))
        s.flush()
        s.add(ClinicRow(id=FAR_CLINIC, township_id="far-town", name="远镇卫生院"))
        s.flush()
        s.add(DeviceRow(id="far-gw1", clinic_id=FAR_CLINIC, kind="gateway", interval_s=60))
        s.flush()
        fridge = EquipmentRow(id=FAR_FRIDGE, clinic_id=FAR_CLINIC, name="冰箱", profile="refrigerator")
        fridge.device_id, fridge.probe = "far-gw1", "p1"
        s.add(fridge)


def add_test_users(engine: Engine, now: float) -> None:
    """``TEST_USERS``, all with ``PASSWORD`` (the far district must exist for ``farofficer``)."""
    init_web_tables(engine)
    with Session(engine) as s, s.begin():
        for username, role, scope, person in TEST_USERS:
            if scope == FAR_DISTRICT and s.get(DistrictRow, FAR_DISTRICT) is None:
                continue
            add_user(s, username, PASSWORD, role.value, scope, now, person_id=person)


def form_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no csrf field in the page"
    return m.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD, next_url: str | None = None) -> str:
    """Log ``client`` in through the login form; returns the session's CSRF token."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    form = {"username": username, "password": password, "csrf": form_csrf(page.text)}
    if next_url is not None:
        form["next"] = next_url
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    me = client.get("/api/me")
    assert me.status_code == 200, me.text
    token = me.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    return token
