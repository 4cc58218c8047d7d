"""The compliance score: each component from its measure, the weighted mean, components with nothing
to judge leaving their weight to the others; and a month read from SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from alerting import lifecycle as lc
from alerting.compliance import (
    Inputs,
    component_name,
    describe,
    gather,
    gather_many,
    month_bounds,
    score,
    unjudged_reason,
)
from alerting.daily import EquipmentDayRow, init_daily_tables
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import init_alert_tables
from core.db import make_engine
from core.protocol import Category, Stage, WasteEvent
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from core.waste_store import Scan, init_waste_tables, store_waste_events

PERFECT = Inputs(3, 0, 3 * 30 * 1440, 0, 0, 0, (), 180, 0, 100, 100, 0)


def comp(s, key):
    return next(c for c in s.components if c.key == key)


def test_a_perfect_month_scores_100_and_says_why() -> None:
    s = score(PERFECT)
    assert s.score == 100.0
    assert comp(s, "alert_response").value == "no alert"
    assert comp(s, "response_time").score is None  # nothing to judge: its weight goes to the others
    assert {c.key for c in s.components} == {
        "temperature",
        "alert_response",
        "response_time",
        "checks",
        "waste",
    }


@pytest.mark.parametrize(
    ("change", "key", "want"),
    [
        ({"minutes_out_of_range": 3 * 60 * 4}, "temperature", 80.0),  # 4 h per appliance: -20
        ({"minutes_out_of_range": 3 * 60 * 30}, "temperature", 0.0),
        ({"alerts": 4, "acked_within_30": 3, "response_minutes": (5, 10, 20, 90)}, "alert_response", 75.0),
        ({"alerts": 4, "acked_within_30": 3, "response_minutes": (5, 10, 20, 90)}, "response_time", 100.0),
        ({"alerts": 2, "acked_within_30": 0, "response_minutes": (60, 80)}, "response_time", 47.6),  # 70 min
        ({"missed_checks": 18}, "checks", 90.0),
        ({"bags_closed": 95, "storage_overdue_alerts": 2}, "waste", 85.0),
    ],
)
def test_each_component(change, key, want) -> None:
    from dataclasses import replace

    assert comp(score(replace(PERFECT, **change)), key).score == want


def test_the_weighted_mean_leaves_out_what_cannot_be_judged() -> None:
    from dataclasses import replace

    s = score(replace(PERFECT, missed_checks=90, bags_old_enough=0, bags_closed=0))
    # temperature 100 (35), alerts 100 (25), checks 50 (20); response time and waste not judged
    assert s.score == round((35 * 100 + 25 * 100 + 20 * 50) / 80, 1)
    assert comp(s, "waste").value == "no waste tracked"


def test_a_month_from_sql(tmp_path: Path) -> None:
    sql = make_engine(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store_registry(sql, load_registry_file(DEMO_REGISTRY))
    for init in (init_alert_tables, init_daily_tables, init_waste_tables):
        init(sql)
    start, _end, _first, _last = month_bounds(2026, 11)
    clinic = "qingshui-thc"
    with Session(sql) as s, s.begin():
        for eq in ("qingshui-fridge1", "qingshui-fridge2", "qingshui-freezer1"):
            s.add(EquipmentDayRow(equipment_id=eq, date="2026-11-03", clinic_id=clinic, readings=1440,
                                  minutes_below=0, minutes_above=120 if eq == "qingshui-fridge1" else 0,
                                  excursions=1, gap_minutes=0, covered_minutes=1440))  # fmt: skip
        t = start + 2 * 86400
        heat = Decision(
            t, Rule.heat_alarm, Severity.critical, Action.fire, "qingshui-fridge1", "heat", clinic, {}
        )
        (fired,) = lc.apply(s, heat, t)
        lc.acknowledge(s, fired.alert_id, "qingshui-nurse1", None, t + 10 * 60)
        late = Decision(
            t, Rule.power_outage, Severity.warning, Action.fire, "qingshui-gw1", "power", clinic, {}
        )
        (power,) = lc.apply(s, late, t)
        lc.acknowledge(s, power.alert_id, "qingshui-nurse1", None, t + 50 * 60)
    bag = WasteEvent("e1", "b1", Stage.generated, Category.infectious, 2.0, start + 86400, "op")
    store_waste_events(sql, [Scan(clinic, "qingshui-scan1", bag)], start + 86400)
    now = start + 10 * 86400
    i = gather(sql, clinic, 2026, 11, now)
    assert (i.appliances, i.minutes_out_of_range, i.alerts, i.acked_within_30) == (3, 120, 2, 1)
    assert sorted(i.response_minutes) == [10.0, 50.0]
    assert (i.check_slots, i.bags_old_enough, i.bags_closed) == (2 * 10 * 3, 1, 0)
    s = score(i)
    assert comp(s, "alert_response").score == 50.0 and comp(s, "waste").score == 0.0
    assert 0 < s.score < 100


def test_the_example_in_the_docs() -> None:
    i = Inputs(3, 120, 3 * 1440, 0, 2, 1, (10.0, 50.0), 180, 0, 1, 0, 0)
    s = score(i)
    assert [(c.key, c.score) for c in s.components] == [
        ("temperature", 96.7),
        ("alert_response", 50.0),
        ("response_time", 85.7),
        ("checks", 100.0),
        ("waste", 0.0),
    ]
    assert s.score == 74.9
    text = (Path(__file__).resolve().parents[2] / "docs" / "compliance.md").read_text(encoding="utf-8")
    assert "= 74.9" in text


# ---------------------------------------------------------------- the texts, in zh-CN and English


def test_the_measures_and_rules_in_chinese_and_english() -> None:
    s = score(Inputs(3, 120, 3 * 1440, 30, 2, 1, (10.0, 50.0), 180, 4, 4, 3, 1))
    temp, answered, timing, checks, waste = s.components
    assert describe(temp) == (
        "每台设备超出范围 0.7 小时（共 120 分钟，3 台设备）；无读数 30 分钟",
        "100 − 每台设备每超出范围 1 小时扣 5 分（20 小时及以上：0）",
    )
    assert describe(temp, "en")[0] == (
        "0.7 h out of range per appliance (120 min in all, 3 appliance(s)); 30 min without readings"
    )
    assert describe(answered) == ("2 条警报中 1 条在 30 分钟内确认", "30 分钟内确认的比例 × 100")
    assert describe(timing)[0] == "确认用时中位数 30 分钟（已确认 2 条）"
    assert describe(checks)[0] == "应做 180 次每日两次检查，漏检 4 次"
    assert describe(waste, "en")[0] == "closed-loop rate 75.0 % (3 of 4 bags); 1 storage-overdue alert(s)"
    assert describe(waste)[0] == "闭环率 75.0%（4 袋中 3 袋）；暂存超时警报 1 条"
    assert (
        component_name("checks") == "每日两次温度检查"
        and component_name("checks", "en") == "Twice-daily checks"
    )
    # the numbers are kept as numbers; the English texts stay where existing callers read them
    assert waste.facts == {"bags_old_enough": 4.0, "bags_closed": 3.0, "storage_overdue_alerts": 1.0}
    assert (waste.value, waste.rule) == describe(waste, "en")


def test_nothing_to_judge_in_both_languages() -> None:
    s = score(PERFECT)
    assert describe(comp(s, "alert_response")) == ("本月无警报", "无警报：100")
    assert describe(comp(s, "response_time")) == ("无已确认的警报", "—")
    empty = score(Inputs(0, 0, 0, 0, 0, 0, (), 0, 0, 0, 0, 0))
    assert empty.score is None  # no statistics, no check due, no waste, no alert: "—", not 100
    assert unjudged_reason(empty) == "无每日统计数据；本月无警报；无应做的检查；无医疗废物追踪记录"
    assert unjudged_reason(empty, "en") == "no daily statistics; no alert; no check due; no waste tracked"
    # one alert, nothing else: judged on that alert alone
    assert score(Inputs(0, 0, 0, 0, 1, 0, (), 0, 0, 0, 0, 0)).score == 0.0


def test_the_json_keeps_its_shape_and_adds_the_texts() -> None:
    doc = score(PERFECT).as_json()
    assert doc["score"] == 100.0
    first = doc["components"][0]
    assert {"key", "weight", "score", "value", "rule"} <= set(first)  # as before
    assert first["value"].startswith("0.0 h out of range per appliance")
    assert first["facts"]["appliances"] == 3.0
    assert first["texts"]["zh-CN"]["name"] == "温度超出范围"
    assert first["texts"]["zh-CN"]["value"].startswith("每台设备超出范围 0.0 小时")
    assert first["texts"]["en"]["rule"] == "100 − 5 per hour out of range per appliance (20 h or more: 0)"
    json.dumps(doc, ensure_ascii=False)  # JSON as it is


# ---------------------------------------------------------------- a district at once


@pytest.mark.parametrize("day", [9.5, 25.2, 40.0])  # mid-month, late, after the month
def test_gather_many_gives_what_gather_gives_per_clinic(tmp_path: Path, day: float) -> None:
    from tests.unit.test_district_report import EMPTY, seed_month

    sql = make_engine(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store_registry(sql, load_registry_file(DEMO_REGISTRY))
    start = seed_month(sql)
    with Session(sql) as s, s.begin():  # a day outside the month and a non-vaccine row must not count
        s.add(EquipmentDayRow(equipment_id="qingshui-fridge1", date="2026-10-31", clinic_id="qingshui-thc",
                              readings=1, minutes_below=999, minutes_above=0, excursions=1, gap_minutes=0,
                              covered_minutes=1))  # fmt: skip
        s.add(EquipmentDayRow(equipment_id="qingshui-wastestore", date="2026-11-02", clinic_id="qingshui-thc",
                              readings=1, minutes_below=0, minutes_above=777, excursions=1, gap_minutes=5,
                              covered_minutes=1))  # fmt: skip
    now = start + day * 86400
    clinics = [c.id for c in load_registry_file(DEMO_REGISTRY).clinics()] + [EMPTY, "no-such-clinic"]
    many = gather_many(sql, clinics, 2026, 11, now)
    assert set(many) == set(clinics)
    for clinic in clinics:
        assert many[clinic] == gather(sql, clinic, 2026, 11, now), clinic
    q = many["qingshui-thc"]  # not a comparison of two empty months
    assert (q.appliances, q.minutes_out_of_range, q.alerts, q.bags_old_enough) == (3, 120.0, 2, 1)
    assert many["shiqiao-thc"].missed_checks == 3 and many["baihe-thc"].bags_closed == 2
    sql.dispose()
