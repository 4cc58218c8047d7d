"""The monthly cold-chain record of a clinic (issue 6, item 3): what the paper cold-chain log is, per
appliance: each day's twice-daily readings (who, when, °C), min / max / mean and MKT, a chart of the
month against the allowed range, every excursion alert with its duration, acknowledgement and
corrective action; and the clinic's compliance score with its components.

``monthly_record`` reads it from SQL (registry, daily statistics, checks, alerts); ``record_csv`` and
``record_pdf`` render it (pure); the compliance texts are in the record's language
(``alerting.compliance.describe``). The PDF needs a CJK TrueType font reportlab can read: reportlab does
not read the CFF outlines of Debian's fonts-noto-cjk, so fonts-wqy-zenhei is what works on Debian.
``register_font`` and ``PdfKit`` (styles, paragraphs, tables, A4 build with a footer) are shared with
the district report (``web.district_report``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from alerting.checks_store import EquipmentCheckRow
from alerting.compliance import Score, component_name, describe, gather, month_bounds, score
from alerting.daily import EquipmentDayRow
from alerting.messages import EN, ZH, normalize_lang
from alerting.reconcile import Reconciliation, flag_lines, read_reconciliation, site_names
from alerting.reconcile import table as stock_table
from alerting.reconcile import texts as stock_texts
from alerting.store import SYSTEM, AlertRow
from core.clinic_time import CLINIC_TZ, stamp
from core.db import ClinicRow, EquipmentRow, PersonRow, TownshipRow
from core.profiles import profile_settings
from core.registry_store import profile_overrides
from web.i18n import corrective_action_text

EXCURSION_RULES = ("heat_warning", "heat_alarm", "cold_warning", "freeze_alarm")
NOON_S = 12 * 3600  # a check before 12:00 clinic time is the morning check

# (path, subfont index): tried in order. Noto CJK comes first as asked, but reportlab 5 cannot read its
# CFF ("postscript outlines are not supported"); the WenQuanYi and AR PL fonts are TrueType.
FONT_CANDIDATES: tuple[tuple[Path, int], ...] = (
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),  # 2: Noto Sans CJK SC
    (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    (Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 0),
)
FONT_NAME = "ChainWatchCJK"
_SUBSTITUTES = {"\u2212": "-", "\u2011": "-", "\u2010": "-", "\u00a0": " ", "\u202f": " "}


class ReportError(ValueError):
    """A report that cannot be made; the message (one line) says why."""


class FontMissing(ReportError):
    pass


# ---------------------------------------------------------------- the record


@dataclass(frozen=True, slots=True)
class CheckLine:
    checked_at: float
    person_id: str
    person: str  # the registry's name, or the id for someone no longer in it
    celsius: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class DayLine:
    date: str  # YYYY-MM-DD, clinic time
    checks: tuple[CheckLine, ...]
    readings: int = 0
    min_c: float | None = None
    max_c: float | None = None
    mean_c: float | None = None
    mkt_c: float | None = None
    minutes_below: float = 0.0
    minutes_above: float = 0.0
    excursions: int = 0
    has_stats: bool = False


@dataclass(frozen=True, slots=True)
class Excursion:
    alert_id: str
    rule: str
    severity: str
    state: str
    started_at: float
    resolved_at: float | None
    acknowledged_by: str | None  # a name (or id, or "system")
    acknowledged_at: float | None
    resolved_by: str | None
    corrective_action: str | None
    message: str  # zh-CN
    message_en: str

    @property
    def duration_s(self) -> float | None:
        """resolved_at − started_at; None: still open ("ongoing")."""
        return None if self.resolved_at is None else max(0.0, self.resolved_at - self.started_at)


@dataclass(frozen=True, slots=True)
class ApplianceRecord:
    id: str
    name: str
    profile: str
    low_c: float
    high_c: float
    days: tuple[DayLine, ...]
    excursions: tuple[Excursion, ...]


@dataclass(frozen=True, slots=True)
class MonthlyRecord:
    clinic_id: str
    clinic_name: str
    township: str
    year: int
    month: int
    generated_at: float
    appliances: tuple[ApplianceRecord, ...]
    compliance: Score
    stock: Reconciliation | None = None  # the vaccine stock reconciliation (alerting.reconcile)

    @property
    def month_text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def _local(t: float) -> datetime:
    return datetime.fromtimestamp(t, CLINIC_TZ)


def monthly_record(sql: Engine, clinic: str, year: int, month: int, now: float) -> MonthlyRecord:
    """The record of ``clinic`` for ``year``-``month`` (clinic time), as known at ``now``. Days after
    ``now`` are left out. Raises ``ReportError`` for an unknown clinic or month."""
    if not 1 <= month <= 12 or not 2000 <= year <= 9999:
        raise ReportError(f"no such month {year:04d}-{month:02d}")
    start, end, first, last = month_bounds(year, month)
    if start > now:
        raise ReportError(f"month {year:04d}-{month:02d} has not started yet")
    inputs = gather(sql, clinic, year, month, now)  # also creates the tables it reads if missing
    from core.stock import init_stock_tables

    init_stock_tables(sql)
    overrides = profile_overrides(sql)
    with Session(sql) as s:
        row = s.get(ClinicRow, clinic)
        if row is None:
            raise ReportError(f"no clinic {clinic!r} in the registry")
        township = s.get(TownshipRow, row.township_id)
        people = {p.id: p.name for p in s.scalars(select(PersonRow))}
        today = _local(now).date()
        days = [first + timedelta(days=i) for i in range((min(last, today) - first).days + 1)]
        appliances: list[ApplianceRecord] = []
        equipment = s.scalars(
            select(EquipmentRow).where(EquipmentRow.clinic_id == clinic).order_by(EquipmentRow.id)
        )
        for eq in equipment:
            settings = profile_settings(eq.profile, overrides)
            if settings.low_c is None or settings.high_c is None:
                continue  # no temperature range (a waste store): not on the cold-chain log
            stats = {
                d.date: d
                for d in s.scalars(
                    select(EquipmentDayRow).where(
                        EquipmentDayRow.equipment_id == eq.id,
                        EquipmentDayRow.date >= first.isoformat(),
                        EquipmentDayRow.date <= last.isoformat(),
                    )
                )
            }
            checks: dict[str, list[CheckLine]] = {}
            for c in s.scalars(
                select(EquipmentCheckRow)
                .where(
                    EquipmentCheckRow.equipment_id == eq.id,
                    EquipmentCheckRow.checked_at >= start,
                    EquipmentCheckRow.checked_at < end,
                )
                .order_by(EquipmentCheckRow.checked_at, EquipmentCheckRow.id)
            ):
                line = CheckLine(
                    c.checked_at, c.person_id, people.get(c.person_id, c.person_id), c.celsius, c.note
                )
                checks.setdefault(_local(c.checked_at).date().isoformat(), []).append(line)
            alerts = s.scalars(
                select(AlertRow)
                .where(
                    AlertRow.subject == eq.id,
                    AlertRow.rule.in_(EXCURSION_RULES),
                    AlertRow.started_at < end,
                    or_(AlertRow.resolved_at.is_(None), AlertRow.resolved_at >= start),
                )
                .order_by(AlertRow.started_at, AlertRow.id)
            )
            appliances.append(
                ApplianceRecord(
                    eq.id,
                    eq.name,
                    eq.profile,
                    settings.low_c,
                    settings.high_c,
                    tuple(_day(d.isoformat(), stats.get(d.isoformat()), checks) for d in days),
                    tuple(_excursion(a, people) for a in alerts),
                )
            )
        return MonthlyRecord(
            clinic,
            row.name,
            township.name if township is not None else row.township_id,
            year,
            month,
            now,
            tuple(appliances),
            score(inputs),
            read_reconciliation(s, clinic, start, end, now, site_names(s)),
        )


def _day(day: str, st: EquipmentDayRow | None, checks: dict[str, list[CheckLine]]) -> DayLine:
    done = tuple(checks.get(day, ()))
    if st is None:
        return DayLine(day, done)
    return DayLine(
        day,
        done,
        st.readings,
        st.min_c,
        st.max_c,
        st.mean_c,
        st.mkt_c,
        st.minutes_below,
        st.minutes_above,
        st.excursions,
        True,
    )


def _who(person: str | None, people: dict[str, str]) -> str | None:
    if person is None:
        return None
    return people.get(person, person)


def _excursion(a: AlertRow, people: dict[str, str]) -> Excursion:
    return Excursion(
        a.id,
        a.rule,
        a.severity,
        a.state,
        a.started_at,
        a.resolved_at,
        _who(a.acknowledged_by, people),
        a.acknowledged_at,
        _who(a.resolved_by, people),
        a.corrective_action,
        a.message,
        a.message_en,
    )


# ---------------------------------------------------------------- texts

_T: dict[str, tuple[str, str]] = {
    "title": ("疫苗冷链温度月度记录", "Vaccine cold-chain monthly record"),
    "clinic": ("单位", "Clinic"),
    "month": ("月份", "Month"),
    "generated": ("生成时间", "Generated"),
    "appliance": ("设备", "Appliance"),
    "range": ("允许范围", "Allowed range"),
    "date": ("日期", "Date"),
    "am": ("上午检查", "Morning check"),
    "pm": ("下午检查", "Afternoon check"),
    "time": ("时间", "Time"),
    "person": ("记录人", "Person"),
    "celsius": ("温度 °C", "°C"),
    "note": ("备注", "Note"),
    "readings": ("读数个数", "Readings"),
    "min": ("最低 °C", "Min °C"),
    "max": ("最高 °C", "Max °C"),
    "mean": ("平均 °C", "Mean °C"),
    "mkt": ("MKT °C", "MKT °C"),
    "below": ("低于范围 分钟", "Min. below"),
    "above": ("高于范围 分钟", "Min. above"),
    "excursions": ("超温次数", "Excursions"),
    "chart": ("本月每日最低/最高温度", "Daily min / max this month"),
    "excursion_table": ("本月温度超标警报", "Excursion alerts this month"),
    "no_excursion": ("本月无温度超标警报。", "No excursion alert this month."),
    "alert": ("警报", "Alert"),
    "rule": ("类型", "Type"),
    "start": ("开始", "Start"),
    "duration": ("持续", "Duration"),
    "ongoing": ("未结束", "ongoing"),
    "acked_by": ("确认人", "Acknowledged by"),
    "acked_at": ("确认时间", "Acknowledged at"),
    "resolved_by": ("关闭人", "Closed by"),
    "resolved_at": ("关闭时间", "Closed at"),
    "action": ("纠正措施", "Corrective action"),
    "compliance": ("合规评分", "Compliance score"),
    "component": ("项目", "Component"),
    "weight": ("权重", "Weight"),
    "score": ("得分", "Score"),
    "measure": ("情况", "Measure"),
    "how": ("计分方法", "How it is scored"),
    "not_judged": ("不计", "not judged"),
    "total": ("总分", "Total"),
    "section_check": ("检查记录", "checks"),
    "section_day": ("每日统计", "daily statistics"),
    "section_excursion": ("超温警报", "excursions"),
    "section_compliance": ("合规评分", "compliance"),
    "system": ("系统", "system"),
    "heat_warning": ("高温预警", "Heat warning"),
    "heat_alarm": ("高温报警", "Heat alarm"),
    "cold_warning": ("低温预警", "Cold warning"),
    "freeze_alarm": ("冻结报警", "Freeze alarm"),
    "page": ("第 {n} 页", "Page {n}"),
}


def _texts(lang: str) -> dict[str, str]:
    i = 1 if normalize_lang(lang) == EN else 0
    return {k: v[i] for k, v in _T.items()}


def _num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _when(t: float | None) -> str:
    return "" if t is None else stamp(t)


def _hm(t: float) -> str:
    return _local(t).strftime("%H:%M")


def _duration(seconds: float | None, t: dict[str, str], lang: str) -> str:
    if seconds is None:
        return t["ongoing"]
    minutes = round(seconds / 60.0)
    h, m = divmod(minutes, 60)
    if normalize_lang(lang) == EN:
        return f"{h} h {m:02d} min" if h else f"{m} min"
    return f"{h} 小时 {m:02d} 分" if h else f"{m} 分钟"


def _person(name: str | None, t: dict[str, str]) -> str:
    if name is None:
        return ""
    return t["system"] if name == SYSTEM else name


def _split_checks(day: DayLine) -> tuple[list[CheckLine], list[CheckLine]]:
    am, pm = [], []
    for c in day.checks:
        dt = _local(c.checked_at)
        (am if dt.hour * 3600 + dt.minute * 60 < NOON_S else pm).append(c)
    return am, pm


def _check_text(checks: Sequence[CheckLine]) -> str:
    return "; ".join(f"{_hm(c.checked_at)} {c.person} {_num(c.celsius)}".strip() for c in checks)


# ---------------------------------------------------------------- CSV


def record_csv(rec: MonthlyRecord, lang: str = ZH) -> str:
    """The record as one CSV (UTF-8 with a BOM, so Excel opens the Chinese): a heading, then four
    sections, each a title row, a header row and its rows: every check, every day's statistics per
    appliance, the excursion alerts, the compliance components. Write it with ``encoding="utf-8"``."""
    t = _texts(lang)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([t["title"]])
    w.writerow([t["clinic"], rec.clinic_id, rec.clinic_name, rec.township])
    w.writerow([t["month"], rec.month_text, t["generated"], _when(rec.generated_at)])
    w.writerow([])
    w.writerow([f"[{t['section_check']}]"])
    w.writerow(
        [
            "appliance_id",
            t["appliance"],
            t["date"],
            t["time"],
            "person_id",
            t["person"],
            t["celsius"],
            t["note"],
        ]
    )
    for ap in rec.appliances:
        for d in ap.days:
            for c in d.checks:
                w.writerow(
                    [
                        ap.id,
                        ap.name,
                        d.date,
                        _hm(c.checked_at),
                        c.person_id,
                        c.person,
                        _num(c.celsius),
                        c.note or "",
                    ]
                )
    w.writerow([])
    w.writerow([f"[{t['section_day']}]"])
    w.writerow(
        [
            "appliance_id",
            t["appliance"],
            t["range"],
            t["date"],
            t["am"],
            t["pm"],
            t["readings"],
            t["min"],
            t["max"],
            t["mean"],
            t["mkt"],
            t["below"],
            t["above"],
            t["excursions"],
        ]
    )
    for ap in rec.appliances:
        band = f"{ap.low_c:+g}…{ap.high_c:+g}"
        for d in ap.days:
            am, pm = _split_checks(d)
            stats: list[Any] = (
                [
                    d.readings,
                    _num(d.min_c),
                    _num(d.max_c),
                    _num(d.mean_c),
                    _num(d.mkt_c),
                    f"{d.minutes_below:.0f}",
                    f"{d.minutes_above:.0f}",
                    d.excursions,
                ]
                if d.has_stats
                else [""] * 8
            )
            w.writerow([ap.id, ap.name, band, d.date, _check_text(am), _check_text(pm), *stats])
    w.writerow([])
    w.writerow([f"[{t['section_excursion']}]"])
    w.writerow(
        [
            "appliance_id",
            t["appliance"],
            t["alert"],
            "rule",
            t["rule"],
            t["start"],
            t["duration"],
            t["acked_by"],
            t["acked_at"],
            t["resolved_by"],
            t["resolved_at"],
            t["action"],
        ]
    )
    for ap in rec.appliances:
        for x in ap.excursions:
            w.writerow(
                [
                    ap.id,
                    ap.name,
                    x.alert_id,
                    x.rule,
                    t.get(x.rule, x.rule),
                    _when(x.started_at),
                    _duration(x.duration_s, t, lang),
                    _person(x.acknowledged_by, t),
                    _when(x.acknowledged_at),
                    _person(x.resolved_by, t),
                    _when(x.resolved_at),
                    corrective_action_text(x.corrective_action, lang),
                ]
            )
    w.writerow([])
    w.writerow([f"[{t['section_compliance']}]"])
    w.writerow(["key", t["component"], t["weight"], t["score"], t["measure"], t["how"]])
    for c in rec.compliance.components:
        value, rule = describe(c, lang)
        w.writerow(
            [
                c.key,
                component_name(c.key, lang),
                f"{c.weight:g}",
                _num(c.score) or t["not_judged"],
                value,
                rule,
            ]
        )
    w.writerow(["total", t["total"], "", _num(rec.compliance.score) or t["not_judged"], "", ""])
    if rec.stock is not None:  # ---- stock reconciliation
        st = stock_texts(lang)
        head, rows = stock_table(rec.stock, lang)
        w.writerow([])
        w.writerow([f"[{st['section']}]"])
        w.writerow(["lot_id", *head])
        w.writerows([x.lot.lot_id, *row] for x, row in zip(rec.stock.lots, rows, strict=True))
        w.writerow([])
        w.writerow([f"[{st['flags']}]"])
        w.writerow(["kind", "product_id", "lot_number", "doses", st["flags"]])
        for f, line in zip(rec.stock.flags, flag_lines(rec.stock, lang), strict=True):
            w.writerow([f.kind.value, f.product_id, f.lot_number or "", f.doses, line])
    return "\ufeff" + out.getvalue()


# ---------------------------------------------------------------- PDF


def register_font(candidates: Sequence[tuple[Path, int]] = FONT_CANDIDATES) -> str:
    """Register the first CJK font reportlab can read; its name. ``FontMissing`` if none."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    tried: list[str] = []
    for path, index in candidates:
        name = f"{FONT_NAME}-{path.stem}-{index}"
        if name in pdfmetrics.getRegisteredFontNames():
            return name
        if not path.is_file():
            tried.append(f"{path} (not installed)")
            continue
        try:
            pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=index))
        except (TTFError, OSError) as exc:
            tried.append(f"{path} ({exc})")
            continue
        return name
    raise FontMissing(
        "no CJK TrueType font reportlab can read: install Debian's fonts-wqy-zenhei (tried "
        + "; ".join(tried)
        + ")"
    )


