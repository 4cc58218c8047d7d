"""The notification loop, one ``tick(now)`` at a time (the alerting service runs it every
``CHAINWATCH_NOTIFY_TICK_S``; tests call it with a manual clock):

1. **plan** — every open alert, and every resolved one whose ledger is not closed, goes through the
   pure planner with its ledger; new notices are stored (their keys are unique, so a notice is made
   once however often the tick runs or restarts).
2. **compose** — pending notices become SMS. A notice that asks for an acknowledgement is cancelled if
   the alert was acknowledged or resolved meanwhile, an announcement if its person was never actually
   told. A person's notices of one clinic wait ``group_wait`` and go out as one SMS (storm control);
   a phone gets at most ``rate_limit`` SMS per window, and when only one is left in the window, all that
   is pending for that phone goes out as one digest. Each alert in an SMS that asks for acknowledgement
   gets its own signed link (one alert, one person, an expiry).
3. **deliver** — SMS that are due go through the channels in order (``CHAINWATCH_NOTIFY_CHANNELS``):
   ``sent`` ends it; ``unknown`` (the request may have been taken) ends it too — it is never sent again;
   ``failed`` tries the next channel; ``retryable`` tries the next channel, and when none took it, the
   SMS is retried later with exponential backoff, up to ``max_attempts``. A channel failing
   ``failover_after`` times in a row is skipped for ``failover_cooldown_s`` (a circuit breaker), so a
   provider that keeps failing no longer delays every message. Every call is in the delivery log.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session

from alerting.messages import Names
from alerting.notify import texts
from alerting.notify.base import Message, Notifier, SendResult, Status
from alerting.notify.links import issue_link, link_url
from alerting.notify.planner import AlertView, Ledger, Notice, Purpose, next_due, plan
from alerting.notify.routing import Routing
from alerting.notify.store import LedgerRow, NoticeRow, NoticeStatus, SmsAttemptRow, SmsRow, SmsStatus
from alerting.store import AlertRow, AlertState
from core.clock import Clock
from core.settings import Settings

log = logging.getLogger("chainwatch.notify")

OPEN_STATES = (AlertState.firing.value, AlertState.acknowledged.value)
MAX_BACKOFF_S = 1800.0


@dataclass(frozen=True, slots=True)
class Options:
    group_wait_s: float = 30.0
    rate_limit: int = 10
    rate_window_s: float = 3600.0
    max_attempts: int = 8
    retry_base_s: float = 30.0
    failover_after: int = 3
    failover_cooldown_s: float = 300.0
    link_ttl_s: float = 72 * 3600.0
    public_url: str = "http://127.0.0.1:8080"
    send_workers: int = 1  # SMS sent at once (each provider call waits for its HTTP answer)


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


@dataclass
class _Batch:
    """What one compose pass shares: its session, the alerts and ledgers of the pending notices, the
    time, and the SMS per phone in the rate window so far."""

    session: Session
    alerts: dict[str, AlertRow]
    ledgers: dict[str, LedgerRow]
    now: float
    used: dict[str, int]


@dataclass
class TickResult:
    notices: int = 0
    cancelled: int = 0
    composed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0


@dataclass
class Dispatcher:
    sql: Engine
    routing: Routing
    channels: Sequence[Notifier]
    link_key: bytes = field(repr=False)
    names: Names | None = None
    options: Options = field(default_factory=Options)
    _breakers: dict[str, _Breaker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._severities = sorted(self.routing.notifying_severities())
        self._lock = threading.Lock()  # the breakers, shared by the sending threads

    # ------------------------------------------------------------------ start

    def recover(self, now: float) -> int:
        """SMS left ``sending`` by a crash may have reached the provider: they become ``unknown``."""
        with Session(self.sql) as s, s.begin():
            rows = list(s.scalars(select(SmsRow).where(SmsRow.status == SmsStatus.sending.value)))
            for row in rows:
                row.status = SmsStatus.unknown.value
                row.last_error = (
                    "the service stopped while sending: it may have been sent, so it is not resent"
                )
                s.add(
                    SmsAttemptRow(
                        sms_id=row.id,
                        at=now,
                        provider=row.provider or "?",
                        status="unknown",
                        detail=row.last_error,
                    )
                )
        return len(rows)

    def tick(self, now: float) -> TickResult:
        result = TickResult()
        result.notices = self.plan(now)
        result.cancelled, result.composed = self.compose(now)
        for status in self.deliver(now):
            if status == SmsStatus.sent:
                result.sent += 1
            elif status == SmsStatus.retrying:
                result.retrying += 1
            elif status == SmsStatus.failed:
                result.failed += 1
            elif status == SmsStatus.unknown:
                result.unknown += 1
        return result

    # ------------------------------------------------------------------ 1. plan

    def plan(self, now: float) -> int:
        made = 0
        ledger = LedgerRow
        look = or_(
            ledger.alert_id.is_(None),
            ledger.next_due_at <= now,
            ledger.seen_state != AlertRow.state,
            ledger.seen_severity != AlertRow.severity,
        )
        query = (
            select(AlertRow, ledger)
            .outerjoin(ledger, ledger.alert_id == AlertRow.id)
            .where(
                or_(
                    and_(
                        AlertRow.state.in_(OPEN_STATES),
                        AlertRow.severity.in_(self._severities),
                        look,
                    ),
                    and_(ledger.closed.is_(False), ledger.seen_state != AlertRow.state),
                )
            )
        )
        with Session(self.sql) as s, s.begin():
            rows = s.execute(query).all()
            if not rows:
                return 0
            offline = frozenset(
                s.scalars(
                    select(AlertRow.clinic).where(
                        AlertRow.state.in_(OPEN_STATES),
                        AlertRow.family == "offline",
                        AlertRow.subject == AlertRow.clinic,
                    )
                )
            )
            ids = [alert.id for alert, _ in rows]
            existing = set(s.scalars(select(NoticeRow.key).where(NoticeRow.alert_id.in_(ids))))
            for alert, row in rows:
                view = _view(alert)
                before = _ledger(row, alert.id)
                after, notices = plan(view, before, self.routing, now, offline)
                if row is None:
                    row = LedgerRow(alert_id=alert.id)
                    s.add(row)
                _store_ledger(row, after, now)
                row.seen_state, row.seen_severity = alert.state, alert.severity
                row.next_due_at = next_due(view, after, self.routing, offline)
                for n in notices:
                    if n.key in existing:
                        continue
                    existing.add(n.key)
                    s.add(_notice_row(n, now))
                    made += 1
        return made

    # ------------------------------------------------------------------ 2. compose

    def compose(self, now: float) -> tuple[int, int]:
        cancelled = composed = 0
        with Session(self.sql) as s, s.begin():
            pending = list(
                s.scalars(
                    select(NoticeRow)
                    .where(NoticeRow.status == NoticeStatus.pending.value)
                    .order_by(NoticeRow.id)
                )
            )
            if not pending:
                return 0, 0
            alert_ids = {n.alert_id for n in pending}
            alerts = {a.id: a for a in s.scalars(select(AlertRow).where(AlertRow.id.in_(alert_ids)))}
            ledgers = {
                r.alert_id: r for r in s.scalars(select(LedgerRow).where(LedgerRow.alert_id.in_(alert_ids)))
            }
            told = {
                (alert_id, person)
                for alert_id, person in s.execute(
                    select(NoticeRow.alert_id, NoticeRow.person_id).where(
                        NoticeRow.alert_id.in_(alert_ids), NoticeRow.status == NoticeStatus.batched.value
                    )
                )
            }
            live: list[NoticeRow] = []
            for n in sorted(pending, key=lambda n: (not Purpose(n.purpose).asks_for_ack, n.id)):
                reason = _obsolete(n, alerts.get(n.alert_id), told)
                if reason:
                    n.status, n.note = NoticeStatus.cancelled.value, reason
                    cancelled += 1
                else:
                    live.append(n)
            by_person: dict[str, list[NoticeRow]] = defaultdict(list)
            for n in live:
                by_person[n.person_id].append(n)
            used: dict[str, int] = dict(
                s.execute(  # type: ignore[arg-type]
                    select(SmsRow.phone, func.count())
                    .where(SmsRow.created_at > now - self.options.rate_window_s)
                    .group_by(SmsRow.phone)
                ).all()
            )
            batch = _Batch(s, alerts, ledgers, now, used)
            for person_notices in by_person.values():
                composed += self._compose_person(batch, person_notices)
        return cancelled, composed

    def _compose_person(self, b: _Batch, notices: list[NoticeRow]) -> int:
        alerts, now, used = b.alerts, b.now, b.used
        phone = notices[0].phone
        groups: dict[str | None, list[NoticeRow]] = defaultdict(list)
        for n in notices:
            groups[n.clinic].append(n)
        ready = [
            g for g in groups.values() if min(n.created_at for n in g) <= now - self.options.group_wait_s
        ]
        if not ready:
            return 0
        budget = self.options.rate_limit - used.get(phone, 0)
        ready.sort(key=lambda g: min(_severity_rank(alerts[n.alert_id].severity) for n in g))
        made = 0
        for g in ready:
            left = len(groups) - made  # groups still pending for this phone, this one included
            if budget <= 0:
                break
            if budget == 1 and left > 1:  # the last SMS of the window: everything that waits, as one digest
                rest = [n for n in notices if n.status == NoticeStatus.pending.value]
                self._make_sms(b, rest, "digest")
                used[phone] = used.get(phone, 0) + 1
                return made + 1
            self._make_sms(b, g, "single" if len(g) == 1 else "group")
            used[phone] = used.get(phone, 0) + 1
            made += 1
            budget -= 1
        return made

    def _make_sms(self, b: _Batch, notices: list[NoticeRow], kind: str) -> None:
        s, alerts, ledgers, now = b.session, b.alerts, b.ledgers, b.now
        first = notices[0]
        items: list[texts.Item] = []
        links: dict[str, str] = {}
        for n in notices:
            alert = alerts[n.alert_id]
            purpose = Purpose(n.purpose)
            link = None
            if purpose.asks_for_ack and alert.state == AlertState.firing.value:
                if n.alert_id not in links:
                    token = issue_link(
                        s, self.link_key, n.alert_id, n.person_id, now, self.options.link_ttl_s
                    )
                    links[n.alert_id] = link_url(self.options.public_url, token)
                link = links[n.alert_id]
            ledger = ledgers.get(n.alert_id)
            first_at = ledger.first_at if ledger else None
            unacked = round((n.created_at - first_at) / 60) if first_at is not None else 0
            items.append(texts.Item(purpose, alert, link, unacked))
        if kind == "digest":
            text = texts.digest(items, first.language, self.names, self.options.public_url)
        else:
            text = texts.group(items, first.language, self.names)
        sms = SmsRow(
            person_id=first.person_id,
            phone=first.phone,
            clinic=first.clinic if kind != "digest" else None,
            language=first.language,
            kind=kind,
            text=text,
            created_at=now,
            status=SmsStatus.queued.value,
            next_attempt_at=now,
        )
        s.add(sms)
        s.flush()
        for n in notices:
            n.status, n.sms_id = NoticeStatus.batched.value, sms.id

    # ------------------------------------------------------------------ 3. deliver

    def deliver(self, now: float) -> list[SmsStatus]:
        with Session(self.sql) as s:
            due = list(
                s.scalars(
                    select(SmsRow.id)
                    .where(
                        SmsRow.status.in_([SmsStatus.queued.value, SmsStatus.retrying.value]),
                        SmsRow.next_attempt_at <= now,
                    )
                    .order_by(SmsRow.id)
                )
            )
        if self.options.send_workers <= 1 or len(due) <= 1:
            return [self._deliver_one(sms_id, now) for sms_id in due]
        with ThreadPoolExecutor(min(self.options.send_workers, len(due)), "sms") as pool:
            return list(pool.map(lambda sms_id: self._deliver_one(sms_id, now), due))

    def _candidates(self, now: float) -> list[Notifier]:
        with self._lock:
            return self._candidates_locked(now)

    def _candidates_locked(self, now: float) -> list[Notifier]:
        healthy = [c for c in self.channels if self._breaker(c).open_until <= now]
        tripped = sorted(
            (c for c in self.channels if self._breaker(c).open_until > now),
            key=lambda c: self._breaker(c).open_until,
        )
        return healthy or tripped[:1]

    def _breaker(self, channel: Notifier) -> _Breaker:
        return self._breakers.setdefault(channel.name, _Breaker())

    def _record(self, channel: Notifier, result: SendResult, now: float) -> bool:
        """Count a channel's answer in its breaker; True when the SMS is done with (sent or unknown)."""
        with self._lock:
            breaker = self._breaker(channel)
            if result.status in (Status.sent, Status.unknown):
                breaker.failures = 0
                return True
            breaker.failures += 1
            if breaker.failures == self.options.failover_after:
                breaker.open_until = now + self.options.failover_cooldown_s
                log.warning(
                    "channel %s failed %d times in a row: skipped for %.0f s",
                    channel.name,
                    breaker.failures,
                    self.options.failover_cooldown_s,
                )
            elif breaker.failures > self.options.failover_after and breaker.open_until <= now:
                breaker.open_until = now + self.options.failover_cooldown_s  # tried again, still failing
            return False

    def _deliver_one(self, sms_id: int, now: float) -> SmsStatus:
        with Session(self.sql) as s, s.begin():  # claim it first: a crash from here on means "unknown"
            row = s.get(SmsRow, sms_id)
            if row is None or row.status not in (SmsStatus.queued.value, SmsStatus.retrying.value):
                return SmsStatus(row.status) if row else SmsStatus.failed
            row.status = SmsStatus.sending.value
            row.attempts += 1
            attempts = row.attempts
            message = Message(row.phone, row.text, None, row.person_id, key=f"sms-{row.id}")
        outcomes: list[tuple[Notifier, SendResult]] = []
        final: SendResult | None = None
        for channel in self._candidates(now):
            try:
                result = channel.send(message)
            except Exception as exc:  # a channel bug must not lose the SMS: the request may have left
                log.exception("channel %s raised while sending SMS %s", channel.name, sms_id)
                result = SendResult(Status.unknown, channel.name, None, f"{type(exc).__name__}: {exc}")
            outcomes.append((channel, result))
            if self._record(channel, result, now):
                final = result
                break
        with Session(self.sql) as s, s.begin():
            row = s.get(SmsRow, sms_id)
            assert row is not None
            for channel, result in outcomes:
                s.add(
                    SmsAttemptRow(
                        sms_id=sms_id,
                        at=now,
                        provider=channel.name,
                        status=result.status.value,
                        request_id=result.request_id,
                        detail=result.detail or None,
                    )
                )
            last = outcomes[-1][1] if outcomes else None
            row.provider = (final or last).provider if (final or last) else None
            if final is not None:
                row.request_id = final.request_id
                if final.status is Status.sent:
                    row.status, row.sent_at, row.last_error = SmsStatus.sent.value, now, None
                else:
                    row.status, row.last_error = SmsStatus.unknown.value, final.detail or "no answer"
                    log.warning(
                        "SMS %s to %s: no answer from %s; not resent",
                        sms_id,
                        mask_phone(row.phone),
                        final.provider,
                    )
                return SmsStatus(row.status)
            row.last_error = "; ".join(
                f"{r.provider}: {r.status.value} {r.detail}".strip() for _, r in outcomes
            )
            retry = any(r.status is Status.retryable for _, r in outcomes) or not outcomes
            if retry and attempts < self.options.max_attempts:
                row.status = SmsStatus.retrying.value
                backoff = min(MAX_BACKOFF_S, self.options.retry_base_s * 2 ** (attempts - 1))
                row.next_attempt_at = now + backoff
            else:
                row.status = SmsStatus.failed.value
                if retry:
                    row.last_error = f"gave up after {attempts} attempts; {row.last_error}"
                log.error("SMS %s to %s failed: %s", sms_id, mask_phone(row.phone), row.last_error)
            return SmsStatus(row.status)


