"""The outbox channel (the demo's default): messages are stored, shown in the web pages, never sent."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlalchemy import Double, Engine, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.notify.base import Message, SendResult, Status
from core.clock import Clock
from core.db import Base, create_tables


class OutboxRow(Base):
    __tablename__ = "outbox_message"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    alert_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)


@dataclass
class OutboxNotifier:
    engine: Engine
    clock: Clock
    name: str = "outbox"
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        create_tables(self.engine, [OutboxRow.__table__])  # type: ignore[arg-type]

    def send(self, message: Message) -> SendResult:
        with Session(self.engine) as s, s.begin():
            row = OutboxRow(
                to=message.to,
                person_id=message.person_id,
                alert_id=message.alert_id,
                text=message.text,
                created_at=self.clock.now(),
            )
            s.add(row)
            s.flush()
            return SendResult(Status.sent, self.name, f"outbox-{row.id}")
