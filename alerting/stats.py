"""Daily temperature statistics per piece of equipment, and the Fridge-tag "accumulated alarm minutes".

Pure functions over numpy arrays: no I/O, no clock (the caller passes the times it has).

Weighting (one rule for every time-based number here: mean, MKT, minutes out of range, gaps)
---------------------------------------------------------------------------------------------
Readings are first sorted by time; readings with the same time are merged into one whose value is
the mean of theirs (a retransmitted reading is thus counted once, whatever the input order), and
non-finite temperatures are dropped. Each reading then *stands for* the time from its own timestamp
until the next reading, capped at ``2 × interval_s``; the last reading stands for one nominal
interval. Time beyond the cap is a gap: it is not known, so it counts neither as in range nor as
out of range and is reported as ``gap_minutes``. This is sample-and-hold, the same rule a logger that
only has its samples can apply; it makes the minutes out of range of a run of ``n`` out-of-range
readings exactly ``n × interval`` (unbiased at both ends of an excursion).

Day boundaries are local midnights (``tz_offset_s`` east of UTC). The time a reading stands for is
split exactly at midnight: a reading at 23:55 with a 5-min interval stands for 23:55-24:00 and counts
entirely for its own day; one at 23:58 gives 2 min to its day and 3 min to the next. Day boundaries
therefore never create or lose minutes, and a day fully out of range has exactly 1440 minutes.
``readings``, ``min_c`` and ``max_c`` are about the readings *timestamped* that day.

Range: a temperature is in range when ``low <= T <= high`` (exactly +8.0 °C is in range, as the
Berlinger Fridge-tag flags it; +8.1 is out). An *excursion* (episode) is a maximal run of
consecutive readings on the same side of the range with no gap between them; a gap ends it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from numpy.typing import ArrayLike, NDArray

DAY_S = 86_400
DELTA_H_J_PER_MOL = 83_144.0
R_J_PER_MOL_K = 8.3144
KELVIN = 273.15
_H_OVER_R = DELTA_H_J_PER_MOL / R_J_PER_MOL_K  # 10 000 K

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class DayStats:
    """One local calendar day. Temperatures in °C, durations in minutes (time-weighted, see module doc).

    ``min_c``/``max_c`` are None on a day without readings; ``mean_c``/``mkt_c`` are None on a day
    no reading stands for. ``covered_minutes + gap_minutes`` is the part of the day between the first
    reading of the series and the end of the last one (1440 for a day in the middle of the series).
    """

    date: str
    readings: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    minutes_below: float
    minutes_above: float
    excursions: int
    gap_minutes: float
    covered_minutes: float


@dataclass(frozen=True)
class WindowSummary:
    """Several days together; mean and MKT are exact combinations of the days' (weighted by coverage)."""

    first_date: str | None
    last_date: str | None
    days: int
    readings: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    minutes_below: float
    minutes_above: float
    excursions: int
    gap_minutes: float
    covered_minutes: float
    out_of_range_share: float | None


@dataclass(frozen=True)
class Attention:
    flag: bool
    reasons: list[str]


@dataclass(frozen=True)
class DayAlarms:
    """What a Fridge-tag reports per day: accumulated minutes out of range and when each alarm began.

    ``*_first_ts`` is epoch seconds: the moment the alarm condition (out of range for the delay) was
    reached that day, or the day's midnight when an alarm already active carries over from the day
    before; None when no alarm was active that day (even if there were minutes out of range).
    """

    date: str
    low_minutes: float
    high_minutes: float
    low_first_ts: float | None
    high_first_ts: float | None


@dataclass(frozen=True)
class _Series:
    t: FloatArray  # sorted, unique
    c: FloatArray
    w: FloatArray  # seconds each reading stands for


@dataclass(frozen=True)
class _Pieces:
    """The time each reading stands for, cut at local midnights: one row per (reading, day) piece."""

    reading: IntArray
    day: IntArray  # index from the first day
    seconds: FloatArray
    first_day: int  # local day number (days since 1970-01-01 local)
    n_days: int


def mean_kinetic_temperature(celsius: ArrayLike, weights: ArrayLike | None = None) -> float:
    """MKT (°C) with ΔH = 83.144 kJ/mol, R = 8.3144 J/(mol·K):
    ``(ΔH/R) / -ln(Σ wᵢ·exp(-ΔH/(R·Tᵢ)) / Σ wᵢ) - 273.15``, Tᵢ in kelvin."""
    c = np.asarray(celsius, dtype=np.float64)
    w = np.ones_like(c) if weights is None else np.asarray(weights, dtype=np.float64)
    if c.shape != w.shape or c.size == 0:
        raise ValueError("need as many weights as temperatures, and at least one")
    total = float(w.sum())
    if total <= 0:
        raise ValueError("weights must add up to more than zero")
    return _mkt_from_sums(float(np.sum(w * _arrhenius(c))), total)


