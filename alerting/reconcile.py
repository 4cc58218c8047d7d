"""Stock reconciliation (issue 9, item 6), for the district bureau: per clinic and month (clinic time),
for each vaccine lot, do the clinic's books add up, and does every dose issued to the clinic show up
as given, wasted, discarded, moved on or still in stock? What does not is flagged, in words (zh-CN and
English), for the monthly record (``web.reports``), the district report (``web.district_report``) and
``GET /api/stock/reconciliation`` (``web.api_reconcile``). docs/stock.md explains the books.

How an issue between two sites is recorded (docs/stock.md): the issuer records a ``moved`` to the
receiving clinic's holding place ``TRANSIT`` (``to_clinic_id`` = the clinic, ``to_equipment_id`` =
"transit"); the receiving clinic checks the delivery in by moving what it counted from ``TRANSIT``
into an appliance (vials that arrived broken: ``wasted`` from ``TRANSIT``). Two records of one delivery,
one by each side, and books that never go negative (``core.stock``): doses the issuer moved out that
the clinic never checked in stay in ``TRANSIT``, and that is the mismatch reconciliation finds.

Per lot and month: opening + received + moved in − administered − wasted − discarded − moved out =
closing (the clinic's doses in all its places, ``TRANSIT`` included), computed from the month's
movements and compared with the closing stock the books give (``core.stock.replay``). The flags:

- ``unaccounted``: doses issued to the clinic and not checked in (still in ``TRANSIT``) more than
  ``GRACE_S`` after the issue, beyond the lot's tolerance (``tolerance``: less than one vial for
  multi-dose vials, since an opened vial partly used is not a mismatch; none for single-dose vials).
- ``books``: the computed closing stock differs from the books' beyond the tolerance, or the books
  cannot be replayed (a movement changed in the database behind ``core.stock``'s back).
- ``expired_use``: doses administered after the lot's expiry date (clinic time; the expiry day itself
  is still valid).
- ``wastage``: a product's wastage rate, wasted / (administered + wasted) over the month, above
  ``wastage_threshold`` (5 % for single-dose vials, 25 % for multi-dose vials, 50 % for BCG, whose
  reconstituted vial is discarded at the end of the session), judged from ``WASTAGE_MIN_DOSES`` doses.

``reconcile`` is pure (movements in, a ``Reconciliation`` out); ``read_reconciliation`` and
``read_many`` are the thin SQL readers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.clinic_time import CLINIC_TZ, DAY_S
from core.stock import (
    Kind,
    Movement,
    StockError,
    StockMovementRow,
    VaccineLotRow,
    VaccineProductRow,
    movement_of,
    replay,
)

TRANSIT = "transit"  # the receiving clinic's holding place for doses issued to it, not yet checked in
GRACE_S = 3 * DAY_S  # an issue younger than this may still be on its way: not judged yet
WASTAGE_MIN_DOSES = 20  # a product's wastage rate is judged from this many doses (given + wasted)
WASTAGE_SINGLE = 0.05
WASTAGE_MULTI = 0.25
WASTAGE_BY_PRODUCT = {"bcg": 0.50}  # reconstituted, discarded at the end of each session


class FlagKind(StrEnum):
    unaccounted = "unaccounted"
    books = "books"
    expired_use = "expired_use"
    wastage = "wastage"


@dataclass(frozen=True, slots=True)
class LotInfo:
    lot_id: int
    product_id: str
    product: str  # zh-CN
    product_en: str
    lot_number: str
    expiry: str  # YYYY-MM-DD
    doses_per_vial: int


@dataclass(frozen=True, slots=True)
class Flag:
    kind: FlagKind
    product_id: str
    lot_id: int | None  # None: about a product (wastage)
    lot_number: str | None
    doses: int  # the doses that do not add up (wastage: the doses wasted)
    text: str  # zh-CN
    text_en: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "product_id": self.product_id,
            "lot_id": self.lot_id,
            "lot_number": self.lot_number,
            "doses": self.doses,
            "text": self.text,
            "text_en": self.text_en,
        }


@dataclass(frozen=True, slots=True)
class LotLine:
    """One lot at one clinic over one month, in doses."""

    lot: LotInfo
    opening: int
    received: int  # ``received`` at the clinic (from outside ChainWatch's books: a source)
    moved_in: int  # issued to the clinic by another site (into TRANSIT or straight into an appliance)
    administered: int
    wasted: int
    discarded: int
    moved_out: int  # issued by the clinic to other sites
    closing: int  # computed: opening + received + moved_in − administered − wasted − discarded − moved_out
    closing_books: int | None  # what the books give (None: they cannot be replayed)
    in_transit: int  # of the closing stock: issued to the clinic, not checked in
    unaccounted: int  # of those: issued more than GRACE_S before the end, so overdue

    @property
    def issued(self) -> int:
        """Doses that came to the clinic this month: received + moved in."""
        return self.received + self.moved_in

    def as_json(self) -> dict[str, Any]:
        return {
            "lot_id": self.lot.lot_id,
            "product_id": self.lot.product_id,
            "product": self.lot.product,
            "product_en": self.lot.product_en,
            "lot_number": self.lot.lot_number,
            "expiry": self.lot.expiry,
            "doses_per_vial": self.lot.doses_per_vial,
            "opening": self.opening,
            "received": self.received,
            "moved_in": self.moved_in,
            "administered": self.administered,
            "wasted": self.wasted,
            "discarded": self.discarded,
            "moved_out": self.moved_out,
            "closing": self.closing,
            "closing_books": self.closing_books,
            "in_transit": self.in_transit,
            "unaccounted": self.unaccounted,
            "tolerance": tolerance(self.lot.doses_per_vial),
        }


@dataclass(frozen=True, slots=True)
class Wastage:
    product_id: str
    product: str
    product_en: str
    administered: int
    wasted: int
    threshold: float

    @property
    def rate(self) -> float | None:
        n = self.administered + self.wasted
        return self.wasted / n if n else None

    @property
    def judged(self) -> bool:
        return self.administered + self.wasted >= WASTAGE_MIN_DOSES

    def as_json(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "product_id": self.product_id,
            "product": self.product,
            "product_en": self.product_en,
            "administered": self.administered,
            "wasted": self.wasted,
            "rate": None if rate is None else round(rate, 4),
            "threshold": self.threshold,
            "judged": self.judged,
        }


@dataclass(frozen=True, slots=True)
class Reconciliation:
    clinic_id: str
    start: float  # [start, end) of the month, clinic time
    end: float
    until: float  # judged up to here: the month's end, or now for the month under way
    lots: tuple[LotLine, ...]
    wastage: tuple[Wastage, ...]
    flags: tuple[Flag, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "clinic": self.clinic_id,
            "start": self.start,
            "end": self.end,
            "until": self.until,
            "lots": [x.as_json() for x in self.lots],
            "wastage": [w.as_json() for w in self.wastage],
            "flags": [f.as_json() for f in self.flags],
        }


def tolerance(doses_per_vial: int) -> int:
    """Doses that may not add up without a flag: an opened multi-dose vial's remainder (one vial less
    one dose), none for single-dose vials."""
    return doses_per_vial - 1 if doses_per_vial > 1 else 0


def wastage_threshold(product_id: str, doses_per_vial: int) -> float:
    if product_id in WASTAGE_BY_PRODUCT:
        return WASTAGE_BY_PRODUCT[product_id]
    return WASTAGE_MULTI if doses_per_vial > 1 else WASTAGE_SINGLE


# ---------------------------------------------------------------- the pure part


def reconcile(
    clinic_id: str,
    movements: Iterable[Movement],
    lots: Mapping[int, LotInfo],
    start: float,
    end: float,
    until: float | None = None,
    names: Mapping[str, str] | None = None,
) -> Reconciliation:
    """The reconciliation of ``clinic_id`` over [start, end), judged at ``until`` (default ``end``).
    ``movements``: every movement of the lots concerned up to ``until`` (earlier months included: they
    make the opening stock and the books); ``lots``: those lots; ``names``: site id -> name, for words."""
    until = end if until is None else min(until, end)
    names = names or {}
    by_lot: dict[int, list[Movement]] = defaultdict(list)
    for m in movements:
        if m.at < until:
            by_lot[m.lot_id].append(m)
    lines: list[LotLine] = []
    flags: list[Flag] = []
    for lot_id in sorted(by_lot, key=lambda i: (lots[i].product_id, lots[i].lot_number)):
        info = lots[lot_id]
        mine = sorted(by_lot[lot_id], key=lambda m: (m.at, m.id or math.inf))
        if not any(_touches(m, clinic_id) for m in mine):
            continue
        line, issues = _line(clinic_id, info, mine, start, until)
        if not line.opening and not any(start <= m.at and _touches(m, clinic_id) for m in mine):
            continue  # nothing of this lot at the clinic this month
        lines.append(line)
        flags += _lot_flags(clinic_id, line, mine, issues, start, until, names)
    wastage = _wastage(lines)
    flags += [_wastage_flag(w) for w in wastage if w.judged and (w.rate or 0.0) > w.threshold]
    return Reconciliation(clinic_id, start, end, until, tuple(lines), tuple(wastage), tuple(flags))


def _touches(m: Movement, clinic: str) -> bool:
    return m.clinic_id == clinic or m.to_clinic_id == clinic


def _delta(m: Movement, clinic: str) -> int:
    """What a movement does to the clinic's doses (all its places, TRANSIT included)."""
    here = m.clinic_id == clinic
    if m.kind is Kind.received:
        return m.doses if here else 0
    if m.kind is Kind.moved:
        there = (m.to_clinic_id or m.clinic_id) == clinic
        return (m.doses if there else 0) - (m.doses if here else 0)
    if m.kind in (Kind.administered, Kind.wasted, Kind.discarded):
        return -m.doses if here else 0
    return 0  # quarantined, released: within one appliance


