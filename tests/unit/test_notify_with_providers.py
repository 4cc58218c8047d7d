"""The dispatcher with the real provider clients against the strict fakes: a provider that takes the
request and never answers gets it once, never twice; a provider that keeps failing hands over to the
second one, and the SMS reaches the phone exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerting.notify.aliyun import AliyunSmsNotifier
from alerting.notify.dispatcher import Dispatcher, Options
from alerting.notify.routing import routing_from_sql
from alerting.notify.store import SmsAttemptRow, SmsRow
from alerting.notify.tencent import TencentSmsNotifier
from core.clock import ManualClock
from tests.fake_sms import FakeAliyun, FakeTencent
from tests.unit import test_notify_dispatcher as base
from tests.unit.test_notify_dispatcher import KEY, NAMES, NIGHT, fire


@pytest.fixture
def sql(tmp_path: Path) -> Engine:
    return base.sql.__wrapped__(tmp_path)  # the dispatcher tests' database: demo registry, all tables


def aliyun(fake: FakeAliyun, clock: ManualClock) -> AliyunSmsNotifier:
    return AliyunSmsNotifier(
        "id",
        "ali-secret",
        sign_name="卫健局",
        template_code="SMS_1",
        endpoint=fake.url,
        clock=clock,
        timeout_s=0.5,
    )


def tencent(fake: FakeTencent, clock: ManualClock) -> TencentSmsNotifier:
    return TencentSmsNotifier(
        "sid", "tc-secret", sdk_app_id="1400", sign_name="卫健局", template_id="7", endpoint=fake.url,
        clock=clock, timeout_s=2.0,
    )  # fmt: skip


def statuses(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as s:
        return [(a.provider, a.status) for a in s.scalars(select(SmsAttemptRow).order_by(SmsAttemptRow.id))]


def test_a_request_taken_without_an_answer_is_never_sent_again(sql: Engine) -> None:
    clock = ManualClock(NIGHT)
    with FakeAliyun("id", "ali-secret", hang_s=2.0) as fake:
        fake.script("hang")
        d = Dispatcher(sql, routing_from_sql(sql), [aliyun(fake, clock)], KEY, NAMES, Options(group_wait_s=0))
        fire(sql, NIGHT)
        for s in range(0, 600, 30):
            clock.set(NIGHT + s)
            d.tick(NIGHT + s)
        assert len(fake.accepted) == 1 and fake.rejected == []
        assert statuses(sql) == [("aliyun", "unknown")]
        with Session(sql) as s:
            (row,) = s.scalars(select(SmsRow))
        assert row.status == "unknown" and row.attempts == 1


def test_failover_reaches_the_phone_exactly_once(sql: Engine) -> None:
    clock = ManualClock(NIGHT)
    with FakeAliyun("id", "ali-secret") as ali, FakeTencent("sid", "tc-secret") as tc:
        ali.script("server_error", "server_error", "server_error")
        d = Dispatcher(
            sql,
            routing_from_sql(sql),
            [aliyun(ali, clock), tencent(tc, clock)],
            KEY,
            NAMES,
            Options(group_wait_s=0, failover_after=2),
        )
        fire(sql, NIGHT)
        fire(sql, NIGHT, "baihe-fridge1", "baihe-thc")
        fire(sql, NIGHT, "shiqiao-fridge1", "shiqiao-thc")
        d.tick(NIGHT)
        assert len(tc.accepted) == 3 and ali.accepted == []
        assert len({m.to for m in tc.accepted}) == 3  # the three night nurses, once each
        # two Aliyun failures open its breaker: the third SMS goes straight to Tencent
        assert statuses(sql).count(("aliyun", "retryable")) == 2
        assert tc.rejected == [] and ali.rejected == []
