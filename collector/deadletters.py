"""Dead-letter store: every message that failed validation, whole, with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.db import DeadLetterRow


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    detail: str
    received_at: float


def store_dead_letters(engine: Engine, letters: list[DeadLetter]) -> None:
    if not letters:
        return
    with Session(engine) as s, s.begin():
        s.add_all(
            DeadLetterRow(
                received_at=datetime.fromtimestamp(d.received_at, UTC),
                topic=d.topic,
                payload=d.payload,
                reason=d.reason,
                detail=d.detail,
            )
            for d in letters
        )


def count_dead_letters(engine: Engine) -> dict[str, int]:
    """Dead letters per reason."""
    with Session(engine) as s:
        rows = s.execute(select(DeadLetterRow.reason, func.count()).group_by(DeadLetterRow.reason)).all()
    return {reason: n for reason, n in rows}


def list_dead_letters(engine: Engine, limit: int = 100, offset: int = 0) -> list[DeadLetterRow]:
    with Session(engine) as s:
        return list(
            s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit).offset(offset))
        )