def _transit_delta(m: Movement, clinic: str) -> int:
    """What a movement does to the clinic's TRANSIT: issues in (+), check-ins and losses out (−)."""
    into = m.kind in (Kind.moved, Kind.received) and m.to_equipment_id == TRANSIT
    into = into and (m.to_clinic_id or m.clinic_id) == clinic
    if m.kind is Kind.received:
        into = m.clinic_id == clinic and m.equipment_id == TRANSIT
    gone = m.kind in (Kind.moved, Kind.administered, Kind.wasted, Kind.discarded)
    out_of = gone and m.clinic_id == clinic and m.equipment_id == TRANSIT
    return (m.doses if into else 0) - (m.doses if out_of else 0)


def _line(
    clinic: str, info: LotInfo, mine: list[Movement], start: float, until: float
) -> tuple[LotLine, list[Movement]]:
    """The lot's line and the issues into the clinic's TRANSIT (oldest first)."""
    opening = sum(_delta(m, clinic) for m in mine if m.at < start)
    n: dict[str, int] = defaultdict(int)
    for m in mine:
        if m.at < start:
            continue
        here = m.clinic_id == clinic
        if m.kind is Kind.received and here:
            n["received"] += m.doses
        elif m.kind is Kind.moved:
            there = (m.to_clinic_id or m.clinic_id) == clinic
            if there and not here:
                n["moved_in"] += m.doses
            elif here and not there:
                n["moved_out"] += m.doses
        elif here and m.kind in (Kind.administered, Kind.wasted, Kind.discarded):
            n[m.kind.value] += m.doses
    closing = (
        opening + n["received"] + n["moved_in"] - n["administered"] - n["wasted"] - n["discarded"]
    ) - n["moved_out"]
    try:
        books: int | None = sum(b.total for p, b in replay(mine, until).items() if p[1] == clinic)
    except StockError:
        books = None
    in_transit = sum(_transit_delta(m, clinic) for m in mine)
    issues = [m for m in mine if _transit_delta(m, clinic) > 0]
    recent = sum(m.doses for m in issues if m.at > until - GRACE_S)
    line = LotLine(
        info,
        opening,
        n["received"],
        n["moved_in"],
        n["administered"],
        n["wasted"],
        n["discarded"],
        n["moved_out"],
        closing,
        books,
        in_transit,
        max(0, in_transit - recent),
    )
    return line, issues


