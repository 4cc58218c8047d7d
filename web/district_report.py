"""The district's compliance for a month (issue 6, items 3 and 4), for the district bureau: every clinic
ranked by its compliance score (best first), each score with its five components and their measures,
the waste closed-loop rate and the median time to acknowledge per clinic, and the district's medians.

``district_record`` reads it from SQL (the registry, ``alerting.compliance.gather_many``): the district
page (``web.district_page``) shows it, ``district_csv`` and ``district_pdf`` render it (pure) for
``chainwatch report district`` and the page's downloads. A clinic with nothing to judge has no score and
no rank: it is shown as "—" with why, never as 0. The PDF uses ``web.reports``' font and ``PdfKit``.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerting.compliance import (
    Component,
    Inputs,
    Score,
    component_name,
    describe,
    gather_many,
    month_bounds,
    score,
    unjudged_reason,
)
from alerting.messages import EN, ZH, normalize_lang
from alerting.reconcile import read_many as read_reconciliations
from alerting.reconcile import site_names
from core.clinic_time import stamp
from core.db import ClinicRow, DistrictRow, TownshipRow
from web.reports import FONT_CANDIDATES, PdfKit, ReportError

DASH = "—"


@dataclass(frozen=True, slots=True)
class ClinicCompliance:
    id: str
    name: str
    township: str
    inputs: Inputs
    compliance: Score
    rank: int | None  # 1 = best; None: nothing to judge (listed last)

    @property
    def median_ack_minutes(self) -> float | None:
        return self.inputs.median_response_minutes

    @property
    def closed_loop_rate(self) -> float | None:
        return self.inputs.closed_loop_rate

    def component(self, key: str) -> Component:
        return next(c for c in self.compliance.components if c.key == key)


@dataclass(frozen=True, slots=True)
class DistrictRecord:
    district_id: str
    district_name: str
    year: int
    month: int
    generated_at: float
    clinics: tuple[ClinicCompliance, ...]  # ranked: best first, then those with nothing to judge
    stock_flags: dict[str, int] = field(default_factory=dict)  # clinic -> stock reconciliation flags

    @property
    def month_text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def median_score(self) -> float | None:
        """The median of the clinics' scores (those that could be judged)."""
        judged = [c.compliance.score for c in self.clinics if c.compliance.score is not None]
        return round(statistics.median(judged), 1) if judged else None

    @property
    def response_minutes(self) -> tuple[float, ...]:
        """Every acknowledgement time of the district's alerts this month."""
        return tuple(m for c in self.clinics for m in c.inputs.response_minutes)

    @property
    def median_ack_minutes(self) -> float | None:
        """The median time to acknowledge over all the district's acknowledged alerts."""
        pooled = self.response_minutes
        return statistics.median(pooled) if pooled else None

    @property
    def closed_loop_rate(self) -> float | None:
        """The closed-loop rate of all the district's bags old enough to have closed."""
        bags = sum(c.inputs.bags_old_enough for c in self.clinics)
        return sum(c.inputs.bags_closed for c in self.clinics) / bags if bags else None

    def median_component(self, key: str) -> float | None:
        """The median over the clinics of one component's score (those judged on it)."""
        scores = [c.component(key).score for c in self.clinics]
        judged = [s for s in scores if s is not None]
        return round(statistics.median(judged), 1) if judged else None


def ranked(clinics: Sequence[tuple[str, str, str, Inputs]]) -> tuple[ClinicCompliance, ...]:
    """(id, name, township, inputs) -> scored and ranked, best first; equal scores share a rank (1, 2,
    2, 4), in name order; clinics with nothing to judge come last, without a rank (pure)."""
    scored = [(cid, name, town, i, score(i)) for cid, name, town, i in clinics]
    scored.sort(key=lambda x: (x[4].score is None, -(x[4].score or 0.0), x[1], x[0]))
    out: list[ClinicCompliance] = []
    for n, (cid, name, town, i, s) in enumerate(scored):
        if s.score is None:
            rank = None
        elif out and out[-1].compliance.score == s.score:
            rank = out[-1].rank
        else:
            rank = n + 1
        out.append(ClinicCompliance(cid, name, town, i, s, rank))
    return tuple(out)


def district_clinics(session: Session, district_id: str) -> list[tuple[str, str, str]]:
    """(clinic id, name, township name) of a district, by township then name."""
    rows = session.execute(
        select(ClinicRow.id, ClinicRow.name, TownshipRow.name)
        .join(TownshipRow, TownshipRow.id == ClinicRow.township_id)
        .where(TownshipRow.district_id == district_id)
        .order_by(TownshipRow.name, ClinicRow.name, ClinicRow.id)
    )
    return [(cid, name, town) for cid, name, town in rows]


