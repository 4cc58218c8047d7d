"""The medical-waste REST API (``web.api_waste``) through FastAPI's TestClient, on SQLite in tmp_path:
scans stored by ``core.waste_store.store_waste_events``, alerts opened by the real lifecycle."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerting import lifecycle
from alerting.rules.types import Action, Decision, Rule, Severity
from core.protocol import Category, Stage, WasteEvent
from core.waste_store import Scan, init_waste_tables, store_waste_events

from .auth_helpers import login
from .conftest import CLINIC, World

CST = timezone(timedelta(hours=8))
H = 3600.0
DAY = 24 * H
OTHER_CLINIC = "baihe-thc"
SCANNER = "qingshui-scan1"
PLANT_SCANNER = "plant-scan1"
TRANSPORTER = "demo-transport"
_ids = itertools.count(1)


@pytest.fixture
def client(admin_client: TestClient) -> TestClient:
    """The waste API needs a login: these tests read as the admin (the scopes: test_authz_matrix)."""
    return admin_client


def local(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> float:
    """Epoch seconds of 2026-{month}-{day} {hour}:{minute} clinic time (UTC+8)."""
    return datetime(2026, month, day, hour, minute, tzinfo=CST).timestamp()


def ev(
    bag: str,
    stage: str,
    ts: float,
    kg: float = 2.0,
    *,
    category: str = "infectious",
    manifest: str | None = None,
    event_id: str | None = None,
    refused: float | None = None,
) -> WasteEvent:
    s = Stage(stage)
    carries = s in (Stage.handed_over, Stage.received, Stage.disposed)
    plant = s in (Stage.received, Stage.disposed)
    return WasteEvent(
        event_id or f"ev-{next(_ids)}",
        bag,
        s,
        Category(category),
        kg,
        ts,
        "op-1",
        (manifest or "MF-1") if carries else None,
        ("demo-plant" if plant else TRANSPORTER) if carries else None,
        refused,
        "leaking" if refused else None,
    )


def store(world: World, *events: WasteEvent, clinic: str = CLINIC) -> None:
    init_waste_tables(world.engine)
    scans = [
        Scan(clinic, PLANT_SCANNER if e.stage in (Stage.received, Stage.disposed) else SCANNER, e)
        for e in events
    ]
    store_waste_events(world.engine, scans, max(e.ts for e in events) + 60)


def fire(world: World, rule: Rule, subject: str, family: str, t: float, **values: Any) -> str:
    decision = Decision(t, rule, Severity.warning, Action.fire, subject, family, CLINIC, values)
    with world.session() as s, s.begin():
        (change,) = lifecycle.apply(s, decision, t + 30)
        return change.alert_id


def chain(bag: str, t: float, kg: float = 2.0, *, manifest: str = "MF-1", **kw: Any) -> list[WasteEvent]:
    """A bag's whole way, generated at ``t``: collected +1 h, stored +2 h, handed over +5 h, received
    +8 h, disposed +20 h."""
    steps = [("generated", 0), ("collected", 1), ("stored", 2), ("handed_over", 5), ("received", 8)]
    steps.append(("disposed", 20))
    return [ev(bag, stage, t + h * H, kg, manifest=manifest, **kw) for stage, h in steps]


def get(client: TestClient, url: str, status: int = 200, **params: Any) -> Any:
    r = client.get(url, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


# ---------------------------------------------------------------- bags


def test_a_bag_with_its_history_in_time_order_a_conflict_marked_and_its_alerts(
    client: TestClient, world: World
):
    bag, t = "qingshui-thc-20261124-0001", local(24, 9)
    gen, col, sto = (
        ev(bag, "generated", t, 2.4),
        ev(bag, "collected", t + H, 2.4),
        ev(bag, "stored", t + 2 * H),
    )
    store(world, sto)  # arrived first (the ward's scanner was offline)
    store(world, gen, col)
    store(world, ev(bag, "collected", t + H, 9.9, event_id=col.event_id))  # same event_id, other content
    store(world, gen)  # a plain re-delivery: no new row
    store(world, *chain("qingshui-thc-20261124-0002", t))
    alert_id = fire(world, Rule.storage_overdue, bag, "store", t + 38 * H, limit_h=36)
    fire(world, Rule.storage_overdue, "qingshui-thc-20261124-0002", "store", t + 38 * H)

    body = get(client, f"/api/waste/bags/{bag}")

    assert body["bag_id"] == bag
    assert body["clinic"] == CLINIC
    assert body["clinic_name"] == "清水镇卫生院"
    history = body["history"]
    assert [(h["stage"], h["weight_kg"], h["conflict"]) for h in history] == [
        ("generated", 2.4, False),
        ("collected", 2.4, False),
        ("collected", 9.9, True),
        ("stored", 2.0, False),
    ]
    assert [h["ts"] for h in history] == sorted(h["ts"] for h in history)
    assert history[2]["event_id"] == col.event_id
    assert history[0]["device"] == SCANNER and history[0]["operator"] == "op-1"
    state = body["state"]
    assert state["stage"] == "stored"
    assert state["generated_kg"] == 2.4 and state["last_kg"] == 2.0
    assert state["stored_at"] == t + 2 * H and state["handed_over_at"] is None
    assert (state["scans"], state["conflicts"], state["closed_as"]) == (3, 1, None)
    assert body["alerts"] == [
        {
            "id": alert_id,
            "rule": "storage_overdue",
            "family": "store",
            "severity": "warning",
            "state": "firing",
            "started_at": t + 38 * H,
        }
    ]


def test_a_closed_bag(client: TestClient, world: World):
    bag = "qingshui-thc-20261124-0003"
    store(world, *chain(bag, local(24, 9), manifest="MF-9"))
    state = get(client, f"/api/waste/bags/{bag}")["state"]
    assert (state["stage"], state["closed_as"], state["manifest_id"], state["transporter"]) == (
        "disposed",
        "disposed",
        "MF-9",
        TRANSPORTER,
    )


def test_errors_under_api_are_json_and_the_pages_keep_theirs(client: TestClient):
    assert get(client, "/api/waste/bags/no-such-bag", 404) == {
        "error": "not_found",
        "detail": "no waste bag 'no-such-bag'",
    }
    assert get(client, "/api/waste/nothing-here", 404) == {"error": "not_found", "detail": "Not Found"}
    r = client.post("/api/waste/bags/x")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert "GET" in r.headers["allow"]
    # outside /api: FastAPI's own responses, as before
    assert client.get("/no-such-page").json() == {"detail": "Not Found"}
    r = client.get("/a/not-a-token")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_the_endpoints_are_in_the_openapi_document(client: TestClient):
    paths = get(client, "/api/openapi.json")["paths"]
    for path in (
        "/api/waste/bags/{bag_id}",
        "/api/waste/manifests",
        "/api/waste/manifests/{manifest_id}",
        "/api/waste/clinics/{clinic_id}/days",
    ):
        assert "get" in paths[path], path
    assert "404" in paths["/api/waste/bags/{bag_id}"]["get"]["responses"]


# ---------------------------------------------------------------- manifests


def handover(
    world: World, manifest: str, t: float, bags: dict[str, float], received: dict[str, float]
) -> None:
    """``bags`` handed over on ``manifest`` at ``t``; ``received`` (bag -> kg) received under it at t+3 h."""
    categories = {bag: "sharps" if i % 2 else "infectious" for i, bag in enumerate(bags)}
    events = []
    for bag, kg in bags.items():
        category = categories[bag]
        events += [
            ev(bag, "generated", t - 5 * H, kg, category=category),
            ev(bag, "stored", t - 3 * H, kg, category=category),
            ev(bag, "handed_over", t, kg, category=category, manifest=manifest),
        ]
    for bag, kg in received.items():
        category = categories.get(bag, "infectious")
        events.append(ev(bag, "received", t + 3 * H, kg, category=category, manifest=manifest))
    store(world, *events)


def test_the_manifest_list_newest_first_paginated_with_totals(client: TestClient, world: World):
    handover(world, "MF-A", local(20, 13), {"a1": 2.0, "a2": 1.5}, {"a1": 2.0, "a2": 1.5})
    handover(world, "MF-B", local(21, 13), {"b1": 3.0}, {"b1": 2.0})  # lighter beyond the tolerance
    handover(world, "MF-C", local(22, 13), {"c1": 1.0, "c2": 1.0, "c3": 0.5}, {})  # on its way
    store(
        world,
        ev("x1", "generated", local(22, 8)),
        ev("x1", "handed_over", local(22, 14), manifest="MF-X"),
        clinic=OTHER_CLINIC,
    )

    page = get(client, "/api/waste/manifests", limit=2)
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 0)
    assert [m["manifest_id"] for m in page["items"]] == ["MF-X", "MF-C"]

    page = get(client, "/api/waste/manifests", clinic=CLINIC, limit=2)
    assert page["total"] == 3
    assert [m["manifest_id"] for m in page["items"]] == ["MF-C", "MF-B"]
    c, b = page["items"]
    assert c == {
        "manifest_id": "MF-C",
        "clinic": CLINIC,
        "transporter": TRANSPORTER,
        "vehicle": None,
        "handed_over_at": local(22, 13),
        "received_at": None,
        "bags_handed_over": 3,
        "kg_handed_over": 2.5,
        "bags_received": 0,
        "kg_received": 0.0,
        "matches": False,
        "status": "in_transit",
    }
    assert (b["bags_handed_over"], b["kg_handed_over"], b["bags_received"], b["kg_received"]) == (
        1,
        3.0,
        1,
        2.0,
    )
    assert (b["matches"], b["status"], b["received_at"]) == (False, "mismatch", local(21, 16))

    page = get(client, "/api/waste/manifests", clinic=CLINIC, limit=2, offset=2)
    assert page["total"] == 3 and page["offset"] == 2
    (a,) = page["items"]
    assert (a["manifest_id"], a["bags_handed_over"], a["kg_handed_over"]) == ("MF-A", 2, 3.5)
    assert (a["bags_received"], a["kg_received"], a["matches"], a["status"]) == (2, 3.5, True, "matches")

    assert get(client, "/api/waste/manifests", clinic=CLINIC, offset=10) == {
        "items": [],
        "total": 3,
        "limit": 50,
        "offset": 10,
    }
    # since / until on the handed-over time: dates are local days, ``until`` a whole day included
    window = get(client, "/api/waste/manifests", since="2026-11-21", until="2026-11-21")
    assert [m["manifest_id"] for m in window["items"]] == ["MF-B"] and window["total"] == 1
    window = get(client, "/api/waste/manifests", since=str(local(21, 13)), until="2026-11-22T13:00")
    assert [m["manifest_id"] for m in window["items"]] == ["MF-B"]
    window = get(client, "/api/waste/manifests", since="2026-11-22T05:00:00+00:00")
    assert [m["manifest_id"] for m in window["items"]] == ["MF-X", "MF-C"]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": 501}, "query parameter limit: Input should be less than or equal to 500"),
        ({"limit": 0}, "query parameter limit"),
        ({"offset": -1}, "query parameter offset"),
        ({"since": "yesterday"}, "since: 'yesterday' is not epoch seconds, a date (YYYY-MM-DD)"),
        ({"until": "2026-02-30"}, "until: '2026-02-30' is not a date"),
        ({"since": "nan"}, "since: 'nan' is not a time"),
    ],
)
def test_bad_manifest_list_parameters(client: TestClient, params: dict[str, Any], detail: str):
    body = get(client, "/api/waste/manifests", 422, **params)
    assert body["error"] == "invalid_request"
    assert detail in body["detail"]


def test_reconciliation_exact(client: TestClient, world: World):
    handover(world, "MF-OK", local(24, 13), {"k1": 2.0, "k2": 0.8}, {"k1": 2.0, "k2": 0.75})  # within 0.1 kg
    body = get(client, "/api/waste/manifests/MF-OK")
    assert body["matches"] is True and body["status"] == "matches"
    assert (body["missing"], body["extra"], body["weight_differences"]) == ([], [], [])
    assert body["bags"] == [
        {"bag_id": "k1", "category": "infectious", "handed_kg": 2.0, "received_kg": 2.0, "refused_kg": 0.0},
        {"bag_id": "k2", "category": "sharps", "handed_kg": 0.8, "received_kg": 0.75, "refused_kg": 0.0},
    ]
    assert body["handed_kg_by_category"] == {"infectious": 2.0, "sharps": 0.8}
    assert body["received_kg_by_category"] == {"infectious": 2.0, "sharps": 0.75}
    assert (body["clinic"], body["clinic_name"], body["transporter"]) == (CLINIC, "清水镇卫生院", TRANSPORTER)
    assert (body["handed_over_at"], body["received_at"]) == (local(24, 13), local(24, 16))
    assert body["profile"] == "national"
    assert body["mismatch_alert"] is None


def test_reconciliation_missing_bag(client: TestClient, world: World):
    handover(world, "MF-M", local(24, 13), {"m1": 2.0, "m2": 1.0}, {"m1": 2.0})
    body = get(client, "/api/waste/manifests/MF-M")
    assert (body["missing"], body["extra"], body["weight_differences"]) == (["m2"], [], [])
    assert body["bags"][1] == {
        "bag_id": "m2",
        "category": "sharps",
        "handed_kg": 1.0,
        "received_kg": None,
        "refused_kg": 0.0,
    }
    assert (body["matches"], body["status"]) == (False, "mismatch")


def test_reconciliation_extra_bag_with_its_open_alert(client: TestClient, world: World):
    handover(world, "MF-E", local(24, 13), {"e1": 2.0}, {"e1": 2.0})
    handover(world, "MF-F", local(24, 13), {"f1": 1.2}, {})  # f1 was handed over on MF-F ...
    store(world, ev("f1", "received", local(24, 16), 1.2, manifest="MF-E"))  # ... and received on MF-E
    alert_id = fire(
        world, Rule.manifest_mismatch, "MF-E", "manifest", local(24, 18), extra_bags=1, extra="f1"
    )

    body = get(client, "/api/waste/manifests/MF-E")
    assert (body["missing"], body["extra"], body["weight_differences"]) == ([], ["f1"], [])
    assert body["bags"][1] == {
        "bag_id": "f1",
        "category": "infectious",
        "handed_kg": None,
        "received_kg": 1.2,
        "refused_kg": 0.0,
    }
    assert body["received_kg_by_category"] == {"infectious": 3.2}
    assert body["mismatch_alert"] == {
        "id": alert_id,
        "rule": "manifest_mismatch",
        "family": "manifest",
        "severity": "warning",
        "state": "firing",
        "started_at": local(24, 18),
    }
    assert get(client, "/api/waste/manifests/MF-F")["missing"] == ["f1"]

    with world.session() as s, s.begin():
        lifecycle.resolve(s, alert_id, by="qingshui-nurse1", now=local(24, 20), corrective_action="call")
    assert get(client, "/api/waste/manifests/MF-E")["mismatch_alert"] is None  # only the open one


def test_reconciliation_lighter_bag_and_the_first_scan_counts(client: TestClient, world: World):
    handover(world, "MF-L", local(24, 13), {"l1": 5.0, "l2": 5.0}, {"l1": 4.0, "l2": 4.8})
    l1_received = local(24, 16)
    store(world, ev("l1", "received", l1_received + H, 5.0, manifest="MF-L"))  # a re-scan: not counted
    body = get(client, "/api/waste/manifests/MF-L")
    assert body["weight_differences"] == ["l1"]  # 1 kg off 5 kg > 5 %; l2 0.2 kg <= 0.25 kg
    assert (body["missing"], body["extra"], body["matches"]) == ([], [], False)
    assert [(b["bag_id"], b["handed_kg"], b["received_kg"]) for b in body["bags"]] == [
        ("l1", 5.0, 4.0),
        ("l2", 5.0, 4.8),
    ]


def test_unknown_manifest(client: TestClient, world: World):
    store(world, ev("g1", "generated", local(24, 9)))
    assert get(client, "/api/waste/manifests/MF-NONE", 404) == {
        "error": "not_found",
        "detail": "no manifest 'MF-NONE'",
    }


# ---------------------------------------------------------------- clinic days


def days_url(clinic: str = CLINIC) -> str:
    return f"/api/waste/clinics/{clinic}/days"


def test_kg_per_local_day_across_a_utc_midnight(client: TestClient, world: World):
    # 2026-11-24 00:00 UTC is 08:00 in the clinic: the local day runs 23 Nov 16:00 UTC -> 24 Nov 16:00 UTC
    d1, d2, d3 = "day-0001", "day-0002", "day-0003"
    d3_gen = ev(d3, "generated", local(24, 8, 30), 3.0)  # 00:30 UTC on the 24th
    store(
        world,
        ev(d1, "generated", local(23, 23, 30), 2.0),  # 15:30 UTC on the 23rd: the 23rd
        ev(d2, "generated", local(24, 7, 30), 1.5, category="sharps"),  # 23:30 UTC on the 23rd: the 24th
        ev(d1, "collected", local(24, 7, 45), 2.0),
        d3_gen,
        ev(d1, "stored", local(24, 9), 2.0),
        ev(d2, "stored", local(24, 23, 59), 1.5, category="sharps"),
        ev(d1, "stored", local(25, 9), 2.1),  # a second stored scan: the first one counts
        ev(d3, "generated", local(24, 8, 30), 3.3, event_id=d3_gen.event_id),  # a conflict: not counted
    )
    store(world, ev("elsewhere", "generated", local(24, 10), 9.0), clinic=OTHER_CLINIC)
    world.clock.set(local(26, 10))

    body = get(client, days_url(), start="2026-11-23", end="2026-11-25")
    assert (body["clinic"], body["clinic_name"], body["start"], body["end"]) == (
        CLINIC,
        "清水镇卫生院",
        "2026-11-23",
        "2026-11-25",
    )
    assert body["township_name"] and body["timezone"] == "UTC+08:00"
    d23, d24, d25 = body["days"]
    assert [d["date"] for d in body["days"]] == ["2026-11-23", "2026-11-24", "2026-11-25"]
    assert d23["bags_generated"] == 1
    assert d23["kg_by_category"] == {
        "infectious": 2.0,
        "sharps": 0.0,
        "pathological": 0.0,
        "pharmaceutical": 0.0,
        "chemical": 0.0,
    }
    assert d23["kg_by_stage"]["generated"] == 2.0 and sum(d23["kg_by_stage"].values()) == 2.0
    assert d24["bags_generated"] == 2
    assert (d24["kg_by_category"]["infectious"], d24["kg_by_category"]["sharps"]) == (3.0, 1.5)
    assert d24["kg_by_stage"] == {
        "generated": 4.5,
        "collected": 2.0,
        "stored": 3.5,
        "handed_over": 0.0,
        "received": 0.0,
        "disposed": 0.0,
    }
    assert d24["kg_by_stage_category"] == {
        "generated": {"infectious": 3.0, "sharps": 1.5},
        "collected": {"infectious": 2.0},
        "stored": {"infectious": 2.0, "sharps": 1.5},
    }
    assert d25["bags_generated"] == 0 and sum(d25["kg_by_stage"].values()) == 0.0
    assert d25["kg_by_stage_category"] == {}

    # one day: d1's collection counts on the 24th though the bag was generated on the 23rd
    (only,) = get(client, days_url(), start="2026-11-24", end="2026-11-24")["days"]
    assert only == d24

    # the default: the last 7 local days, today included
    body = get(client, days_url())
    assert (body["start"], body["end"]) == ("2026-11-20", "2026-11-26")
    assert [d["bags_generated"] for d in body["days"]] == [0, 0, 0, 1, 2, 0, 0]


def test_the_store_now_with_ages_from_the_clock(client: TestClient, world: World):
    now = local(26, 10)
    store(
        world,
        ev("s-new", "generated", now - 4 * H, 1.0),
        ev("s-new", "stored", now - 3.5 * H, 1.2),
        ev("s-old", "generated", now - 41 * H, 2.0, category="sharps"),
        ev("s-old", "stored", now - 40 * H, 2.0, category="sharps"),
        ev("s-gone", "generated", now - 30 * H),
        ev("s-gone", "stored", now - 29 * H),
        ev("s-gone", "handed_over", now - 5 * H),
        ev("s-ward", "generated", now - 2 * H),
        ev("s-ward", "collected", now - H),
    )
    store(
        world,
        ev("s-other", "generated", now - 9 * H),
        ev("s-other", "stored", now - 8 * H),
        clinic=OTHER_CLINIC,
    )
    world.clock.set(now)

    body = get(client, days_url())
    assert body["now"] == now
    assert body["store"] == [
        {"bag_id": "s-old", "category": "sharps", "kg": 2.0, "stored_at": now - 40 * H, "age_h": 40.0},
        {"bag_id": "s-new", "category": "infectious", "kg": 1.2, "stored_at": now - 3.5 * H, "age_h": 3.5},
    ]
    world.clock.advance(2 * H + 360)
    assert [b["age_h"] for b in get(client, days_url())["store"]] == [42.1, 5.6]


def test_the_closed_loop_rate_leaves_out_bags_too_young(client: TestClient, world: World):
    now = local(30, 12)
    refused = chain("loop-refused", now - 4 * DAY, 3.0, manifest="MF-R")[:5]
    refused[-1] = ev("loop-refused", "received", now - 4 * DAY + 8 * H, 3.0, manifest="MF-R", refused=3.0)
    store(
        world,
        *chain("loop-disposed", now - 5 * DAY),  # closed
        *refused,  # closed: refused whole at the plant
        ev("loop-open", "generated", now - 4 * DAY),  # open, 96 h old
        ev("loop-open", "stored", now - 4 * DAY + H),
        ev("loop-72h", "generated", now - 72 * H),  # open, exactly 72 h old: judged
        *chain("loop-young-done", now - DAY),  # closed but too young: not judged
        ev("loop-young", "generated", now - 2 * DAY),  # open, too young
    )
    store(world, ev("loop-elsewhere", "generated", now - 5 * DAY), clinic=OTHER_CLINIC)
    world.clock.set(now)
    login(client, "admin")  # days later: the session has expired

    body = get(client, days_url(), start="2026-11-20", end="2026-11-30")
    assert sum(d["bags_generated"] for d in body["days"]) == 6
    assert body["closed_loop"] == {
        "bags_generated": 4,
        "bags_closed": 2,
        "rate": 0.5,
        "min_age_h": 72.0,
        "open_bags": ["loop-open", "loop-72h"],
    }
    assert get(client, "/api/waste/bags/loop-refused")["state"]["closed_as"] == "refused"

    # only bags younger than 72 h in the range: no rate
    young = get(client, days_url(), start="2026-11-28", end="2026-11-30")["closed_loop"]
    assert young == {"bags_generated": 0, "bags_closed": 0, "rate": None, "min_age_h": 72.0, "open_bags": []}
    # the range limits the bags judged too
    early = get(client, days_url(), start="2026-11-25", end="2026-11-25")["closed_loop"]
    assert (early["bags_generated"], early["bags_closed"], early["rate"]) == (1, 1, 1.0)


def test_an_unknown_clinic(client: TestClient):
    assert get(client, days_url("no-such-clinic"), 404) == {
        "error": "not_found",
        "detail": "no clinic 'no-such-clinic'",
    }


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"start": "2026-13-01"}, "start: '2026-13-01' is not a date (YYYY-MM-DD)"),
        ({"end": "26-11-2026"}, "end: '26-11-2026' is not a date (YYYY-MM-DD)"),
        ({"start": "2026-11-26T00:00"}, "start: '2026-11-26T00:00' is not a date (YYYY-MM-DD)"),
        ({"start": "2026-11-26", "end": "2026-11-25"}, "start 2026-11-26 is after end 2026-11-25"),
        ({"start": "2026-07-31", "end": "2026-11-01"}, "the range is 94 days: at most 93"),
    ],
)
def test_bad_dates(client: TestClient, params: dict[str, Any], detail: str):
    assert get(client, days_url(), 422, **params) == {"error": "invalid_request", "detail": detail}


def test_93_days_is_the_longest_range(client: TestClient):
    body = get(client, days_url(), start="2026-08-01", end="2026-11-01")
    assert len(body["days"]) == 93 and body["days"][-1]["date"] == "2026-11-01"


def test_a_server_error_under_api_is_json_too(users: World, monkeypatch: pytest.MonkeyPatch):
    from web import api_waste
    from web.app import create_app

    world = users

    def broken(_session: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api_waste, "_manifests", broken)
    with TestClient(create_app(world.settings, world.clock), raise_server_exceptions=False) as c:
        login(c, "admin")
        r = c.get("/api/waste/manifests/MF-1")
        assert r.status_code == 500
        assert r.json() == {"error": "internal_error", "detail": "internal error: see the server log"}
