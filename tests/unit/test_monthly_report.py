"""The monthly cold-chain record (issue 6 item 3): a month built in SQLite, then the record, its CSV,
its PDF (text extracted with pypdf) and ``chainwatch report monthly``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from alerting import lifecycle as lc
from alerting.checks_store import init_check_tables, record_check
from alerting.compliance import month_bounds
from alerting.daily import EquipmentDayRow, init_daily_tables
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import init_alert_tables
from core.cli import main
from core.db import make_engine
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from web.reports import (
    FONT_CANDIDATES,
    FontMissing,
    ReportError,
    monthly_record,
    parse_month,
    record_csv,
    record_pdf,
)

CLINIC = "qingshui-thc"
FRIDGE = "qingshui-fridge1"
ACTION = "疫苗已转移至备用冰箱，已通知维修人员"
HOUR = 3600.0
DAY = 86400.0


def _font_available() -> bool:
    try:
        from web.reports import register_font

        register_font()
    except FontMissing:
        return False
    return True


needs_font = pytest.mark.skipif(not _font_available(), reason="no CJK TrueType font (fonts-wqy-zenhei)")


@pytest.fixture
def month(tmp_path: Path):
    """November 2026 at 清水镇卫生院, seen on the 10th: daily rows for the 1st–5th, checks on the 3rd, a
    heat alarm on fridge 1 on the 3rd, acknowledged after 10 min and resolved with a corrective action."""
    db = tmp_path / "chainwatch.sqlite"
    sql = make_engine(f"sqlite:///{db}")
    store_registry(sql, load_registry_file(DEMO_REGISTRY))
    for init in (init_alert_tables, init_daily_tables, init_check_tables):
        init(sql)
    start, _end, _first, _last = month_bounds(2026, 11)
    with Session(sql) as s, s.begin():
        for day in range(1, 6):
            hot = day == 3
            s.add(
                EquipmentDayRow(
                    equipment_id=FRIDGE,
                    date=f"2026-11-{day:02d}",
                    clinic_id=CLINIC,
                    readings=1440,
                    min_c=3.1 + day / 10,
                    max_c=11.4 if hot else 6.8,
                    mean_c=5.2,
                    mkt_c=5.6 if not hot else 7.9,
                    minutes_below=0,
                    minutes_above=125 if hot else 0,
                    excursions=1 if hot else 0,
                    gap_minutes=0,
                    covered_minutes=1440,
                )
            )
        day3 = start + 2 * DAY
        # checks: morning 08:30 and afternoon 16:45 clinic time on the 3rd, morning on the 4th
        record_check(s, FRIDGE, CLINIC, "qingshui-nurse1", day3 + 8.5 * HOUR, 4.6, None, day3 + 9 * HOUR)
        record_check(
            s, FRIDGE, CLINIC, "qingshui-nurse2", day3 + 16.75 * HOUR, 9.8, "门未关紧", day3 + 17 * HOUR
        )
        record_check(
            s, FRIDGE, CLINIC, "qingshui-nurse1", day3 + DAY + 8 * HOUR, 5.0, None, day3 + DAY + 9 * HOUR
        )
        t = day3 + 14 * HOUR
        heat = Decision(t, Rule.heat_alarm, Severity.critical, Action.fire, FRIDGE, "heat", CLINIC, {})
        (fired,) = lc.apply(s, heat, t)
        lc.acknowledge(s, fired.alert_id, "qingshui-nurse1", "到场处理", t + 10 * 60)
        lc.resolve(s, fired.alert_id, "qingshui-head", ACTION, t + 2 * HOUR + 5 * 60)
    now = start + 9 * DAY + 12 * HOUR
    yield sql, now, fired.alert_id, tmp_path
    sql.dispose()


def test_the_record_holds_the_days_checks_and_excursion(month) -> None:
    sql, now, alert_id, _ = month
    rec = monthly_record(sql, CLINIC, 2026, 11, now)
    assert rec.clinic_name == "清水镇卫生院" and rec.township == "清水镇"
    assert [a.id for a in rec.appliances] == ["qingshui-freezer1", "qingshui-fridge1", "qingshui-fridge2"]
    fridge = next(a for a in rec.appliances if a.id == FRIDGE)
    assert (fridge.low_c, fridge.high_c) == (2.0, 8.0)
    assert [d.date for d in fridge.days] == [f"2026-11-{d:02d}" for d in range(1, 11)]  # up to "now"
    day3 = fridge.days[2]
    assert day3.max_c == 11.4 and day3.minutes_above == 125
    assert [(c.person, c.celsius) for c in day3.checks] == [("王秀英", 4.6), ("李建华", 9.8)]
    assert not fridge.days[6].has_stats and fridge.days[6].checks == ()
    (x,) = fridge.excursions
    assert (x.alert_id, x.rule, x.acknowledged_by, x.corrective_action) == (
        alert_id,
        "heat_alarm",
        "王秀英",
        ACTION,
    )
    assert x.duration_s == 2 * HOUR + 5 * 60
    assert rec.compliance.score is not None
    assert {c.key for c in rec.compliance.components} >= {"temperature", "alert_response", "checks"}


def test_the_csv_has_the_days_readings_and_the_excursion(month) -> None:
    sql, now, alert_id, _ = month
    text = record_csv(monthly_record(sql, CLINIC, 2026, 11, now))
    assert text.startswith("\ufeff")  # Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[1] == ["单位", CLINIC, "清水镇卫生院", "清水镇"]
    checks = [r for r in rows if len(r) == 8 and r[0] == FRIDGE]
    assert [(r[2], r[3], r[5], r[6], r[7]) for r in checks] == [
        ("2026-11-03", "08:30", "王秀英", "4.6", ""),
        ("2026-11-03", "16:45", "李建华", "9.8", "门未关紧"),
        ("2026-11-04", "08:00", "王秀英", "5.0", ""),
    ]
    days = {r[3]: r for r in rows if len(r) == 14 and r[0] == FRIDGE}
    assert sorted(days) == [f"2026-11-{d:02d}" for d in range(1, 11)]
    d3 = days["2026-11-03"]
    assert d3[2] == "+2…+8"
    assert (d3[4], d3[5]) == ("08:30 王秀英 4.6", "16:45 李建华 9.8")
    assert (d3[7], d3[8], d3[10], d3[12]) == ("3.4", "11.4", "7.9", "125")
    assert days["2026-11-08"][6:] == [""] * 8  # no statistics that day
    (exc,) = [r for r in rows if alert_id in r]
    assert exc[3:] == [
        "heat_alarm",
        "高温报警",
        "2026-11-03 14:00",
        "2 小时 05 分",
        "王秀英",
        "2026-11-03 14:10",
        "张丽娟",
        "2026-11-03 16:05",
        ACTION,
    ]
    assert any(r and r[0] == "temperature" for r in rows) and any(r and r[0] == "total" for r in rows)


def test_the_csv_in_english(month) -> None:
    sql, now, _, _ = month
    text = record_csv(monthly_record(sql, CLINIC, 2026, 11, now), "en")
    assert "Heat alarm" in text and "2 h 05 min" in text and "Twice-daily checks" in text


@needs_font
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_pdf_text_has_the_clinic_the_excursion_and_the_action(month, lang) -> None:
    from pypdf import PdfReader

    sql, now, alert_id, tmp_path = month
    pdf = record_pdf(monthly_record(sql, CLINIC, 2026, 11, now), lang)
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    squeezed = "".join(text.split())
    assert "清水镇卫生院" in squeezed
    assert alert_id in squeezed
    assert "".join(ACTION.split()) in squeezed
    assert ("高温报警" if lang == "zh-CN" else "Heatalarm") in squeezed
    assert ("合规评分" if lang == "zh-CN" else "Compliancescore") in squeezed
    assert reader.pages[0].mediabox.width == pytest.approx(595.27, abs=0.1)  # A4
    (tmp_path / f"report-{lang}.pdf").write_bytes(pdf)


def test_no_font_is_one_clear_error(month, tmp_path: Path) -> None:
    sql, now, _, _ = month
    rec = monthly_record(sql, CLINIC, 2026, 11, now)
    with pytest.raises(FontMissing, match="fonts-wqy-zenhei") as err:
        record_pdf(rec, fonts=[(tmp_path / "none.ttc", 0)])
    assert "\n" not in str(err.value)
    assert FONT_CANDIDATES[0][0].name == "NotoSansCJK-Regular.ttc"


def test_unknown_clinic_and_bad_month(month) -> None:
    sql, now, _, _ = month
    with pytest.raises(ReportError, match="no clinic 'nowhere'"):
        monthly_record(sql, "nowhere", 2026, 11, now)
    with pytest.raises(ReportError, match="not started"):
        monthly_record(sql, CLINIC, 2027, 1, now)
    for bad in ("2026-13", "11-2026", "2026/11", ""):
        with pytest.raises(ReportError, match="YYYY-MM"):
            parse_month(bad)
    assert parse_month("2026-11") == (2026, 11)


@needs_font
def test_the_cli_writes_both_files(month, monkeypatch, capsys) -> None:
    _sql, _now, alert_id, tmp_path = month
    monkeypatch.setenv("CHAINWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAINWATCH_DATABASE_URL", "")
    out = tmp_path / "out"
    assert main(["report", "monthly", "--clinic", CLINIC, "--month", "2026-11", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f"{CLINIC}-2026-11.pdf"), str(out / f"{CLINIC}-2026-11.csv")]
    assert (out / f"{CLINIC}-2026-11.pdf").read_bytes().startswith(b"%PDF")
    text = (out / f"{CLINIC}-2026-11.csv").read_text(encoding="utf-8-sig")
    assert alert_id in text and ACTION in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clinic", "nowhere", "--month", "2026-11"], "no clinic 'nowhere' in the registry"),
        (["--clinic", CLINIC, "--month", "2026-13"], "bad month '2026-13'"),
    ],
)
def test_the_cli_errors_are_one_line(month, monkeypatch, capsys, args, message) -> None:
    _sql, _now, _, tmp_path = month
    monkeypatch.setenv("CHAINWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAINWATCH_DATABASE_URL", "")
    assert main(["report", "monthly", *args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("chainwatch report: ")
    assert not (tmp_path / "out").exists()


@needs_font
def test_every_character_in_the_pdf_has_a_glyph_in_the_font(month) -> None:
    """No tofu: without pdftoppm to look at the page, check that the font reportlab embeds has a glyph
    (not .notdef, the box) for every character the PDF shows."""
    from pypdf import PdfReader
    from reportlab.pdfbase import pdfmetrics

    from web.reports import register_font

    sql, now, _, _ = month
    pdf = record_pdf(monthly_record(sql, CLINIC, 2026, 11, now), "zh-CN")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    cmap = pdfmetrics.getFont(register_font()).face.charToGlyph
    shown = {ch for ch in text if not ch.isspace()}
    assert {"清", "镇", "卫", "生", "院", "冷", "链", "报", "警", "°", "…"} <= shown
    assert sorted(ch for ch in shown if cmap.get(ord(ch), 0) == 0) == []
    # compliance's texts (in Chinese) use U+2212, which wqy-zenhei lacks: an ASCII minus, not a box
    assert "100-每台设备每超出范围1小时扣5分" in "".join(text.split())


# ---- stock reconciliation


@pytest.fixture
def stocked(month):
    """The month with vaccine stock at 清水镇卫生院: the district store issued 100 doses of hepatitis B
    on the 2nd, the clinic checked in 90 and gave 20; 50 doses of MMR issued, checked in and 5 given."""
    from dataclasses import replace

    from alerting.reconcile import TRANSIT
    from core.stock import Kind, Movement, ensure_products, lot, record

    sql, now, alert_id, tmp_path = month
    ensure_products(sql)
    start, _end, _first, _last = month_bounds(2026, 11)
    store = ("demo-bureau", "demo-bureau-store")
    with Session(sql) as s, s.begin():
        for product, number, issued, checked_in, given in (
            ("hepb", "HB2611A", 100, 90, 20),
            ("mmr", "M2611", 50, 50, 5),
        ):
            n = lot(s, product, number, "2027-10-31").id
            t = start + DAY + 9 * HOUR
            issue = Movement(n, Kind.moved, *store, issued, t, "bureau-duty1", to_clinic_id=CLINIC)
            check_in = Movement(n, Kind.moved, CLINIC, TRANSIT, checked_in, t + 5 * HOUR, "qingshui-nurse1")
            for m in (
                Movement(n, Kind.received, *store, issued, t - HOUR, "bureau-duty1", source="厂家"),
                replace(issue, to_equipment_id=TRANSIT),
                replace(check_in, to_equipment_id=FRIDGE),
                Movement(n, Kind.administered, CLINIC, FRIDGE, given, t + 2 * DAY, "qingshui-nurse1"),
            ):
                record(s, m, m.at)
    return sql, now, alert_id, tmp_path


def test_the_record_has_the_stock_reconciliation_and_its_flag(stocked) -> None:
    sql, now, _, _ = stocked
    rec = monthly_record(sql, CLINIC, 2026, 11, now)
    assert rec.stock is not None
    lines = {x.lot.lot_number: (x.opening, x.issued, x.administered, x.closing) for x in rec.stock.lots}
    transit = {x.lot.lot_number: x.in_transit for x in rec.stock.lots}
    assert lines == {"HB2611A": (0, 100, 20, 80), "M2611": (0, 50, 5, 45)}
    assert transit == {"HB2611A": 10, "M2611": 0}
    (flag,) = rec.stock.flags
    assert flag.lot_number == "HB2611A" and flag.doses == 10


def test_the_csv_has_the_stock_section_with_the_flag_in_words(stocked) -> None:
    sql, now, _, _ = stocked
    rec = monthly_record(sql, CLINIC, 2026, 11, now)
    rows = list(csv.reader(io.StringIO(record_csv(rec).lstrip("\ufeff"))))
    at = rows.index(["[疫苗库存核对]"])
    head = "疫苗 批号 有效期至 期初 入库 接种 损耗 报废 调出 期末 已发放未入库".split()
    assert rows[at + 1][1:] == head
    assert rows[at + 2][1:] == ["乙型肝炎疫苗", "HB2611A", "2027-10-31", *"0 100 20 0 0 0 80 10".split()]
    flags = rows[rows.index(["[核对发现的问题]"]) + 2]
    assert flags[:4] == ["unaccounted", "hepb", "HB2611A", "10"] and "10 剂未入账" in flags[4]
    english = record_csv(rec, "en")
    assert "[Vaccine stock reconciliation]" in english and "10 doses not accounted for" in english


def test_a_month_without_stock_says_so(month) -> None:
    sql, now, _, _ = month
    rec = monthly_record(sql, CLINIC, 2026, 11, now)
    assert rec.stock is not None and rec.stock.lots == () and rec.stock.flags == ()


@needs_font
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_pdf_has_the_stock_section_and_every_character_a_glyph(stocked, lang) -> None:
    from pypdf import PdfReader
    from reportlab.pdfbase import pdfmetrics

    from web.reports import register_font

    sql, now, _, tmp_path = stocked
    pdf = record_pdf(monthly_record(sql, CLINIC, 2026, 11, now), lang)
    (tmp_path / f"stock-{lang}.pdf").write_bytes(pdf)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    squeezed = "".join(text.split())
    if lang == "zh-CN":
        assert "疫苗库存核对" in squeezed and "HB2611A" in squeezed and "10剂未入账" in squeezed
    else:
        assert "Vaccinestockreconciliation" in squeezed and "10dosesnotaccountedfor" in squeezed
    cmap = pdfmetrics.getFont(register_font()).face.charToGlyph
    assert sorted({ch for ch in text if not ch.isspace() and cmap.get(ord(ch), 0) == 0}) == []


def test_the_district_report_counts_each_clinics_stock_flags(stocked) -> None:
    from web.district_report import district_csv, district_record

    sql, now, _, _ = stocked
    rec = district_record(sql, "demo-district", 2026, 11, now)
    assert rec.stock_flags[CLINIC] == 1 and rec.stock_flags["baihe-thc"] == 0
    rows = list(csv.reader(io.StringIO(district_csv(rec).lstrip("\ufeff"))))
    at = rows.index(["[疫苗库存核对问题数]"])
    assert rows[at + 1] == ["clinic_id", "卫生院", "库存核对问题"]
    assert [CLINIC, "清水镇卫生院", "1"] in rows[at + 2 :]
