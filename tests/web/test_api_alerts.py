"""The alerts REST API (``web.api_alerts``): listing and filters, an alert with its history, acknowledge
and resolve through the lifecycle (a critical cold-chain alert needs a corrective action), the audit
log, clinic status and temperature series from InfluxDB (down: graceful; up: a fake), dead letters."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerting import lifecycle
from alerting.rules.types import Action, Decision, Rule, Severity
from core.db import DeadLetterRow
from web.app import create_app
from web.users import AuditRow

from .auth_helpers import login
from .conftest import CLINIC, FRIDGE, NURSE, T0, World

OTHER_CLINIC = "baihe-thc"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fire(world: World, rule: Rule, severity: Severity, subject: str, clinic: str, t: float) -> str:
    family = "heat" if rule in (Rule.heat_warning, Rule.heat_alarm) else rule.value
    decision = Decision(t, rule, severity, Action.fire, subject, family, clinic, {"celsius": 8.6})
    with world.session() as s, s.begin():
        (change,) = lifecycle.apply(s, decision, t + 30)
        return change.alert_id


@pytest.fixture
def alerts(users: World) -> dict[str, str]:
    """The world's critical heat alarm on qingshui-fridge1, plus a warning at qingshui and one at baihe."""
    return {
        "critical": users.alert_id,
        "warning": fire(users, Rule.heat_warning, Severity.warning, "qingshui-fridge2", CLINIC, T0 + 10),
        "baihe": fire(users, Rule.heat_warning, Severity.warning, "baihe-fridge1", OTHER_CLINIC, T0 + 20),
    }


@pytest.fixture
def offline_influx_client(users: World) -> Iterator[TestClient]:
    """Logged in as staff, with InfluxDB on a port nobody listens on."""
    settings = users.settings.model_copy(update={"influx_url": f"http://127.0.0.1:{closed_port()}"})
    with TestClient(create_app(settings, users.clock)) as c:
        login(c, "staff")
        yield c


def audit_rows(world: World) -> list[AuditRow]:
    with world.session() as s:
        rows = list(s.scalars(select(AuditRow).where(AuditRow.action.like("alert_%")).order_by(AuditRow.id)))
        s.expunge_all()
        return rows


# ---------------------------------------------------------------- listing


def test_list_newest_first_scoped_and_paginated(
    staff_client: TestClient, officer_client: TestClient, alerts: dict[str, str]
):
    page = staff_client.get("/api/alerts").json()
    assert [a["id"] for a in page["items"]] == [alerts["warning"], alerts["critical"]]
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    page = officer_client.get("/api/alerts", params={"limit": 2}).json()
    assert [a["id"] for a in page["items"]] == [alerts["baihe"], alerts["warning"]]
    assert page["total"] == 3
    rest = officer_client.get("/api/alerts", params={"limit": 2, "offset": 2}).json()
    assert [a["id"] for a in rest["items"]] == [alerts["critical"]]
    first = page["items"][0]
    assert first["clinic"] == OTHER_CLINIC and first["needs_corrective_action"] is False
    assert staff_client.get(f"/api/alerts/{alerts['critical']}").json()["needs_corrective_action"] is True


def test_filters(officer_client: TestClient, alerts: dict[str, str]):
    def ids(**params: Any) -> list[str]:
        r = officer_client.get("/api/alerts", params=params)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert ids(clinic=CLINIC) == [alerts["warning"], alerts["critical"]]
    assert ids(severity="critical") == [alerts["critical"]]
    assert ids(rule="heat_warning") == [alerts["baihe"], alerts["warning"]]
    assert ids(state="firing", clinic=OTHER_CLINIC) == [alerts["baihe"]]
    assert ids(state="resolved") == []
    assert len(ids(state="open")) == 3
    for bad in (
        {"state": "burning"},
        {"severity": "huge"},
        {"rule": "no_rule"},
        {"limit": 0},
        {"offset": -1},
    ):
        r = officer_client.get("/api/alerts", params=bad)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", bad
    assert officer_client.get("/api/alerts", params={"clinic": "no-such"}).status_code == 404


def test_an_alert_with_its_history(staff_client: TestClient, alerts: dict[str, str]):
    body = staff_client.get(f"/api/alerts/{alerts['critical']}").json()
    assert body["rule"] == "heat_alarm" and body["severity"] == "critical" and body["state"] == "firing"
    assert [e["kind"] for e in body["history"]] == ["fired"]
    assert staff_client.get(f"/api/alerts/{alerts['baihe']}").status_code == 404  # another clinic's
    assert staff_client.get("/api/alerts/A-19990101-0001").json() == {
        "error": "not_found",
        "detail": "no alert 'A-19990101-0001'",
    }


# ---------------------------------------------------------------- acknowledge and resolve


