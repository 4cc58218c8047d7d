"""Heat and freeze exposure of vaccine lots (issue 9): how much of each lot's heat-stability budget its
time in the clinics' appliances has used, and how long it spent at or below −0.5 °C. For the excursion
impact (which calls ``update_exposure`` after an alarm), the pages and the reports, which read
``latest_exposure``. The model, its reference points, the time-weighting and its limits are in
``docs/exposure.md``: it complements, never replaces, reading the VVM on the vial.

Table ``lot_exposure`` (on ``core.db.Base``): one row per computation of a lot's exposure, never
updated: ``heat_budget_used`` is the fraction (0 = none, 1 = all) of the lot's VVM budget used since
it was received (None: the product has no VVM type), ``freeze_minutes`` the minutes at or below
−0.5 °C (freeze-sensitive products only; None otherwise), ``gap_minutes`` the minutes the lot was in an
appliance whose temperature is not known (None in rows from before it was kept), ``covered_until`` the
time up to which the three are computed, ``computed_at`` when it was computed.

The model (pure, numpy, no I/O): ``days_to_end_point`` (Arrhenius through the VVM type's two WHO
reference points), ``held_pieces`` (what each reading stands for) and ``exposure`` (a lot's stays in
appliances → budget, freeze and gap minutes). The I/O: ``update_exposure`` reads the lots' movements
(``core.stock.intervals``) and their appliances' temperatures from InfluxDB, continues from each lot's
previous row (only the time since its ``covered_until`` is read), and stores one row per lot;
``run_daily`` does it for every lot in stock (the alerting service's daily job).

Several probes, or a lot in several appliances at once (doses split between the refrigerator and a cold
box), count conservatively: at each instant the warmest known temperature among the places holding
doses of the lot counts for heat, and the coldest for freeze. This bounds what any vial of the lot saw.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import Double, Engine, ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.rules.temperature import DS18B20_CODES
from core.db import Base, create_tables
from core.influx import InfluxClient
from core.lineprotocol import quote_literal
from core.registry_store import equipment_list
from core.stock import (
    StockMovementRow,
    VaccineLotRow,
    VaccineProductRow,
    init_stock_tables,
    intervals,
    movements,
    stock,
)

log = logging.getLogger("chainwatch.alerting.exposure")

FREEZE_AT_C = -0.5  # DESIGN §5: the freeze alarm's threshold
KELVIN = 273.15
T5_K = 5.0 + KELVIN
T37_K = 37.0 + KELVIN
DAY_S = 86_400.0
YEAR_D = 365.25
# VVM type -> (days to its end point at +37 °C, days at +5 °C): WHO PQS E006/IND and the VVM types
VVM_REFERENCE_DAYS: dict[int, tuple[float, float]] = {
    30: (30.0, 4 * YEAR_D),
    14: (14.0, 3 * YEAR_D),
    7: (7.0, 2 * YEAR_D),
    2: (2.0, 225.0),
}
GAP_INTERVALS = 3.0  # a reading stands for at most 3 sampling intervals …
GAP_FLOOR_S = 1800.0  # … or 30 minutes, whichever is longer; beyond that the temperature is unknown
LATE_S = 7 * DAY_S  # a gateway buffers a week at 60 s (docs/firmware.md): readings may arrive this late
CHUNK_S = 7 * DAY_S  # InfluxDB is read, and the model computed, a week at a time
DEFAULT_INTERVAL_S = 60.0  # an appliance not in the registry (it has no readings anyway)
PROBE_MIN_C, PROBE_MAX_C = -60.0, 70.0  # DESIGN §5 probe fault: outside is not a temperature
TRIGGER_MAX = 32

FloatArray = NDArray[np.float64]


class LotExposureRow(Base):
    __tablename__ = "lot_exposure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("vaccine_lot.id"))
    computed_at: Mapped[float] = mapped_column(Double)
    covered_until: Mapped[float] = mapped_column(Double)
    heat_budget_used: Mapped[float | None] = mapped_column(Double, nullable=True)
    freeze_minutes: Mapped[float | None] = mapped_column(Double, nullable=True)
    trigger: Mapped[str] = mapped_column(String(32))  # "daily", "alert:{id}", "manual"
    gap_minutes: Mapped[float | None] = mapped_column(Double, nullable=True)

    __table_args__ = (Index("ix_lot_exposure_lot", "lot_id", "computed_at"),)


def init_exposure_tables(engine: Engine) -> None:
    create_tables(engine, [LotExposureRow.__table__])  # type: ignore[arg-type]


def latest_exposure(session: Session, lot_ids: Sequence[int]) -> dict[int, LotExposureRow]:
    """lot id -> its latest exposure row (lots never computed are absent)."""
    if not lot_ids:
        return {}
    newest = (
        select(LotExposureRow.lot_id, func.max(LotExposureRow.id).label("id"))
        .where(LotExposureRow.lot_id.in_(list(lot_ids)))
        .group_by(LotExposureRow.lot_id)
        .subquery()
    )
    rows = session.scalars(select(LotExposureRow).join(newest, LotExposureRow.id == newest.c.id))
    return {r.lot_id: r for r in rows}


# ---------------------------------------------------------------- the model (pure)


def days_to_end_point(vvm_type: int, celsius: ArrayLike) -> FloatArray:
    """Days a vial of ``vvm_type`` takes to use its whole budget at a constant temperature:
    ``t(T) = exp(ln t5 + (ln t37 − ln t5)·(1/T − 1/T5)/(1/T37 − 1/T5))``, T in kelvin."""
    if vvm_type not in VVM_REFERENCE_DAYS:
        raise ValueError(f"VVM type {vvm_type!r} is not one of 2, 7, 14, 30")
    t37, t5 = VVM_REFERENCE_DAYS[vvm_type]
    inv_t = 1.0 / (np.asarray(celsius, dtype=np.float64) + KELVIN)
    share = (inv_t - 1.0 / T5_K) / (1.0 / T37_K - 1.0 / T5_K)
    return np.asarray(np.exp(math.log(t5) + (math.log(t37) - math.log(t5)) * share), dtype=np.float64)


def budget_used(vvm_type: int, seconds: ArrayLike, celsius: ArrayLike) -> float:
    """The fraction of the budget ``∑ Δt / t(T)`` used by ``seconds`` spent at each of ``celsius``."""
    dt_days = np.asarray(seconds, dtype=np.float64) / DAY_S
    return float(np.sum(dt_days / days_to_end_point(vvm_type, celsius)))


def hold_cap_s(interval_s: float) -> float:
    """The longest time one reading stands for: 3 sampling intervals or 30 minutes, the longer."""
    if not interval_s > 0:
        raise ValueError("interval_s must be positive")
    return max(GAP_INTERVALS * interval_s, GAP_FLOOR_S)


@dataclass(frozen=True)
class Pieces:
    """Stretches of time with a known temperature: [start, end) at celsius, sorted, not overlapping."""

    start: FloatArray
    end: FloatArray
    celsius: FloatArray


@dataclass(frozen=True)
class Series:
    """One probe's readings (epoch seconds, °C), in any order."""

    times: FloatArray
    celsius: FloatArray


