"""Who is told about an alert, at which escalation level and when, and the escalation policy that
applies to it. Pure: built once from the registry (``routing_from_sql``), then asked with a time.

Recipients at level L for an alert of clinic C at time t
--------------------------------------------------------
1. The rota entries at level L whose site is C, C's township or the district bureau, and whose shift
   covers t (clinic time, Asia/Shanghai, UTC+8 all year: China has no daylight saving time).
2. If entries exist for that level but none is on duty at t (a gap in the rota), all of them: an
   alert nobody hears is no alert, and a gap is the rota's fault, not the on-call nurse's.
3. If the rota names nobody at that level, the roles DESIGN §6 names: level 0 the clinic's nurses,
   level 1 its clinic head(s), level 2 the bureau's duty officers.

Escalation policy for (clinic, severity)
----------------------------------------
DESIGN §6's defaults (level 1 after 30 min, level 2 after 90 min, reminders every 60 min, SMS for
warning and critical, not for info), then the registry's ``escalation`` entries from the least to the
most specific: district-wide, per severity, per clinic, per clinic and severity. Each entry sets only
what it writes down; ``null`` switches a step off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.clinic_time import WEEKDAYS, day_number, hhmm_minutes, minute_of_day, weekday
from core.db import ClinicRow, DistrictRow, EscalationRow, PersonRow, RotaRow

FALLBACK_ROLES = {0: "nurse", 1: "clinic_head", 2: "duty_officer"}

DEFAULT_POLICY: dict[str, Any] = {
    "level1_after_min": 30.0,
    "level2_after_min": 90.0,
    "reminder_every_min": 60.0,
}
NOTIFY_BY_DEFAULT = {"info": False, "warning": True, "critical": True}


def e164(phone: str) -> str:
    """ "+86 138 0000 1001" -> "+8613800001001" (the registry allows spaces and dashes)."""
    digits = re.sub(r"[ -]", "", phone)
    return digits if digits.startswith("+") else f"+{digits}"


@dataclass(frozen=True, slots=True)
class Recipient:
    person_id: str
    name: str
    phone: str  # E.164
    language: str = "zh-CN"
    site: str = ""  # the clinic, township or bureau the person belongs to
    role: str = ""


@dataclass(frozen=True, slots=True)
class Shift:
    person_id: str
    level: int
    site: str
    days: frozenset[int] = frozenset(range(7))  # 0 = Monday, clinic time
    start_min: int | None = None  # minutes after local midnight; None: all day
    end_min: int | None = None

    def on_duty(self, t: float) -> bool:
        wd, minute = weekday(day_number(t)), minute_of_day(t)
        if self.start_min is None or self.end_min is None:
            return wd in self.days
        if self.start_min < self.end_min:
            return wd in self.days and self.start_min <= minute < self.end_min
        # overnight: the part after midnight belongs to the shift that started the evening before
        return (wd in self.days and minute >= self.start_min) or (
            (wd - 1) % 7 in self.days and minute < self.end_min
        )


@dataclass(frozen=True, slots=True)
class Policy:
    notify: bool
    level1_after_s: float | None
    level2_after_s: float | None
    reminder_every_s: float | None

    def after_s(self, level: int) -> float | None:
        return {1: self.level1_after_s, 2: self.level2_after_s}.get(level)


def _hhmm(text: str | None) -> int | None:
    return hhmm_minutes(text) if text else None


def _minutes(v: Any) -> float | None:
    return None if v is None else float(v) * 60.0


@dataclass
class Routing:
    people: dict[str, Recipient]
    clinic_township: dict[str, str]  # clinic -> township
    bureau: str
    shifts: dict[tuple[str, int], list[Shift]] = field(default_factory=dict)  # (site, level) -> shifts
    policies: dict[tuple[str | None, str | None], dict[str, Any]] = field(default_factory=dict)

    def sites(self, clinic: str | None) -> tuple[str, ...]:
        if clinic is None:
            return (self.bureau,)
        return tuple(s for s in (clinic, self.clinic_township.get(clinic), self.bureau) if s)

    def recipients(self, clinic: str | None, level: int, t: float) -> list[Recipient]:
        entries = [s for site in self.sites(clinic) for s in self.shifts.get((site, level), [])]
        if entries:
            on_duty = [s for s in entries if s.on_duty(t)] or entries  # a gap in the rota: tell them all
            ids = [s.person_id for s in on_duty]
        else:
            role = FALLBACK_ROLES.get(level)
            site = self.bureau if level >= 2 or clinic is None else clinic
            ids = [p.person_id for p in self.people.values() if p.site == site and p.role == role]
        out: dict[str, Recipient] = {}
        for pid in ids:
            if pid in self.people:
                out.setdefault(pid, self.people[pid])
        return list(out.values())

    def notifying_severities(self) -> frozenset[str]:
        """The severities some clinic's policy sends SMS for (alerts of the others need no look)."""
        clinics = {None} | {clinic for clinic, _ in self.policies}
        return frozenset(sev for sev in NOTIFY_BY_DEFAULT if any(self.policy(c, sev).notify for c in clinics))

    def policy(self, clinic: str | None, severity: str) -> Policy:
        merged: dict[str, Any] = {"notify": NOTIFY_BY_DEFAULT.get(severity, True), **DEFAULT_POLICY}
        for key in ((None, None), (None, severity), (clinic, None), (clinic, severity)):
            merged.update(self.policies.get(key, {}))
        return Policy(
            notify=bool(merged["notify"]),
            level1_after_s=_minutes(merged["level1_after_min"]),
            level2_after_s=_minutes(merged["level2_after_min"]),
            reminder_every_s=_minutes(merged["reminder_every_min"]),
        )


def build_routing(
    people: Iterable[tuple[str, str, str, str, str, str]],  # id, site, name, phone, role, language
    clinic_township: Mapping[str, str],
    bureau: str,
    rota: Iterable[tuple[str, str, int, str | None, str | None, str | None]],  # site, person, level, ...
    policies: Iterable[tuple[str | None, str | None, Mapping[str, Any]]] = (),
) -> Routing:
    recipients: dict[str, Recipient] = {}
    for pid, site, name, phone, role, language in people:
        recipients[pid] = Recipient(pid, name, e164(phone), language or "zh-CN", site, role)
    shifts: dict[tuple[str, int], list[Shift]] = {}
    for site, person, level, days, start, end in rota:
        day_set = frozenset(WEEKDAYS.index(d) for d in days.split(",")) if days else frozenset(range(7))
        shifts.setdefault((site, level), []).append(
            Shift(person, level, site, day_set, _hhmm(start), _hhmm(end))
        )
    return Routing(
        recipients,
        dict(clinic_township),
        bureau,
        shifts,
        {(clinic, severity): dict(settings) for clinic, severity, settings in policies},
    )


def routing_from_sql(engine: Engine) -> Routing:
    with Session(engine) as s:
        people = [
            (p.id, p.site_id, p.name, p.phone, p.role, p.language) for p in s.scalars(select(PersonRow))
        ]
        clinic_township = {c.id: c.township_id for c in s.scalars(select(ClinicRow))}
        district = s.scalars(select(DistrictRow)).first()
        bureau = district.bureau_id if district else ""
        rota = [(r.site_id, r.person_id, r.level, r.days, r.start, r.end) for r in s.scalars(select(RotaRow))]
        policies = [
            (e.clinic_id, e.severity, json.loads(e.settings)) for e in s.scalars(select(EscalationRow))
        ]
    return build_routing(people, clinic_township, bureau, rota, policies)
