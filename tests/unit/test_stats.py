"""Daily statistics: hand-computed cases at the boundaries (range edges, midnight, gaps, MKT)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from alerting.stats import (
    DayStats,
    accumulated_alarm_minutes,
    daily_stats,
    local_hhmm,
    mean_kinetic_temperature,
    needs_attention,
    window_summary,
)

TZ = 8 * 3600  # clinics are UTC+8
MIDNIGHT = datetime(2026, 3, 1, 16, 0, tzinfo=UTC).timestamp()  # 2026-03-02 00:00 local (UTC+8)
FIVE = 300.0
RANGE = {"low": 2.0, "high": 8.0}


def local(hh: int, mm: int, day: int = 0) -> float:
    """Epoch seconds of hh:mm local time on 2026-03-02 + day."""
    return MIDNIGHT + day * 86_400 + hh * 3600 + mm * 60


def stats(times, celsius, *, tz=TZ, interval=FIVE) -> list[DayStats]:
    return daily_stats(
        np.asarray(times, float), np.asarray(celsius, float), tz_offset_s=tz, interval_s=interval, **RANGE
    )


def by_date(days: list[DayStats]) -> dict[str, DayStats]:
    return {d.date: d for d in days}


def steady(days: int, celsius_per_day, *, interval: float = FIVE) -> tuple[np.ndarray, np.ndarray]:
    """A reading every ``interval`` for ``days`` local days; day k at ``celsius_per_day(k)``."""
    n = int(days * 86_400 / interval)
    t = MIDNIGHT + np.arange(n) * interval
    c = np.array([celsius_per_day(int(i * interval // 86_400)) for i in range(n)], dtype=float)
    return t, c


# --- range edges -----------------------------------------------------------------------------------


def test_exactly_the_limits_are_in_range():
    t = [local(10, m) for m in (0, 5, 10, 15, 20)]
    (day,) = stats(t, [5.0, 8.0, 2.0, 8.0, 5.0])
    assert day.minutes_above == 0 and day.minutes_below == 0 and day.excursions == 0


def test_just_outside_the_limits_counts_one_interval_each():
    t = [local(10, m) for m in (0, 5, 10, 15, 20)]
    (day,) = stats(t, [5.0, 8.1, 5.0, 1.9, 5.0])
    assert day.minutes_above == 5.0
    assert day.minutes_below == 5.0
    assert day.excursions == 2


# --- midnight --------------------------------------------------------------------------------------


def test_a_reading_at_2355_counts_for_its_own_day():
    t = [local(23, 50), local(23, 55), local(0, 0, day=1), local(0, 5, day=1)]
    days = by_date(stats(t, [5.0, 9.0, 5.0, 5.0]))
    assert days["2026-03-02"].minutes_above == 5.0
    assert days["2026-03-02"].excursions == 1
    assert days["2026-03-03"].minutes_above == 0.0
    assert days["2026-03-03"].excursions == 0
    assert days["2026-03-02"].readings == 2 and days["2026-03-03"].readings == 2


def test_time_is_split_exactly_at_local_midnight():
    # 23:58 stands for 23:58-00:03: 2 min for its day, 3 min for the next (UTC+8 midnight, not UTC's)
    t = [local(23, 53), local(23, 58), local(0, 3, day=1), local(0, 8, day=1)]
    days = by_date(stats(t, [5.0, 9.0, 5.0, 5.0]))
    assert days["2026-03-02"].minutes_above == pytest.approx(2.0)
    assert days["2026-03-03"].minutes_above == pytest.approx(3.0)
    assert (
        days["2026-03-02"].excursions == 1 and days["2026-03-03"].excursions == 0
    )  # counted where it starts


def test_day_boundaries_follow_the_utc_offset():
    t = [local(7, 55), local(8, 0)]  # 07:55 and 08:00 local on 03-02: 23:55 on 03-01 and 00:00 UTC
    assert [d.date for d in stats(t, [5.0, 5.0], tz=TZ)] == ["2026-03-02"]
    assert [d.date for d in stats(t, [5.0, 5.0], tz=0)] == ["2026-03-01", "2026-03-02"]


def test_a_full_day_out_of_range_is_exactly_1440_minutes():
    t, c = steady(3, lambda k: 12.0)
    days = stats(t, c)
    assert [d.minutes_above for d in days] == [1440.0, 1440.0, 1440.0]
    assert [d.excursions for d in days] == [1, 0, 0]


# --- weighting, gaps, duplicates -------------------------------------------------------------------


def test_time_weighted_mean_caps_a_gap_at_two_intervals():
    # 4.0 stands 5 min, 6.0 stands 10 min (capped: the next reading is 55 min later), 10.0 (last) 5 min
    (day,) = stats([local(9, 0), local(9, 5), local(10, 0)], [4.0, 6.0, 10.0])
    assert day.mean_c == pytest.approx((4 * 5 + 6 * 10 + 10 * 5) / 20)
    assert day.covered_minutes == pytest.approx(20.0)
    assert day.gap_minutes == pytest.approx(45.0)  # 09:15-10:00 is not known
    assert day.minutes_above == pytest.approx(5.0)
    assert (day.min_c, day.max_c, day.readings) == (4.0, 10.0, 3)


def test_a_gap_ends_an_excursion():
    (day,) = stats([local(9, 0), local(9, 5), local(10, 0), local(10, 5)], [9.0, 9.0, 9.0, 5.0])
    assert day.excursions == 2
    assert day.minutes_above == pytest.approx(5 + 10 + 5)


def test_duplicated_and_shuffled_input_gives_identical_results():
    rng = np.random.default_rng(7)
    t = MIDNIGHT + np.arange(0, 3 * 86_400, FIVE) + 3_600
    c = np.round(5 + 4 * np.sin(t / 20_000) + rng.normal(0, 0.5, t.size), 1)
    t = np.delete(t, np.s_[400:430])  # a gap too
    c = np.delete(c, np.s_[400:430])
    dup = rng.choice(t.size, 500, replace=False)
    t2 = np.concatenate([t, t[dup]])
    c2 = np.concatenate([c, c[dup]])
    order = rng.permutation(t2.size)
    kwargs = {"tz_offset_s": TZ, "interval_s": FIVE, **RANGE}
    assert daily_stats(t2[order], c2[order], **kwargs) == daily_stats(t, c, **kwargs)
    assert accumulated_alarm_minutes(
        t2[order], c2[order], delay_min=60, **kwargs
    ) == accumulated_alarm_minutes(t, c, delay_min=60, **kwargs)


def test_conflicting_duplicates_are_merged_whatever_the_order():
    a = stats([local(9, 0), local(9, 0), local(9, 5)], [4.0, 6.0, 5.0])
    b = stats([local(9, 5), local(9, 0), local(9, 0)], [5.0, 6.0, 4.0])
    assert a == b
    assert a[0].readings == 2 and a[0].mean_c == pytest.approx(5.0)


def test_no_readings_no_days():
    assert stats([], []) == []
    assert accumulated_alarm_minutes([], [], delay_min=60, tz_offset_s=0, interval_s=FIVE, **RANGE) == []


def test_a_day_without_readings_inside_the_series_is_all_gap():
    days = stats([local(12, 0), local(12, 0, day=2)], [5.0, 5.0])
    assert [d.date for d in days] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    empty = days[1]
    assert (empty.readings, empty.min_c, empty.mean_c, empty.gap_minutes) == (0, None, None, 1440.0)


# --- MKT -------------------------------------------------------------------------------------------


def test_mkt_of_a_constant_series_is_that_temperature():
    t, c = steady(2, lambda k: 5.3)
    for day in stats(t, c):
        assert day.mkt_c == pytest.approx(5.3, abs=1e-9)
        assert day.mean_c == pytest.approx(5.3, abs=1e-12)
    assert mean_kinetic_temperature([-20.0] * 4) == pytest.approx(-20.0, abs=1e-9)


def test_mkt_is_above_the_mean_for_a_varying_series():
    t, c = steady(1, lambda k: 0.0)
    c = 5 + 3 * np.sin(np.arange(c.size) / 20)
    (day,) = stats(t, c)
    assert day.mkt_c > day.mean_c + 0.1


def test_mkt_of_equal_time_at_0_and_20_degrees():
    # by hand: ΔH/R = 83144/8.3144 = 10000 K; 10000/273.15 = 36.6099, 10000/293.15 = 34.1122;
    # -ln((e^-36.6099 + e^-34.1122)/2) = 34.1122 + ln 2 - ln(1 + e^-2.4977) = 34.1122 + 0.6931 - 0.0791
    # = 34.7263 -> 10000/34.7263 = 287.966 K = 14.82 °C (the arithmetic mean is 10 °C)
    assert mean_kinetic_temperature([0.0, 20.0]) == pytest.approx(14.816, abs=0.001)
    assert mean_kinetic_temperature([0.0, 20.0], [2.0, 2.0]) == pytest.approx(14.816, abs=0.001)
    (day,) = stats([local(0, 0), local(12, 0)], [0.0, 20.0], interval=12 * 3600)
    assert day.mkt_c == pytest.approx(14.816, abs=0.001)
    assert day.mean_c == pytest.approx(10.0)


def test_window_summary_combines_days_exactly():
    t, c = steady(3, lambda k: 4.0 + k)
    c = c + np.sin(np.arange(c.size) / 7)
    days = stats(t, c)
    w = window_summary(days)
    assert w.days == 3 and w.readings == t.size
    assert (w.first_date, w.last_date) == ("2026-03-02", "2026-03-04")
    assert w.mean_c == pytest.approx(float(c.mean()), abs=1e-9)
    assert w.mkt_c == pytest.approx(mean_kinetic_temperature(c), abs=1e-9)
    assert w.min_c == c.min() and w.max_c == c.max()
    assert window_summary([]).days == 0


# --- Fridge-tag style alarm minutes ----------------------------------------------------------------


def alarms(times, celsius, delay=60):
    return {
        a.date: a
        for a in accumulated_alarm_minutes(
            np.asarray(times, float),
            np.asarray(celsius, float),
            delay_min=delay,
            tz_offset_s=TZ,
            interval_s=FIVE,
            **RANGE,
        )
    }


def run(start: float, minutes: int, value: float) -> tuple[list[float], list[float]]:
    t = [start + i * FIVE for i in range(minutes // 5)]
    return t, [value] * len(t)


def test_alarm_minutes_count_every_minute_out_and_the_first_alarm_is_when_the_delay_elapsed():
    t1, c1 = run(local(10, 0), 70, 9.0)  # 70 min: an alarm at 11:00
    t2, c2 = run(local(14, 0), 50, 9.0)  # 50 min: no alarm, but its minutes count
    t3, c3 = run(local(16, 0), 30, 1.0)  # cold, 30 min
    back = [local(10, 70), local(14, 50), local(16, 30)]
    day = alarms(t1 + t2 + t3 + back, c1 + c2 + c3 + [5.0] * 3)["2026-03-02"]
    assert day.high_minutes == 120.0
    assert local_hhmm(day.high_first_ts, TZ) == "11:00"
    assert day.low_minutes == 30.0 and day.low_first_ts is None


def test_an_alarm_that_carries_over_midnight_starts_the_next_day_at_0000():
    t, c = run(local(22, 0), 240, 9.0)  # 22:00-02:00: alarm at 23:00
    days = alarms([*t, local(2, 0, day=1)], [*c, 5.0])
    assert local_hhmm(days["2026-03-02"].high_first_ts, TZ) == "23:00"
    assert days["2026-03-02"].high_minutes == 120.0
    assert local_hhmm(days["2026-03-03"].high_first_ts, TZ) == "00:00"
    assert days["2026-03-03"].high_minutes == 120.0


def test_a_delay_that_elapses_after_midnight_belongs_to_the_next_day():
    t, c = run(local(23, 30), 120, 9.0)  # 23:30-01:30: alarm at 00:30
    days = alarms([*t, local(1, 30, day=1)], [*c, 5.0])
    assert days["2026-03-02"].high_first_ts is None and days["2026-03-02"].high_minutes == 30.0
    assert local_hhmm(days["2026-03-03"].high_first_ts, TZ) == "00:30"


def test_alarm_minutes_equal_the_daily_minutes_out_of_range():
    t, c = steady(2, lambda k: 5.0)
    c = 5 + 6 * np.sin(np.arange(c.size) / 30)
    for d, a in zip(stats(t, c), alarms(t, c).values(), strict=True):
        assert (d.minutes_below, d.minutes_above) == (a.low_minutes, a.high_minutes)


# --- needs attention -------------------------------------------------------------------------------


def month(celsius_per_day, days: int = 30) -> list[DayStats]:
    return stats(*steady(days, celsius_per_day, interval=1800.0), interval=1800.0)


def test_a_healthy_fridge_needs_no_attention():
    days = month(lambda k: 5.0 + 0.3 * math.sin(k))
    assert needs_attention(days, heat_alarms=0).flag is False
    assert needs_attention(days, heat_alarms=5).reasons == []  # the limit itself is allowed


def test_too_many_heat_alarms():
    att = needs_attention(month(lambda k: 5.0), heat_alarms=6)
    assert att.flag is True
    assert att.reasons == ["6 heat alarms in 30 days (limit 5)"]


def test_too_much_time_out_of_range():
    att = needs_attention(month(lambda k: 9.0 if k % 5 < 2 else 5.0), heat_alarms=0)
    assert att.flag is True
    assert att.reasons == ["out of range 40% of the time over 30 days (limit 30%)"]


def test_a_warming_trend():
    att = needs_attention(month(lambda k: 3.0 + 0.1 * k, days=20), heat_alarms=0)
    assert att.flag is True
    assert att.reasons == ["warming +0.10 °C/day over 20 days (limit 0.05)"]


def test_no_trend_from_too_few_days_and_only_the_window_counts():
    assert needs_attention(month(lambda k: 3.0 + 0.5 * k, days=6), heat_alarms=0).flag is False
    # 60 days: a warm first month, then 30 flat days -> nothing in the last 30
    days = month(lambda k: 9.0 + 0.1 * k if k < 30 else 5.0, days=60)
    assert needs_attention(days, heat_alarms=0).reasons == []
    assert needs_attention(days, heat_alarms=0, window_days=60).flag is True


def test_every_reason_at_once():
    days = month(lambda k: 6.0 + 0.2 * k)  # warms into the alarm range after day 10
    att = needs_attention(days, heat_alarms=9)
    assert len(att.reasons) == 3
    assert att.reasons[0] == "9 heat alarms in 30 days (limit 5)"
    assert att.reasons[1].startswith("out of range ")
    assert att.reasons[2] == "warming +0.20 °C/day over 30 days (limit 0.05)"