def held_pieces(times: ArrayLike, celsius: ArrayLike, interval_s: float, start: float, end: float) -> Pieces:
    """What each reading stands for within [start, end): from its time until the next reading, at most
    ``hold_cap_s(interval_s)`` (the rest is unknown). Readings at the same time are merged into their
    mean; non-finite values, DS18B20 error codes and values outside the probe's range are dropped (not a
    temperature: that time is unknown)."""
    t = np.asarray(times, dtype=np.float64).ravel()
    c = np.asarray(celsius, dtype=np.float64).ravel()
    if t.shape != c.shape:
        raise ValueError(f"{t.size} times but {c.size} temperatures")
    keep = np.isfinite(t) & np.isfinite(c) & (c >= PROBE_MIN_C) & (c <= PROBE_MAX_C)
    keep &= ~np.isin(c, list(DS18B20_CODES))
    t, c = t[keep], c[keep]
    order = np.lexsort((c, t))
    t, c = t[order], c[order]
    ut, first, counts = np.unique(t, return_index=True, return_counts=True)
    if ut.size != t.size:
        c = np.add.reduceat(c, first) / counts
    cap = hold_cap_s(interval_s)
    until = ut + cap
    until[:-1] = np.minimum(until[:-1], ut[1:])
    s = np.maximum(ut, start)
    e = np.minimum(until, end)
    ok = e > s
    return Pieces(s[ok], e[ok], np.asarray(c, dtype=np.float64)[ok])


