"""The daily statistics job: per piece of equipment and local day, min / max / mean, mean kinetic
temperature, minutes out of range and excursions (``alerting.stats``), stored in SQL for the monthly
report, with the "needs attention" flag judged on the last 30 days.

Run by the alerting service's scheduler shortly after local midnight for the day before; running it
again for a day replaces that day's rows (the readings of a late upload are then included).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Boolean, Double, Engine, Integer, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.stats import DayStats, daily_stats, needs_attention
from alerting.store import AlertRow
from core.clinic_time import CLINIC_UTC_OFFSET_S
from core.db import Base, create_tables
from core.influx import InfluxClient
from core.profiles import profile_settings
from core.registry_store import equipment_list, profile_overrides

WINDOW_DAYS = 30


class EquipmentDayRow(Base):
    __tablename__ = "equipment_day"
    equipment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date: Mapped[str] = mapped_column(String(10), primary_key=True)  # local day, YYYY-MM-DD
    clinic_id: Mapped[str] = mapped_column(String(64), index=True)
    readings: Mapped[int] = mapped_column(Integer)
    min_c: Mapped[float | None] = mapped_column(Double, nullable=True)
    max_c: Mapped[float | None] = mapped_column(Double, nullable=True)
    mean_c: Mapped[float | None] = mapped_column(Double, nullable=True)
    mkt_c: Mapped[float | None] = mapped_column(Double, nullable=True)
    minutes_below: Mapped[float] = mapped_column(Double)
    minutes_above: Mapped[float] = mapped_column(Double)
    excursions: Mapped[int] = mapped_column(Integer)
    gap_minutes: Mapped[float] = mapped_column(Double)
    covered_minutes: Mapped[float] = mapped_column(Double)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    attention_reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of short phrases

    def as_stats(self) -> DayStats:
        return DayStats(
            self.date,
            self.readings,
            self.min_c,
            self.max_c,
            self.mean_c,
            self.mkt_c,
            self.minutes_below,
            self.minutes_above,
            self.excursions,
            self.gap_minutes,
            self.covered_minutes,
        )


def init_daily_tables(engine: Engine) -> None:
    create_tables(engine, [EquipmentDayRow.__table__])  # type: ignore[arg-type]


def local_day_bounds(day: date, utc_offset_s: float = CLINIC_UTC_OFFSET_S) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() - utc_offset_s
    return start, start + 86400.0


def compute_day(
    sql: Engine, influx: InfluxClient, day: date, utc_offset_s: float = CLINIC_UTC_OFFSET_S
) -> int:
    """Compute and store ``day`` for every piece of equipment with a temperature range. Returns the
    number of rows written."""
    start, end = local_day_bounds(day, utc_offset_s)
    overrides = profile_overrides(sql)
    equipment, _ = equipment_list(sql)
    written = 0
    with Session(sql) as s, s.begin():
        for eq in equipment:
            settings = profile_settings(eq.profile, overrides)
            if settings.low_c is None or settings.high_c is None:
                continue
            # the bounds are integers we computed (nanoseconds); the id is bound, as every value is
            series = influx.query(
                f"SELECT celsius FROM temperature WHERE equipment = $eq "
                f"AND time >= {int(start * 1e9)} AND time < {int(end * 1e9)}",
                {"eq": eq.id},
                epoch="ms",
            )
            values = series[0]["values"] if series else []
            days = daily_stats(
                [v[0] / 1000 for v in values],
                [v[1] for v in values],
                low=settings.low_c,
                high=settings.high_c,
                tz_offset_s=utc_offset_s,
                interval_s=float(eq.interval_s),
            )
            today = next((d for d in days if d.date == day.isoformat()), None)
            if today is None:
                continue
            history = [
                r.as_stats()
                for r in s.scalars(
                    select(EquipmentDayRow).where(
                        EquipmentDayRow.equipment_id == eq.id,
                        EquipmentDayRow.date >= (day - timedelta(days=WINDOW_DAYS - 1)).isoformat(),
                        EquipmentDayRow.date < day.isoformat(),
                    )
                )
            ]
            heat_alarms = s.scalar(
                select(func.count())
                .select_from(AlertRow)
                .where(
                    AlertRow.subject == eq.id,
                    AlertRow.rule == "heat_alarm",
                    AlertRow.started_at >= end - WINDOW_DAYS * 86400.0,
                    AlertRow.started_at < end,
                )
            )
            attention = needs_attention([*history, today], int(heat_alarms or 0), window_days=WINDOW_DAYS)
            s.execute(
                delete(EquipmentDayRow).where(
                    EquipmentDayRow.equipment_id == eq.id, EquipmentDayRow.date == today.date
                )
            )
            s.add(
                EquipmentDayRow(
                    equipment_id=eq.id,
                    date=today.date,
                    clinic_id=eq.clinic,
                    readings=today.readings,
                    min_c=today.min_c,
                    max_c=today.max_c,
                    mean_c=today.mean_c,
                    mkt_c=today.mkt_c,
                    minutes_below=today.minutes_below,
                    minutes_above=today.minutes_above,
                    excursions=today.excursions,
                    gap_minutes=today.gap_minutes,
                    covered_minutes=today.covered_minutes,
                    needs_attention=attention.flag,
                    attention_reasons=json.dumps(attention.reasons, ensure_ascii=False),
                )
            )
            written += 1
    return written
