"""The twice-daily temperature check (疫苗储存和运输管理规范 2017, art. 11): a person reads each vaccine
refrigerator's thermometer twice a day, morning and afternoon, at least 6 h apart, and records it.

Pure: checks and the time are passed in, nothing is read or written. One ``CheckMachine`` per piece of
equipment whose profile holds vaccines (refrigerator, cold_box, freezer; not waste_store).

Definitions (local time of the clinic, a fixed UTC offset, +8 h by default; China has no summer time):

- a *morning check* is one made in [00:00, 12:00); the day's morning check is the earliest of them
  (it gives the widest gap: two checks 6 h apart exist exactly when the earliest morning one has a
  partner 6 h later);
- an *afternoon check* is one made in [12:00, 24:00) at least ``min_gap_h`` after the day's morning
  check; when the day has no morning check, any check in [12:00, 24:00) is the afternoon check;
- a check *counts from* the later of when it was made and when it was recorded (``Check.known_at``):
  the rules judge with what the system knew at each moment, so the decisions are a function of the
  check records alone, whenever and however often they are evaluated.

Decisions per day and slot (family ``"check"``, subject = equipment id, at most one open at a time):

- reminder: at ``morning_due`` (10:00) with no morning check -> fire, severity info. At the afternoon
  due time with no afternoon check -> fire, info. The afternoon due time is ``afternoon_due`` (16:00),
  or the day's morning check + ``min_gap_h`` when that is later (a morning check at 11:00 makes any
  check before 17:00 invalid, so a reminder at 16:00 could not be acted on);
- the check is recorded while the reminder is open -> clear (info) at the time it counts from, with
  who checked and when;
- the slot ends with the reminder still open -> the check is *missed*: the reminder alert escalates
  to severity warning with ``{"missed": slot}`` and is cleared at the same moment, so it is closed in
  the record and the next reminder can open. The morning slot ends at 12:00 (no later check can be a
  morning check), the afternoon slot at 24:00. Every reminder still open at the end of the day has
  therefore become "missed".

Each slot ends up as exactly one of: checked in time (no decision), reminded then cleared, or reminded
then missed; what was emitted is never withdrawn. ``evaluate`` is idempotent (the same ``now`` twice
gives nothing new) and catches up: evaluated hours late it gives every decision of the times passed,
once, at its own time (the due time, the time the check counts from, the end of the slot).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from enum import StrEnum

from alerting.rules.types import Action, Decision, Rule, Severity
from core.profiles import ProfileSettings

FAMILY = "check"
DAY_S = 86400.0
NOON_S = 12 * 3600.0
DEFAULT_UTC_OFFSET_S = 8 * 3600.0  # China Standard Time
CHECKED_PROFILES = frozenset({"refrigerator", "cold_box", "freezer"})  # equipment that holds vaccines
_EPOCH_DAY = date(1970, 1, 1)


class Slot(StrEnum):
    morning = "morning"
    afternoon = "afternoon"


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """The regulation's defaults: checks due by 10:00 and 16:00 local, at least 6 h apart."""

    morning_due: time = time(10, 0)
    afternoon_due: time = time(16, 0)
    min_gap_h: float = 6.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.morning_due.tzinfo is not None or self.afternoon_due.tzinfo is not None:
            raise ValueError("morning_due and afternoon_due are local clock times without a zone")
        if not time(0, 0) < self.morning_due < time(12, 0):
            raise ValueError(f"morning_due {self.morning_due} must be after 00:00 and before 12:00")
        if not self.afternoon_due > time(12, 0):
            raise ValueError(f"afternoon_due {self.afternoon_due} must be after 12:00 and before 24:00")
        if not (math.isfinite(self.min_gap_h) and 0 <= self.min_gap_h <= 12):
            raise ValueError(f"min_gap_h {self.min_gap_h} must be between 0 and 12 hours")

    @property
    def min_gap_s(self) -> float:
        return self.min_gap_h * 3600.0


def check_settings(profile: ProfileSettings) -> CheckSettings:
    """The check settings of an equipment profile (registry YAML ``profiles:`` may change them)."""
    return CheckSettings(
        morning_due=time.fromisoformat(profile.check_morning_due),
        afternoon_due=time.fromisoformat(profile.check_afternoon_due),
        min_gap_h=profile.check_min_gap_h,
        enabled=profile.check_enabled,
    )


def boundaries(
    settings: CheckSettings, t0: float, t1: float, utc_offset_s: float = DEFAULT_UTC_OFFSET_S
) -> bool:
    """Whether a time at which a machine without checks can decide something — a due reminder, a slot's
    end (noon, midnight) — lies in (t0, t1]. A machine with checks may also decide at a check's time or
    at its morning check + ``min_gap_h``: evaluate those whenever they have checks."""
    for day in range(local_day(t0, utc_offset_s), local_day(t1, utc_offset_s) + 1):
        start = day_start(day, utc_offset_s)
        marks = (_seconds(settings.morning_due), NOON_S, _seconds(settings.afternoon_due), DAY_S)
        if any(t0 < start + m <= t1 for m in marks):
            return True
    return False


