"""Heat and freeze exposure of vaccine lots (``alerting.exposure``): the Arrhenius budget against
hand-computed cases, what each reading stands for, gaps, several probes and a lot in two appliances."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.exposure import (
    Exposure,
    LotExposureRow,
    Series,
    Stay,
    days_to_end_point,
    exposure,
    held_pieces,
    hold_cap_s,
    update_exposure,
)
from core.db import make_engine
from core.registry_store import ensure_registry
from core.stock import Kind, Movement, ensure_products, intervals, lot

T0 = 1_795_633_920.0  # 2026-11-26 00:32 local: any time will do
MIN = 60.0
H = 3600.0
DAY = 86_400.0
FIVE = 300.0  # the gateways' sampling interval in these cases


def readings(start: float, end: float, celsius: float, step: float = FIVE) -> Series:
    """One reading every ``step`` from ``start`` (included) to ``end`` (excluded), all at ``celsius``."""
    t = np.arange(start, end, step)
    return Series(t, np.full(t.size, celsius))


def joined(*parts: Series) -> Series:
    return Series(np.concatenate([p.times for p in parts]), np.concatenate([p.celsius for p in parts]))


def one_day(series: Series, vvm_type: int | None = 30, freeze_sensitive: bool = True) -> Exposure:
    return exposure(
        [Stay(T0, T0 + DAY, FIVE, [series])],
        T0,
        T0 + DAY,
        vvm_type=vvm_type,
        freeze_sensitive=freeze_sensitive,
    )


# ---------------------------------------------------------------- the model's reference points


@pytest.mark.parametrize(
    ("vvm_type", "days_at_37", "days_at_5"),
    [(30, 30, 4 * 365.25), (14, 14, 3 * 365.25), (7, 7, 2 * 365.25), (2, 2, 225)],
)
def test_each_vvm_type_reaches_its_end_point_at_whos_two_reference_points(vvm_type, days_at_37, days_at_5):
    assert days_to_end_point(vvm_type, [37.0, 5.0]) == pytest.approx([days_at_37, days_at_5])


def test_warmer_uses_the_budget_faster_and_an_unknown_vvm_type_is_refused():
    days = days_to_end_point(30, [2.0, 5.0, 8.0, 12.0, 25.0, 37.0, 45.0])
    assert np.all(np.diff(days) < 0)
    with pytest.raises(ValueError, match="VVM type 10 is not one of 2, 7, 14, 30"):
        days_to_end_point(10, [5.0])


# ---------------------------------------------------------------- hand-computed budgets


def test_a_day_at_37_uses_a_thirtieth_of_a_vvm30_budget_and_half_of_a_vvm2_budget():
    day_at_37 = readings(T0, T0 + DAY, 37.0)  # 288 readings, each standing for 5 min: 24 h
    assert one_day(day_at_37, 30).heat_budget_used == pytest.approx(1 / 30)
    assert one_day(day_at_37, 2).heat_budget_used == pytest.approx(1 / 2)


def test_a_day_at_5_uses_almost_nothing():
    assert one_day(readings(T0, T0 + DAY, 5.0), 30).heat_budget_used == pytest.approx(1 / 1461)


def test_a_realistic_excursion_six_hours_at_12_in_a_day_at_5():
    # A power cut: 00:00-06:00 at +5 °C, 06:00-12:00 at +12 °C, 12:00-24:00 at +5 °C; VVM30 (hepatitis B).
    # t(12 °C) = exp(ln t5 + (ln t37 − ln t5)·(1/T − 1/T5)/(1/T37 − 1/T5)), T in kelvin:
    #   1/285.15 − 1/278.15 = 0.00350693 − 0.00359518 = −0.00008826
    #   1/310.15 − 1/278.15 = 0.00322425 − 0.00359518 = −0.00037094   → share 0.237929
    #   ln 30 − ln 1461 = 3.401197 − 7.286876 = −3.885679              → × share = −0.924514
    #   ln t = 7.286876 − 0.924514 = 6.362362                           → t(12 °C) = 579.614 days
    # used = 18 h at +5 °C + 6 h at +12 °C = 0.75/1461 + 0.25/579.614 = 0.000513347 + 0.000431322
    #      = 0.000944669: under a thousandth of the budget (the vial is fine; its VVM would not show it)
    series = joined(
        readings(T0, T0 + 6 * H, 5.0),
        readings(T0 + 6 * H, T0 + 12 * H, 12.0),
        readings(T0 + 12 * H, T0 + DAY, 5.0),
    )
    assert days_to_end_point(30, [12.0])[0] == pytest.approx(579.614, abs=1e-3)
    used = one_day(series, 30).heat_budget_used
    assert used == pytest.approx(0.000944669, rel=1e-6)
    assert one_day(series, 30).freeze_minutes == 0.0


def test_across_a_move_each_appliance_counts_only_while_the_lot_was_in_it():
    # VVM7 (MMR): 12 h in fridge 1 at +5 °C, then moved to fridge 2, which was at +37 °C all day
    # (broken). Fridge 2's morning does not count: the lot was not in it. 0.5/730.5 + 0.5/7.
    stock = [
        Movement(1, Kind.received, "c", "f1", 10, T0, "nurse"),
        Movement(1, Kind.moved, "c", "f1", 10, T0 + 12 * H, "nurse", to_equipment_id="f2"),
    ]
    where = intervals(stock, 1)
    assert where == [("c", "f1", T0, T0 + 12 * H), ("c", "f2", T0 + 12 * H, float("inf"))]
    data = {"f1": readings(T0 - H, T0 + DAY, 5.0), "f2": readings(T0 - H, T0 + DAY, 37.0)}
    stays = [Stay(f, t, FIVE, [data[eq]]) for _, eq, f, t in where]
    ex = exposure(stays, T0, T0 + DAY, vvm_type=7, freeze_sensitive=False)
    assert ex.heat_budget_used == pytest.approx(0.5 / 730.5 + 0.5 / 7)
    assert (ex.freeze_minutes, ex.gap_minutes, ex.covered_until) == (None, 0.0, T0 + DAY)


def test_a_lot_split_between_two_appliances_counts_the_warmer_not_both():
    # VVM30: the lot in fridge 1 at +5 °C all day; some doses in a cold box at +37 °C 08:00-14:00.
    # At each instant the warmest place counts: 18 h at +5 °C + 6 h at +37 °C (not 24 h + 6 h).
    stays = [
        Stay(T0, T0 + DAY, FIVE, [readings(T0, T0 + DAY, 5.0)]),
        Stay(T0 + 8 * H, T0 + 14 * H, FIVE, [readings(T0, T0 + DAY, 37.0)]),
    ]
    ex = exposure(stays, T0, T0 + DAY, vvm_type=30, freeze_sensitive=True)
    assert ex.heat_budget_used == pytest.approx(0.75 / 1461 + 0.25 / 30)


def test_an_appliance_with_two_probes_counts_the_warmer_for_heat_and_the_colder_for_freeze():
    # Top probe +6 °C all day; bottom probe +4 °C but −1 °C for 2 h (02:00-04:00). VVM14 (DTaP).
    top = readings(T0, T0 + DAY, 6.0)
    bottom = joined(
        readings(T0, T0 + 2 * H, 4.0),
        readings(T0 + 2 * H, T0 + 4 * H, -1.0),
        readings(T0 + 4 * H, T0 + DAY, 4.0),
    )
    ex = exposure([Stay(T0, T0 + DAY, FIVE, [top, bottom])], T0, T0 + DAY, vvm_type=14, freeze_sensitive=True)
    assert ex.heat_budget_used == pytest.approx(1 / days_to_end_point(14, [6.0])[0])
    assert ex.freeze_minutes == pytest.approx(120.0)


# ---------------------------------------------------------------- freeze


def test_freeze_minutes_count_at_or_below_minus_half_a_degree_for_a_freeze_sensitive_lot_only():
    # 90 min at −0.5 °C exactly (counts), 60 min at −0.4 °C (does not), the rest at +4 °C.
    series = joined(
        readings(T0, T0 + 10 * H, 4.0),
        readings(T0 + 10 * H, T0 + 10 * H + 90 * MIN, -0.5),
        readings(T0 + 10 * H + 90 * MIN, T0 + 12 * H + 30 * MIN, -0.4),
        readings(T0 + 12 * H + 30 * MIN, T0 + DAY, 4.0),
    )
    assert one_day(series, 30, freeze_sensitive=True).freeze_minutes == pytest.approx(90.0)
    mmr = one_day(series, 7, freeze_sensitive=False)  # live vaccine: freezing does not harm it
    assert mmr.freeze_minutes is None and mmr.heat_budget_used is not None
    bcg = one_day(series, None, freeze_sensitive=False)  # no VVM on BCG's vial
    assert (bcg.heat_budget_used, bcg.freeze_minutes) == (None, None)


# ---------------------------------------------------------------- time-weighting and gaps


def test_a_reading_stands_until_the_next_one_at_most_three_intervals_or_half_an_hour():
    assert hold_cap_s(300) == 1800.0 and hold_cap_s(60) == 1800.0 and hold_cap_s(900) == 2700.0
    # readings at 0, 5 min, then 2 h later: the 5-min one stands for 30 min, the last until the end
    p = held_pieces([T0, T0 + 5 * MIN, T0 + 125 * MIN], [4.0, 5.0, 6.0], FIVE, T0, T0 + 130 * MIN)
    assert list(p.start - T0) == [0, 5 * MIN, 125 * MIN]
    assert list(p.end - T0) == [5 * MIN, 35 * MIN, 130 * MIN]


def test_a_two_hour_hole_in_the_readings_is_a_gap_not_counted_in_the_budget():
    # Readings every 5 min at +37 °C, none from 10:00 to 12:00: the 09:55 reading stands for 30 min
    # (to 10:25), 10:25-12:00 is unknown (95 min). VVM30: 1345 min at +37 °C = 1345/1440/30.
    series = joined(readings(T0, T0 + 10 * H, 37.0), readings(T0 + 12 * H, T0 + DAY, 37.0))
    ex = one_day(series, 30)
    assert ex.gap_minutes == pytest.approx(95.0)
    assert ex.heat_budget_used == pytest.approx(1345 / 1440 / 30)


def test_probe_error_codes_are_unknown_time_not_85_degrees():
    series = readings(T0, T0 + DAY, 5.0)
    c = series.celsius.copy()
    c[12:48] = 85.0  # DS18B20 "power-on reset" from 01:00 to 04:00
    ex = one_day(Series(series.times, c), 30)
    # the 00:55 reading holds to 01:25; 01:25-04:00 is unknown (155 min); the rest at +5 °C
    assert ex.gap_minutes == pytest.approx(155.0)
    assert ex.heat_budget_used == pytest.approx((1440 - 155) / 1440 / 1461)


def test_time_in_an_appliance_without_readings_is_a_gap():
    stays = [
        Stay(T0, T0 + DAY, FIVE, [readings(T0, T0 + DAY, 5.0)]),
        Stay(T0 + 8 * H, T0 + 12 * H, FIVE, []),  # a vaccine carrier without a logger
    ]
    ex = exposure(stays, T0, T0 + DAY, vvm_type=30, freeze_sensitive=True)
    assert ex.gap_minutes == pytest.approx(240.0)
    assert ex.heat_budget_used == pytest.approx(1 / 1461)  # what is known: the fridge, all day


def test_unknown_time_at_the_end_is_held_back_for_late_readings_then_settled_as_a_gap():
    # The gateway's last reading came at 17:55 (its buffer may still arrive). With hold-back from
    # 12:00 the computation stops at that reading: how long it stands depends on the next one. With
    # hold-back from 19:00, the unknown 18:25-19:00 (17:55 + 30 min on) is settled as a gap.
    series = readings(T0, T0 + 18 * H, 5.0)
    stay = [Stay(T0, T0 + DAY, FIVE, [series])]
    kw = {"vvm_type": 30, "freeze_sensitive": True}
    held = exposure(stay, T0, T0 + DAY, hold_back_from=T0 + 12 * H, **kw)  # type: ignore[arg-type]
    assert (held.covered_until, held.gap_minutes) == (T0 + 17 * H + 55 * MIN, 0.0)
    assert held.heat_budget_used == pytest.approx((17 * 60 + 55) / 1440 / 1461)
    settled = exposure(stay, T0, T0 + DAY, hold_back_from=T0 + 19 * H, **kw)  # type: ignore[arg-type]
    assert (settled.covered_until, settled.gap_minutes) == (T0 + 19 * H, 35.0)
    no_hold = exposure(stay, T0, T0 + DAY, **kw)  # type: ignore[arg-type]
    assert (no_hold.covered_until, no_hold.gap_minutes) == (T0 + DAY, 335.0)


def test_computing_day_by_day_gives_what_computing_at_once_gives():
    # What the daily update relies on: continuing from the previous row changes nothing.
    rng = np.random.default_rng(9)
    t = np.sort(T0 + rng.uniform(0, 3 * DAY, 700))
    series = Series(t, rng.uniform(-2.0, 20.0, t.size))
    stays = [
        Stay(T0, T0 + 2 * DAY, FIVE, [series]),
        Stay(T0 + 30 * H, T0 + 3 * DAY, FIVE, [Series(t, series.celsius + 3.0)]),
    ]
    kw = {"vvm_type": 14, "freeze_sensitive": True}
    whole = exposure(stays, T0, T0 + 3 * DAY, **kw)  # type: ignore[arg-type]
    parts = exposure(stays, T0, T0 + 17 * H, **kw)  # type: ignore[arg-type]
    for a, b in [(17 * H, DAY + 5 * MIN), (DAY + 5 * MIN, 3 * DAY)]:
        parts = parts.then(exposure(stays, T0 + a, T0 + b, **kw))  # type: ignore[arg-type]
    assert parts.heat_budget_used == pytest.approx(whole.heat_budget_used)
    assert parts.freeze_minutes == pytest.approx(whole.freeze_minutes)
    assert parts.gap_minutes == pytest.approx(whole.gap_minutes)
    assert whole.gap_minutes > 0 and whole.freeze_minutes > 0  # the case has both


# ---------------------------------------------------------------- update_exposure's refusals


class NoInflux:
    """Fails the test if InfluxDB is read: these calls must stop before."""

    def query(self, *args: object, **kwargs: object) -> list[object]:
        raise AssertionError("InfluxDB was read")


def test_update_refuses_an_unknown_lot_or_an_overlong_trigger_and_stores_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    ensure_registry(engine)
    ensure_products(engine)
    with Session(engine) as s, s.begin():
        never_received = lot(s, "hepb", "HB-1", "2028-01-31").id
    with pytest.raises(ValueError, match="no lot 99"):
        update_exposure(engine, NoInflux(), [never_received, 99], T0, "manual")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trigger must be 1 to 32 characters"):
        update_exposure(engine, NoInflux(), [never_received], T0, "alert:" + "A" * 40)  # type: ignore[arg-type]
    # a lot never received into an appliance has nothing to compute: no row, InfluxDB not read
    assert update_exposure(engine, NoInflux(), [never_received], T0, "manual") == {}  # type: ignore[arg-type]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(LotExposureRow)) == 0
    engine.dispose()