def record_pdf(
    rec: MonthlyRecord, lang: str = ZH, fonts: Sequence[tuple[Path, int]] = FONT_CANDIDATES
) -> bytes:
    """The record as an A4 PDF: a heading, one section per appliance (the daily log table, the chart
    of the month, the excursion alerts), then the compliance components. ``FontMissing`` if no CJK
    font can be used."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Spacer

    kit = PdfKit.make(fonts)
    font, p, table = kit.font, kit.p, kit.table
    body, h1, h2, h3 = kit.body, kit.h1, kit.h2, kit.h3
    t = _texts(lang)

    story: list[Any] = [
        p(t["title"], h1),
        p(f"{t['clinic']}：{rec.clinic_name}（{rec.township}，{rec.clinic_id}）", body),
        p(f"{t['month']}：{rec.month_text}　　{t['generated']}：{_when(rec.generated_at)}", body),
        Spacer(1, 3 * mm),
    ]
    width = A4[0] - 30 * mm
    for n, ap in enumerate(rec.appliances):
        if n:
            story.append(PageBreak())
        story.append(
            p(f"{t['appliance']}：{ap.name}（{ap.id}）　{t['range']} {ap.low_c:+g}…{ap.high_c:+g} °C", h2)
        )
        head = [t["date"], t["am"], t["pm"], t["min"], t["max"], t["mean"], t["mkt"], t["below"], t["above"]]
        rows: list[list[Any]] = [[p(h) for h in head]]
        red: list[int] = []
        for d in ap.days:
            am, pm = _split_checks(d)
            stats = (
                [
                    _num(d.min_c),
                    _num(d.max_c),
                    _num(d.mean_c),
                    _num(d.mkt_c),
                    f"{d.minutes_below:.0f}",
                    f"{d.minutes_above:.0f}",
                ]
                if d.has_stats
                else [""] * 6
            )
            rows.append([d.date[5:], p(_check_text(am)), p(_check_text(pm)), *stats])
            if d.has_stats and (d.minutes_below or d.minutes_above):
                red.append(len(rows) - 1)
        w = [14 * mm, 38 * mm, 38 * mm] + [(width - 90 * mm) / 6] * 6
        story.append(table(rows, w, red))
        story.append(p(t["chart"], h3))
        story.append(_chart(ap, font, width))
        story.append(p(t["excursion_table"], h3))
        if not ap.excursions:
            story.append(p(t["no_excursion"], body))
        else:
            head = [
                t["alert"],
                t["rule"],
                t["start"],
                t["duration"],
                t["acked_by"],
                t["acked_at"],
                t["resolved_by"],
                t["action"],
            ]
            rows = [[p(h) for h in head]]
            for x in ap.excursions:
                rows.append(
                    [
                        p(x.alert_id),
                        p(t.get(x.rule, x.rule)),
                        p(_when(x.started_at)),
                        p(_duration(x.duration_s, t, lang)),
                        p(_person(x.acknowledged_by, t)),
                        p(_when(x.acknowledged_at)),
                        p(f"{_person(x.resolved_by, t)} {_when(x.resolved_at)}".strip()),
                        p(corrective_action_text(x.corrective_action, lang)),
                    ]
                )
            w = [22 * mm, 16 * mm, 21 * mm, 17 * mm, 16 * mm, 21 * mm, 25 * mm]
            story.append(table(rows, [*w, width - sum(w)]))
    story.append(PageBreak() if rec.appliances else Spacer(1, 3 * mm))
    total = _num(rec.compliance.score) or t["not_judged"]
    story.append(p(f"{t['compliance']}：{total}", h2))
    rows = [[p(h) for h in (t["component"], t["weight"], t["score"], t["measure"], t["how"])]]
    for c in rec.compliance.components:
        value, rule = describe(c, lang)
        rows.append(
            [
                p(component_name(c.key, lang)),
                f"{c.weight:g}",
                _num(c.score) or t["not_judged"],
                p(value),
                p(rule),
            ]
        )
    w = [34 * mm, 12 * mm, 14 * mm, 70 * mm]
    story.append(table(rows, [*w, width - sum(w)]))
    if rec.stock is not None:  # ---- stock reconciliation
        st = stock_texts(lang)
        story.append(p(st["section"], h2))
        head, cells = stock_table(rec.stock, lang)
        if not cells:
            story.append(p(st["no_stock"], body))
        else:
            rows = [[p(h) for h in head], *([p(c) for c in row] for row in cells)]
            red = [i + 1 for i, x in enumerate(rec.stock.lots) if x.unaccounted > 0]
            w = [26 * mm, 21 * mm, 20 * mm]
            story.append(table(rows, [*w, *[(width - sum(w)) / 8] * 8], red))
        story.append(p(st["flags"], h3))
        lines = flag_lines(rec.stock, lang)
        for n, line in enumerate(lines, 1):
            story.append(p(f"{n}. {line}", body))
        if not lines:
            story.append(p(st["no_flag"], body))
        story.append(p(st["rule"], kit.small))

    return kit.build(
        story,
        f"{t['title']} {rec.clinic_name} {rec.month_text}",
        f"ChainWatch · {rec.clinic_name} · {rec.month_text}",
        t["page"],
    )


PAGE_MARGIN_MM = 15.0  # left and right; the content is A4 width − 2 × this


@dataclass(frozen=True, slots=True)
class PdfKit:
    """The record's PDF look, for every ChainWatch report (``web.district_report`` too): the CJK font,
    paragraph styles, ``p`` (a paragraph the font can show), ``table`` (gridded, header row shaded,
    red rows), and ``build`` (A4, margins, a footer with the page number)."""

    font: str
    fit: Callable[[str], str]  # characters without a glyph replaced (no boxes in the PDF)
    body: Any
    small: Any
    h1: Any
    h2: Any
    h3: Any

    @classmethod
    def make(cls, fonts: Sequence[tuple[Path, int]] = FONT_CANDIDATES) -> PdfKit:
        """``FontMissing`` if no CJK font can be used."""
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.pdfbase import pdfmetrics

        font = register_font(fonts)
        glyphs = pdfmetrics.getFont(font).face.charToGlyph

        def fit(text: str) -> str:
            """Characters the font has no glyph for (wqy-zenhei lacks U+2212 −) would print as boxes."""
            return "".join(
                ch if ch.isascii() or glyphs.get(ord(ch), 0) else _SUBSTITUTES.get(ch, "?") for ch in text
            )

        body = ParagraphStyle("body", fontName=font, fontSize=8, leading=10, wordWrap="CJK")
        return cls(
            font,
            fit,
            body,
            ParagraphStyle("small", parent=body, fontSize=7, leading=8.5),
            ParagraphStyle("h1", parent=body, fontSize=15, leading=19, spaceAfter=4),
            ParagraphStyle("h2", parent=body, fontSize=12, leading=15, spaceBefore=6, spaceAfter=4),
            ParagraphStyle("h3", parent=body, fontSize=10, leading=13, spaceBefore=6, spaceAfter=3),
        )

    @property
    def width(self) -> float:
        """The width of the content, in points."""
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.units import mm

        return A4[0] - 2 * PAGE_MARGIN_MM * mm

    def p(self, text: str, style: Any = None) -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(_escape(self.fit(text)), style if style is not None else self.small)

    def table(self, rows: list[list[Any]], widths: list[float], red_rows: Sequence[int] = ()) -> Any:
        from reportlab.lib import colors
        from reportlab.platypus import Table, TableStyle

        tb = Table(rows, colWidths=widths, repeatRows=1)
        style: list[Any] = [
            ("FONTNAME", (0, 0), (-1, -1), self.font),
            ("FONTSIZE", (0, 0), (-1, -1), 7),
            ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ]
        style += [("BACKGROUND", (0, r), (-1, r), colors.HexColor("#fde2e2")) for r in red_rows]
        tb.setStyle(TableStyle(style))
        return tb

    def build(self, story: list[Any], title: str, footer: str, page_label: str) -> bytes:
        """The story as A4 PDF bytes; ``footer`` left, ``page_label`` (with ``{n}``) right on each page."""
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.units import mm
        from reportlab.platypus import SimpleDocTemplate

        def on_page(canvas: Any, doc: Any) -> None:
            canvas.saveState()
            canvas.setFont(self.font, 7)
            canvas.drawString(PAGE_MARGIN_MM * mm, 8 * mm, self.fit(footer))
            canvas.drawRightString(
                A4[0] - PAGE_MARGIN_MM * mm, 8 * mm, self.fit(page_label.format(n=doc.page))
            )
            canvas.restoreState()

        out = io.BytesIO()
        doc = SimpleDocTemplate(
            out,
            pagesize=A4,
            leftMargin=PAGE_MARGIN_MM * mm,
            rightMargin=PAGE_MARGIN_MM * mm,
            topMargin=14 * mm,
            bottomMargin=14 * mm,
            title=title,
            author="ChainWatch",
        )
        doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
        return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chart(ap: ApplianceRecord, font: str, width: float) -> Any:
    """Each day's min…max as a bar against the allowed range (shaded): red where the day left it."""
    from reportlab.graphics.shapes import Drawing, Line, Rect, String
    from reportlab.lib import colors

    height, left, bottom, top_pad, right_pad = 150.0, 30.0, 18.0, 6.0, 6.0
    values = [v for d in ap.days for v in (d.min_c, d.max_c) if v is not None]
    lo = min([ap.low_c - 2.0, *values])
    hi = max([ap.high_c + 2.0, *values])
    plot_w, plot_h = width - left - right_pad, height - bottom - top_pad
    n = max(1, len(ap.days))

    def y(c: float) -> float:
        return bottom + (c - lo) / (hi - lo) * plot_h

    def x(i: int) -> float:
        return left + (i + 0.5) * plot_w / n

    g = Drawing(width, height)
    g.add(Rect(left, bottom, plot_w, plot_h, fillColor=None, strokeColor=colors.grey, strokeWidth=0.5))
    g.add(
        Rect(
            left,
            y(ap.low_c),
            plot_w,
            y(ap.high_c) - y(ap.low_c),
            fillColor=colors.HexColor("#dff3e4"),
            strokeColor=None,
        )
    )
    for c in (ap.low_c, ap.high_c):
        g.add(
            Line(
                left,
                y(c),
                left + plot_w,
                y(c),
                strokeColor=colors.HexColor("#2e7d32"),
                strokeWidth=0.6,
                strokeDashArray=[3, 2],
            )
        )
    step = _tick_step(hi - lo)
    tick = step * (lo // step + 1)
    while tick < hi:
        g.add(Line(left - 2, y(tick), left, y(tick), strokeColor=colors.grey, strokeWidth=0.5))
        g.add(String(left - 4, y(tick) - 2.5, f"{tick:+g}", fontName=font, fontSize=6.5, textAnchor="end"))
        tick += step
    g.add(String(left - 4, bottom + plot_h + 1, "°C", fontName=font, fontSize=6.5, textAnchor="end"))
    bar = max(1.5, plot_w / n * 0.5)
    for i, d in enumerate(ap.days):
        if i % 2 == 0 or n <= 16:
            g.add(String(x(i), bottom - 9, d.date[8:], fontName=font, fontSize=6, textAnchor="middle"))
        if d.min_c is None or d.max_c is None:
            continue
        out = d.min_c < ap.low_c or d.max_c > ap.high_c
        colour = colors.HexColor("#c62828") if out else colors.HexColor("#1565c0")
        g.add(
            Rect(
                x(i) - bar / 2,
                y(d.min_c),
                bar,
                max(0.8, y(d.max_c) - y(d.min_c)),
                fillColor=colour,
                strokeColor=None,
            )
        )
    return g


def _tick_step(span: float) -> float:
    for step in (1.0, 2.0, 5.0, 10.0, 20.0):
        if span / step <= 10:
            return step
    return 50.0


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month); ``ReportError`` otherwise."""
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ReportError(f"bad month {text!r}: write it as YYYY-MM, e.g. 2026-11") from None
    return parsed.year, parsed.month