def applies_to(profile: str) -> bool:
    """Whether equipment of ``profile`` needs the twice-daily check (it holds vaccines)."""
    return profile in CHECKED_PROFILES


@dataclass(frozen=True, slots=True)
class Check:
    time: float  # when the person read the thermometer (epoch s)
    person: str
    recorded_at: float | None = None  # when the system learnt of it; None: at ``time``

    @property
    def known_at(self) -> float:
        """From when the check counts for reminders: made and recorded."""
        return self.time if self.recorded_at is None else max(self.time, self.recorded_at)


# ---------------------------------------------------------------- local days


def local_day(t: float, utc_offset_s: float = DEFAULT_UTC_OFFSET_S) -> int:
    """The clinic's calendar day of ``t`` as a day number (days since 1970-01-01)."""
    return math.floor((t + utc_offset_s) / DAY_S)


def day_start(day: int, utc_offset_s: float = DEFAULT_UTC_OFFSET_S) -> float:
    """Epoch seconds of local 00:00 of ``day`` (with +8 h: 16:00 UTC the day before)."""
    return day * DAY_S - utc_offset_s


def day_label(day: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


def day_of_label(text: str) -> int:
    return (date.fromisoformat(text) - _EPOCH_DAY).days


def _seconds(t: time) -> float:
    return t.hour * 3600.0 + t.minute * 60.0 + t.second + t.microsecond / 1e6


def _clock(t: float, utc_offset_s: float) -> str:
    """Local "HH:MM" of ``t``."""
    s = int((t + utc_offset_s) % DAY_S)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}"


# ---------------------------------------------------------------- which check is which


def morning_check(
    checks: Iterable[Check], day: int, utc_offset_s: float = DEFAULT_UTC_OFFSET_S
) -> Check | None:
    """The day's morning check: the earliest made in [00:00, 12:00) local."""
    start = day_start(day, utc_offset_s)
    found = [c for c in checks if start <= c.time < start + NOON_S]
    return min(found, key=lambda c: (c.time, c.person), default=None)


def afternoon_check(
    checks: Iterable[Check], day: int, min_gap_s: float, utc_offset_s: float = DEFAULT_UTC_OFFSET_S
) -> Check | None:
    """The day's afternoon check: the earliest made in [12:00, 24:00) local at least ``min_gap_s``
    after the day's morning check, or the earliest made then when the day has no morning check."""
    checks = list(checks)
    start = day_start(day, utc_offset_s)
    morning = morning_check(checks, day, utc_offset_s)
    earliest = start + NOON_S if morning is None else max(start + NOON_S, morning.time + min_gap_s)
    found = [c for c in checks if earliest <= c.time < start + DAY_S]
    return min(found, key=lambda c: (c.time, c.person), default=None)


@dataclass(frozen=True, slots=True)
class DayRecord:
    """A day of checks as the record stands (what the monthly report shows): a check recorded late
    still counts here, while the reminders judged with what was known at the time."""

    date: str
    morning: Check | None
    afternoon: Check | None

    @property
    def complete(self) -> bool:
        return self.morning is not None and self.afternoon is not None

    @property
    def missing(self) -> tuple[Slot, ...]:
        return tuple(
            s for s, c in ((Slot.morning, self.morning), (Slot.afternoon, self.afternoon)) if c is None
        )


def day_record(
    checks: Iterable[Check],
    day: int,
    settings: CheckSettings | None = None,
    utc_offset_s: float = DEFAULT_UTC_OFFSET_S,
) -> DayRecord:
    s = settings or CheckSettings()
    checks = list(checks)
    return DayRecord(
        day_label(day),
        morning_check(checks, day, utc_offset_s),
        afternoon_check(checks, day, s.min_gap_s, utc_offset_s),
    )


# ---------------------------------------------------------------- the machine


@dataclass
class _SlotState:
    due: float | None = None  # when the reminder was due (set once it is: the reminder is open)
    emitted: bool = False  # the reminder's fire was emitted (it was not before ``since``)
    done: bool = False  # checked in time, cleared or missed: nothing more for this slot