def daily_stats(
    times: ArrayLike,
    celsius: ArrayLike,
    *,
    low: float,
    high: float,
    tz_offset_s: float,
    interval_s: float,
) -> list[DayStats]:
    """Statistics for each local calendar day from the first reading's day to the last reading's day."""
    _check_range(low, high)
    s = _prepare(times, celsius, interval_s)
    if s.t.size == 0:
        return []
    p = _pieces(s, tz_offset_s)
    n = p.n_days
    c = s.c[p.reading]
    below = c < low
    above = c > high

    covered = np.bincount(p.day, weights=p.seconds, minlength=n)
    sum_c = np.bincount(p.day, weights=p.seconds * c, minlength=n)
    sum_arr = np.bincount(p.day, weights=p.seconds * _arrhenius(c), minlength=n)
    sec_below = np.bincount(p.day, weights=p.seconds * below, minlength=n)
    sec_above = np.bincount(p.day, weights=p.seconds * above, minlength=n)
    span = _span_per_day(s, p, tz_offset_s)

    own_day = _day_number(s.t, tz_offset_s) - p.first_day
    count = np.bincount(own_day, minlength=n)
    mins = np.full(n, np.inf)
    maxs = np.full(n, -np.inf)
    np.minimum.at(mins, own_day, s.c)
    np.maximum.at(maxs, own_day, s.c)

    starts = _episode_starts(s, low, high)
    excursions = np.bincount(own_day[starts], minlength=n)

    out: list[DayStats] = []
    for d in range(n):
        has = count[d] > 0
        cov = float(covered[d])
        out.append(
            DayStats(
                date=_iso(p.first_day + d),
                readings=int(count[d]),
                min_c=float(mins[d]) if has else None,
                max_c=float(maxs[d]) if has else None,
                mean_c=float(sum_c[d] / cov) if cov > 0 else None,
                mkt_c=_mkt_from_sums(float(sum_arr[d]), cov) if cov > 0 else None,
                minutes_below=float(sec_below[d]) / 60.0,
                minutes_above=float(sec_above[d]) / 60.0,
                excursions=int(excursions[d]),
                gap_minutes=max(float(span[d]) - cov, 0.0) / 60.0,
                covered_minutes=cov / 60.0,
            )
        )
    return out


def window_summary(days: list[DayStats]) -> WindowSummary:
    """The days together (they need not be contiguous). Mean and MKT are weighted by each day's
    covered minutes, which makes them equal to computing them over all the readings at once."""
    if not days:
        return WindowSummary(None, None, 0, 0, None, None, None, None, 0.0, 0.0, 0, 0.0, 0.0, None)
    dates = sorted(d.date for d in days)
    mins = [d.min_c for d in days if d.min_c is not None]
    maxs = [d.max_c for d in days if d.max_c is not None]
    covered = 0.0
    sum_c = 0.0
    sum_arr = 0.0
    for d in days:
        if d.covered_minutes > 0 and d.mean_c is not None and d.mkt_c is not None:
            covered += d.covered_minutes
            sum_c += d.mean_c * d.covered_minutes
            sum_arr += d.covered_minutes * _arrhenius_scalar(d.mkt_c)
    mean = sum_c / covered if covered > 0 else None
    mkt = _mkt_from_sums(sum_arr, covered) if covered > 0 else None
    below = sum(d.minutes_below for d in days)
    above = sum(d.minutes_above for d in days)
    return WindowSummary(
        first_date=dates[0],
        last_date=dates[-1],
        days=len(days),
        readings=sum(d.readings for d in days),
        min_c=min(mins) if mins else None,
        max_c=max(maxs) if maxs else None,
        mean_c=mean,
        mkt_c=mkt,
        minutes_below=below,
        minutes_above=above,
        excursions=sum(d.excursions for d in days),
        gap_minutes=sum(d.gap_minutes for d in days),
        covered_minutes=covered,
        out_of_range_share=(below + above) / covered if covered > 0 else None,
    )


