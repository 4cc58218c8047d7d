"""Whom to tell about one alert now: a pure function of the alert, what was already done for it (its
``Ledger``), the routing and ``now`` — in the manner of Alertmanager's dedup decision. No I/O and no
clock reading here; the dispatcher stores ledgers and notices and turns notices into SMS.

For an alert that is firing (nobody acknowledged it), when its policy sends SMS and no clinic-wide
offline alert inhibits it:
- level 0 at once (the first time it is seen firing); if nobody can be found at level 0, the next level
  that has someone, at once;
- level 1 at ``level1_after`` and level 2 at ``level2_after`` after the first notice, each to the people
  of that level not told yet;
- reminder k at k x ``reminder_every`` after the first notice, to everyone told so far (except those
  told in the same step);
- after a service outage, the steps that fell due meanwhile are taken together, and only the newest
  reminder is sent.
When its severity rises (a heat warning becomes a heat alarm), everyone told hears of it, even if it was
acknowledged. On acknowledgement everything stops; the others told hear who acknowledged. When it is
resolved, everyone told hears it (except the person who resolved it). An alert never notified closes
its ledger silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from alerting.notify.routing import Recipient, Routing

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MAX_LEVEL = 2


class Purpose(StrEnum):
    fired = "fired"  # level 0
    escalated = "escalated"  # level 1 or 2
    reminder = "reminder"
    severity = "severity"  # the alert became more severe
    acknowledged = "acknowledged"  # announced to the others told
    resolved = "resolved"

    @property
    def asks_for_ack(self) -> bool:
        return self in (Purpose.fired, Purpose.escalated, Purpose.reminder, Purpose.severity)


@dataclass(frozen=True, slots=True)
class AlertView:
    """What the planner needs of an alert (``alerting.store.AlertRow``)."""

    id: str
    clinic: str | None
    family: str
    subject: str
    severity: str
    state: str  # firing / acknowledged / resolved
    acknowledged_by: str | None = None
    resolved_by: str | None = None


@dataclass(frozen=True, slots=True)
class Ledger:
    """What was done for one alert so far."""

    alert_id: str
    first_at: float | None = None  # when level 0 was told
    level: int = -1  # highest level told
    reminders: int = 0  # reminders sent
    severity: str = ""  # the severity people were last told about
    told: tuple[str, ...] = ()  # person ids, in the order they were told
    ack_announced: bool = False
    closed: bool = False  # resolved and announced (or never notified): nothing more to do


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell one person about one alert. ``key`` is unique: the same notice is never made
    twice."""

    key: str
    alert_id: str
    clinic: str | None
    person: Recipient
    purpose: Purpose
    level: int
    seq: int = 0  # the reminder's number
    at: float = 0.0


def _key(alert_id: str, person: str, purpose: Purpose, n: int | str) -> str:
    return f"{alert_id}/{person}/{purpose.value}/{n}"


def inhibited(alert: AlertView, offline_clinics: frozenset[str]) -> bool:
    """A clinic-wide offline alert stands for every other alert of its clinic (Alertmanager-style
    inhibition): they are not told while it is open."""
    if alert.clinic is None or alert.clinic not in offline_clinics:
        return False
    return not (alert.family == "offline" and alert.subject == alert.clinic)


