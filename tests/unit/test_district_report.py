"""The district monthly report (issue 6 item 3): a month of three clinics built in SQLite, then the
ranking, its CSV (the numbers), its PDF (text extracted with pypdf) and ``chainwatch report district``.

``seed_month`` is also the month of the district page's tests (tests/web/test_district_page.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerting import lifecycle as lc
from alerting.compliance import month_bounds
from alerting.daily import EquipmentDayRow, init_daily_tables
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import init_alert_tables
from core.cli import main
from core.db import ClinicRow, make_engine
from core.protocol import Category, Stage, WasteEvent
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from core.waste_store import Scan, init_waste_tables, store_waste_events
from web.district_report import (
    district_csv,
    district_pdf,
    district_record,
    only_district,
    ranked,
)
from web.reports import FontMissing, ReportError

DISTRICT = "demo-district"
EMPTY = "empty-thc"  # a clinic of the district with no appliance: nothing to judge
HOUR, DAY = 3600.0, 86400.0
MINUTE = 60.0


def _alert(s: Session, rule: Rule, severity: Severity, subject: str, clinic: str, t: float, **values) -> str:
    (change,) = lc.apply(s, Decision(t, rule, severity, Action.fire, subject, rule.value, clinic, values), t)
    return change.alert_id


def _day(eq: str, clinic: str, day: str, above: float = 0.0) -> EquipmentDayRow:
    return EquipmentDayRow(equipment_id=eq, date=day, clinic_id=clinic, readings=1440, min_c=3.0,
                           max_c=9.0 if above else 6.0, mean_c=5.0, mkt_c=5.1, minutes_below=0,
                           minutes_above=above, excursions=1 if above else 0, gap_minutes=0,
                           covered_minutes=1440)  # fmt: skip


def seed_month(sql: Engine, year: int = 2026, month: int = 11) -> float:
    """Three clinics judged on the 1st–3rd of the month, the others of the demo district with no data:

    - 白河 (baihe): nothing out of range, one alert acknowledged after 5 min, two bags both closed;
    - 清水 (qingshui): 2 h out of range on fridge 1, alerts acknowledged after 10 and 50 min, one bag
      not closed (the docs' example month);
    - 石桥 (shiqiao): 10 h out of range, an alert nobody acknowledged, 3 missed checks.

    Plus ``EMPTY``, a clinic with no appliance. Returns the month's start (epoch s)."""
    for init in (init_alert_tables, init_daily_tables, init_waste_tables):
        init(sql)
    start = month_bounds(year, month)[0]
    first = f"{year:04d}-{month:02d}-01"
    with Session(sql) as s, s.begin():
        s.add(ClinicRow(id=EMPTY, township_id="qingshui", name="清水镇社区服务站"))
        for clinic in ("qingshui", "baihe", "shiqiao"):
            for eq in ("fridge1", "fridge2", "freezer1"):
                above = {("qingshui", "fridge1"): 120.0, ("shiqiao", "fridge1"): 600.0}.get((clinic, eq), 0.0)
                s.add(_day(f"{clinic}-{eq}", f"{clinic}-thc", first, above))
        t = start + 2 * DAY
        a = _alert(s, Rule.heat_warning, Severity.warning, "baihe-fridge1", "baihe-thc", t)
        lc.acknowledge(s, a, "baihe-nurse1", None, t + 5 * MINUTE)
        a = _alert(s, Rule.heat_alarm, Severity.critical, "qingshui-fridge1", "qingshui-thc", t)
        lc.acknowledge(s, a, "qingshui-nurse1", None, t + 10 * MINUTE)
        a = _alert(s, Rule.power_outage, Severity.warning, "qingshui-gw1", "qingshui-thc", t + HOUR)
        lc.acknowledge(s, a, "qingshui-nurse1", None, t + HOUR + 50 * MINUTE)
        _alert(s, Rule.heat_alarm, Severity.critical, "shiqiao-fridge1", "shiqiao-thc", t)
        for n, eq in enumerate(("fridge1", "fridge2", "freezer1")):
            _alert(s, Rule.twice_daily_check, Severity.warning, f"shiqiao-{eq}", "shiqiao-thc",
                   start + n * DAY + 12 * HOUR, missed="am")  # fmt: skip
    scans = []
    for clinic, bag, closed in (("baihe", "b1", True), ("baihe", "b2", True), ("qingshui", "q1", False)):
        stages = [(Stage.generated, 0.0), (Stage.stored, 1.0)]
        if closed:
            stages += [(Stage.handed_over, 5.0), (Stage.received, 7.0), (Stage.disposed, 9.0)]
        for stage, h in stages:
            ev = WasteEvent(f"{bag}-{stage.value}", bag, stage, Category.infectious, 2.0,
                            start + DAY + h * HOUR, "op",
                            "MF-1" if stage is Stage.handed_over else None,
                            "demo-transport" if stage is Stage.handed_over else None)  # fmt: skip
            scans.append(Scan(f"{clinic}-thc", f"{clinic}-scan1", ev))
    store_waste_events(sql, scans, start + 2 * DAY)
    return start


@pytest.fixture
def month(tmp_path: Path):
    sql = make_engine(f"sqlite:///{tmp_path / 'chainwatch.sqlite'}")
    store_registry(sql, load_registry_file(DEMO_REGISTRY))
    start = seed_month(sql)
    now = start + 9 * DAY + 12 * HOUR  # the 10th, noon
    yield sql, now, tmp_path
    sql.dispose()


def _font_available() -> bool:
    from web.reports import register_font

    try:
        register_font()
    except FontMissing:
        return False
    return True


needs_font = pytest.mark.skipif(not _font_available(), reason="no CJK TrueType font (fonts-wqy-zenhei)")


def test_the_ranking_best_first_with_the_clinic_without_data_last(month) -> None:
    sql, now, _ = month
    rec = district_record(sql, DISTRICT, 2026, 11, now)
    by_id = {c.id: c for c in rec.clinics}
    assert len(rec.clinics) == 11
    # baihe and the seven clinics without daily data but with check slots: equal scores share rank 1
    assert by_id["baihe-thc"].compliance.score == 100.0 and by_id["baihe-thc"].rank == 1
    assert by_id["qingshui-thc"].compliance.score == 74.9  # the docs' example month
    assert by_id["qingshui-thc"].rank == 9
    shiqiao = by_id["shiqiao-thc"]
    assert (shiqiao.rank, shiqiao.compliance.score) == (10, 60.1)
    assert rec.clinics[-1].id == EMPTY and rec.clinics[-1].rank is None
    assert rec.clinics[-1].compliance.score is None
    ranks = [c.rank for c in rec.clinics if c.rank is not None]
    assert ranks == sorted(ranks)
    # per clinic and for the district
    assert by_id["qingshui-thc"].median_ack_minutes == 30.0
    assert by_id["shiqiao-thc"].median_ack_minutes is None
    assert by_id["baihe-thc"].closed_loop_rate == 1.0 and by_id["qingshui-thc"].closed_loop_rate == 0.0
    assert rec.median_ack_minutes == 10.0  # 5, 10, 50
    assert rec.closed_loop_rate == pytest.approx(2 / 3)


def test_ranked_shares_ranks_and_puts_the_unjudged_last() -> None:
    from alerting.compliance import Inputs

    good = Inputs(1, 0, 1440, 0, 0, 0, (), 2, 0, 0, 0, 0)
    worse = Inputs(1, 600, 1440, 0, 0, 0, (), 2, 0, 0, 0, 0)
    nothing = Inputs(0, 0, 0, 0, 0, 0, (), 0, 0, 0, 0, 0)
    out = ranked(
        [("z", "Z", "t", worse), ("n", "N", "t", nothing), ("b", "B", "t", good), ("a", "A", "t", good)]
    )
    assert [(c.id, c.rank) for c in out] == [("a", 1), ("b", 1), ("z", 3), ("n", None)]


def test_the_csv_has_every_clinic_its_components_and_the_medians(month) -> None:
    sql, now, _ = month
    text = district_csv(district_record(sql, DISTRICT, 2026, 11, now))
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[1] == ["辖区", DISTRICT, "示范区（虚构）"]
    head = next(r for r in rows if r and r[0] == "排名")
    assert head[4:9] == ["合规评分", "说明", "医废闭环率 %", "确认用时中位数 (min)", "已确认警报数"]
    assert "温度超出范围 得分" in head and "医疗废物闭环 情况" in head
    clinics = {
        r[1]: dict(zip(head, r, strict=True)) for r in rows if len(r) == len(head) and r[1].endswith("thc")
    }
    q = clinics["qingshui-thc"]
    assert (q["排名"], q["合规评分"], q["医废闭环率 %"], q["确认用时中位数 (min)"], q["已确认警报数"]) == (
        "9",
        "74.9",
        "0.0",
        "30.0",
        "2",
    )
    assert q["温度超出范围 得分"] == "96.7"
    assert q["温度超出范围 情况"] == "每台设备超出范围 0.7 小时（共 120 分钟，3 台设备）；无读数 0 分钟"
    assert q["30 分钟内确认警报 情况"] == "2 条警报中 1 条在 30 分钟内确认"
    s = clinics["shiqiao-thc"]
    assert s["确认用时中位数 (min)"] == "" and s["确认用时中位数 情况"] == "无已确认的警报"
    assert s["每日两次温度检查 情况"] == "应做 57 次每日两次检查，漏检 3 次"
    (empty,) = [r for r in rows if len(r) > 1 and r[1] == EMPTY]
    assert empty[0] == "" and empty[4] == "" and "无每日统计数据" in empty[5]  # "—" with why, not 0
    medians = {r[0]: r for r in rows if len(r) == 4}
    assert medians["median_ack_minutes"][2] == "10.0" and "3 条" in medians["median_ack_minutes"][3]
    assert medians["closed_loop_rate"][2] == "66.7"
    assert medians["score"][2] == "100.0"


def test_the_csv_in_english(month) -> None:
    sql, now, _ = month
    text = district_csv(district_record(sql, DISTRICT, 2026, 11, now), "en")
    assert "District compliance report" in text and "Median time to acknowledge (min)" in text
    assert "1 of 2 alert(s) acknowledged within 30 min" in text and "nothing acknowledged" in text


@needs_font
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_pdf_text_has_the_ranking_and_the_components(month, lang) -> None:
    from pypdf import PdfReader

    sql, now, tmp_path = month
    pdf = district_pdf(district_record(sql, DISTRICT, 2026, 11, now), lang)
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join("".join(page.extract_text() for page in reader.pages).split())
    assert "示范区（虚构）" in text and "清水镇卫生院" in text and "石桥镇卫生院" in text
    assert text.index("白河镇卫生院") < text.index("清水镇卫生院") < text.index("石桥镇卫生院")
    if lang == "zh-CN":
        assert "辖区卫生院合规评分月报" in text
        assert "2条警报中1条在30分钟内确认" in text and "闭环率0.0%（1袋中0袋）" in text
        assert "确认用时中位数10分钟" in text
    else:
        assert "Districtcompliancereport" in text and "1of2alert(s)acknowledgedwithin30min" in text
    (tmp_path / f"district-{lang}.pdf").write_bytes(pdf)


@needs_font
def test_every_character_in_the_pdf_has_a_glyph(month) -> None:
    from pypdf import PdfReader
    from reportlab.pdfbase import pdfmetrics

    from web.reports import register_font

    sql, now, _ = month
    pdf = district_pdf(district_record(sql, DISTRICT, 2026, 11, now), "zh-CN")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    cmap = pdfmetrics.getFont(register_font()).face.charToGlyph
    shown = {ch for ch in text if not ch.isspace()}
    assert {"清", "镇", "卫", "生", "院", "闭", "环", "—"} <= shown
    assert sorted(ch for ch in shown if cmap.get(ord(ch), 0) == 0) == []


def test_unknown_district_and_month(month) -> None:
    sql, now, _ = month
    with pytest.raises(ReportError, match="no district 'nowhere'"):
        district_record(sql, "nowhere", 2026, 11, now)
    with pytest.raises(ReportError, match="not started"):
        district_record(sql, DISTRICT, 2027, 1, now)
    assert only_district(sql) == DISTRICT


@needs_font
def test_the_cli_writes_both_files_with_progress(month, monkeypatch, capsys) -> None:
    _sql, _now, tmp_path = month
    monkeypatch.setenv("CHAINWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAINWATCH_DATABASE_URL", "")
    out = tmp_path / "out"
    assert main(["report", "district", "--month", "2026-11", "--out", str(out)]) == 0  # the only district
    lines = capsys.readouterr().out.splitlines()
    pdf, csv_path = out / f"{DISTRICT}-2026-11.pdf", out / f"{DISTRICT}-2026-11.csv"
    assert lines[-2:] == [str(pdf), str(csv_path)]
    assert any("11 clinics" in line for line in lines[:-2])
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "清水镇卫生院" in csv_path.read_text(encoding="utf-8-sig")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--district", "nowhere", "--month", "2026-11"], "no district 'nowhere' in the registry"),
        (["--district", DISTRICT, "--month", "2026-13"], "bad month '2026-13'"),
        (["--month", "2099-01"], "has not started yet"),
    ],
)
def test_the_cli_errors_are_one_line(month, monkeypatch, capsys, args, message) -> None:
    _sql, _now, tmp_path = month
    monkeypatch.setenv("CHAINWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAINWATCH_DATABASE_URL", "")
    assert main(["report", "district", *args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("chainwatch report: ")
    assert not (tmp_path / "out").exists()