def needs_attention(
    days: list[DayStats],
    heat_alarms: int,
    *,
    window_days: int = 30,
    max_heat_alarms: int = 5,
    max_out_of_range_share: float = 0.30,
    trend_c_per_day: float = 0.05,
    min_days: int = 7,
) -> Attention:
    """Whether a piece of equipment needs a look, judged on the last ``window_days`` calendar days
    ending with the latest day in ``days`` (no clock: the data says what "now" is).

    Reasons (each is a limit strictly exceeded): more than ``max_heat_alarms`` heat alarms (counted
    by the caller over the same window); a share of covered time out of range above
    ``max_out_of_range_share``; a warming trend, the least-squares slope of the daily means against
    the day number, above ``trend_c_per_day`` — judged only with at least ``min_days`` days that
    have a mean, so that one warm afternoon after a cold morning is not a trend.
    """
    if window_days < 1:
        raise ValueError("window_days must be at least 1")
    reasons: list[str] = []
    if heat_alarms > max_heat_alarms:
        reasons.append(f"{heat_alarms} heat alarms in {window_days} days (limit {max_heat_alarms})")
    if days:
        last = max(date.fromisoformat(d.date) for d in days)
        first = last - timedelta(days=window_days - 1)
        window = sorted((d for d in days if date.fromisoformat(d.date) >= first), key=lambda d: d.date)
        summary = window_summary(window)
        share = summary.out_of_range_share
        if share is not None and share > max_out_of_range_share:
            reasons.append(
                f"out of range {share:.0%} of the time over {summary.days} days "
                f"(limit {max_out_of_range_share:.0%})"
            )
        with_mean = [d for d in window if d.mean_c is not None]
        if len(with_mean) >= max(min_days, 2):
            x = np.array([(date.fromisoformat(d.date) - first).days for d in with_mean], dtype=np.float64)
            y = np.array([d.mean_c for d in with_mean], dtype=np.float64)
            slope = float(np.polyfit(x, y, 1)[0])
            if slope > trend_c_per_day:
                reasons.append(
                    f"warming {slope:+.2f} °C/day over {len(with_mean)} days (limit {trend_c_per_day:.2f})"
                )
    return Attention(flag=bool(reasons), reasons=reasons)


def accumulated_alarm_minutes(
    times: ArrayLike,
    celsius: ArrayLike,
    *,
    low: float,
    high: float,
    delay_min: float,
    tz_offset_s: float,
    interval_s: float,
) -> list[DayAlarms]:
    """Per local day, what a WHO PQS E006 30-day logger (Berlinger Fridge-tag) reports as "t Acc" and
    "TS A" for its low and high alarms, computed from logged readings (see docs/logger-agreement.md).

    - Accumulated minutes are *all* minutes out of range that day (below ``low`` / above ``high``),
      episodes shorter than the delay included, and the delay period of a longer one included. So
      they equal ``DayStats.minutes_below`` / ``minutes_above``; ``delay_min`` plays no part in them.
    - An alarm is raised by an episode that lasts at least ``delay_min``; its time is the episode's
      start + ``delay_min`` (the moment the delay elapsed, not the moment the excursion began). On a
      later day still inside an active alarm, the first alarm time is that day's midnight.
    """
    _check_range(low, high)
    if delay_min < 0:
        raise ValueError("delay_min must not be negative")
    s = _prepare(times, celsius, interval_s)
    if s.t.size == 0:
        return []
    p = _pieces(s, tz_offset_s)
    n = p.n_days
    c = s.c[p.reading]
    sec_below = np.bincount(p.day, weights=p.seconds * (c < low), minlength=n)
    sec_above = np.bincount(p.day, weights=p.seconds * (c > high), minlength=n)
    first_low = _first_alarm(s, s.c < low, delay_min * 60.0, tz_offset_s, p.first_day, n)
    first_high = _first_alarm(s, s.c > high, delay_min * 60.0, tz_offset_s, p.first_day, n)
    return [
        DayAlarms(
            date=_iso(p.first_day + d),
            low_minutes=float(sec_below[d]) / 60.0,
            high_minutes=float(sec_above[d]) / 60.0,
            low_first_ts=first_low[d],
            high_first_ts=first_high[d],
        )
        for d in range(n)
    ]


def local_hhmm(ts: float, tz_offset_s: float) -> str:
    """``HH:MM`` of an epoch time in local time (seconds rounded down)."""
    sod = math.floor(ts + tz_offset_s) % DAY_S
    return f"{sod // 3600:02d}:{sod % 3600 // 60:02d}"


# --- internals -------------------------------------------------------------------------------------


def _check_range(low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"low {low} must be below high {high}")


def _prepare(times: ArrayLike, celsius: ArrayLike, interval_s: float) -> _Series:
    if not interval_s > 0:
        raise ValueError("interval_s must be positive")
    t = np.asarray(times, dtype=np.float64).ravel()
    c = np.asarray(celsius, dtype=np.float64).ravel()
    if t.shape != c.shape:
        raise ValueError(f"{t.size} times but {c.size} temperatures")
    keep = np.isfinite(t) & np.isfinite(c)
    t, c = t[keep], c[keep]
    if c.size and float(c.min()) <= -KELVIN:
        raise ValueError(f"temperature {float(c.min())} °C is not above absolute zero")
    order = np.lexsort((c, t))  # by time, then value: merged duplicates do not depend on input order
    t, c = t[order], c[order]
    ut, first, counts = np.unique(t, return_index=True, return_counts=True)
    # same time: one reading, the mean of the values (summed in value order, so order-independent)
    c = np.add.reduceat(c, first) / counts if ut.size != t.size else c.copy()
    cap = 2.0 * interval_s
    w = np.empty_like(ut)
    if ut.size:
        w[:-1] = np.minimum(np.diff(ut), cap)
        w[-1] = interval_s
    return _Series(t=ut, c=np.asarray(c, dtype=np.float64), w=w)