@dataclass(frozen=True)
class Stay:
    """Doses of the lot in one appliance over [start, end), with that appliance's probes' readings (they
    may begin before ``start``: a reading stands for time after it)."""

    start: float
    end: float
    interval_s: float
    probes: Sequence[Series] = ()


@dataclass(frozen=True)
class Exposure:
    """A lot's exposure over [since, covered_until): budget fraction (None without VVM), minutes at or
    below −0.5 °C (None unless freeze-sensitive), minutes in an appliance of unknown temperature."""

    heat_budget_used: float | None
    freeze_minutes: float | None
    gap_minutes: float
    covered_until: float

    def then(self, later: Exposure) -> Exposure:
        """This exposure followed by ``later`` (which starts where this one is covered until)."""
        return Exposure(
            _add(self.heat_budget_used, later.heat_budget_used),
            _add(self.freeze_minutes, later.freeze_minutes),
            self.gap_minutes + later.gap_minutes,
            later.covered_until,
        )


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def nothing(since: float, vvm_type: int | None, freeze_sensitive: bool) -> Exposure:
    return Exposure(0.0 if vvm_type else None, 0.0 if freeze_sensitive else None, 0.0, since)


def exposure(
    stays: Iterable[Stay],
    start: float,
    end: float,
    *,
    vvm_type: int | None,
    freeze_sensitive: bool,
    hold_back_from: float | None = None,
) -> Exposure:
    """The exposure over [start, end) of a lot that was in ``stays``.

    At each instant the warmest known temperature among the probes of the appliances holding the lot
    counts for heat and the coldest for freeze; time in an appliance none of whose probes is known is a
    gap (summed per appliance). With ``hold_back_from``, a stay whose temperature is unknown at the end
    of the window is not counted past its last reading (nor the reading itself, whose time stands until
    the next one) when that reading is at or after ``hold_back_from``: ``covered_until`` stops there, so
    readings that arrive late (a gateway's buffer) are counted by the next computation exactly as if
    they had been there. Unknown time before ``hold_back_from`` is settled: counted as a gap.
    """
    places: list[tuple[float, float, list[Pieces]]] = []
    for st in stays:
        a, b = max(st.start, start), min(st.end, end)
        if a < b:
            places.append((a, b, [held_pieces(p.times, p.celsius, st.interval_s, a, b) for p in st.probes]))
    covered = end
    if hold_back_from is not None:
        for a, b, pieces in places:
            if max([a, *(float(p.end[-1]) for p in pieces if p.end.size)]) < b:
                # from the last reading on: how long it stands depends on the next one, not yet here
                last = max([a, *(float(p.start[-1]) for p in pieces if p.start.size)])
                covered = min(covered, max(last, hold_back_from))
        covered = max(covered, start)
    out = nothing(covered, vvm_type, freeze_sensitive)
    places = [(a, min(b, covered), [_clip(p, covered) for p in ps]) for a, b, ps in places if a < covered]
    if not places:
        return out
    bounds = np.unique(
        np.concatenate(
            [np.array([a, b]) for a, b, _ in places]
            + [x for *_, ps in places for p in ps for x in (p.start, p.end)]
        )
    )
    seg = bounds[:-1]
    length = np.diff(bounds)
    hot = np.full(seg.size, -np.inf)
    cold = np.full(seg.size, np.inf)
    gap_s = 0.0
    for a, b, pieces in places:
        k0, k1 = int(np.searchsorted(bounds, a)), int(np.searchsorted(bounds, b))
        x = seg[k0:k1]
        known_here = np.zeros(x.size, dtype=bool)
        for p in pieces:
            if not p.start.size:
                continue
            i = np.searchsorted(p.start, x, side="right") - 1
            ic = np.clip(i, 0, None)
            ok = (i >= 0) & (p.end[ic] > x)
            known_here |= ok
            c = p.celsius[ic]
            hot[k0:k1] = np.where(ok, np.maximum(hot[k0:k1], c), hot[k0:k1])
            cold[k0:k1] = np.where(ok, np.minimum(cold[k0:k1], c), cold[k0:k1])
        gap_s += float(length[k0:k1][~known_here].sum())
    known = np.isfinite(hot)
    return Exposure(
        budget_used(vvm_type, length[known], hot[known]) if vvm_type else None,
        float(length[known & (cold <= FREEZE_AT_C)].sum()) / 60.0 if freeze_sensitive else None,
        gap_s / 60.0,
        covered,
    )


