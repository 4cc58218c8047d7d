"""Every query of the Grafana dashboards, as Grafana would send it, against a real InfluxDB filled by a
simulated district: four clinics, from the local midnight two days ago until now, with a power cut, a
freezing room, a probe fault, a network loss and a bag lost in transport, through the real collector
and alerting service.

For every template-variable query, panel target and annotation query, with Grafana's macros and
variables expanded (dashboards.macros) for realistic selections and time ranges, InfluxDB must accept
the query, and each query must return data in at least one selection unless no simulated data can feed
it (listed in MAY_BE_EMPTY with the reason). Then a few panels are checked for the series a user expects.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.influx import InfluxClient, InfluxError
from core.lineprotocol import quote_ident, quote_literal
from dashboards.macros import Selection, expand, panel_range
from dashboards.model import annotation_queries, load_dashboards, panel_queries, variable_queries, variables
from tests.e2e.conftest import CollectorProcess, Env, wait_until
from tests.e2e.test_alerting import AlertingProcess

pytestmark = pytest.mark.e2e

LOCAL = timedelta(hours=8)
CLINICS = 4
# cold-chain trouble in the last day of the run (so the 24 h overview sees it), the lost bag on day 1
# (its alert fires 24 h after the handover)
SCENARIO = """\
name: dashboards
events:
  - {kind: power_cut, clinic: 1, at: "+40h", duration: 6h}
  - {kind: ambient, clinic: 2, at: "+40h", duration: 12h, ambient_c: -15}
  - {kind: probe_fault, clinic: 3, equipment: fridge1, at: "+41h", duration: 20m, fault: disconnected}
  - {kind: network_loss, clinic: 4, at: "+42h", duration: 2h}
  - {kind: lost_bag, clinic: 2, at: "day 1 00:00"}
"""
MIN_INTERVAL = "60s"  # the provisioned data source's timeInterval
PANEL_WIDTH = 1000  # data points Grafana asks for: about the panel's width in pixels
MAY_BE_EMPTY = {
    ("cw-waste", 'panel "暂存超 36/48 小时" target A'): "with daily pickups no bag waits 36 h in the store",
    ("cw-health", 'panel "信号强度" target A'): "the simulated gateways send no rssi",
    ("cw-appliance", 'panel "探头故障与开门" target B'): "the scenario opens no door",
    ("cw-health", 'panel "缓冲深度" target B'): "no simulated outage fills a gateway's week-long buffer",
}


def local_midnight_days_ago(days: int) -> datetime:
    local_now = datetime.now(UTC) + LOCAL
    return local_now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days) - LOCAL


@dataclass
class Run:
    """The answers to one dashboard's queries for one selection and range."""

    name: str
    rows: dict[str, list[dict[str, Any]]]  # where -> series
    sent: dict[str, str]  # where -> the InfluxQL sent


def tag_values(client: InfluxClient, measurement: str, key: str, **where: str) -> list[str]:
    cond = " AND ".join(f"{quote_ident(k)} = {quote_literal(v)}" for k, v in where.items())
    q = f"SHOW TAG VALUES FROM {quote_ident(measurement)} WITH KEY = {quote_ident(key)}"
    return [row[1] for s in client.query(q + (f" WHERE {cond}" if cond else "")) for row in s["values"]]