def _day_number(t: FloatArray, tz_offset_s: float) -> IntArray:
    return np.floor((t + tz_offset_s) / DAY_S).astype(np.int64)


def _pieces(s: _Series, tz_offset_s: float) -> _Pieces:
    start = s.t
    end = s.t + s.w
    d0 = _day_number(start, tz_offset_s)
    d_last = np.ceil((end + tz_offset_s) / DAY_S).astype(np.int64) - 1  # day of the last instant
    d_last = np.maximum(d_last, d0)
    first_day = int(d0[0])
    last_day = int(d0[-1])  # days run to the last reading's own day
    n_pieces = d_last - d0 + 1
    reading = np.repeat(np.arange(s.t.size), n_pieces)
    offset = np.arange(reading.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    day = d0[reading] + offset
    day_start = day * DAY_S - tz_offset_s
    seconds = np.minimum(end[reading], day_start + DAY_S) - np.maximum(start[reading], day_start)
    keep = (seconds > 0) & (day <= last_day)
    return _Pieces(
        reading=reading[keep],
        day=(day[keep] - first_day).astype(np.int64),
        seconds=seconds[keep],
        first_day=first_day,
        n_days=last_day - first_day + 1,
    )


def _span_per_day(s: _Series, p: _Pieces, tz_offset_s: float) -> FloatArray:
    """Seconds of each day between the first reading and the end of the last one."""
    lo = float(s.t[0])
    hi = float(s.t[-1] + s.w[-1])
    day_start = (np.arange(p.n_days) + p.first_day) * DAY_S - tz_offset_s
    return np.clip(np.minimum(hi, day_start + DAY_S) - np.maximum(lo, day_start), 0.0, None)


def _episode_starts(s: _Series, low: float, high: float) -> NDArray[np.bool_]:
    """True where a reading begins an excursion (side changed, or the previous one left a gap)."""
    side = np.where(s.c > high, 1, np.where(s.c < low, -1, 0))
    prev_side = np.concatenate(([0], side[:-1]))
    gap_before = np.concatenate(([True], np.diff(s.t) > s.w[:-1]))
    return (side != 0) & ((side != prev_side) | gap_before)


def _first_alarm(
    s: _Series, out: NDArray[np.bool_], delay_s: float, tz_offset_s: float, first_day: int, n_days: int
) -> list[float | None]:
    firsts: list[float | None] = [None] * n_days
    if not out.any():
        return firsts
    gap_before = np.concatenate(([True], np.diff(s.t) > s.w[:-1]))
    starts = out & (gap_before | ~np.concatenate(([False], out[:-1])))
    run_id = np.cumsum(starts) - 1
    idx = np.flatnonzero(out)
    ids = run_id[idx]
    n_runs = int(ids.max()) + 1
    run_start = np.full(n_runs, np.inf)
    np.minimum.at(run_start, ids, s.t[idx])
    run_seconds = np.bincount(ids, weights=s.w[idx], minlength=n_runs)
    for r in np.flatnonzero(run_seconds >= delay_s):
        begin = float(run_start[r])
        alarm_at = begin + delay_s
        end = begin + float(run_seconds[r])  # a run has no gaps: its end is its start + its time
        d_from = math.floor((alarm_at + tz_offset_s) / DAY_S)
        d_to = max(d_from, math.ceil((end + tz_offset_s) / DAY_S) - 1)
        for d in range(d_from, d_to + 1):
            i = d - first_day
            if 0 <= i < n_days:
                at = max(alarm_at, d * DAY_S - tz_offset_s)
                current = firsts[i]
                firsts[i] = at if current is None else min(current, at)
    return firsts


def _arrhenius(c: FloatArray) -> FloatArray:
    return np.exp(-_H_OVER_R / (c + KELVIN))


def _arrhenius_scalar(c: float) -> float:
    return math.exp(-_H_OVER_R / (c + KELVIN))


def _mkt_from_sums(weighted_arrhenius: float, total_weight: float) -> float:
    return _H_OVER_R / -math.log(weighted_arrhenius / total_weight) - KELVIN


def _iso(day_number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()