# ---------------------------------------------------------------- helpers


def mask_phone(phone: str) -> str:
    """Phone numbers in logs: the last four digits only."""
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def _severity_rank(severity: str) -> int:
    return {"critical": 0, "warning": 1}.get(severity, 2)


def _view(a: AlertRow) -> AlertView:
    return AlertView(
        a.id, a.clinic, a.family, a.subject, a.severity, a.state, a.acknowledged_by, a.resolved_by
    )


def _ledger(row: LedgerRow | None, alert_id: str) -> Ledger:
    if row is None:
        return Ledger(alert_id)
    return Ledger(
        alert_id,
        row.first_at,
        row.level,
        row.reminders,
        row.severity,
        tuple(row.told or ()),
        row.ack_announced,
        row.closed,
    )


def _store_ledger(row: LedgerRow, ledger: Ledger, now: float) -> None:
    row.first_at, row.level, row.reminders = ledger.first_at, ledger.level, ledger.reminders
    row.severity, row.told = ledger.severity, list(ledger.told)
    row.ack_announced, row.closed, row.updated_at = ledger.ack_announced, ledger.closed, now


def _notice_row(n: Notice, now: float) -> NoticeRow:
    return NoticeRow(
        key=n.key,
        alert_id=n.alert_id,
        clinic=n.clinic,
        person_id=n.person.person_id,
        phone=n.person.phone,
        language=n.person.language,
        purpose=n.purpose.value,
        level=n.level,
        seq=n.seq,
        created_at=now,
        status=NoticeStatus.pending.value,
    )