def run_dashboard(
    client: InfluxClient,
    dashboard: dict[str, Any],
    *,
    name: str,
    dashboard_range: tuple[str, str],
    pick: dict[str, list[str]],
    now_ms: int,
) -> Run:
    """Resolve the variables in order as Grafana does (each query with the selection so far), with
    ``pick`` choosing values (a variable not picked: "All", or the first value when it has no All), then
    run every panel and annotation query. A query InfluxDB refuses fails the test."""
    run = Run(name, {}, {})
    rng = panel_range(dashboard_range, None, now_ms)
    selection: dict[str, Selection] = {}
    queries = {v["name"]: q for v, q in variable_queries(dashboard)}
    for v in variables(dashboard):
        if v["type"] == "custom":
            selection[v["name"]] = Selection((str(v["current"]["value"]),))
            continue
        options = _run(
            client,
            run,
            queries[v["name"]].where,
            expand(queries[v["name"]].text, variables=selection, rng=rng),
        )
        values = [row[1] for s in options for row in s["values"]]
        assert values, f"{dashboard['uid']} {name}: variable {v['name']} has no options"
        multi = bool(v.get("multi"))
        if v["name"] in pick:
            chosen = pick[v["name"]]
            assert set(chosen) <= set(values), f"{v['name']}: {chosen} not among the options {values}"
            selection[v["name"]] = Selection(
                tuple(chosen), multi=multi, include_all=bool(v.get("includeAll"))
            )
        elif v.get("includeAll"):
            selection[v["name"]] = Selection(
                tuple(values), multi=multi, include_all=True, all_selected=True, all_value=v.get("allValue")
            )
        else:
            selection[v["name"]] = Selection((values[0],))
    for q in [*panel_queries(dashboard), *annotation_queries(dashboard)]:
        r = panel_range(dashboard_range, q.time_from, now_ms)
        text = expand(
            q.text,
            variables=selection,
            rng=r,
            max_data_points=q.max_data_points or PANEL_WIDTH,
            min_interval=q.min_interval or MIN_INTERVAL,
        )
        _run(client, run, q.where, text)
    return run


def _run(client: InfluxClient, run: Run, where: str, text: str) -> list[dict[str, Any]]:
    try:
        series = client.query(text)
    except InfluxError as exc:
        pytest.fail(f"{run.name}: InfluxDB refused {where}: {exc}\n  {text}")
    run.rows[where] = series
    run.sent[where] = text
    return series


def points(series: list[dict[str, Any]]) -> int:
    return sum(1 for s in series for row in s["values"] if any(v is not None for v in row[1:]))