def _lot_flags(
    clinic: str,
    line: LotLine,
    mine: list[Movement],
    issues: list[Movement],
    start: float,
    until: float,
    names: Mapping[str, str],
) -> list[Flag]:
    info = line.lot
    tol = tolerance(info.doses_per_vial)
    zh_lot, en_lot = f"{info.product} 批号 {info.lot_number}", f"{info.product_en} lot {info.lot_number}"
    out: list[Flag] = []
    if line.unaccounted > tol:
        issued = sum(m.doses for m in issues)
        taken = issued - line.in_transit
        last = issues[-1] if issues else None
        who = names.get(last.clinic_id, last.clinic_id) if last else "?"
        when = _day(last.at) if last else "?"
        out.append(
            Flag(
                FlagKind.unaccounted,
                info.product_id,
                info.lot_id,
                info.lot_number,
                line.unaccounted,
                f"{zh_lot}：发放至本院 {issued} 剂（最近一次 {when} 由 {who} 发放），本院入库 {taken} 剂，"
                f"{line.unaccounted} 剂未入账（未接种、未报损、不在库存中）。请与发放单位核对出库单。",
                f"{en_lot}: {issued} doses issued to this clinic (last by {who} on {when}), {taken} checked "
                f"in; {line.unaccounted} doses not accounted for (not given, wasted or in stock). Check the "
                "issue note with the issuer.",
            )
        )
    if line.closing_books is None:
        out.append(
            Flag(
                FlagKind.books,
                info.product_id,
                info.lot_id,
                info.lot_number,
                0,
                f"{zh_lot}：账目无法重算（有记录使库存为负），请检查本批次的出入库记录。",
                f"{en_lot}: the books cannot be replayed (a record makes the stock negative); check this "
                "lot's movements.",
            )
        )
    elif abs(line.closing - line.closing_books) > tol:
        diff = line.closing - line.closing_books
        out.append(
            Flag(
                FlagKind.books,
                info.product_id,
                info.lot_id,
                info.lot_number,
                abs(diff),
                f"{zh_lot}：期初 {line.opening} + 入库 {line.issued} − 接种 {line.administered} − 损耗 "
                f"{line.wasted} − 报废 {line.discarded} − 调出 {line.moved_out} = {line.closing} 剂，"
                f"账面库存为 {line.closing_books} 剂，相差 {abs(diff)} 剂。",
                f"{en_lot}: opening {line.opening} + in {line.issued} − given {line.administered} − wasted "
                f"{line.wasted} − discarded {line.discarded} − moved out {line.moved_out} = {line.closing} "
                f"doses, the books hold {line.closing_books}: {abs(diff)} doses apart.",
            )
        )
    late = [
        m
        for m in mine
        if m.kind is Kind.administered
        and m.clinic_id == clinic
        and start <= m.at < until
        and _local_date(m.at) > date.fromisoformat(info.expiry)
    ]
    if late:
        doses = sum(m.doses for m in late)
        days = sorted({_day(m.at) for m in late})
        span = days[0] if len(days) == 1 else f"{days[0]}…{days[-1]}"
        out.append(
            Flag(
                FlagKind.expired_use,
                info.product_id,
                info.lot_id,
                info.lot_number,
                doses,
                f"{zh_lot}：有效期至 {info.expiry}，{span} 仍接种 {doses} 剂过期疫苗。",
                f"{en_lot}: expired on {info.expiry}, yet {doses} doses were given on {span}.",
            )
        )
    return out