def plan(
    alert: AlertView,
    ledger: Ledger,
    routing: Routing,
    now: float,
    offline_clinics: frozenset[str] = frozenset(),
) -> tuple[Ledger, list[Notice]]:
    if ledger.closed:
        return ledger, []
    if alert.state == "resolved":
        return _resolved(alert, ledger, routing, now)
    notices: list[Notice] = []
    ledger = _severity(alert, ledger, routing, now, notices)
    if alert.state == "acknowledged":
        return _acknowledged(alert, ledger, routing, now, notices)
    if alert.state != "firing" or inhibited(alert, offline_clinics):
        return ledger, notices
    policy = routing.policy(alert.clinic, alert.severity)
    if not policy.notify:
        return ledger, notices
    told = list(ledger.told)
    now_told: set[str] = set()

    def tell(level: int, purpose: Purpose) -> int:
        people = [p for p in routing.recipients(alert.clinic, level, now) if p.person_id not in told]
        for p in people:
            notices.append(
                Notice(
                    _key(alert.id, p.person_id, purpose, level),
                    alert.id,
                    alert.clinic,
                    p,
                    purpose,
                    level,
                    at=now,
                )
            )
            told.append(p.person_id)
            now_told.add(p.person_id)
        return len(people)

    first_at, level = ledger.first_at, ledger.level
    if first_at is None:
        first_at, level = now, 0
        # level 0; nobody there (nor anyone already told): the next level with someone, at once
        while tell(level, Purpose.fired if level == 0 else Purpose.escalated) == 0 and level < MAX_LEVEL:
            level += 1
    for lv in range(level + 1, MAX_LEVEL + 1):
        after = policy.after_s(lv)
        if after is None:  # this step is switched off: the next one may still come
            continue
        if now < first_at + after:
            break
        tell(lv, Purpose.escalated)
        level = lv
    reminders = ledger.reminders
    if policy.reminder_every_s:
        due = math.floor((now - first_at) / policy.reminder_every_s)
        if due > reminders:
            reminders = due
            for pid in told:
                if pid in now_told or pid not in routing.people:
                    continue
                person = routing.people[pid]
                key = _key(alert.id, pid, Purpose.reminder, due)
                notices.append(Notice(key, alert.id, alert.clinic, person, Purpose.reminder, level, due, now))
    return (
        replace(
            ledger,
            first_at=first_at,
            level=level,
            reminders=reminders,
            severity=ledger.severity or alert.severity,
            told=tuple(told),
        ),
        notices,
    )


def next_due(
    alert: AlertView, ledger: Ledger, routing: Routing, offline_clinics: frozenset[str] = frozenset()
) -> float | None:
    """When ``plan`` can next have something to do for this alert if nothing about it changes (its
    state and severity, which the dispatcher watches itself): the next escalation or reminder; 0.0 for
    "look again at every tick" (not told yet, or inhibited); None for "nothing, ever"."""
    if ledger.closed or alert.state != "firing":
        return None
    if inhibited(alert, offline_clinics):
        return 0.0
    policy = routing.policy(alert.clinic, alert.severity)
    if not policy.notify:
        return None
    if ledger.first_at is None:
        return 0.0
    due: list[float] = []
    for lv in range(ledger.level + 1, MAX_LEVEL + 1):
        after = policy.after_s(lv)
        if after is not None:
            due.append(ledger.first_at + after)
            break
    if policy.reminder_every_s:
        due.append(ledger.first_at + (ledger.reminders + 1) * policy.reminder_every_s)
    return min(due) if due else None


def _severity(
    alert: AlertView, ledger: Ledger, routing: Routing, now: float, notices: list[Notice]
) -> Ledger:
    """The alert got more severe than what people were told: tell them."""
    if not ledger.told:
        return ledger
    if SEVERITY_RANK.get(alert.severity, 0) <= SEVERITY_RANK.get(ledger.severity, 0):
        return ledger
    for pid in ledger.told:
        if pid in routing.people:
            key = _key(alert.id, pid, Purpose.severity, alert.severity)
            notices.append(
                Notice(
                    key, alert.id, alert.clinic, routing.people[pid], Purpose.severity, ledger.level, at=now
                )
            )
    return replace(ledger, severity=alert.severity)


def _acknowledged(
    alert: AlertView, ledger: Ledger, routing: Routing, now: float, notices: list[Notice]
) -> tuple[Ledger, list[Notice]]:
    if ledger.ack_announced or not ledger.told:
        return ledger, notices
    for pid in ledger.told:
        if pid != alert.acknowledged_by and pid in routing.people:
            key = _key(alert.id, pid, Purpose.acknowledged, 0)
            notices.append(
                Notice(
                    key,
                    alert.id,
                    alert.clinic,
                    routing.people[pid],
                    Purpose.acknowledged,
                    ledger.level,
                    at=now,
                )
            )
    return replace(ledger, ack_announced=True), notices


def _resolved(alert: AlertView, ledger: Ledger, routing: Routing, now: float) -> tuple[Ledger, list[Notice]]:
    notices = [
        Notice(
            _key(alert.id, pid, Purpose.resolved, 0),
            alert.id,
            alert.clinic,
            routing.people[pid],
            Purpose.resolved,
            ledger.level,
            at=now,
        )
        for pid in ledger.told
        if pid != alert.resolved_by and pid in routing.people
    ]
    return replace(ledger, closed=True), notices