@pytest.fixture(autouse=True)
def _collector_stats_every_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector writes its own numbers (collector_stats) every second instead of every minute."""
    monkeypatch.setenv("CHAINWATCH_COLLECTOR_STATS_EVERY_S", "1")


def test_every_dashboard_query_runs_and_shows_the_simulated_district(
    env: Env, collector: CollectorProcess, tmp_path: Path
) -> None:
    service = AlertingProcess(env, extra={"CHAINWATCH_ALERTING_CHECKS": "false"})
    service.start()
    scenario = tmp_path / "dashboards.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    start = local_midnight_days_ago(2)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    result = env.simulate(
        "--clinics", str(CLINICS), "--speed", "0", "--seed", "11",
        "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--duration", f"{int((end - start).total_seconds())}s",
        "--scenario", str(scenario), "--waste",
    )  # fmt: skip
    waste = result["waste"]
    lost = [a for a in waste["anomalies"] if a["kind"] == "lost_bag"]
    assert lost and lost[0]["reached"], waste["anomalies"]
    total = result["messages"] + result["status_messages"] + waste["messages"] + waste["status_messages"]
    wait_until(lambda: service.stats().get("received", 0) >= total, 120, "alerting to read the run")
    wait_until(
        lambda: env.count("temperature", "celsius") >= result["temperature_readings"], 60, "the collector"
    )
    client = env.influx()

    def alert_clinic(rule: str) -> list[str]:
        return tag_values(client, "alert", "clinic", rule=rule)

    wait_until(lambda: alert_clinic("lost_in_transport"), 60, "the lost_in_transport alert")
    wait_until(lambda: alert_clinic("power_outage") and alert_clinic("freeze_alarm"), 60, "cold-chain alerts")
    power_clinic = alert_clinic("power_outage")[0]
    fault_appliance = tag_values(client, "probe_fault", "equipment")[0]
    fault_clinic = tag_values(client, "probe_fault", "clinic", equipment=fault_appliance)[0]
    power_fridge = next(
        e for e in tag_values(client, "temperature", "equipment", clinic=power_clinic) if "fridge" in e
    )

    now_ms = int(time.time() * 1000)
    runs: dict[str, list[Run]] = defaultdict(list)
    for d in load_dashboards():
        names = {v["name"] for v in variables(d)}
        # as shipped (the dashboard's own range, everything selected): InfluxDB must accept it all
        runs[d["uid"]].append(
            run_dashboard(
                client, d, name="default", dashboard_range=(d["time"]["from"], "now"), pick={}, now_ms=now_ms
            )
        )
        # the last 3 days; two clinics, then one clinic and its faulty appliance
        two = {"clinic": sorted({power_clinic, fault_clinic})}
        if "appliance" in names:
            two["appliance"] = [power_fridge]
        one = {"clinic": [fault_clinic]} | ({"appliance": [fault_appliance]} if "appliance" in names else {})
        for name, pick in (("all, 3 days", {}), ("two clinics", two), ("faulty probe", one)):
            runs[d["uid"]].append(
                run_dashboard(
                    client, d, name=name, dashboard_range=("now-3d", "now"), pick=pick, now_ms=now_ms
                )
            )

    # every query returns data in some selection, unless no simulated data can feed it
    local_day = (datetime.now(UTC) + LOCAL).day
    for uid, dash_runs in runs.items():
        for where in dash_runs[0].rows:
            if (uid, where) in MAY_BE_EMPTY:
                continue
            if "本月" in where and local_day == 1:
                continue  # "this month" began after the scenario's trouble (yesterday afternoon)
            if where.startswith("variable"):
                continue  # checked where they are resolved
            got = max(points(r.rows[where]) for r in dash_runs)
            assert got, f"{uid} {where}: no data in any selection; sent:\n  " + "\n  ".join(
                f"{r.name}: {r.sent[where]}" for r in dash_runs
            )

    by_name = {uid: {r.name: r for r in rs} for uid, rs in runs.items()}
    # overview: one latest temperature per appliance of the district
    appliances = tag_values(client, "temperature", "equipment")
    latest = by_name["cw-overview"]["all, 3 days"].rows['panel "设备最新温度" target A']
    assert sorted(s["tags"]["equipment"] for s in latest) == sorted(appliances)
    # overview, two clinics: the power outage counted for the clinic that had it, and only those clinics
    outages = by_name["cw-overview"]["two clinics"].rows['panel "设备离线与停电" target B']
    assert {s["tags"]["clinic"] for s in outages} == {power_clinic}
    alerts = by_name["cw-overview"]["two clinics"].rows['panel "告警（按卫生院和级别）" target A']
    assert alerts and {s["tags"]["clinic"] for s in alerts} <= {power_clinic, fault_clinic}
    # appliance detail: the chosen fridge's own probe series, its band, and its heat alerts
    fridge = by_name["cw-appliance"]["two clinics"]
    assert {s["tags"]["equipment"] for s in fridge.rows['panel "温度与允许范围" target A']} == {power_fridge}
    band = fridge.rows['panel "温度与允许范围" target B']
    assert {row[1] for s in band for row in s["values"] if row[1] is not None} == {2}
    annotations = fridge.rows['annotation "告警 Alerts"']
    assert any(row[2].startswith("heat") for s in annotations for row in s["values"]), annotations
    mkt = [
        row[1] for s in fridge.rows['panel "每日最低/最高/平均动力学温度" target B'] for row in s["values"]
    ]
    assert mkt and all(-5 < v < 40 for v in mkt)
    # the faulty probe shows up on its appliance
    assert points(by_name["cw-appliance"]["faulty probe"].rows['panel "探头故障与开门" target A'])
    # health: the collector's own count of what it wrote, by arrival time, and its dead letters (none)
    written = by_name["cw-health"]["all, 3 days"].rows['panel "数据接收速率" target B']
    assert sum(row[1] or 0 for s in written for row in s["values"]) > 0
    rejected = by_name["cw-health"]["all, 3 days"].rows['panel "死信" target A']
    assert points(rejected) and sum(row[1] or 0 for s in rejected for row in s["values"]) == 0
    # health: the gateway that lost its network came back with its buffer to send
    buffered = by_name["cw-health"]["all, 3 days"].rows['panel "缓冲深度" target A']
    assert max(row[1] or 0 for s in buffered for row in s["values"]) > 60  # over an hour of samples
    # waste: the lost bag is listed by its id
    lost_rows = by_name["cw-waste"]["all, 3 days"].rows['panel "运输途中丢失" target A']
    columns = lost_rows[0]["columns"]
    assert lost[0]["subject"] in {row[columns.index("subject")] for s in lost_rows for row in s["values"]}
    client.close()
