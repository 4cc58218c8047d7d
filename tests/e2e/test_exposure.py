"""The exposure of vaccine lots against real InfluxDB: readings of two refrigerators, lots received into
one and moved to the other, ``update_exposure`` gives the hand-computed budgets and freeze minutes,
continues day by day, counts a gateway's late buffer and a paper record typed in later."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerting.daily import local_day_bounds
from alerting.exposure import (
    LotExposureRow,
    days_to_end_point,
    latest_exposure,
    run_daily,
    update_exposure,
)
from core.db import make_engine
from core.influx import InfluxClient
from core.lineprotocol import encode_line
from core.registry_store import ensure_registry
from core.stock import Kind, Movement, ensure_products, lot, record
from tests.e2e.conftest import Env

pytestmark = pytest.mark.e2e

CLINIC, F1, F2 = "qingshui-thc", "qingshui-fridge1", "qingshui-fridge2"  # the demo's, sampled each 60 s
T, _ = local_day_bounds(date(2026, 11, 20))  # 00:00 local
H = 3600.0
DAY = 86_400.0


def write(client: InfluxClient, equipment: str, start: float, end: float, celsius: float) -> None:
    """One reading a minute from ``start`` (included) to ``end`` (excluded)."""
    tags = {"clinic": CLINIC, "device": "qingshui-gw1", "equipment": equipment, "probe": "p1"}
    client.write(
        "\n".join(
            encode_line("temperature", tags, {"celsius": celsius}, int(t * 1000))
            for t in np.arange(start, end, 60.0)
        ),
        precision="ms",
    )


def sql_with_lots(env: Env) -> tuple[Engine, int, int]:
    """The demo registry and catalogue; lot A (hepatitis B: VVM30, freeze-sensitive) and lot B (MMR:
    VVM7, not freeze-sensitive) received into fridge 1 at 00:00; A moved to fridge 2 at 12:00."""
    sql = make_engine(env.settings.sql_url)
    ensure_registry(sql)
    ensure_products(sql)
    with Session(sql) as s, s.begin():
        a = lot(s, "hepb", "HB-A", "2028-01-31").id
        b = lot(s, "mmr", "MMR-B", "2028-01-31").id
        for m in (
            Movement(a, Kind.received, CLINIC, F1, 50, T, "qingshui-nurse1"),
            Movement(b, Kind.received, CLINIC, F1, 20, T, "qingshui-nurse1"),
            Movement(a, Kind.moved, CLINIC, F1, 50, T + 12 * H, "qingshui-nurse1", to_equipment_id=F2),
        ):
            record(s, m, T + 12 * H)
    return sql, a, b


def rows(sql: Engine, lot_id: int) -> list[LotExposureRow]:
    with Session(sql) as s:
        return list(s.scalars(select(LotExposureRow).where(LotExposureRow.lot_id == lot_id)))


def test_a_lot_moved_between_two_fridges_gets_the_hand_computed_budget_and_freeze_minutes(env: Env) -> None:
    sql, a, b = sql_with_lots(env)
    with env.influx() as client:
        # fridge 1: +5 °C, but −1 °C from 02:00 to 03:00; fridge 2: +20 °C (empty) then +37 °C from 12:00
        write(client, F1, T - H, T + 2 * H, 5.0)
        write(client, F1, T + 2 * H, T + 3 * H, -1.0)
        write(client, F1, T + 3 * H, T + DAY, 5.0)
        write(client, F2, T - H, T + 12 * H, 20.0)
        write(client, F2, T + 12 * H, T + DAY, 37.0)
        got = update_exposure(sql, client, [a, b], T + DAY, "manual")

    # A (VVM30): 11 h at +5 °C, 1 h at −1 °C in fridge 1, then 12 h at +37 °C in fridge 2 (its +20 °C
    # morning does not count: A was not in it): 11/24/1461 + 1/24/t(−1 °C) + 12/24/30.
    t_minus_1 = days_to_end_point(30, [-1.0])[0]  # 3 351.5 days: the cold hour is almost free
    assert got[a].heat_budget_used == pytest.approx(11 / 24 / 1461 + 1 / 24 / t_minus_1 + 0.5 / 30)
    # = 0.00031371 + 0.00001243 + 0.01666667 = 0.01699281: the afternoon at +37 °C is almost all of it
    assert got[a].heat_budget_used == pytest.approx(0.0169928, abs=1e-7)
    assert (got[a].freeze_minutes, got[a].gap_minutes, got[a].covered_until) == (60.0, 0.0, T + DAY)
    # B (VVM7, live vaccine): fridge 1 all day; its freeze minutes are not counted (None)
    t7 = days_to_end_point(7, [5.0, -1.0])
    assert got[b].heat_budget_used == pytest.approx(23 / 24 / t7[0] + 1 / 24 / t7[1])
    assert got[b].freeze_minutes is None
    with Session(sql) as s:
        stored = latest_exposure(s, [a, b])
    assert stored[a].heat_budget_used == pytest.approx(got[a].heat_budget_used)
    assert (stored[a].trigger, stored[a].computed_at, stored[a].freeze_minutes) == ("manual", T + DAY, 60.0)


def test_day_by_day_late_buffers_and_late_paper_records_are_all_counted(env: Env) -> None:
    sql, a, b = sql_with_lots(env)
    with env.influx() as client:
        write(client, F1, T - H, T + 3 * DAY, 5.0)
        write(client, F2, T - H, T + 12 * H, 20.0)
        write(client, F2, T + 12 * H, T + DAY + 12 * H, 5.0)
        first = update_exposure(sql, client, [a], T + DAY, "daily")[a]
        assert first.heat_budget_used == pytest.approx(1 / 1461)  # 12 h in each fridge, both at +5 °C

        # day 2: continues from the first row. Fridge 2's gateway went silent at 12:00 (last reading
        # 11:59): the computation stops at that reading, as its buffer may still arrive.
        second = update_exposure(sql, client, [a], T + 2 * DAY, "daily")[a]
        assert second.covered_until == pytest.approx(T + DAY + 12 * H - 60)
        assert second.heat_budget_used == pytest.approx((1 + (12 * 60 - 1) / 1440) / 1461)
        assert second.gap_minutes == 0.0

        # the buffer arrives: 12:00-24:00 of day 2 was at +37 °C (and still is); the next run counts it
        write(client, F2, T + DAY + 12 * H, T + 2 * DAY + H, 37.0)
        third = update_exposure(sql, client, [a], T + 2 * DAY, "alert:A-20261121-0001")[a]
        assert third.heat_budget_used == pytest.approx(1.5 / 1461 + 0.5 / 30)
        assert (third.covered_until, third.gap_minutes) == (T + 2 * DAY, 0.0)

        # a paper record typed in later: at 06:00 on day 1, 10 doses of B went to fridge 2. B's exposure
        # is computed again from its receipt, the warmer of its two places counting at each instant.
        before = update_exposure(sql, client, [b], T + 2 * DAY, "daily")[b]
        assert before.heat_budget_used == pytest.approx(2 / 730.5)  # 2 days in fridge 1 at +5 °C
        with Session(sql) as s, s.begin():
            late = Movement(b, Kind.moved, CLINIC, F1, 10, T + 6 * H, "qingshui-nurse2", to_equipment_id=F2)
            record(s, late, T + 2 * DAY + 30)
        after = update_exposure(sql, client, [b], T + 2 * DAY + 60, "manual")[b]
    # 48 h 1 min: 06:00-12:00 day 1 at +20 °C (fridge 2), 12:00 day 2 to 00:01 day 3 at +37 °C
    # (fridge 2), the other 30 h at +5 °C (both)
    t7 = days_to_end_point(7, [5.0, 20.0])
    expected = 30 / 24 / t7[0] + 6 / 24 / t7[1] + (12 + 1 / 60) / 24 / 7
    assert after.heat_budget_used == pytest.approx(expected)
    assert [r.trigger for r in rows(sql, a)] == ["daily", "daily", "alert:A-20261121-0001"]


def test_the_daily_job_updates_every_lot_in_stock_and_hostile_appliance_ids_are_escaped(env: Env) -> None:
    sql, a, b = sql_with_lots(env)
    box = "box' OR equipment =~ /./ --\\x"  # an id that would break or widen an unescaped query
    with Session(sql) as s, s.begin():
        c = lot(s, "bopv", "OPV-C", "2027-12-31").id  # VVM2
        record(s, Movement(c, Kind.received, CLINIC, box, 10, T, "qingshui-nurse1"), T + DAY)
        used = lot(s, "dtap", "DTAP-D", "2027-12-31").id  # given out before the day ends: not in stock
        record(s, Movement(used, Kind.received, CLINIC, F1, 1, T, "qingshui-nurse1"), T + DAY)
        record(s, Movement(used, Kind.administered, CLINIC, F1, 1, T + H, "qingshui-nurse1"), T + DAY)
    with env.influx() as client:
        write(client, F1, T - H, T + DAY, 5.0)
        write(client, F2, T - H, T + DAY, 37.0)
        tags = {"clinic": CLINIC, "device": "qingshui-gw9", "equipment": box, "probe": "p1"}
        client.write(
            "\n".join(
                encode_line("temperature", tags, {"celsius": 25.0}, int(t * 1000))
                for t in np.arange(T - H, T + DAY, 60.0)
            ),
            precision="ms",
        )
        assert run_daily(sql, client, T + DAY) == 3
    with Session(sql) as s:
        got = latest_exposure(s, [a, b, c, used])
    assert sorted(got) == [a, b, c] and {r.trigger for r in got.values()} == {"daily"}
    # the box's own readings (+25 °C all day), and only them: t(25 °C) for VVM2 = 10.44 days
    assert got[c].heat_budget_used == pytest.approx(1 / days_to_end_point(2, [25.0])[0])
    assert got[c].heat_budget_used == pytest.approx(0.0958, abs=1e-4)
    assert got[c].gap_minutes == 0.0
