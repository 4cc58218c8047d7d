"""The medical-waste chain of custody end to end: a simulated week of the demo district's waste scanners
(and its fridges) with one anomaly of each kind -> real Mosquitto -> collector (InfluxDB and the SQL bag
history) and ``chainwatch alerting`` (the waste rules) -> exactly one alert per anomaly, the one the
simulator's ground truth names, and none for the thousands of normal bags; the closed-loop rate the API
reports equals the simulator's."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.rules.types import WASTE_RULES
from alerting.store import AlertRow
from core.clock import ManualClock
from core.db import make_engine
from core.waste_store import WasteBagEventRow, WasteBagRow
from tests.e2e.conftest import ROOT, CollectorProcess, Env, wait_until
from tests.e2e.test_alerting import AlertingProcess
from tests.web.auth_helpers import add_test_users, login
from web.app import create_app

pytestmark = pytest.mark.e2e

SCENARIO = ROOT / "simulators" / "scenarios" / "waste-anomalies.yaml"
LOCAL = timedelta(hours=8)


def local_midnight_days_ago(days: int) -> datetime:
    local_now = datetime.now(UTC) + LOCAL
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    return midnight - LOCAL  # in UTC


def test_a_week_of_waste_raises_one_alert_per_anomaly_and_nothing_else(
    env: Env, collector: CollectorProcess, tmp_path: Path
) -> None:
    service = AlertingProcess(env, extra={"CHAINWATCH_ALERTING_CHECKS": "false"})
    service.start()
    # from a local midnight a week ago up to a minute ago: the simulated world ends now, as a real one
    # would (at its end the scanners disconnect; the rules then go on at the clock's time)
    start = local_midnight_days_ago(7)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    jsonl = tmp_path / "waste.jsonl"
    result = env.simulate(
        "--clinics", "10", "--speed", "0", "--seed", "7", "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--duration", f"{int((end - start).total_seconds())}s", "--scenario", str(SCENARIO),
        "--waste-jsonl", str(jsonl),
    )  # fmt: skip
    waste = result["waste"]
    total = result["messages"] + waste["messages"] + waste["status_messages"]
    wait_until(lambda: service.stats().get("received", 0) >= total, 300, "alerting to read the week")

    sql = make_engine(env.settings.sql_url)

    # the collector kept every bag and every distinct scan
    def bag_count() -> int:
        with Session(sql) as s:
            return s.scalar(select(func.count()).select_from(WasteBagRow)) or 0

    wait_until(lambda: bag_count() >= waste["bags_generated"], 60, "the collector's last batch")
    assert bag_count() == waste["bags_generated"]
    with Session(sql) as s:
        conflicts = s.scalar(
            select(func.count()).select_from(WasteBagEventRow).where(WasteBagEventRow.conflict)
        )
    assert conflicts == sum(1 for a in waste["anomalies"] if a["kind"] == "duplicate_scan")

    expected = Counter(
        (a["expected_rule"], a["subject"]) for a in waste["anomalies"] if a["expected_rule"] and a["reached"]
    )
    assert len(expected) == 7, waste["anomalies"]  # every kind but the harmless resend took effect
    scanners = {sub for rule, sub in expected if rule == "device_offline"}

    def waste_alerts() -> Counter[tuple[str, str]]:
        with Session(sql) as s:
            rows = s.scalars(select(AlertRow))
            return Counter(
                (a.rule, a.subject)
                for a in rows
                if a.rule in {r.value for r in WASTE_RULES}
                or (a.rule == "device_offline" and a.subject in scanners)
            )

    wait_until(lambda: waste_alerts() == expected, 60, f"exactly the expected waste alerts {dict(expected)}")
    # ... and they stay so: nothing more comes for the normal bags
    got = waste_alerts()
    assert got == expected

    # the closed-loop rate of the API, at the simulation's end, equals the simulator's ground truth
    app = create_app(env.settings, ManualClock(end.timestamp()))
    add_test_users(app.state.engine, end.timestamp())
    first_day, last_day = (start + LOCAL).date(), (end + LOCAL - timedelta(seconds=1)).date()
    with TestClient(app) as client:
        login(client, "officer")  # the district's officer sees every clinic of the district
        for clinic, truth in waste["clinics"].items():
            r = client.get(
                f"/api/waste/clinics/{clinic}/days", params={"start": str(first_day), "end": str(last_day)}
            )
            assert r.status_code == 200, r.text
            loop = r.json()["closed_loop"]
            assert loop["rate"] == pytest.approx(truth["closed_loop_rate"], abs=1e-4), (clinic, loop, truth)

    # the replay command over the same scans names the same waste-rule alerts
    replayed = Counter()
    proc = env.chainwatch("waste", "replay", str(jsonl), "--until", end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        d = json.loads(line)
        if d["action"] == "fire":
            replayed[(d["rule"], d["subject"])] += 1
    assert replayed == Counter({k: v for k, v in expected.items() if k[0] != "device_offline"})
    service.stop()
