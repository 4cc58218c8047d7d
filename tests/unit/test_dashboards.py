"""The Grafana files as a district bureau gets them: dashboards that load (JSON, fixed unique uids),
that only use the provisioned InfluxDB data source, Chinese titles with English descriptions, the
district → township → clinic → appliance chain; and the query expansion (dashboards.macros) that the
e2e test relies on to send exactly what Grafana sends."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import yaml

from dashboards import DASHBOARD_DIR, DATASOURCE_UID, FOLDER_UID, PROVISIONING_DIR
from dashboards.macros import (
    ExpandError,
    Selection,
    TimeRange,
    expand,
    format_interval,
    interval_ms,
    panel_range,
    parse_time,
)
from dashboards.model import (
    annotation_queries,
    dashboard_files,
    datasource_refs,
    load_dashboards,
    panel_queries,
    panels,
    variable_queries,
    variables,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
UIDS = {"cw-overview", "cw-appliance", "cw-waste", "cw-health"}


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_every_dashboard_parses_and_has_a_fixed_unique_uid() -> None:
    files = dashboard_files()
    assert len(files) == 4
    for f in files:
        json.loads(f.read_text(encoding="utf-8"))  # a broken file fails here with its position
    uids = [d["uid"] for d in load_dashboards()]
    assert sorted(uids) == sorted(UIDS)
    assert all(d.get("id") is None for d in load_dashboards())  # an id would clash in another Grafana


def test_provisioning_points_at_the_dashboards_and_one_influxql_data_source() -> None:
    ds = yaml.safe_load((PROVISIONING_DIR / "datasources" / "chainwatch.yaml").read_text(encoding="utf-8"))
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert (
        source["url"] == "${CHAINWATCH_INFLUX_URL}"
        and source["jsonData"]["dbName"] == "${CHAINWATCH_INFLUX_DB}"
    )
    prov = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "chainwatch.yaml").read_text(encoding="utf-8"))
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["folderUid"] == FOLDER_UID
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD_DIR.name == "json" and DASHBOARD_DIR.parent == PROVISIONING_DIR.parent


@pytest.mark.parametrize("dashboard", load_dashboards(), ids=lambda d: d["uid"])
def test_every_query_uses_only_the_provisioned_data_source(dashboard: dict) -> None:
    refs = list(datasource_refs(dashboard))
    assert refs
    wrong = [(where, ref) for where, ref in refs if ref != {"type": "influxdb", "uid": DATASOURCE_UID}]
    assert not wrong
    for p in panels(dashboard):
        # a panel either queries our data source or is a text panel
        assert p.get("targets") or p["type"] == "text", p["title"]
        for t in p.get("targets", []):
            assert t["rawQuery"] is True and t["query"].strip(), (p["title"], t["refId"])


@pytest.mark.parametrize("dashboard", load_dashboards(), ids=lambda d: d["uid"])
def test_titles_are_chinese_and_descriptions_english(dashboard: dict) -> None:
    items = [("dashboard", dashboard), *((f"panel {p.get('title')}", p) for p in panels(dashboard))]
    for what, item in items:
        assert CJK.search(item["title"]), f"{what}: title not in Chinese"
        desc = item.get("description", "")
        assert len(desc.split()) >= 5 and not CJK.search(desc), f"{what}: description not in English"
    for v in variables(dashboard):
        assert CJK.search(v["label"]) and re.search(r"[A-Za-z]{4}", v["label"]), v["name"]


@pytest.mark.parametrize("dashboard", load_dashboards(), ids=lambda d: d["uid"])
def test_location_variables_are_chained(dashboard: dict) -> None:
    names = [v["name"] for v in variables(dashboard)]
    assert names[:3] == ["district", "township", "clinic"]
    queries = {v["name"]: q.text for v, q in variable_queries(dashboard)}
    assert "$district" in queries["township"]
    assert "$district" in queries["clinic"] and "$township" in queries["clinic"]
    if "appliance" in queries:
        assert names.index("appliance") == 3 and "$clinic" in queries["appliance"]
    # every query filters on the chosen clinics (the waste and system pages too), but for the
    # collectors' own numbers, which belong to no clinic
    for q in panel_queries(dashboard):
        if 'FROM "alert" WHERE "subject"' not in q.text and 'FROM "collector_stats"' not in q.text:
            assert "$clinic" in q.text, q.where


def test_each_query_expands_with_no_variable_left() -> None:
    rng = TimeRange(ms("2026-11-20T00:00:00+00:00"), ms("2026-11-27T00:00:00+00:00"))
    for d in load_dashboards():
        sel = {v["name"]: Selection(("x",), multi=True, include_all=True) for v in variables(d)}
        for q in [*panel_queries(d), *annotation_queries(d), *(q for _, q in variable_queries(d))]:
            text = expand(q.text, variables=sel, rng=rng)
            assert "$" not in text.replace("$/", "/"), (q.where, text)


# --- dashboards.macros: what Grafana sends --------------------------------------------------------


def test_time_filter_and_interval_as_grafanas_backend_writes_them() -> None:
    rng = TimeRange(1_700_000_000_000, 1_700_086_400_000)  # 24 h
    text = expand(
        "SELECT mean(celsius) FROM t WHERE $timeFilter GROUP BY time($__interval) -- $__interval_ms",
        variables={},
        rng=rng,
        max_data_points=1000,
    )
    # 86 400 s / 1000 points = 86.4 s -> Grafana's step 1m
    assert text == (
        "SELECT mean(celsius) FROM t WHERE time >= 1700000000000ms and time <= 1700086400000ms "
        "GROUP BY time(1m) -- 60000"
    )


@pytest.mark.parametrize(
    ("span_h", "points", "minimum", "want"),
    [(1, 1000, None, "5s"), (24, 1000, "60s", "1m"), (24 * 7, 1000, "60s", "10m"), (24 * 30, 500, None, "1h"),
     (1, 1000, "60s", "1m"), (24 * 365 * 3, 100, None, "7d")],
)  # fmt: skip
def test_interval_is_rounded_to_grafanas_steps_and_never_below_the_minimum(
    span_h: int, points: int, minimum: str | None, want: str
) -> None:
    rng = TimeRange(0, span_h * 3_600_000)
    assert format_interval(interval_ms(rng, points, minimum)) == want


def test_multi_value_and_all_selections() -> None:
    q = 'SELECT 1 FROM t WHERE "clinic" =~ /^$clinic$/ AND "rule" = \'${rule:raw}\''
    two = Selection(("baihe-thc", "a.b/c"), multi=True, include_all=True)
    rule = Selection(("heat_alarm",))
    rng = TimeRange(0, 1)
    assert expand(q, variables={"clinic": two, "rule": rule}, rng=rng) == (
        'SELECT 1 FROM t WHERE "clinic" =~ /^(baihe-thc|a\\.b\\/c)$/ AND "rule" = \'heat_alarm\''
    )
    everything = Selection(("a", "b"), multi=True, include_all=True, all_selected=True, all_value=".*")
    assert expand("/^$clinic$/", variables={"clinic": everything}, rng=rng) == "/^.*$/"
    no_custom_all = Selection(("a", "b"), multi=True, include_all=True, all_selected=True)
    assert expand("/^${clinic}$/", variables={"clinic": no_custom_all}, rng=rng) == "/^(a|b)$/"
    one = Selection(("x.y",), multi=True)
    assert expand("/^[[clinic]]$/", variables={"clinic": one}, rng=rng) == "/^x\\.y$/"


def test_a_single_value_is_escaped_only_inside_a_regex() -> None:
    one = {"appliance": Selection(("fridge.1",)), "low": Selection(("-25",))}
    rng = TimeRange(0, 1)
    q = "SELECT mean(c) * 0 + $low FROM t WHERE \"subject\" =~ /^$appliance$/ AND e = '$appliance'"
    assert expand(q, variables=one, rng=rng) == (
        "SELECT mean(c) * 0 + -25 FROM t WHERE \"subject\" =~ /^fridge\\.1$/ AND e = 'fridge.1'"
    )
    assert expand("${appliance:regex}", variables=one, rng=rng) == "fridge\\.1"


def test_an_unknown_variable_is_an_error_not_a_silent_dollar() -> None:
    with pytest.raises(ExpandError, match=r"\$clinc"):
        expand("WHERE clinic =~ /^$clinc$/", variables={}, rng=TimeRange(0, 1))


def test_relative_times_round_in_clinic_time() -> None:
    now = ms("2026-11-26T06:30:00+00:00")  # 14:30 in the clinics (UTC+8)
    assert parse_time("now-24h", now, round_up=False) == now - 86_400_000
    assert parse_time("now/d", now, round_up=False) == ms("2026-11-25T16:00:00+00:00")
    assert parse_time("now/M", now, round_up=False) == ms("2026-10-31T16:00:00+00:00")
    assert parse_time("now/M", now, round_up=True) == ms("2026-11-30T16:00:00+00:00") - 1
    # a panel's relative time: "this month so far", "the last 30 days from midnight"
    assert panel_range(("now-24h", "now"), "now/M", now) == TimeRange(ms("2026-10-31T16:00:00+00:00"), now)
    assert panel_range(("now-24h", "now"), "30d", now) == TimeRange(now - 30 * 86_400_000, now)
    assert panel_range(("now-7d", "now"), None, now) == TimeRange(now - 7 * 86_400_000, now)
    assert panel_range(("now-7d", "now"), "now-30d/d", now).from_ms == ms("2026-10-26T16:00:00+00:00")
    with pytest.raises(ExpandError):
        parse_time("yesterday", now, round_up=False)
    assert datetime.fromtimestamp(now / 1000, UTC).hour == 6
