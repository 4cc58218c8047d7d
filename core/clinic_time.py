"""The clinics' clock: Asia/Shanghai, UTC+8 all year (China has no daylight saving time), and the
day arithmetic the rota, the pickup schedules and the reports share."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CLINIC_UTC_OFFSET_S = 8 * 3600
CLINIC_TZ = timezone(timedelta(seconds=CLINIC_UTC_OFFSET_S), "CST")
DAY_S = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # 0 = Monday, as the registry writes them


def day_number(t: float) -> int:
    """The clinic-time day of ``t``, counted from 1970-01-01."""
    return int((t + CLINIC_UTC_OFFSET_S) // DAY_S)


def weekday(day: int) -> int:
    """0 = Monday, for a ``day_number`` (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def minute_of_day(t: float) -> int:
    return int((t + CLINIC_UTC_OFFSET_S) % DAY_S // 60)


def day_start(day: int) -> float:
    """Epoch seconds of a clinic-time day's midnight."""
    return day * DAY_S - CLINIC_UTC_OFFSET_S


def hhmm_minutes(text: str) -> int:
    """ "16:00" -> 960."""
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def stamp(t: float) -> str:
    """Epoch seconds as the records write them: "2026-11-26 03:12", clinic time."""
    return datetime.fromtimestamp(t, CLINIC_TZ).strftime("%Y-%m-%d %H:%M")