def test_ack_as_the_linked_person_with_the_note_and_audited(
    staff_client: TestClient, users: World, alerts: dict[str, str]
):
    r = staff_client.post(f"/api/alerts/{alerts['critical']}/ack", json={"note": "已到现场"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is True
    assert body["alert"]["state"] == "acknowledged" and body["alert"]["acknowledged_by"] == NURSE
    assert body["alert"]["acknowledged_note"] == "已到现场"
    assert [e["kind"] for e in body["alert"]["history"]] == ["fired", "acknowledged"]
    again = staff_client.post(f"/api/alerts/{alerts['critical']}/ack").json()  # no body at all
    assert again["changed"] is False and again["alert"]["acknowledged_note"] == "已到现场"
    rows = audit_rows(users)
    assert [(a.username, a.action, a.target_id, a.detail["changed"]) for a in rows] == [
        ("staff", "alert_ack", alerts["critical"], True),
        ("staff", "alert_ack", alerts["critical"], False),
    ]
    assert rows[0].detail["by"] == NURSE and rows[0].client_ip == "testclient"


def test_a_user_without_a_person_acts_as_user_colon_name(users: World, alerts: dict[str, str]):
    from web.users import add_user

    with users.session() as s, s.begin():
        add_user(s, "deputy", "long-enough", "district_officer", "demo-district", users.clock.now())
    with TestClient(create_app(users.settings, users.clock)) as c:
        login(c, "deputy", "long-enough")
        body = c.post(f"/api/alerts/{alerts['baihe']}/ack", json={}).json()
        assert body["alert"]["acknowledged_by"] == "user:deputy"


def test_a_critical_cold_chain_alert_needs_a_corrective_action(
    staff_client: TestClient, users: World, alerts: dict[str, str]
):
    url = f"/api/alerts/{alerts['critical']}/resolve"
    r = staff_client.post(url, json={})
    assert r.status_code == 422
    assert r.json() == {
        "error": "invalid_request",
        "detail": f"alert {alerts['critical']} is a critical cold-chain alert: resolving it needs the "
        "corrective action taken",
    }
    assert staff_client.post(url).status_code == 422  # no body at all
    assert staff_client.post(url, json={"corrective_action": "prayed"}).status_code == 422
    assert staff_client.post(url, json={"corrective_action": "other"}).status_code == 422  # says what
    assert staff_client.post(url, json={"detail": "moved them"}).status_code == 422  # which action
    assert users.alert().state == "firing"
    r = staff_client.post(url, json={"corrective_action": "moved_vaccines", "detail": "到 2 号冰箱"})
    assert r.status_code == 200, r.text
    alert = r.json()["alert"]
    assert alert["state"] == "resolved" and alert["resolution"] == "corrective_action"
    assert alert["corrective_action"] == "moved_vaccines: 到 2 号冰箱" and alert["resolved_by"] == NURSE
    assert (
        staff_client.post(url, json={"corrective_action": "other", "detail": "x"}).json()["changed"] is False
    )
    assert [a.action for a in audit_rows(users)] == ["alert_resolve", "alert_resolve"]
    assert audit_rows(users)[0].detail["corrective_action"] == "moved_vaccines: 到 2 号冰箱"


def test_a_warning_closes_without_a_corrective_action(staff_client: TestClient, alerts: dict[str, str]):
    r = staff_client.post(f"/api/alerts/{alerts['warning']}/resolve", json={})
    assert r.status_code == 200 and r.json()["alert"]["resolution"] == "manual"


def test_admins_do_not_act_on_alerts(admin_client: TestClient, users: World, alerts: dict[str, str]):
    r = admin_client.post(f"/api/alerts/{alerts['critical']}/ack", json={"note": "x"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert users.alert().state == "firing"
    assert admin_client.get(f"/api/alerts/{alerts['critical']}").status_code == 200  # but see them


def test_a_note_too_long(staff_client: TestClient, alerts: dict[str, str]):
    r = staff_client.post(f"/api/alerts/{alerts['critical']}/ack", json={"note": "x" * 501})
    assert r.status_code == 422


# ---------------------------------------------------------------- clinic status, temperatures


def test_clinic_status_without_influxdb(offline_influx_client: TestClient, alerts: dict[str, str]):
    r = offline_influx_client.get(f"/api/clinics/{CLINIC}/status")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["clinic_name"] == "清水镇卫生院" and body["district"] == "demo-district"
    assert body["influx_error"].startswith("temperatures unavailable: cannot reach InfluxDB")
    assert body["state"] == "red"
    eq = {e["id"]: e for e in body["equipment"]}
    assert set(eq) == {"qingshui-fridge1", "qingshui-fridge2", "qingshui-freezer1"}
    assert all(e["celsius"] is None for e in eq.values())
    assert (eq[FRIDGE]["state"], eq["qingshui-fridge2"]["state"], eq["qingshui-freezer1"]["state"]) == (
        "red",
        "amber",
        "green",
    )
    assert eq[FRIDGE]["open_alerts"] == [alerts["critical"]]
    assert [a["id"] for a in body["open_alerts"]] == [alerts["warning"], alerts["critical"]]


def test_temperatures_without_influxdb_are_503(offline_influx_client: TestClient):
    r = offline_influx_client.get(f"/api/equipment/{FRIDGE}/temperature")
    assert r.status_code == 503 and r.json()["error"] == "service_unavailable"


class FakeInflux:
    def __init__(self, series: list[dict[str, Any]]) -> None:
        self.series = series
        self.queries: list[str] = []

    def query(self, q: str, params: Any = None, *, epoch: str = "ms") -> list[dict[str, Any]]:
        self.queries.append(q)
        return self.series

    def close(self) -> None:
        pass


def test_clinic_status_with_the_latest_readings(staff_client: TestClient, users: World):
    t_ms = (users.clock.now() - 90) * 1000
    fake = FakeInflux(
        [
            {
                "name": "temperature",
                "tags": {"equipment": FRIDGE},
                "columns": ["time", "last"],
                "values": [[t_ms, 9.4]],
            },
            {
                "name": "temperature",
                "tags": {"equipment": ""},
                "columns": ["time", "last"],
                "values": [[t_ms, 1.0]],
            },
        ]
    )
    staff_client.app.state.influx = fake  # type: ignore[attr-defined]
    body = staff_client.get(f"/api/clinics/{CLINIC}/status").json()
    fridge = next(e for e in body["equipment"] if e["id"] == FRIDGE)
    assert (fridge["celsius"], fridge["age_s"], body["influx_error"]) == (9.4, 90.0, None)
    assert fake.queries == [
        'SELECT last("celsius") FROM "temperature" WHERE "clinic" = \'qingshui-thc\' GROUP BY "equipment"'
    ]


def test_a_temperature_series_downsampled(staff_client: TestClient):
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    fake = FakeInflux(
        [
            {
                "name": "temperature",
                "columns": ["time", "mean", "min", "max"],
                "values": [[start * 1000, 5.0, 4.5, 5.5]],
            }
        ]
    )
    staff_client.app.state.influx = fake  # type: ignore[attr-defined]
    r = staff_client.get(
        f"/api/equipment/{FRIDGE}/temperature", params={"start": str(start), "end": "2026-12-01T08:00:00"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["points"] == [{"t": start, "mean": 5.0, "min": 4.5, "max": 5.5}]
    span = body["end"] - body["start"]
    assert span == 30 * 86400 and body["interval_s"] == 1730 and span / body["interval_s"] < 1500
    (q,) = fake.queries
    assert "WHERE \"equipment\" = 'qingshui-fridge1' AND time >= 1793491200000000000" in q
    assert q.endswith("GROUP BY time(1730s) fill(none)") and 'mean("celsius"), min("celsius")' in q
    default = staff_client.get(f"/api/equipment/{FRIDGE}/temperature").json()
    assert default["end"] - default["start"] == 86400 and default["interval_s"] == 58


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-10-01", "end": "2026-11-02"},  # 32 days
        {"start": "2026-11-02", "end": "2026-11-01"},
        {"start": "yesterday"},
        {"end": "nan"},
        {"start": "1e300"},
        {"start": "0001-01-01T00:00:00"},
        {"start": "x" * 41},
    ],
)
def test_bad_temperature_ranges(staff_client: TestClient, params: dict[str, str]):
    staff_client.app.state.influx = FakeInflux([])  # type: ignore[attr-defined]
    r = staff_client.get(f"/api/equipment/{FRIDGE}/temperature", params=params)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text


def test_a_value_with_quotes_stays_a_literal(staff_client: TestClient, users: World):
    """Ids come from the registry; were one to hold a quote, it stays inside the InfluxQL literal."""
    from web.api_alerts import _latest_temperatures

    fake = FakeInflux([])
    _latest_temperatures(fake, "x' OR clinic =~ /.*/ --")  # type: ignore[arg-type]
    assert fake.queries[0].endswith('WHERE "clinic" = \'x\\\' OR clinic =~ /.*/ --\' GROUP BY "equipment"')


# ---------------------------------------------------------------- dead letters


def test_dead_letters_for_admins_paginated(admin_client: TestClient, staff_client: TestClient, users: World):
    with users.session() as s, s.begin():
        for i in range(3):
            s.add(
                DeadLetterRow(
                    received_at=datetime.fromtimestamp(T0 + i, UTC),
                    topic=f"cw/v1/qingshui-thc/t/{i}",
                    payload=b"\xff{bad json" + b"x" * (3000 if i == 2 else 0),
                    reason="bad_json",
                    detail="not JSON",
                )
            )
    page = admin_client.get("/api/deadletters", params={"limit": 2}).json()
    assert page["total"] == 3 and [d["topic"][-1] for d in page["items"]] == ["2", "1"]
    newest = page["items"][0]
    assert newest["received_at"] == T0 + 2 and newest["size"] == 3010 and newest["truncated"] is True
    assert newest["payload"].startswith("\ufffd{bad json") and len(newest["payload"]) == 2000
    assert admin_client.get("/api/deadletters", params={"reason": "other"}).json()["total"] == 0
    assert staff_client.get("/api/deadletters").status_code == 403