def district_record(sql: Engine, district_id: str, year: int, month: int, now: float) -> DistrictRecord:
    """The district's compliance for ``year``-``month`` (clinic time) as known at ``now``. Raises
    ``ReportError`` for an unknown district or a month that has not started."""
    if not 1 <= month <= 12 or not 2000 <= year <= 9999:
        raise ReportError(f"no such month {year:04d}-{month:02d}")
    if month_bounds(year, month)[0] > now:
        raise ReportError(f"month {year:04d}-{month:02d} has not started yet")
    with Session(sql) as s:
        row = s.get(DistrictRow, district_id)
        if row is None:
            raise ReportError(f"no district {district_id!r} in the registry")
        name = row.name
        clinics = district_clinics(s, district_id)
    inputs = gather_many(sql, [c[0] for c in clinics], year, month, now)
    from core.stock import init_stock_tables

    init_stock_tables(sql)
    start, end, _first, _last = month_bounds(year, month)
    with Session(sql) as s:
        recs = read_reconciliations(s, [c[0] for c in clinics], start, end, now, site_names(s))
    return DistrictRecord(
        district_id,
        name,
        year,
        month,
        now,
        ranked([(cid, cname, town, inputs[cid]) for cid, cname, town in clinics]),
        {cid: len(r.flags) for cid, r in recs.items()},
    )


def only_district(sql: Engine) -> str:
    """The district when the registry holds one; ``ReportError`` (saying which exist) otherwise."""
    with Session(sql) as s:
        ids = sorted(s.scalars(select(DistrictRow.id)))
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise ReportError("no district in the registry: load one with `chainwatch registry load FILE`")
    raise ReportError(f"{len(ids)} districts in the registry: choose one with --district ({', '.join(ids)})")


# ---------------------------------------------------------------- words shared by the page and report


def minutes_text(minutes: float | None, lang: str) -> str:
    """ "12 分钟" / "12 min"; "—" for None."""
    if minutes is None:
        return DASH
    return f"{minutes:.0f} min" if normalize_lang(lang) == EN else f"{minutes:.0f} 分钟"


def percent_text(rate: float | None) -> str:
    return DASH if rate is None else f"{100.0 * rate:.1f}%"


def score_text(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}"


def ack_why(c: ClinicCompliance, lang: str) -> str:
    """What the median time to acknowledge is made of, or why there is none."""
    n = len(c.inputs.response_minutes)
    if not n:
        return describe(c.component("response_time"), lang)[0]
    return f"{n} acknowledged" if normalize_lang(lang) == EN else f"已确认 {n} 条"


def waste_why(c: ClinicCompliance, lang: str) -> str:
    """What the closed-loop rate is made of, or why there is none."""
    i = c.inputs
    if not i.bags_old_enough:
        return describe(c.component("waste"), lang)[0]
    if normalize_lang(lang) == EN:
        return f"{i.bags_closed} of {i.bags_old_enough} bags"
    return f"{i.bags_old_enough} 袋中 {i.bags_closed} 袋"


def score_why(c: ClinicCompliance, lang: str) -> str:
    """Why a clinic has no score; "" when it has one."""
    return "" if c.compliance.score is not None else unjudged_reason(c.compliance, lang)


# ---------------------------------------------------------------- texts of the report

