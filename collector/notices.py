"""Device notices: readings from devices (or probes) the registry does not know are stored, and
noticed here so that the bureau can register them (DESIGN §3)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from collector.ingest import Notice
from core.db import DeviceNoticeRow

log = logging.getLogger("chainwatch.collector")


def record_notices(engine: Engine, notices: dict[tuple[str, str, str], Notice], now: float) -> None:
    if not notices:
        return
    when = datetime.fromtimestamp(now, UTC)
    with Session(engine) as s, s.begin():
        for (clinic, device, kind), n in notices.items():
            row = s.get(DeviceNoticeRow, (clinic, device, kind))
            if row is None:
                log.warning(
                    "%s: %s/%s sends readings; register it with `chainwatch registry load`",
                    kind.replace("_", " "),
                    clinic,
                    device,
                )
                row = DeviceNoticeRow(
                    clinic_id=clinic, device_id=device, kind=kind, first_seen=when, last_seen=when, messages=0
                )
                s.add(row)
            row.last_seen = when
            row.messages = (row.messages or 0) + n.messages
            if n.last_reading_at is not None:
                row.last_reading_at = max(n.last_reading_at, row.last_reading_at or n.last_reading_at)


def list_notices(engine: Engine) -> list[DeviceNoticeRow]:
    with Session(engine) as s:
        return list(s.scalars(select(DeviceNoticeRow).order_by(DeviceNoticeRow.first_seen)))
