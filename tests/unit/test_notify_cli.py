"""``chainwatch notify``: a test SMS through the configured channels (against the strict Aliyun fake),
and the delivery log with phone numbers masked."""

from __future__ import annotations

import io
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.orm import Session

from alerting.notify.cli import send_test, show_log
from alerting.notify.store import SmsRow, init_notify_tables
from core.db import make_engine
from core.settings import Settings
from tests.fake_sms import FakeAliyun


def test_a_test_sms_goes_through_the_failover_order(tmp_path: Path) -> None:
    with FakeAliyun("id", "secret", sign_name="卫健局", template_code="SMS_9") as fake:
        fake.script("server_error")
        settings = Settings(
            data_dir=tmp_path,
            notify_channels="aliyun,outbox",
            notify_aliyun_access_key_id="id",
            notify_aliyun_access_key_secret=SecretStr("secret"),
            notify_aliyun_sign_name="卫健局",
            notify_aliyun_template_code="SMS_9",
            notify_aliyun_endpoint=fake.url,
        )
        out = io.StringIO()
        assert send_test(settings, "+8613800000000", "测试", out) == 0
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("aliyun: retryable") and lines[1].startswith("outbox: sent")
        out = io.StringIO()
        assert send_test(settings, "+8613800000000", "测试", out) == 0
        assert out.getvalue().startswith("aliyun: sent, request id ")
        assert [a.text for a in fake.accepted] == ["测试"] and fake.rejected == []
        assert "secret" not in out.getvalue()


def test_the_log_masks_phone_numbers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sql = make_engine(settings.sql_url)
    init_notify_tables(sql)
    with Session(sql) as s, s.begin():
        s.add(
            SmsRow(
                person_id="qingshui-nurse1", phone="+8613800001001", language="zh-CN", kind="single",
                text="【冷链警报】…", created_at=1.0, status="failed", attempts=8, provider="aliyun",
                next_attempt_at=1.0, last_error="gave up after 8 attempts",
            )
        )  # fmt: skip
    out = io.StringIO()
    show_log(settings, None, 10, False, out)
    text = out.getvalue()
    assert "**********1001" in text and "13800001001" not in text and "gave up after 8 attempts" in text
    out = io.StringIO()
    show_log(settings, "sent", 10, False, out)
    assert out.getvalue() == "no SMS yet with status sent\n"
