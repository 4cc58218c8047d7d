"""``chainwatch notify``: what an operator needs to trust the SMS path.

- ``notify log [--status S] [--limit N]``: the delivery log, newest first: when, to whom (the last four
  digits), which channel, the provider's request id, status, attempts and the last error;
- ``notify test --to PHONE [--text T]``: one message through the configured channels in failover
  order, as the dispatcher sends it, to check credentials, templates and signature before an alert
  needs them. Prints what each channel answered.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.notify.base import Message, Status
from alerting.notify.channels import build_channels
from alerting.notify.dispatcher import mask_phone
from alerting.notify.store import SmsRow, SmsStatus, init_notify_tables
from core.clock import SystemClock
from core.db import make_engine
from core.settings import Settings

DEFAULT_TEST_TEXT = "【ChainWatch】短信通道测试，无需回复。/ SMS channel test, no reply needed."


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    log = sub.add_parser("log", help="the delivery log, newest first")
    log.add_argument("--status", choices=[s.value for s in SmsStatus])
    log.add_argument("--limit", type=int, default=20)
    log.add_argument("--json", action="store_true", help="one JSON object per line")
    test = sub.add_parser("test", help="send one test SMS through the configured channels")
    test.add_argument("--to", required=True, help="phone number, E.164 (+8613800000000)")
    test.add_argument("--text", default=DEFAULT_TEST_TEXT)


def _time(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if t else "-"


def show_log(settings: Settings, status: str | None, limit: int, as_json: bool, out: TextIO) -> int:
    sql = make_engine(settings.sql_url)
    init_notify_tables(sql)
    with Session(sql) as s:
        q = select(SmsRow).order_by(SmsRow.id.desc()).limit(max(1, limit))
        if status:
            q = q.where(SmsRow.status == status)
        rows = list(s.scalars(q))
    if not rows:
        print("no SMS yet" + (f" with status {status}" if status else ""), file=out)
        return 0
    for r in rows:
        if as_json:
            print(json.dumps({**r.as_json(), "phone": mask_phone(r.phone)}, ensure_ascii=False), file=out)
            continue
        print(
            f"{_time(r.created_at)}  #{r.id:<5} {mask_phone(r.phone):>14}  {r.person_id:<20} "
            f"{r.status:<9} {r.provider or '-':<8} attempts {r.attempts}  id {r.request_id or '-'}",
            file=out,
        )
        print(f"    {r.text}", file=out)
        if r.last_error:
            print(f"    last error: {r.last_error}", file=out)
    return 0


def send_test(settings: Settings, to: str, text: str, out: TextIO) -> int:
    sql = make_engine(settings.sql_url)
    channels = build_channels(settings, sql, SystemClock())
    message = Message(to, text, key=f"test-{int(SystemClock().now())}")
    for channel in channels:
        result = channel.send(message)
        print(
            f"{channel.name}: {result.status.value}"
            + (f", request id {result.request_id}" if result.request_id else "")
            + (f" ({result.detail})" if result.detail else ""),
            file=out,
        )
        if result.status in (Status.sent, Status.unknown):
            return 0 if result.status is Status.sent else 1
    return 1
