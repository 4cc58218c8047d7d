"""The alerting service end to end: simulated clinics -> real Mosquitto -> ``chainwatch alerting`` ->
alert store, InfluxDB ``alert`` points and ``cw/v1/{clinic}/alerts`` messages. The expected alerts are
those the same rules decide in process over the same simulated messages
(tests/unit/test_rules_with_simulator.py), so the service must add nothing and lose nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from alerting.lifecycle import list_alerts
from alerting.store import init_alert_tables
from core.db import make_engine
from tests.e2e.conftest import ROOT, CollectorProcess, Env, wait_until

pytestmark = pytest.mark.e2e

SCENARIO = Path(__file__).with_name("scenarios") / "alerts.yaml"
POWER_CUT = Path(__file__).with_name("scenarios") / "power-cut-clinic1.yaml"


class AlertingProcess:
    def __init__(self, env: Env, extra: dict[str, str] | None = None) -> None:
        self.env = env
        self.extra = extra or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = env.settings.data_dir / "alerting.log"
        self.stats_file = env.settings.data_dir / "alerting.json"

    def start(self) -> None:
        environ = {
            **self.env.environ,
            "CHAINWATCH_ALERTING_TICK_S": "1",
            "CHAINWATCH_ALERTING_CLIENT_ID": f"alerting-{self.env.settings.influx_db}",
            **self.extra,
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "alerting"], env=environ, cwd=ROOT, stdout=log, stderr=log
            )
        self.env.children.append(self.proc)
        wait_until(lambda: self.stats().get("connected"), 60, "the alerting service to subscribe")

    def stats(self) -> dict[str, Any]:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"alerting died ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0
        self.proc = None


def _start(hours_back: float) -> str:
    t = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_back)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def alerts(env: Env) -> list[Any]:
    sql = make_engine(env.settings.sql_url)
    init_alert_tables(sql)
    with Session(sql) as s:
        return list_alerts(s, limit=1000)


class AlertListener:
    """Subscribed to cw/v1/+/alerts, as a clinic's buzzer would be."""

    def __init__(self, env: Env) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listener-{env.settings.influx_db}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.on_connect = lambda c, *_a: c.subscribe("cw/v1/+/alerts", qos=1)
        self.client.connect(env.settings.mqtt_host, env.settings.mqtt_port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(json.loads(msg.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def expected_opened(
    clinics: int, hours: float, start: str, scenario: Path, seed: int
) -> Counter[tuple[str, str]]:
    """(family, subject) of every alert the rules open, computed in process over the same simulation."""
    from alerting.rules.types import Action
    from core.registry_model import DEMO_REGISTRY, load_registry_file
    from tests.unit import test_rules_with_simulator as inproc

    decisions = inproc.decisions_for(
        load_registry_file(DEMO_REGISTRY),
        clinics,
        hours,
        scenario.name,
        seed,
        start=datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp(),
        scenarios=scenario.parent,
    )
    opened: Counter[tuple[str, str]] = Counter()
    open_now: set[tuple[str, str]] = set()
    for d in sorted(decisions, key=lambda d: d.time):
        if d.action in (Action.fire, Action.escalate) and d.key not in open_now:
            open_now.add(d.key)
            opened[d.key] += 1
        elif d.action is Action.clear and d.severity.value != "critical":
            open_now.discard(d.key)
    return opened


def test_a_scenario_raises_exactly_the_expected_alerts_each_once(
    env: Env, collector: CollectorProcess
) -> None:
    service = AlertingProcess(env)
    service.start()
    listener = AlertListener(env)
    start = _start(17)
    result = env.simulate(
        "--clinics",
        "4",
        "--speed",
        "0",
        "--seed",
        "3",
        "--start",
        start,
        "--duration",
        "16h",
        "--scenario",
        str(SCENARIO),
    )
    wait_until(
        lambda: service.stats().get("received", 0) >= result["messages"], 120, "alerting to read everything"
    )
    want = expected_opened(4, 16, start, SCENARIO, 3)
    # the four things the scenario is about are among them
    families = {f for f, _ in want}
    assert {"power", "heat", "cold", "probe", "offline"} <= families, want
    # (the twice-daily check reminders follow the wall clock and people, not the simulated data)
    got = Counter((a.family, a.subject) for a in alerts(env) if a.family != "check")
    assert got == want
    with env.influx() as client:
        series = client.query('SELECT count("alert_id") FROM "alert"')
    assert series and series[0]["values"][0][1] >= sum(want.values())
    wait_until(lambda: len(listener.messages) >= sum(want.values()), 30, "alert messages for the clinics")
    listener.close()
    freeze = [a for a in alerts(env) if a.rule == "freeze_alarm"]
    assert freeze and all(a.severity == "critical" and "振荡试验" in a.message for a in freeze)


def test_restart_mid_excursion_keeps_one_alert_and_resolves_what_cleared_meanwhile(
    env: Env, collector: CollectorProcess
) -> None:
    service = AlertingProcess(env)
    service.start()
    start = _start(20)
    first = env.simulate(
        "--clinics",
        "1",
        "--speed",
        "0",
        "--seed",
        "5",
        "--start",
        start,
        "--duration",
        "7h",
        "--scenario",
        str(POWER_CUT),
    )
    wait_until(
        lambda: service.stats().get("received", 0) >= first["messages"], 60, "alerting to read part one"
    )
    heat_open = {a.subject for a in alerts(env) if a.family == "heat" and a.state != "resolved"}
    power = [a for a in alerts(env) if a.family == "power"]
    assert heat_open and len(power) == 1 and power[0].state == "firing"  # mid-excursion, mid-cut
    service.stop()

    # while the service is down: the power comes back and the fridges cool down (the collector stores it)
    later = (datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(hours=7)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    second = env.simulate(
        "--clinics", "1", "--speed", "0", "--seed", "5", "--start", later, "--duration", "3h"
    )
    wait_until(
        lambda: (
            env.count("temperature", "celsius")
            >= first["temperature_readings"] + second["temperature_readings"]
        ),
        60,
        "the collector to store part two",
    )
    service.start()
    wait_until(lambda: service.stats().get("received", 0) >= second["messages"], 60, "alerting to catch up")
    by_key = Counter((a.family, a.subject) for a in alerts(env) if a.family != "check")
    detail = [
        (a.family, a.subject, a.rule, a.started_at, a.state, a.opened_by)
        for a in alerts(env)
        if a.family == "early"
    ]
    assert all(n == 1 for n in by_key.values()), (by_key, detail)  # no second alert for the same excursion
    heat = [a for a in alerts(env) if a.family == "heat"]
    assert {a.subject for a in heat} == heat_open
    assert all(a.state == "resolved" and a.resolution == "auto" for a in heat if a.severity == "warning")
    (power,) = [a for a in alerts(env) if a.family == "power"]
    assert power.state == "resolved"


def test_a_changed_registry_is_read_again_without_a_restart(env: Env, tmp_path: Path) -> None:
    """An admin renames a clinic (web admin or `chainwatch registry load`): within the check interval
    the running service builds itself again from the new registry, and the next alert carries the new
    name. Nothing published while it does so is lost: its MQTT session waits at the broker."""
    import yaml

    from core.registry_model import DEMO_REGISTRY

    service = AlertingProcess(env, extra={"CHAINWATCH_ALERTING_REGISTRY_CHECK_S": "1"})
    service.start()
    reg = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    clinic = reg["district"]["townships"][0]["clinics"][0]
    assert clinic["id"] == "qingshui-thc"
    clinic["name"] = "清水镇中心卫生院"
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    loaded = env.chainwatch("registry", "load", str(renamed))
    assert loaded.returncode == 0, loaded.stderr
    wait_until(
        lambda: "restarting with the new registry" in service.log.read_text(errors="replace"),
        30,
        "the service to see the new registry",
    )
    # a DS18B20 power-on value: a probe fault at once, on the renamed clinic's first fridge
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"registry-test-{env.settings.influx_db}")
    client.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    client.loop_start()
    now = datetime.now(UTC).timestamp()
    payload = json.dumps([{"bn": "urn:dev:qingshui-gw1:", "bt": now, "n": "p1", "u": "Cel", "v": 85.0}])
    client.publish("cw/v1/qingshui-thc/qingshui-gw1/telemetry", payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()

    def fault_alert() -> Any:
        return next((a for a in alerts(env) if a.rule == "probe_fault" and a.clinic == "qingshui-thc"), None)

    alert = wait_until(fault_alert, 60, "the probe fault alert of 清水镇中心卫生院")
    assert "清水镇中心卫生院" in alert.message
    service.stop()  # and it still stops cleanly (exit 0) after building itself again