def _clip(p: Pieces, until: float) -> Pieces:
    e = np.minimum(p.end, until)
    ok = e > p.start
    return Pieces(p.start[ok], e[ok], p.celsius[ok])


# ---------------------------------------------------------------- per lot, from the stores


@dataclass(frozen=True)
class _Plan:
    """What is left to compute for one lot: from ``since`` (``base`` is its exposure up to then) over
    its stays ``where`` (equipment, from, to)."""

    lot_id: int
    vvm_type: int | None
    freeze_sensitive: bool
    since: float
    base: Exposure
    where: list[tuple[str, float, float]] = field(default_factory=list)


def update_exposure(
    engine: Engine, influx: InfluxClient, lot_ids: Sequence[int], now: float, trigger: str
) -> dict[int, Exposure]:
    """Bring the exposure of ``lot_ids`` up to ``now`` and store one ``lot_exposure`` row per lot that
    has ever been in an appliance (lot id -> its exposure since it was received).

    A lot continues from its latest row (only the time since its ``covered_until`` is read); it is
    computed again from its first receipt when it has no row yet, or when a movement of it was recorded
    after that row with a time before its ``covered_until`` (a paper record typed in later changes where
    it was). ``trigger`` says why (``daily``, ``alert:{id}``, ``manual``). Raises ``ValueError`` for an
    unknown lot and ``core.influx.InfluxError`` when InfluxDB cannot be read; nothing is stored then.
    """
    if not 0 < len(trigger) <= TRIGGER_MAX:
        raise ValueError(f"trigger must be 1 to {TRIGGER_MAX} characters, not {trigger!r:.40}")
    init_exposure_tables(engine)
    with Session(engine) as s:
        plans = _plans(s, sorted(set(lot_ids)))
    equipment, _ = equipment_list(engine)
    interval = {e.id: float(e.interval_s) for e in equipment}
    caps = {eq: hold_cap_s(interval.get(eq, DEFAULT_INTERVAL_S)) for p in plans for eq, _, _ in p.where}
    needs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for p in plans:
        for eq, f, t in p.where:
            a, b = max(f, p.since), min(t, now)
            if a < b:
                needs[eq].append((a - caps[eq], b))
    readings = {eq: _read(influx, eq, ranges) for eq, ranges in needs.items()}
    out = {p.lot_id: _compute(p, readings, interval, caps, now) for p in plans}
    with Session(engine) as s, s.begin():
        for lot_id, ex in out.items():
            s.add(
                LotExposureRow(
                    lot_id=lot_id,
                    computed_at=now,
                    covered_until=ex.covered_until,
                    heat_budget_used=ex.heat_budget_used,
                    freeze_minutes=ex.freeze_minutes,
                    gap_minutes=ex.gap_minutes,
                    trigger=trigger,
                )
            )
    return out


def lots_in_stock(engine: Engine, now: float) -> list[int]:
    """Every lot with doses in an appliance at ``now``."""
    init_stock_tables(engine)
    with Session(engine) as s:
        return sorted({lot_id for lot_id, _, _ in stock(s, until=now)})


def run_daily(engine: Engine, influx: InfluxClient, now: float) -> int | None:
    """The daily job: the exposure of every lot in stock, brought up to ``now``. Logs (and does not
    raise) a failure: the next run continues from the rows stored. Returns how many lots, or None."""
    began = time.monotonic()
    try:
        done = update_exposure(engine, influx, lots_in_stock(engine, now), now, "daily")
    except Exception:
        log.exception("the daily exposure of the lots in stock failed")
        return None
    log.info("exposure of %d lot(s) in stock updated in %.1f s", len(done), time.monotonic() - began)
    return len(done)


