"""The daily statistics job against real InfluxDB: a day of readings in, one row per equipment out."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.daily import EquipmentDayRow, compute_day, init_daily_tables, local_day_bounds
from alerting.store import init_alert_tables
from core.db import make_engine
from core.lineprotocol import encode_line
from core.registry_store import ensure_registry
from tests.e2e.conftest import Env

pytestmark = pytest.mark.e2e


def test_a_day_of_readings_becomes_a_stored_day_with_mkt_and_minutes_out_of_range(env: Env) -> None:
    sql = make_engine(env.settings.sql_url)
    ensure_registry(sql)
    init_alert_tables(sql)
    init_daily_tables(sql)
    day = date(2026, 11, 20)
    start, _ = local_day_bounds(day)
    lines = []
    for k in range(1440):  # 5.0 °C all day but 60 minutes at 9.0 °C from 14:00 local
        c = 9.0 if 14 * 60 <= k < 15 * 60 else 5.0
        tags = {
            "clinic": "qingshui-thc",
            "device": "qingshui-gw1",
            "equipment": "qingshui-fridge1",
            "probe": "p1",
        }
        lines.append(encode_line("temperature", tags, {"celsius": c}, int((start + k * 60) * 1000)))
    with env.influx() as client:
        client.write("\n".join(lines), precision="ms")
        assert compute_day(sql, client, day) == 1  # only the equipment with readings
        assert compute_day(sql, client, day) == 1  # again: replaced, not doubled
    with Session(sql) as s:
        (row,) = s.scalars(select(EquipmentDayRow))
    assert (row.equipment_id, row.date, row.readings) == ("qingshui-fridge1", "2026-11-20", 1440)
    assert (row.min_c, row.max_c, row.minutes_above, row.minutes_below, row.excursions) == (
        5.0,
        9.0,
        60,
        0,
        1,
    )
    assert row.mean_c == pytest.approx(5.0 + 4.0 * 60 / 1440)
    assert row.mean_c < row.mkt_c < 9.0  # MKT weighs the warm hour more than the mean does
    assert row.needs_attention is False