_T: dict[str, tuple[str, str]] = {
    "title": ("辖区卫生院合规评分月报", "District compliance report"),
    "district": ("辖区", "District"),
    "month": ("月份", "Month"),
    "generated": ("生成时间", "Generated"),
    "rank": ("排名", "Rank"),
    "clinic": ("卫生院", "Clinic"),
    "township": ("乡镇", "Township"),
    "score": ("合规评分", "Compliance score"),
    "why": ("说明", "Why"),
    "closed_loop": ("医废闭环率", "Waste closed-loop rate"),
    "median_ack": ("确认用时中位数", "Median time to acknowledge"),
    "acked": ("已确认警报数", "Alerts acknowledged"),
    "points": ("得分", "score"),
    "measure": ("情况", "measure"),
    "component": ("项目", "Component"),
    "weight": ("权重", "Weight"),
    "how": ("计分方法", "How it is scored"),
    "not_judged": ("不计", "not judged"),
    "section_ranking": ("按合规评分排名", "ranking by compliance score"),
    "section_district": ("辖区中位数", "district medians"),
    "section_rules": ("计分方法", "how each component is scored"),
    "median_of_clinics": ("各卫生院中位数", "median of the clinics"),
    "all_alerts": ("全辖区所有已确认警报（{n} 条）", "every acknowledged alert of the district ({n})"),
    "all_bags": (
        "全辖区所有满 72 小时的医废袋（{n} 袋）",
        "every bag of the district at least 72 h old ({n})",
    ),
    "measure_name": ("指标", "Measure"),
    "value": ("数值", "Value"),
    "how_made": ("计算范围", "Over"),
    "summary": (
        "{n} 所卫生院；合规评分中位数 {score}；确认用时中位数 {ack}（已确认 {acked} 条）；医废闭环率 {rate}",
        "{n} clinics; median compliance score {score}; median time to acknowledge {ack} ({acked} "
        "acknowledged); waste closed-loop rate {rate}",
    ),
    "no_clinics": ("本辖区没有卫生院。", "No clinics in this district."),
    "formula": (
        "合规评分为各项得分的加权平均，无可评项目不计入（其权重分给其他项目）。详见 docs/compliance.md。",
        "The score is the weighted mean of the components that could be judged (the weight of one "
        "with nothing to judge goes to the others). See docs/compliance.md.",
    ),
    "page": ("第 {n} 页", "Page {n}"),
    # ---- stock reconciliation
    "section_stock": ("疫苗库存核对问题数", "vaccine stock reconciliation: flags per clinic"),
    "stock_flags": ("库存核对问题", "Stock flags"),
    "stock_note": (
        "各卫生院本月疫苗库存核对发现的问题条数（已发放未入库、账实不符、过期接种、损耗率超限），"
        "详见各卫生院月度记录。",
        "Each clinic's stock reconciliation flags this month (doses issued and not checked in, books "
        "that do not add up, expired doses given, wastage above the limit): see each clinic's record.",
    ),
}
KEYS = ("temperature", "alert_response", "response_time", "checks", "waste")
# a month judged on every component: its rules (the same for every clinic) for the "how scored" table
RULES = score(Inputs(1, 0, 1440, 0, 1, 1, (1.0,), 2, 0, 1, 1, 0))


def _texts(lang: str) -> dict[str, str]:
    i = 1 if normalize_lang(lang) == EN else 0
    return {k: v[i] for k, v in _T.items()}


def _num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _rank(c: ClinicCompliance) -> str:
    return DASH if c.rank is None else str(c.rank)


# ---------------------------------------------------------------- CSV


def district_csv(rec: DistrictRecord, lang: str = ZH) -> str:
    """The ranking as one CSV (UTF-8 with a BOM, for Excel): a heading; one row per clinic, best first
    (rank, score, closed-loop rate %, median minutes to acknowledge, then each component's score and
    measure; an empty number where there is nothing to judge, with why); the district's medians; how
    each component is scored. Write it with ``encoding="utf-8"``."""
    t = _texts(lang)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([t["title"]])
    w.writerow([t["district"], rec.district_id, rec.district_name])
    w.writerow([t["month"], rec.month_text, t["generated"], stamp(rec.generated_at)])
    w.writerow([])
    w.writerow([f"[{t['section_ranking']}]"])
    head = [
        t["rank"],
        "clinic_id",
        t["clinic"],
        t["township"],
        t["score"],
        t["why"],
        f"{t['closed_loop']} %",
        f"{t['median_ack']} (min)",
        t["acked"],
    ]
    for key in KEYS:
        name = component_name(key, lang)
        head += [f"{name} {t['points']}", f"{name} {t['measure']}"]
    w.writerow(head)
    for c in rec.clinics:
        rate = c.closed_loop_rate
        row: list[Any] = [
            "" if c.rank is None else c.rank,
            c.id,
            c.name,
            c.township,
            _num(c.compliance.score),
            score_why(c, lang),
            "" if rate is None else f"{100 * rate:.1f}",
            _num(c.median_ack_minutes),
            len(c.inputs.response_minutes),
        ]
        for key in KEYS:
            comp = c.component(key)
            row += [_num(comp.score), describe(comp, lang)[0]]
        w.writerow(row)
    w.writerow([])
    w.writerow([f"[{t['section_district']}]"])
    w.writerow(["key", t["measure_name"], t["value"], t["how_made"]])
    rate = rec.closed_loop_rate
    bags = sum(c.inputs.bags_old_enough for c in rec.clinics)
    w.writerow(["score", t["score"], _num(rec.median_score), t["median_of_clinics"]])
    w.writerow(
        [
            "median_ack_minutes",
            f"{t['median_ack']} (min)",
            _num(rec.median_ack_minutes),
            t["all_alerts"].format(n=len(rec.response_minutes)),
        ]
    )
    w.writerow(
        [
            "closed_loop_rate",
            f"{t['closed_loop']} %",
            "" if rate is None else f"{100 * rate:.1f}",
            t["all_bags"].format(n=bags),
        ]
    )
    for key in KEYS:
        name = f"{component_name(key, lang)} {t['points']}"
        w.writerow([key, name, _num(rec.median_component(key)), t["median_of_clinics"]])
    w.writerow([])
    w.writerow([f"[{t['section_rules']}]"])
    w.writerow(["key", t["component"], t["weight"], t["how"]])
    for comp in RULES.components:
        w.writerow([comp.key, component_name(comp.key, lang), f"{comp.weight:g}", describe(comp, lang)[1]])
    w.writerow([])  # ---- stock reconciliation
    w.writerow([f"[{t['section_stock']}]"])
    w.writerow(["clinic_id", t["clinic"], t["stock_flags"]])
    for c in rec.clinics:
        w.writerow([c.id, c.name, rec.stock_flags.get(c.id, 0)])
    return "\ufeff" + out.getvalue()


