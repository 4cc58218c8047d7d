"""SQL tables of the notifications: what was decided per alert, each notice, each SMS and each attempt
to send it (the delivery log).

- ``notify_ledger``: one row per alert that was ever planned (``alerting.notify.planner.Ledger``), with
  the state and severity the dispatcher last saw and when it must look again (``next_due_at``): each
  tick reads only the alerts with no ledger, one due, or a changed state or severity, so thousands of
  quiet open alerts cost nothing.
- ``notice``: one thing to tell one person (``key`` UNIQUE: the same notice is never made twice).
  ``pending`` until it goes into an SMS (``sms_id``) or is ``cancelled`` with the reason (the alert was
  acknowledged or resolved before the grouping window closed, or the person was never told).
- ``sms``: one text to one phone, covering one or more notices. ``queued`` -> ``sending`` -> ``sent``;
  ``retrying`` (a retryable failure, ``next_attempt_at``), ``unknown`` (the request may have been taken:
  never sent again), ``failed`` (refused by every channel, or too many attempts). The row is marked
  ``sending`` and committed *before* the provider is called: a crash during the call leaves it
  ``sending``, which the next start turns into ``unknown`` instead of sending it twice.
- ``sms_attempt``: every call to a provider: when, which, outcome, the provider's request id, detail.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Double, Engine, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, create_tables


class NoticeStatus(StrEnum):
    pending = "pending"
    batched = "batched"  # in an SMS
    cancelled = "cancelled"


class SmsStatus(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    retrying = "retrying"
    unknown = "unknown"
    failed = "failed"


class LedgerRow(Base):
    __tablename__ = "notify_ledger"
    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    level: Mapped[int] = mapped_column(Integer, default=-1)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    severity: Mapped[str] = mapped_column(String(16), default="")
    told: Mapped[list[str]] = mapped_column(JSON, default=list)
    ack_announced: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    updated_at: Mapped[float] = mapped_column(Double)
    # the dispatcher's bookkeeping: an alert is looked at again when one of these says so
    seen_state: Mapped[str] = mapped_column(String(16), default="")
    seen_severity: Mapped[str] = mapped_column(String(16), default="")
    next_due_at: Mapped[float | None] = mapped_column(Double, nullable=True, index=True)


class NoticeRow(Base):
    __tablename__ = "notice"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    clinic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    person_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16), default=NoticeStatus.pending.value)
    sms_id: Mapped[int | None] = mapped_column(ForeignKey("sms.id"), nullable=True, index=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_notice_status_person", "status", "person_id"),)


class SmsRow(Base):
    __tablename__ = "sms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    phone: Mapped[str] = mapped_column(String(32), index=True)
    clinic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # single / group / digest
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double, index=True)
    status: Mapped[str] = mapped_column(String(16), default=SmsStatus.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    next_attempt_at: Mapped[float] = mapped_column(Double)
    sent_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_sms_status_next", "status", "next_attempt_at"),)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person_id": self.person_id,
            "phone": self.phone,
            "clinic": self.clinic,
            "kind": self.kind,
            "text": self.text,
            "created_at": self.created_at,
            "status": self.status,
            "attempts": self.attempts,
            "provider": self.provider,
            "request_id": self.request_id,
            "sent_at": self.sent_at,
            "last_error": self.last_error,
        }


class SmsAttemptRow(Base):
    __tablename__ = "sms_attempt"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sms_id: Mapped[int] = mapped_column(ForeignKey("sms.id"), index=True)
    at: Mapped[float] = mapped_column(Double)
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


NOTIFY_TABLE_NAMES = ("notify_ledger", "sms", "notice", "sms_attempt")


def init_notify_tables(engine: Engine) -> None:
    create_tables(engine, [Base.metadata.tables[n] for n in NOTIFY_TABLE_NAMES])
