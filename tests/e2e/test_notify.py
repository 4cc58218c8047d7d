"""Notifications end to end: simulated fridges that lose their power -> real Mosquitto -> collector and
``chainwatch alerting`` -> an SMS request that a strict local Aliyun ``SendSms`` server checks (its
signature recomputed independently) -> the signed link in that SMS, opened and submitted on the web
app -> the alert acknowledged by the nurse the SMS went to -> no escalation to the clinic head.

A second clinic's excursion, left unacknowledged, is escalated to its head: the control that shows
the first clinic's silence is the acknowledgement's doing. Escalation is shortened to 30 s through the
registry (the same setting an operator would use per clinic or severity)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.notify.store import NoticeRow, SmsRow
from alerting.store import AlertRow
from core.db import make_engine
from core.registry_model import DEMO_REGISTRY
from tests.e2e.conftest import CollectorProcess, Env, _free_port, wait_until
from tests.e2e.test_alerting import AlertingProcess, _start
from tests.fake_sms import FakeAliyun
from web.app import create_app

pytestmark = pytest.mark.e2e

LINK = re.compile(r"https?://[^\s；;，,]+/a/[0-9A-Za-z]+-[A-Za-z0-9_-]{12}")
SECRET = "e2e-ack-link-secret"

SCENARIO = """
name: two fridges unplugged
events:
  - kind: unplugged
    clinic: 1
    equipment: fridge1
    at: "+1h"
    duration: 3h
  - kind: unplugged
    clinic: 2
    equipment: fridge1
    at: "+1h"
    duration: 3h
"""


def phones(reg: dict[str, Any], clinic: str) -> dict[str, str]:
    """role/person -> E.164 phone of the clinic's people."""
    for t in reg["district"]["townships"]:
        for c in t["clinics"]:
            if c["id"] == clinic:
                return {p["id"]: "+" + re.sub(r"\D", "", p["phone"]) for p in c["people"]}
    raise KeyError(clinic)


class Web:
    """The web app served by uvicorn on a free loopback port, in this process."""

    def __init__(self, env: Env) -> None:
        port = _free_port(set())
        settings = env.settings.model_copy(update={"ack_link_secret": SecretStr(SECRET), "web_port": port})
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: self.server.started, 20, "the web app to listen")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def web(env: Env) -> Iterator[Web]:
    w = Web(env)
    yield w
    w.close()


@pytest.fixture
def aliyun() -> Iterator[FakeAliyun]:
    with FakeAliyun("e2eKeyId", "e2eKeySecret", sign_name="示范区卫健局", template_code="SMS_123") as fake:
        yield fake


def test_an_sms_link_acknowledges_the_alert_and_stops_the_escalation(
    env: Env, collector: CollectorProcess, web: Web, aliyun: FakeAliyun, tmp_path: Path
) -> None:
    reg = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    reg["escalation"] = [{"level1_after_min": 0.5, "level2_after_min": 30, "reminder_every_min": None}]
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    loaded = env.chainwatch("registry", "load", str(registry))
    assert loaded.returncode == 0, loaded.stderr
    scenario = tmp_path / "unplugged.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")

    service = AlertingProcess(
        env,
        extra={
            "CHAINWATCH_NOTIFY_CHANNELS": "aliyun",
            "CHAINWATCH_NOTIFY_ALIYUN_ACCESS_KEY_ID": "e2eKeyId",
            "CHAINWATCH_NOTIFY_ALIYUN_ACCESS_KEY_SECRET": "e2eKeySecret",
            "CHAINWATCH_NOTIFY_ALIYUN_SIGN_NAME": "示范区卫健局",
            "CHAINWATCH_NOTIFY_ALIYUN_TEMPLATE_CODE": "SMS_123",
            "CHAINWATCH_NOTIFY_ALIYUN_ENDPOINT": aliyun.url,
            "CHAINWATCH_NOTIFY_TICK_S": "1",
            "CHAINWATCH_NOTIFY_GROUP_WAIT_S": "3",
            "CHAINWATCH_ACK_LINK_SECRET": SECRET,
            "CHAINWATCH_PUBLIC_URL": web.url,
        },
    )
    service.start()
    env.simulate(
        "--clinics", "2", "--speed", "0", "--seed", "11", "--start", _start(4), "--duration", "4h",
        "--scenario", str(scenario),
    )  # fmt: skip

    qingshui, baihe = phones(reg, "qingshui-thc"), phones(reg, "baihe-thc")
    nurses = {qingshui["qingshui-nurse1"]: "qingshui-nurse1", qingshui["qingshui-nurse2"]: "qingshui-nurse2"}
    sql = make_engine(env.settings.sql_url)

    def firing_at_qingshui() -> list[AlertRow]:
        with Session(sql) as s:
            return list(
                s.scalars(
                    select(AlertRow).where(
                        AlertRow.clinic == "qingshui-thc",
                        AlertRow.state == "firing",
                        AlertRow.severity != "info",  # no SMS for info (the twice-daily check reminders)
                    )
                )
            )

    # the nurse on duty gets the SMS; every link in it is opened and acknowledged, as she would
    acked: set[str] = set()
    acked_by: set[str] = set()

    def acknowledge_what_arrived() -> bool:
        for sms in list(aliyun.accepted):
            if sms.to not in nurses:
                continue
            for link in LINK.findall(sms.text):
                if link in acked:
                    continue
                page = httpx.get(link, timeout=10)
                assert page.status_code == 200 and "清水镇卫生院" in page.text
                done = httpx.post(link, data={"note": "已转移疫苗到备用冰箱"}, timeout=10)
                assert done.status_code == 200, done.text[:500]
                acked.add(link)
                acked_by.add(nurses[sms.to])
        return bool(acked) and not firing_at_qingshui()

    wait_until(acknowledge_what_arrived, 90, "an SMS to the Qingshui nurse and its links acknowledged", 0.3)

    # the control: Baihe's head is told after 30 s without acknowledgement
    def baihe_head_told() -> bool:
        return any(s.to == baihe["baihe-head"] and "已升级" in s.text for s in aliyun.accepted)

    wait_until(baihe_head_told, 90, "the escalation of Baihe's unacknowledged alert to its head")
    acknowledge_what_arrived()  # anything that fired at Qingshui meanwhile

    with Session(sql) as s:
        ours = list(s.scalars(select(AlertRow).where(AlertRow.clinic == "qingshui-thc")))
        escalated = list(
            s.scalars(
                select(NoticeRow).where(NoticeRow.clinic == "qingshui-thc", NoticeRow.purpose == "escalated")
            )
        )
        sent = list(s.scalars(select(SmsRow)))
    assert ours and all(a.state != "firing" for a in ours if a.severity != "info")
    acked_alerts = [a for a in ours if a.acknowledged_by]
    assert acked_alerts and {a.acknowledged_by for a in acked_alerts} <= acked_by
    assert all(a.acknowledged_note == "已转移疫苗到备用冰箱" for a in acked_alerts)
    assert escalated == []
    assert not [m for m in aliyun.accepted if m.to == qingshui["qingshui-head"]]
    # every request was signed as Aliyun documents it, and the delivery log has the provider's ids
    assert aliyun.rejected == []
    assert sent and all(r.status == "sent" and r.provider == "aliyun" and r.request_id for r in sent)
    assert {r.request_id for r in sent} == {m.request_id for m in aliyun.accepted}
    assert "e2eKeySecret" not in (env.settings.data_dir / "alerting.log").read_text()
    service.stop()