# ---------------------------------------------------------------- PDF


def district_pdf(
    rec: DistrictRecord, lang: str = ZH, fonts: Sequence[tuple[Path, int]] = FONT_CANDIDATES
) -> bytes:
    """The report as an A4 PDF: heading and the district's medians, the ranking table, then each clinic
    with its components, then how each component is scored. ``FontMissing`` if no CJK font."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Spacer

    kit = PdfKit.make(fonts)
    t = _texts(lang)
    p = kit.p
    width = kit.width
    story: list[Any] = [
        p(t["title"], kit.h1),
        p(f"{t['district']}：{rec.district_name}（{rec.district_id}）", kit.body),
        p(f"{t['month']}：{rec.month_text}　　{t['generated']}：{stamp(rec.generated_at)}", kit.body),
        p(
            t["summary"].format(
                n=len(rec.clinics),
                score=score_text(rec.median_score),
                ack=minutes_text(rec.median_ack_minutes, lang),
                acked=len(rec.response_minutes),
                rate=percent_text(rec.closed_loop_rate),
            ),
            kit.body,
        ),
        Spacer(1, 3 * mm),
        p(t["section_ranking"].capitalize(), kit.h2),
    ]
    if not rec.clinics:
        story.append(p(t["no_clinics"], kit.body))
    else:
        head = [t["rank"], t["clinic"], t["score"], t["closed_loop"], t["median_ack"]]
        rows: list[list[Any]] = [[p(h) for h in head]]
        for c in rec.clinics:
            rows.append(
                [
                    _rank(c),
                    p(f"{c.name}（{c.township}）"),
                    p(score_text(c.compliance.score)),
                    p(f"{percent_text(c.closed_loop_rate)} · {waste_why(c, lang)}"),
                    p(f"{minutes_text(c.median_ack_minutes, lang)} · {ack_why(c, lang)}"),
                ]
            )
        w = [12 * mm, 50 * mm, 22 * mm, 45 * mm]
        story.append(kit.table(rows, [*w, width - sum(w)]))
    for c in rec.clinics:
        place = "" if c.rank is None else f"{c.rank}. "
        title = f"{place}{c.name}（{c.township}，{c.id}）：{t['score']} {score_text(c.compliance.score)}"
        block: list[Any] = [p(title, kit.h3)]
        if c.compliance.score is None:
            block.append(p(score_why(c, lang), kit.body))
        rows = [[p(h) for h in (t["component"], t["weight"], t["points"], t["measure"])]]
        for comp in c.compliance.components:
            rows.append(
                [
                    p(component_name(comp.key, lang)),
                    f"{comp.weight:g}",
                    _num(comp.score) or t["not_judged"],
                    p(describe(comp, lang)[0]),
                ]
            )
        w = [40 * mm, 14 * mm, 16 * mm]
        block.append(kit.table(rows, [*w, width - sum(w)]))
        story.append(KeepTogether(block))
    story.append(p(t["section_rules"].capitalize(), kit.h2))
    rows = [[p(h) for h in (t["component"], t["weight"], t["how"])]]
    for comp in RULES.components:
        rows.append([p(component_name(comp.key, lang)), f"{comp.weight:g}", p(describe(comp, lang)[1])])
    w = [40 * mm, 14 * mm]
    story.append(kit.table(rows, [*w, width - sum(w)]))
    story.append(Spacer(1, 2 * mm))
    story.append(p(t["formula"], kit.body))
    if rec.clinics:  # ---- stock reconciliation
        story.append(p(t["section_stock"].capitalize(), kit.h2))
        rows = [[p(t["clinic"]), p(t["stock_flags"])]]
        rows += [[p(f"{c.name}（{c.township}）"), str(rec.stock_flags.get(c.id, 0))] for c in rec.clinics]
        red = [i + 1 for i, c in enumerate(rec.clinics) if rec.stock_flags.get(c.id, 0)]
        story.append(kit.table(rows, [80 * mm, 30 * mm], red))
        story.append(p(t["stock_note"], kit.body))
    return kit.build(
        story,
        f"{t['title']} {rec.district_name} {rec.month_text}",
        f"ChainWatch · {rec.district_name} · {rec.month_text}",
        t["page"],
    )