@dataclass
class CheckMachine:
    """The twice-daily check of one piece of equipment. Slots of the days from ``since`` on are judged,
    and decisions at or after ``since`` emitted (give the time the equipment was registered). None: the
    local midnight starting the day before the first ``evaluate``, so a restarted service re-emits
    yesterday's and today's decisions (the lifecycle ignores those already applied) and loses none,
    e.g. a missed afternoon check at 24:00 when it restarts at 00:05."""

    subject: str  # equipment id
    settings: CheckSettings = field(default_factory=CheckSettings)
    clinic: str | None = None
    utc_offset_s: float = DEFAULT_UTC_OFFSET_S
    since: float | None = None
    first_day: int | None = None  # the earliest day with a slot not done
    slots: dict[tuple[int, Slot], _SlotState] = field(default_factory=dict)

    def evaluate(self, now: float, checks: Iterable[Check]) -> list[Decision]:
        """The decisions due by ``now`` and not emitted before, in time order. ``checks``: this
        equipment's checks, at least those made since the start of the day before ``now`` (more do
        no harm)."""
        if not self.settings.enabled:
            return []
        if self.since is None:
            self.since = day_start(local_day(now, self.utc_offset_s) - 1, self.utc_offset_s)
        if self.first_day is None:
            self.first_day = local_day(self.since, self.utc_offset_s)
        by_day: dict[int, list[Check]] = {}
        for c in checks:
            by_day.setdefault(local_day(c.time, self.utc_offset_s), []).append(c)
        out: list[Decision] = []
        today = local_day(now, self.utc_offset_s)
        for day in range(self.first_day, today + 1):
            day_checks = by_day.get(day, [])
            for slot in Slot:
                out.extend(self._slot(day, slot, now, day_checks))
        while self.first_day < today and all(
            self.slots.get((self.first_day, s), _SlotState()).done for s in Slot
        ):
            for s in Slot:
                self.slots.pop((self.first_day, s), None)
            self.first_day += 1
        out.sort(key=lambda d: d.time)  # stable: a missed check's escalation stays before its clear
        return [d for d in out if d.time >= self.since]

    # ---------------------------------------------------------------- one slot

    def _satisfied_by(self, day: int, slot: Slot, checks: list[Check], at: float) -> Check | None:
        """The check that satisfies ``slot`` with what was known at ``at``."""
        known = [c for c in checks if c.known_at <= at]
        if slot is Slot.morning:
            return morning_check(known, day, self.utc_offset_s)
        return afternoon_check(known, day, self.settings.min_gap_s, self.utc_offset_s)

    def due_and_end(self, day: int, slot: Slot, checks: Iterable[Check] = ()) -> tuple[float, float]:
        """When the slot's reminder is due and when the slot ends (epoch s)."""
        start = day_start(day, self.utc_offset_s)
        s = self.settings
        if slot is Slot.morning:
            return start + _seconds(s.morning_due), start + NOON_S
        due = start + _seconds(s.afternoon_due)
        morning = morning_check([c for c in checks if c.known_at <= due], day, self.utc_offset_s)
        if morning is not None:
            due = max(due, morning.time + s.min_gap_s)
        return due, start + DAY_S

    def _slot(self, day: int, slot: Slot, now: float, checks: list[Check]) -> list[Decision]:
        st = self.slots.setdefault((day, slot), _SlotState())
        if st.done:
            return []
        due, end = self.due_and_end(day, slot, checks)
        if st.due is not None:
            due = st.due  # fixed once reminded, whatever is recorded later
        if now < due:
            return []
        out: list[Decision] = []
        label = day_label(day)
        if st.due is None:
            if self._satisfied_by(day, slot, checks, due) is not None:
                st.done = True  # checked in time
                return []
            st.due = due
            st.emitted = self.since is None or due >= self.since
            out.append(
                self._decide(
                    due, Severity.info, Action.fire, slot=slot, date=label, due=_clock(due, self.utc_offset_s)
                )
            )
        # the first moment after the due time at which a recorded check satisfies the slot
        for at in sorted({c.known_at for c in checks if due < c.known_at <= min(end, now)}):
            found = self._satisfied_by(day, slot, checks, at)
            if found is not None:
                st.done = True
                out.append(
                    self._decide(
                        at,
                        Severity.info,
                        Action.clear,
                        slot=slot,
                        date=label,
                        person=found.person,
                        check_time=_clock(found.time, self.utc_offset_s),
                    )
                )
                return out
        if now >= end:
            st.done = True
            values = {"slot": slot, "date": label, "missed": slot}
            action = Action.escalate if st.emitted else Action.fire
            due_text = _clock(due, self.utc_offset_s)
            out.append(self._decide(end, Severity.warning, action, **values, due=due_text))
            out.append(self._decide(end, Severity.warning, Action.clear, **values))
        return out

    def _decide(self, t: float, severity: Severity, action: Action, **values: object) -> Decision:
        plain = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}
        return Decision(t, Rule.twice_daily_check, severity, action, self.subject, FAMILY, self.clinic, plain)