def _wastage(lines: Sequence[LotLine]) -> list[Wastage]:
    per: dict[str, list[LotLine]] = defaultdict(list)
    for line in lines:
        per[line.lot.product_id].append(line)
    out = []
    for pid in sorted(per):
        info = per[pid][0].lot
        given = sum(x.administered for x in per[pid])
        wasted = sum(x.wasted for x in per[pid])
        if given or wasted:
            out.append(
                Wastage(
                    pid,
                    info.product,
                    info.product_en,
                    given,
                    wasted,
                    wastage_threshold(pid, info.doses_per_vial),
                )
            )
    return out


def _wastage_flag(w: Wastage) -> Flag:
    rate = 100.0 * (w.rate or 0.0)
    limit = 100.0 * w.threshold
    return Flag(
        FlagKind.wastage,
        w.product_id,
        None,
        None,
        w.wasted,
        f"{w.product}：本月损耗率 {rate:.0f}%（损耗 {w.wasted} 剂，接种 {w.administered} 剂），"
        f"超过 {limit:.0f}% 的上限。",
        f"{w.product_en}: wastage {rate:.0f}% this month ({w.wasted} doses wasted, {w.administered} "
        f"given), above the {limit:.0f}% limit.",
    )


def _local_date(t: float) -> date:
    return datetime.fromtimestamp(t, CLINIC_TZ).date()


def _day(t: float) -> str:
    return _local_date(t).isoformat()


# ---------------------------------------------------------------- the SQL reader