def _obsolete(n: NoticeRow, alert: AlertRow | None, told: set[tuple[str, str]]) -> str | None:
    """Why a pending notice should not be sent any more (None: send it)."""
    if alert is None:
        return "the alert no longer exists"
    purpose = Purpose(n.purpose)
    if purpose.asks_for_ack:
        if alert.state == AlertState.resolved.value:
            return "resolved before it was sent"
        if alert.state == AlertState.acknowledged.value and purpose is not Purpose.severity:
            return f"acknowledged by {alert.acknowledged_by} before it was sent"
        told.add((n.alert_id, n.person_id))
        return None
    if (n.alert_id, n.person_id) not in told:
        return "the person was never told of this alert"
    return None


def dispatcher_from_settings(
    settings: Settings, sql: Engine, clock: Clock, names: Names | None
) -> Dispatcher:
    """The dispatcher of the alerting service: routing from the registry in SQL, the channels of
    ``CHAINWATCH_NOTIFY_CHANNELS``, the link key, and the options from the settings."""
    from alerting.notify.channels import build_channels
    from alerting.notify.links import init_link_tables, link_key
    from alerting.notify.routing import routing_from_sql
    from alerting.notify.store import init_notify_tables

    init_link_tables(sql)
    init_notify_tables(sql)
    options = Options(
        group_wait_s=settings.notify_group_wait_s,
        rate_limit=settings.notify_rate_limit,
        rate_window_s=settings.notify_rate_window_min * 60.0,
        max_attempts=settings.notify_max_attempts,
        retry_base_s=settings.notify_retry_base_s,
        failover_after=settings.notify_failover_after,
        failover_cooldown_s=settings.notify_failover_cooldown_s,
        link_ttl_s=settings.ack_link_ttl_h * 3600.0,
        public_url=settings.public_url,
        send_workers=settings.notify_send_workers,
    )
    return Dispatcher(
        sql, routing_from_sql(sql), build_channels(settings, sql, clock), link_key(settings), names, options
    )