def _plans(s: Session, lot_ids: list[int]) -> list[_Plan]:
    products = {
        lot_id: (vvm, bool(freeze))
        for lot_id, vvm, freeze in s.execute(
            select(VaccineLotRow.id, VaccineProductRow.vvm_type, VaccineProductRow.freeze_sensitive)
            .join(VaccineProductRow, VaccineLotRow.product_id == VaccineProductRow.id)
            .where(VaccineLotRow.id.in_(lot_ids))
        )
    }
    unknown = [i for i in lot_ids if i not in products]
    if unknown:
        raise ValueError(f"no lot {', '.join(map(str, unknown))}")
    previous = latest_exposure(s, lot_ids)
    moves = movements(s, lot_ids)
    recorded: dict[int, list[tuple[float, float]]] = defaultdict(list)  # lot -> (at, recorded_at)
    for lot_id, at, recorded_at in s.execute(
        select(StockMovementRow.lot_id, StockMovementRow.at, StockMovementRow.recorded_at).where(
            StockMovementRow.lot_id.in_(lot_ids)
        )
    ):
        recorded[lot_id].append((at, recorded_at))
    plans = []
    for lot_id in lot_ids:
        vvm, freeze = products[lot_id]
        where = [(eq, f, t) for _, eq, f, t in intervals(moves, lot_id)]
        if not where:
            continue  # never in an appliance: nothing to compute
        first = min(f for _, f, _ in where)
        p = previous.get(lot_id)
        redo = (
            p is None
            or p.gap_minutes is None
            or (p.heat_budget_used is None) != (vvm is None)
            or (p.freeze_minutes is None) == freeze
            or any(r > p.computed_at and at < p.covered_until for at, r in recorded[lot_id])
        )
        if redo or p is None:
            base = nothing(first, vvm, freeze)
        else:
            base = Exposure(p.heat_budget_used, p.freeze_minutes, p.gap_minutes or 0.0, p.covered_until)
        plans.append(_Plan(lot_id, vvm, freeze, base.covered_until, base, where))
    return plans


def _compute(
    plan: _Plan,
    readings: dict[str, dict[tuple[str, str], Series]],
    interval: dict[str, float],
    caps: dict[str, float],
    now: float,
) -> Exposure:
    """The plan's lot from ``since`` to ``now``, a week at a time; the last week holds back its unknown
    end (late readings), what is older is settled."""

    def stays(w0: float, w1: float) -> list[Stay]:
        out = []
        for eq, f, t in plan.where:
            if max(f, w0) < min(t, w1):
                lo, hi = max(f, w0) - caps[eq], min(t, w1)
                probes = [_slice(series, lo, hi) for series in readings.get(eq, {}).values()]
                out.append(Stay(f, t, interval.get(eq, DEFAULT_INTERVAL_S), probes))
        return out

    vvm, freeze = plan.vvm_type, plan.freeze_sensitive
    total = plan.base
    settle = max(plan.since, now - LATE_S)
    t = plan.since
    while t < settle:
        w1 = min(t + CHUNK_S, settle)
        total = total.then(exposure(stays(t, w1), t, w1, vvm_type=vvm, freeze_sensitive=freeze))
        t = w1
    if settle < now:
        last = exposure(
            stays(settle, now), settle, now, vvm_type=vvm, freeze_sensitive=freeze, hold_back_from=settle
        )
        total = total.then(last)
    return total


def _read(
    influx: InfluxClient, equipment_id: str, ranges: list[tuple[float, float]]
) -> dict[tuple[str, str], Series]:
    """The appliance's temperatures over ``ranges`` (merged, read a week at a time): (device, probe) ->
    its readings in time order."""
    parts: dict[tuple[str, str], list[FloatArray]] = defaultdict(list)
    for lo, hi in _merge(ranges):
        a = lo
        while a < hi:
            b = min(a + CHUNK_S, hi)
            q = (
                f"SELECT celsius FROM temperature WHERE equipment = {quote_literal(equipment_id)} "
                f"AND time >= {math.floor(a * 1e9)} AND time < {math.ceil(b * 1e9)} GROUP BY device, probe"
            )
            for series in influx.query(q, epoch="ms"):
                tags = series.get("tags") or {}
                values = np.asarray(series.get("values") or [], dtype=np.float64).reshape(-1, 2)
                parts[(tags.get("device", ""), tags.get("probe", ""))].append(values)
            a = b
    out = {}
    for key, chunks in parts.items():
        v = np.concatenate(chunks)
        out[key] = Series(v[:, 0] / 1000.0, v[:, 1])
    return out


def _merge(ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _slice(s: Series, lo: float, hi: float) -> Series:
    i, j = np.searchsorted(s.times, [lo, hi])
    return Series(s.times[i:j], s.celsius[i:j])
