"""The alert store (SQLAlchemy 2, on ``core.db.Base``): one row per alert and one row per change of it.

Importing this module registers the two tables on ``core.db.Base``, so ``core.db.init_db`` creates them;
``init_alert_tables`` creates just these two.

Layout
------
``alert``: what an alert is now. ``id`` is ``A-YYYYMMDD-NNNN``: the date (China Standard Time, UTC+8,
the clocks of the clinics) of the decision that opened it and a per-day sequence number. It is read out
on the phone, typed into an SMS reply and written in the paper log, and 15 characters leave room in a
70-character SMS, where a uuid4 hex (32) would take half of it. Ids are allocated from the rows already
stored (no counter table, no SQL beyond SELECT/INSERT), so two writers racing for the same number get an
``IntegrityError`` on the primary key; the lifecycle is idempotent, so the caller rolls back and applies
the decisions again.

- ``open_key`` = ``"{family}/{subject}"`` while the alert is open, NULL once it is resolved, under a
  UNIQUE constraint: the database itself holds "one open alert per (family, subject)" and serves the
  "open alert by key" lookup. (Unique constraints let NULLs repeat on SQLite, PostgreSQL, MySQL and
  Oracle; SQL Server does not, and would need a filtered index instead.)
- ``opened_by`` (UNIQUE) is the identity of the decision that opened the alert: the same decision can
  never open two alerts, even after the first was resolved.
- ``last_decision_at`` is the time of the newest rule decision applied to the alert: the watermark that
  makes late, older decisions harmless (see ``alerting.lifecycle``).
- Times are epoch seconds as DOUBLE PRECISION (``Double``; ``Float`` is single precision on MySQL).
  Decision events carry the reading time the decision is about, person events the time they acted.

``alert_event``: the history, append-only: what happened (``kind``), when (``at``), who (``by``: a
person id or ``"system"``), why (``note``, and the rule's numbers in ``values``), the alert's rule,
severity and state after it, the identity of the decision behind it (``decision``, for idempotency)
and when the store recorded it (``recorded_at``).

No foreign key points from ``alert`` to the registry: reloading the registry replaces its rows, and
alert records are kept for years (DESIGN §5) whatever happens to the clinic list.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Double, Engine, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, create_tables

SYSTEM = "system"  # ``by`` of changes the rules made


class AlertState(StrEnum):
    firing = "firing"
    acknowledged = "acknowledged"
    resolved = "resolved"


class EventKind(StrEnum):
    fired = "fired"
    escalated = "escalated"
    updated = "updated"
    condition_cleared = "condition_cleared"
    acknowledged = "acknowledged"
    resolved = "resolved"
    reopened = "reopened"  # the condition came back on an open alert whose condition had cleared


class Resolution(StrEnum):
    auto = "auto"  # the condition cleared
    corrective_action = "corrective_action"  # a person resolved it and recorded what was done
    manual = "manual"  # a person closed a non-critical alert without a corrective action


class AlertRow(Base):
    __tablename__ = "alert"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))  # current rule: heat_alarm after an escalation
    family: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))  # equipment, device, clinic or bag id
    clinic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True, nullable=True)
    started_at: Mapped[float] = mapped_column(Double)
    opened_by: Mapped[str] = mapped_column(String(255), unique=True)
    last_change_at: Mapped[float] = mapped_column(Double)
    last_decision_at: Mapped[float] = mapped_column(Double)
    condition_cleared_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    acknowledged_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    corrective_action: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str] = mapped_column(Text)  # zh-CN, the default language
    message_en: Mapped[str] = mapped_column(Text)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_alert_clinic_state", "clinic", "state", "started_at"),
        Index("ix_alert_state_started", "state", "started_at"),
        Index("ix_alert_key_decision", "family", "subject", "last_decision_at"),
    )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "family": self.family,
            "subject": self.subject,
            "clinic": self.clinic,
            "severity": self.severity,
            "state": self.state,
            "started_at": self.started_at,
            "last_change_at": self.last_change_at,
            "condition_cleared_at": self.condition_cleared_at,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_note": self.acknowledged_note,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "corrective_action": self.corrective_action,
            "message": self.message,
            "message_en": self.message_en,
            "values": dict(self.values or {}),
        }


class AlertEventRow(Base):
    __tablename__ = "alert_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alert.id"))
    at: Mapped[float] = mapped_column(Double)
    recorded_at: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_alert_event_alert_at", "alert_id", "at", "id"),)

    def as_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "at": self.at,
            "recorded_at": self.recorded_at,
            "kind": self.kind,
            "by": self.by,
            "note": self.note,
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "values": dict(self.values) if self.values is not None else None,
        }


ALERT_TABLE_NAMES = ("alert", "alert_event")


def init_alert_tables(engine: Engine) -> None:
    """Create the alert tables (and nothing else) if they do not exist yet."""
    create_tables(engine, [Base.metadata.tables[name] for name in ALERT_TABLE_NAMES])
