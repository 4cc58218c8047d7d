"""The alert lifecycle: rule decisions and people's actions applied to the alert store.

firing -> acknowledged -> resolved, one open alert per (family, subject), every change in the history.
Plain functions over a SQLAlchemy ``Session``: they add and flush rows, the caller commits (or rolls
back: everything here is idempotent, so applying the same decisions again after a rollback is the way
to retry, e.g. after an ``IntegrityError`` from a concurrent writer). Time is passed in: ``now`` is when
the store records a change, a decision's own ``time`` is the reading time it is about.

Decisions (``apply``)
---------------------
- fire: no open alert for the key -> open one (firing). An open alert of lower severity -> escalate it.
  Same or higher -> no change.
- escalate: raise the open alert's severity and rule (history "escalated"); none open -> open one at
  that severity.
- update: new values and message for the open alert. History "updated" at most once per 15 minutes per
  alert (``UPDATE_HISTORY_EVERY_S``; a change is still returned for the sinks every time); an update
  of higher severity escalates. None open -> no change.
- clear: a critical cold-chain alert (current rule in ``COLD_CHAIN_RULES``) gets ``condition_cleared_at``
  and history "condition_cleared" and stays open until a person resolves it with a corrective action;
  any other alert is resolved (resolution auto, by "system"). None open -> no change.
- A fire, escalate or update for an open alert whose condition had cleared: the condition is back,
  ``condition_cleared_at`` is reset and the history says "reopened".

Idempotency and order (the rule for late decisions)
---------------------------------------------------
1. A decision already applied (its identity opened an alert or is recorded on a history row) changes
   nothing, whatever happened since: a replay never opens a second alert, even when the first one has
   been resolved.
2. Each (family, subject) has a watermark: the time of the newest decision applied to any of its alerts
   (``alert.last_decision_at``; decisions that change nothing on an open alert still move it). A decision
   older than the watermark is *late*, and a late decision only ever raises severity: a late fire,
   escalate or update of higher severity escalates the open alert (a critical condition is never lost),
   and every other late decision is ignored - it does not open, reopen or clear an alert and does not
   overwrite newer numbers. A decision at exactly the watermark is not late.
People's actions (acknowledge, resolve) use ``now`` and do not move the watermark: a person closing an
alert does not hide a later excursion that the data shows.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.messages import EN, ZH, NameSource, render_alert
from alerting.rules.types import COLD_CHAIN_RULES, Action, Decision, Severity
from alerting.store import SYSTEM, AlertEventRow, AlertRow, AlertState, EventKind, Resolution

UPDATE_HISTORY_EVERY_S = 15 * 60
ID_TZ = timezone(timedelta(hours=8), "CST")  # the date in an alert id is the clinics' date
ID_PREFIX = "A"
PERSON_ID_MAX = 64
DEFAULT_LIMIT = 100

_DECISION_KINDS = (EventKind.fired, EventKind.escalated, EventKind.updated, EventKind.reopened)


class AlertError(Exception):
    """An action on an alert that cannot be done; the message says why."""


class AlertNotFound(AlertError, LookupError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"no alert with id {alert_id!r}")
        self.alert_id = alert_id


class CorrectiveActionRequired(AlertError, ValueError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(
            f"alert {alert_id} is a critical cold-chain alert: resolving it needs the corrective action taken"
        )
        self.alert_id = alert_id


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One change of one alert: what the InfluxDB and MQTT sinks (and notifications) need."""

    alert_id: str
    clinic: str | None
    rule: str
    severity: Severity
    state: AlertState
    subject: str
    family: str
    kind: EventKind
    at: float  # the decision's time, or when the person acted
    by: str  # "system" or a person id
    message: str  # zh-CN
    message_en: str
    started_at: float
    note: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


# ---------------------------------------------------------------- queries


def decision_identity(decision: Decision) -> str:
    t, rule, action, family, subject = decision.identity()
    return f"{t:.3f}|{rule}|{action}|{family}|{subject}"