def lot_infos(session: Session, lot_ids: Iterable[int]) -> dict[int, LotInfo]:
    ids = sorted(set(lot_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(VaccineLotRow, VaccineProductRow)
        .join(VaccineProductRow, VaccineProductRow.id == VaccineLotRow.product_id)
        .where(VaccineLotRow.id.in_(ids))
    )
    return {
        lot.id: LotInfo(lot.id, p.id, p.name, p.name_en, lot.lot_number, lot.expiry, p.doses_per_vial)
        for lot, p in rows
    }


def read_many(
    session: Session,
    clinic_ids: Sequence[str],
    start: float,
    end: float,
    now: float,
    names: Mapping[str, str] | None = None,
) -> dict[str, Reconciliation]:
    """Each clinic's reconciliation over [start, end) as known at ``now``: every movement of the lots
    that ever touched those clinics, read once."""
    until = min(end, now)
    wanted = list(clinic_ids)
    if not wanted:
        return {}
    M = StockMovementRow
    touching = select(M.lot_id).where(or_(M.clinic_id.in_(wanted), M.to_clinic_id.in_(wanted)), M.at < until)
    rows = session.scalars(
        select(M).where(M.lot_id.in_(touching.distinct()), M.at < until).order_by(M.at, M.id)
    )
    moves = [movement_of(r) for r in rows]
    lots = lot_infos(session, (m.lot_id for m in moves))
    return {
        c: reconcile(c, [m for m in moves if m.lot_id in lots], lots, start, end, until, names)
        for c in wanted
    }


def read_reconciliation(
    session: Session,
    clinic_id: str,
    start: float,
    end: float,
    now: float,
    names: Mapping[str, str] | None = None,
) -> Reconciliation:
    return read_many(session, [clinic_id], start, end, now, names)[clinic_id]


def site_names(session: Session) -> dict[str, str]:
    """Clinic and bureau (district store) ids -> names, for the flags' words."""
    from core.db import ClinicRow, DistrictRow

    out = {c.id: c.name for c in session.scalars(select(ClinicRow))}
    out |= {d.bureau_id: d.bureau_name for d in session.scalars(select(DistrictRow))}
    return out


# ---------------------------------------------------------------- words for the reports

TEXTS: dict[str, tuple[str, str]] = {
    "section": ("疫苗库存核对", "Vaccine stock reconciliation"),
    "product": ("疫苗", "Vaccine"),
    "lot": ("批号", "Lot"),
    "expiry": ("有效期至", "Expiry"),
    "opening": ("期初", "Opening"),
    "received": ("入库", "In"),
    "administered": ("接种", "Given"),
    "wasted": ("损耗", "Wasted"),
    "discarded": ("报废", "Discarded"),
    "moved_out": ("调出", "Moved out"),
    "closing": ("期末", "Closing"),
    "in_transit": ("已发放未入库", "Not checked in"),
    "flags": ("核对发现的问题", "What does not add up"),
    "no_stock": ("本月无疫苗库存记录。", "No vaccine stock recorded this month."),
    "no_flag": ("本月库存账目相符，无异常。", "The stock books add up this month: nothing flagged."),
    "rule": (
        "期初 + 入库 − 接种 − 损耗 − 报废 − 调出 = 期末（剂）。入库含上级发放；已发放未入库超过 3 天、"
        "且超过一支多人份疫苗的剩余剂量者列为问题。详见 docs/stock.md。",
        "Opening + in − given − wasted − discarded − moved out = closing (doses). In: received and "
        "issued to the clinic; doses issued and not checked in after 3 days, beyond what one opened "
        "multi-dose vial holds, are flagged. See docs/stock.md.",
    ),
}
COLUMNS = (
    "product",
    "lot",
    "expiry",
    "opening",
    "received",
    "administered",
    "wasted",
    "discarded",
    "moved_out",
    "closing",
    "in_transit",
)


def texts(lang: str) -> dict[str, str]:
    from alerting.messages import EN, normalize_lang

    i = 1 if normalize_lang(lang) == EN else 0
    return {k: v[i] for k, v in TEXTS.items()}


def table(rec: Reconciliation, lang: str) -> tuple[list[str], list[list[str]]]:
    """The per-lot table of a report: its header and rows (``COLUMNS``), in ``lang``."""
    from alerting.messages import EN, normalize_lang

    t = texts(lang)
    en = normalize_lang(lang) == EN
    rows = [
        [
            x.lot.product_en if en else x.lot.product,
            x.lot.lot_number,
            x.lot.expiry,
            *(
                str(v)
                for v in (
                    x.opening,
                    x.issued,
                    x.administered,
                    x.wasted,
                    x.discarded,
                    x.moved_out,
                    x.closing,
                    x.in_transit,
                )
            ),
        ]
        for x in rec.lots
    ]
    return [t[c] for c in COLUMNS], rows


def flag_lines(rec: Reconciliation, lang: str) -> list[str]:
    from alerting.messages import EN, normalize_lang

    en = normalize_lang(lang) == EN
    return [f.text_en if en else f.text for f in rec.flags]
