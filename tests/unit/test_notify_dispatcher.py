"""The notification loop on SQLite with an injected time and recording channels: grouping, rate limit
with a digest, cancel on acknowledgement, the signed link in the text, and delivery (retry with
backoff, failover, a circuit breaker, no second send of what a provider may have taken)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerting import lifecycle as lc
from alerting.messages import registry_names
from alerting.notify.base import Message, SendResult, Status
from alerting.notify.dispatcher import Dispatcher, Options
from alerting.notify.links import init_link_tables, verify_link
from alerting.notify.routing import build_routing, routing_from_sql
from alerting.notify.store import NoticeRow, SmsAttemptRow, SmsRow, init_notify_tables
from alerting.notify.texts import segments
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import init_alert_tables
from core.db import init_db, make_engine
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry

NIGHT = datetime(2026, 11, 25, 19, 0, tzinfo=UTC).timestamp()  # Thu 03:00 clinic time
MIN = 60.0
KEY = b"k" * 32
REG = load_registry_file(DEMO_REGISTRY)
NAMES = registry_names(REG)


@dataclass
class Channel:
    """Answers with the scripted statuses in turn (then ``then``), recording every message."""

    name: str
    script: list[Status] = field(default_factory=list)
    then: Status = Status.sent
    sent: list[Message] = field(default_factory=list)
    calls: int = 0

    def send(self, message: Message) -> SendResult:
        self.calls += 1
        status = self.script.pop(0) if self.script else self.then
        if status is Status.sent:
            self.sent.append(message)
        return SendResult(status, self.name, f"{self.name}-{self.calls}", f"scripted {status.value}")


@pytest.fixture
def sql(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'cw.sqlite'}")
    init_db(engine)
    store_registry(engine, REG)
    init_alert_tables(engine)
    init_link_tables(engine)
    init_notify_tables(engine)
    return engine


def dispatcher(sql: Engine, *channels: Channel, routing: Any = None, **options: Any) -> Dispatcher:
    opts = Options(public_url="https://cw.example.cn", **options)
    return Dispatcher(
        sql, routing or routing_from_sql(sql), list(channels) or [Channel("sms")], KEY, NAMES, opts
    )


def fire(
    sql: Engine,
    t: float,
    subject: str = "qingshui-fridge1",
    clinic: str = "qingshui-thc",
    *,
    rule: Rule = Rule.heat_alarm,
    severity: Severity = Severity.critical,
    family: str = "heat",
) -> str:
    values = {"celsius": 9.2, "minutes": 35, "threshold_c": 8.0}
    with Session(sql) as s, s.begin():
        changes = lc.apply(
            s, Decision(t, rule, severity, Action.fire, subject, family, clinic, values), t, names=NAMES
        )
    return changes[0].alert_id


def sms(sql: Engine) -> list[SmsRow]:
    with Session(sql) as s:
        return list(s.scalars(select(SmsRow).order_by(SmsRow.id)))


def test_level_0_gets_one_sms_with_the_alert_text_and_a_signed_link(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel)
    alert = fire(sql, NIGHT)
    d.tick(NIGHT)
    assert channel.sent == []  # waits for the group window
    d.tick(NIGHT + 30)
    (msg,) = channel.sent
    assert msg.to == "+8613800011002"  # qingshui-nurse2, on the night shift
    assert msg.text.startswith("【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C")
    link = msg.text.rsplit(" ", 1)[1]
    assert link.startswith("https://cw.example.cn/a/") and len(link) < 45
    with Session(sql) as s:
        ack = verify_link(s, KEY, link.rsplit("/", 1)[1], NIGHT + 60)
    assert (ack.alert_id, ack.person_id) == (alert, "qingshui-nurse2")
    assert segments(msg.text) == 2  # the rule text fits one segment; the link needs a second
    (row,) = sms(sql)
    assert (row.status, row.provider, row.request_id, row.attempts) == ("sent", "sms", "sms-1", 1)


def test_alerts_of_one_clinic_within_the_window_are_one_sms(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel)
    fire(sql, NIGHT)
    d.tick(NIGHT)
    fire(sql, NIGHT + 10, "qingshui-fridge2")
    fire(sql, NIGHT + 12, "qingshui-freezer1", rule=Rule.heat_warning, severity=Severity.warning)
    d.tick(NIGHT + 15)
    d.tick(NIGHT + 30)
    (msg,) = channel.sent
    assert msg.text.startswith("【冷链警报】清水镇卫生院 3条：1.疫苗冷藏冰箱 1 高温警报 9.2°C 确认 https://")
    assert msg.text.count("https://cw.example.cn/a/") == 3  # one link per alert
    d.tick(NIGHT + 60)
    assert len(channel.sent) == 1


def test_an_alert_gone_before_the_window_closes_sends_nothing(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel)
    alert = fire(sql, NIGHT, rule=Rule.heat_warning, severity=Severity.warning)
    d.tick(NIGHT)
    with Session(sql) as s, s.begin():
        lc.resolve(s, alert, "qingshui-nurse1", None, NIGHT + 10)
    d.tick(NIGHT + 30)
    d.tick(NIGHT + 60)
    assert channel.sent == []
    with Session(sql) as s:
        notes = sorted(n.note or "" for n in s.scalars(select(NoticeRow)))
    assert notes == ["resolved before it was sent", "the person was never told of this alert"]


def test_acknowledgement_stops_the_escalation(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel)
    alert = fire(sql, NIGHT)
    d.tick(NIGHT)
    d.tick(NIGHT + 30)
    with Session(sql) as s, s.begin():
        lc.acknowledge(s, alert, "qingshui-nurse2", "moved the vaccines", NIGHT + 10 * MIN)
    for minutes in (30, 31, 60, 90, 120, 240):
        d.tick(NIGHT + minutes * MIN)
    assert [m.to for m in channel.sent] == ["+8613800011002"]


def test_the_full_escalation_reaches_the_bureau_and_the_resolve_reaches_everyone(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel)
    alert = fire(sql, NIGHT)
    for minutes in range(0, 125, 1):
        d.tick(NIGHT + minutes * MIN)
    texts = [(m.to, m.text[: m.text.index("】") + 1]) for m in channel.sent]
    assert texts == [
        ("+8613800011002", "【冷链警报】"),  # nurse 2 at once
        ("+8613800021003", "【30分钟无人确认，已升级】"),  # the clinic head at 30 min
        ("+8613800011002", "【提醒：60分钟无人确认】"),  # reminders at 60 min
        ("+8613800021003", "【提醒：60分钟无人确认】"),
        ("+8613901000001", "【90分钟无人确认，已升级】"),  # the bureau at 90 min
        ("+8613800011002", "【提醒：120分钟无人确认】"),
        ("+8613800021003", "【提醒：120分钟无人确认】"),
        ("+8613901000001", "【提醒：120分钟无人确认】"),
    ]
    with Session(sql) as s, s.begin():
        lc.resolve(s, alert, "bureau-duty1", "vaccines moved to the backup fridge", NIGHT + 125 * MIN)
    d.tick(NIGHT + 126 * MIN)
    d.tick(NIGHT + 127 * MIN)
    closing = [(m.to, m.text) for m in channel.sent[8:]]
    assert sorted(to for to, _ in closing) == ["+8613800011002", "+8613800021003"]
    assert all(
        t.startswith("【已关闭】清水镇卫生院 疫苗冷藏冰箱 1：高温警报已由 郑国平 关闭") for _, t in closing
    )


def test_the_rate_limit_sends_the_overflow_as_one_digest(sql: Engine) -> None:
    # one person on call for every clinic, two SMS per hour at most
    routing = build_routing(
        [("p", "demo-bureau", "P", "+86 139 1", "duty_officer", "zh-CN")],
        {c.id: t.id for t, c in REG.clinic_townships()},
        "demo-bureau",
        [("demo-bureau", "p", 0, None, None, None)],
    )
    channel = Channel("sms")
    d = dispatcher(sql, channel, routing=routing, rate_limit=2, rate_window_s=3600.0)
    for clinic in ("qingshui", "baihe", "shiqiao", "liulin"):
        fire(sql, NIGHT, f"{clinic}-fridge1", f"{clinic}-thc")
    d.tick(NIGHT)
    d.tick(NIGHT + 30)
    assert len(channel.sent) == 2
    first, digest = channel.sent
    assert first.text.startswith("【冷链警报】")
    assert digest.text.startswith("【冷链汇总】短信已达上限，3条合并：")
    assert digest.text.endswith("详情 https://cw.example.cn")
    fire(sql, NIGHT + 60, "dongpo-fridge1", "dongpo-thc")
    for minutes in range(1, 59):
        d.tick(NIGHT + minutes * MIN)
    assert len(channel.sent) == 2  # nothing more within the hour
    d.tick(NIGHT + 61 * MIN)
    assert len(channel.sent) >= 3


def test_retryable_failures_back_off_then_give_up(sql: Engine) -> None:
    channel = Channel("sms", then=Status.retryable)
    d = dispatcher(sql, channel, group_wait_s=0, max_attempts=3, retry_base_s=30, failover_after=100)
    fire(sql, NIGHT)
    d.tick(NIGHT)
    assert channel.calls == 1
    d.tick(NIGHT + 29)
    assert channel.calls == 1  # backoff 30 s
    d.tick(NIGHT + 30)
    assert channel.calls == 2
    d.tick(NIGHT + 89)
    assert channel.calls == 2  # backoff 60 s
    d.tick(NIGHT + 90)
    assert channel.calls == 3
    (row,) = [r for r in sms(sql)]
    assert row.status == "failed" and row.last_error.startswith("gave up after 3 attempts")
    d.tick(NIGHT + 3600)  # later SMS (the escalation) are tried; the failed one is not tried again
    assert (sms(sql)[0].status, sms(sql)[0].attempts) == ("failed", 3)


def test_a_retry_that_succeeds_sends_once(sql: Engine) -> None:
    channel = Channel("sms", script=[Status.retryable, Status.retryable])
    d = dispatcher(sql, channel, group_wait_s=0, failover_after=100)
    fire(sql, NIGHT)
    for s in range(0, 300, 5):
        d.tick(NIGHT + s)
    assert len(channel.sent) == 1 and channel.calls == 3
    with Session(sql) as s:
        attempts = [
            (a.provider, a.status) for a in s.scalars(select(SmsAttemptRow).order_by(SmsAttemptRow.id))
        ]
    assert attempts == [("sms", "retryable"), ("sms", "retryable"), ("sms", "sent")]


def test_no_answer_is_never_sent_again(sql: Engine) -> None:
    first, second = Channel("a", script=[Status.unknown]), Channel("b")
    d = dispatcher(sql, first, second, group_wait_s=0)
    fire(sql, NIGHT)
    for s in range(0, 600, 10):
        d.tick(NIGHT + s)
    assert first.calls == 1 and second.calls == 0
    (row,) = sms(sql)
    assert row.status == "unknown" and row.provider == "a"


def test_failover_to_the_second_provider_and_the_breaker_skips_the_first(sql: Engine) -> None:
    primary, backup = Channel("aliyun", then=Status.retryable), Channel("tencent")
    d = dispatcher(sql, primary, backup, group_wait_s=0, failover_after=2, failover_cooldown_s=600)
    for i, clinic in enumerate(("qingshui", "baihe", "shiqiao", "liulin")):
        fire(sql, NIGHT + i, f"{clinic}-fridge1", f"{clinic}-thc")
    d.tick(NIGHT + 5)
    assert len(backup.sent) == 4  # each delivered once, by the backup
    assert primary.calls == 2  # after two failures in a row the primary is skipped
    assert {r.provider for r in sms(sql)} == {"tencent"}
    fire(sql, NIGHT + 700, "dongpo-fridge1", "dongpo-thc")
    primary.then = Status.sent
    d.tick(NIGHT + 700)  # the cool-down is over: the primary is tried again
    assert primary.calls == 3 and len(primary.sent) == 1


def test_a_refusal_tries_the_next_channel(sql: Engine) -> None:
    primary, backup = Channel("aliyun", script=[Status.failed]), Channel("twilio")
    d = dispatcher(sql, primary, backup, group_wait_s=0)
    fire(sql, NIGHT)
    d.tick(NIGHT)
    assert len(backup.sent) == 1 and sms(sql)[0].status == "sent"


def test_a_crash_while_sending_leaves_unknown_not_a_second_send(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel, group_wait_s=0)
    fire(sql, NIGHT)
    d.plan(NIGHT)
    d.compose(NIGHT)
    with Session(sql) as s, s.begin():  # as if the process died during the provider call
        s.scalars(select(SmsRow)).one().status = "sending"
    restarted = dispatcher(sql, channel, group_wait_s=0)
    assert restarted.recover(NIGHT + 60) == 1
    restarted.tick(NIGHT + 120)
    assert channel.calls == 0 and sms(sql)[0].status == "unknown"


def test_english_speakers_get_english(sql: Engine) -> None:
    routing = build_routing(
        [("p", "qingshui-thc", "Pat", "+44 20 7946 0000", "nurse", "en")],
        {"qingshui-thc": "qingshui"},
        "demo-bureau",
        [("qingshui-thc", "p", 0, None, None, None)],
    )
    channel = Channel("sms")
    d = dispatcher(sql, channel, routing=routing, group_wait_s=0)
    fire(sql, NIGHT)
    d.tick(NIGHT)
    (msg,) = channel.sent
    assert (
        msg.to == "+442079460000"
        and msg.text.startswith("[Cold chain ALARM]")
        and " Ack: https://" in msg.text
    )


def test_an_acknowledged_warning_that_becomes_an_alarm_is_told_again(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel, group_wait_s=0)
    alert = fire(sql, NIGHT, rule=Rule.heat_warning, severity=Severity.warning)
    d.tick(NIGHT)
    with Session(sql) as s, s.begin():
        lc.acknowledge(s, alert, "qingshui-nurse2", None, NIGHT + 60)
    for minutes in range(2, 40):
        d.tick(NIGHT + minutes * MIN)
    assert len(channel.sent) == 1  # acknowledged: quiet
    fire(sql, NIGHT + 40 * MIN, rule=Rule.heat_alarm)  # the same excursion, now an alarm
    d.tick(NIGHT + 41 * MIN)
    assert len(channel.sent) == 2 and channel.sent[1].text.startswith("【升级】【冷链警报】")
    with Session(sql) as s, s.begin():
        lc.resolve(s, alert, "qingshui-head", "moved the vaccines", NIGHT + 50 * MIN)
    d.tick(NIGHT + 51 * MIN)
    assert channel.sent[2].text.startswith("【已关闭】") and channel.sent[2].to == "+8613800011002"


def test_parallel_sending_sends_each_sms_exactly_once(sql: Engine) -> None:
    channel = Channel("sms")
    d = dispatcher(sql, channel, group_wait_s=0, send_workers=4)
    for clinic in ("qingshui", "baihe", "shiqiao", "liulin", "dongpo", "xigang", "nanshan", "beiling"):
        fire(sql, NIGHT, f"{clinic}-fridge1", f"{clinic}-thc")
    d.tick(NIGHT)
    d.tick(NIGHT + 15)
    assert len(channel.sent) == 8 and len({m.to for m in channel.sent}) == 8
    assert all(r.status == "sent" and r.attempts == 1 for r in sms(sql))