def _open_key(family: str, subject: str) -> str:
    return f"{family}/{subject}"


def open_alert(session: Session, family: str, subject: str) -> AlertRow | None:
    """The open (firing or acknowledged) alert of a (family, subject), if any."""
    return session.scalars(select(AlertRow).where(AlertRow.open_key == _open_key(family, subject))).first()


def get_alert(session: Session, alert_id: str) -> AlertRow:
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    return alert


def list_alerts(
    session: Session,
    state: str | None = None,
    clinic: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[AlertRow]:
    """Alerts, newest first. ``state``: firing, acknowledged, resolved, or "open" (firing or
    acknowledged)."""
    q = select(AlertRow)
    if state == "open":
        q = q.where(AlertRow.state.in_([AlertState.firing.value, AlertState.acknowledged.value]))
    elif state is not None:
        q = q.where(AlertRow.state == AlertState(state).value)
    if clinic is not None:
        q = q.where(AlertRow.clinic == clinic)
    q = q.order_by(AlertRow.started_at.desc(), AlertRow.id.desc()).limit(max(0, limit))
    return list(session.scalars(q))


def history(session: Session, alert_id: str) -> list[AlertEventRow]:
    """Every change of the alert, oldest first (by time, then by the order they were recorded)."""
    get_alert(session, alert_id)
    q = select(AlertEventRow).where(AlertEventRow.alert_id == alert_id)
    return list(session.scalars(q.order_by(AlertEventRow.at, AlertEventRow.id)))


def needs_corrective_action(alert: AlertRow) -> bool:
    """A critical cold-chain alert is closed by a person who records what was done, not by the data."""
    return alert.severity == Severity.critical.value and alert.rule in COLD_CHAIN_RULES


def _seen(session: Session, identity: str) -> bool:
    if session.scalars(select(AlertRow.id).where(AlertRow.opened_by == identity).limit(1)).first():
        return True
    q = select(AlertEventRow.id).where(AlertEventRow.decision == identity).limit(1)
    return session.scalars(q).first() is not None


def _watermark(session: Session, family: str, subject: str) -> float | None:
    q = select(func.max(AlertRow.last_decision_at)).where(
        AlertRow.family == family, AlertRow.subject == subject
    )
    return session.scalar(q)


def _new_id(session: Session, t: float) -> str:
    prefix = f"{ID_PREFIX}-{datetime.fromtimestamp(t, ID_TZ):%Y%m%d}-"
    taken = session.scalars(select(AlertRow.id).where(AlertRow.id.like(prefix + "%")))
    n = max((int(i[len(prefix) :]) for i in taken if i[len(prefix) :].isdigit()), default=0)
    return f"{prefix}{n + 1:04d}"


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class _Step:
    """One decision being applied."""

    decision: Decision
    identity: str
    values: dict[str, Any]
    now: float
    names: NameSource

    @property
    def t(self) -> float:
        return self.decision.time

    def record(self, session: Session, alert: AlertRow, kind: EventKind, note: str | None) -> AlertChange:
        return _record(
            session, alert, kind, self.t, self.now, note=note, decision=self.identity, values=self.values
        )


def apply(session: Session, decision: Decision, now: float, *, names: NameSource = None) -> list[AlertChange]:
    """Apply one rule decision. Returns the changes it made (none for a replay or a no-op)."""
    identity = decision_identity(decision)
    if _seen(session, identity):
        return []
    family, subject = decision.key
    alert = open_alert(session, family, subject)
    watermark = _watermark(session, family, subject)
    late = watermark is not None and decision.time < watermark
    step = _Step(decision, identity, plain_values(decision.values), now, names)

    if decision.action in (Action.fire, Action.escalate):
        if alert is None:
            return [] if late else [_open(session, step)]
        return _on_open(session, alert, step, late)
    if decision.action is Action.update:
        return [] if alert is None else _on_open(session, alert, step, late)
    if alert is None or late:
        return []
    return _clear(session, alert, step)


def apply_all(
    session: Session, decisions: Sequence[Decision], now: float, *, names: NameSource = None
) -> list[AlertChange]:
    out: list[AlertChange] = []
    for d in decisions:
        out.extend(apply(session, d, now, names=names))
    return out


def _set_numbers(alert: AlertRow, values: dict[str, Any], names: NameSource) -> None:
    alert.values = values
    args = (alert.rule, alert.severity, alert.subject, alert.clinic, values)
    alert.message = render_alert(*args, lang=ZH, names=names)
    alert.message_en = render_alert(*args, lang=EN, names=names)


def _open(session: Session, step: _Step) -> AlertChange:
    d, t = step.decision, step.t
    family, subject = d.key
    alert = AlertRow(
        id=_new_id(session, t),
        rule=d.rule.value,
        family=family,
        subject=subject,
        clinic=d.clinic,
        severity=d.severity.value,
        state=AlertState.firing.value,
        open_key=_open_key(family, subject),
        started_at=t,
        opened_by=step.identity,
        last_change_at=t,
        last_decision_at=t,
    )
    _set_numbers(alert, step.values, step.names)
    session.add(alert)
    return step.record(session, alert, EventKind.fired, f"{d.rule.value} ({d.severity.value})")


def _on_open(session: Session, alert: AlertRow, step: _Step, late: bool) -> list[AlertChange]:
    """A fire, escalate or update decision for the key's open alert."""
    d = step.decision
    rank, current = d.severity.rank, Severity(alert.severity).rank
    # an escalation at the same severity still changes the rule (cold warning -> freeze alarm of
    # equipment that is not freeze-sensitive); severity never goes down
    same_rank_escalation = d.action is Action.escalate and rank == current and d.rule.value != alert.rule
    raises = rank > current or (not late and same_rank_escalation)
    reopens = not late and alert.condition_cleared_at is not None
    out: list[AlertChange] = []
    if not late:
        alert.last_decision_at = max(alert.last_decision_at, step.t)
    if reopens:
        alert.condition_cleared_at = None
        if not raises:  # the condition is back: its fresh numbers
            _set_numbers(alert, step.values, step.names)
        out.append(step.record(session, alert, EventKind.reopened, f"condition back ({d.rule.value})"))
    if raises:
        alert.severity, alert.rule = d.severity.value, d.rule.value
        _set_numbers(alert, step.values, step.names)
        out.append(step.record(session, alert, EventKind.escalated, f"{d.rule.value} ({d.severity.value})"))
        return out
    if late or reopens or d.action is not Action.update:
        return out  # a fire of the same or lower severity: nothing new
    return _update(session, alert, step)


def _update(session: Session, alert: AlertRow, step: _Step) -> list[AlertChange]:
    old = (alert.message, alert.message_en, alert.values)
    _set_numbers(alert, step.values, step.names)
    if (alert.message, alert.message_en, alert.values) == old:
        return []
    last = session.scalar(
        select(func.max(AlertEventRow.at)).where(
            AlertEventRow.alert_id == alert.id, AlertEventRow.kind.in_([k.value for k in _DECISION_KINDS])
        )
    )
    if last is None or step.t - last >= UPDATE_HISTORY_EVERY_S:
        return [step.record(session, alert, EventKind.updated, None)]
    alert.last_change_at = max(alert.last_change_at, step.t)  # the numbers changed, the history need not
    return [change_of(alert, EventKind.updated, step.t, SYSTEM, None)]


def _clear(session: Session, alert: AlertRow, step: _Step) -> list[AlertChange]:
    t = step.t
    alert.last_decision_at = max(alert.last_decision_at, t)
    if needs_corrective_action(alert):
        if alert.condition_cleared_at is not None:
            return []
        alert.condition_cleared_at = t
        note = "condition cleared; a corrective action is needed to resolve"
        return [step.record(session, alert, EventKind.condition_cleared, note)]
    alert.condition_cleared_at = t
    _close(alert, t, SYSTEM, Resolution.auto, None)
    return [step.record(session, alert, EventKind.resolved, "condition cleared")]


# ---------------------------------------------------------------- people


def acknowledge(session: Session, alert_id: str, by: str, note: str | None, now: float) -> list[AlertChange]:
    """firing -> acknowledged. Acknowledging an acknowledged or resolved alert changes nothing (an SMS
    link clicked twice or late is harmless); an unknown id raises ``AlertNotFound``."""
    alert = get_alert(session, alert_id)
    person = _person(by)
    if alert.state != AlertState.firing.value:
        return []
    text = _text(note)
    alert.state = AlertState.acknowledged.value
    alert.acknowledged_by, alert.acknowledged_at, alert.acknowledged_note = person, now, text
    return [_record(session, alert, EventKind.acknowledged, now, now, by=person, note=text)]


def resolve(
    session: Session, alert_id: str, by: str, corrective_action: str | None, now: float
) -> list[AlertChange]:
    """A person closes the alert. A critical cold-chain alert needs the corrective action taken
    (``CorrectiveActionRequired`` otherwise); a resolved alert stays as it was resolved."""
    alert = get_alert(session, alert_id)
    person = _person(by)
    if alert.state == AlertState.resolved.value:
        return []
    action = _text(corrective_action)
    if action is None and needs_corrective_action(alert):
        raise CorrectiveActionRequired(alert_id)
    _close(alert, now, person, Resolution.corrective_action if action else Resolution.manual, action)
    return [_record(session, alert, EventKind.resolved, now, now, by=person, note=action)]


def _close(alert: AlertRow, at: float, by: str, resolution: Resolution, action: str | None) -> None:
    alert.state = AlertState.resolved.value
    alert.open_key = None
    alert.resolved_by, alert.resolved_at = by, at
    alert.resolution, alert.corrective_action = resolution.value, action


def _person(by: str) -> str:
    person = (by or "").strip()
    if not person:
        raise AlertError("who acted is required (a person id)")
    if person == SYSTEM:
        raise AlertError(f"{SYSTEM!r} is reserved for changes made by the rules")
    if len(person) > PERSON_ID_MAX:
        raise AlertError(f"person id longer than {PERSON_ID_MAX} characters")
    return person


def _text(note: str | None) -> str | None:
    text = (note or "").strip()
    return text or None


# ---------------------------------------------------------------- history rows and changes


def _record(
    session: Session,
    alert: AlertRow,
    kind: EventKind,
    at: float,
    now: float,
    *,
    by: str = SYSTEM,
    note: str | None,
    decision: str | None = None,
    values: dict[str, Any] | None = None,
) -> AlertChange:
    alert.last_change_at = max(alert.last_change_at, at)
    session.add(
        AlertEventRow(
            alert_id=alert.id,
            at=at,
            recorded_at=now,
            kind=kind.value,
            by=by,
            note=note,
            rule=alert.rule,
            severity=alert.severity,
            state=alert.state,
            decision=decision,
            values=values,
        )
    )
    session.flush()
    return change_of(alert, kind, at, by, note)


def change_of(alert: AlertRow, kind: EventKind, at: float, by: str, note: str | None = None) -> AlertChange:
    """An alert's state as an ``AlertChange`` of ``kind`` (for texts about it, e.g. an SMS)."""
    return AlertChange(
        alert_id=alert.id,
        clinic=alert.clinic,
        rule=alert.rule,
        severity=Severity(alert.severity),
        state=AlertState(alert.state),
        subject=alert.subject,
        family=alert.family,
        kind=kind,
        at=at,
        by=by,
        message=alert.message,
        message_en=alert.message_en,
        started_at=alert.started_at,
        note=note,
        values=dict(alert.values or {}),
    )


def plain_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Decision values as JSON-safe plain data (numpy scalars, enums, NaN), keys sorted."""
    return {str(k): _plain(values[k]) for k in sorted(values, key=str)}


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, Enum):
        return _plain(v.value)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, Mapping):
        return plain_values(v)
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return str(v)
