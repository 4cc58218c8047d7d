"""End to end from the gateway firmware: what the firmware (under a real MicroPython, on the simulated
board) published through an outage with a power cut and a lost PUBACK is forwarded, message by
message and in order, to the real Mosquitto; the collector stores every reading exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.deadletters import count_dead_letters
from core.db import make_engine
from tests.e2e.conftest import CollectorProcess, Env, wait_until
from tests.firmware import mpy

pytestmark = pytest.mark.e2e

CLINIC = "qingshui-thc"
DEVICE = "fwtest-gw1"  # a device of its own: its retained status does not touch other tests' devices


def forward(env: Env, messages: list[dict[str, object]]) -> None:
    """Publish ``messages`` as the gateway did: username = device id, QoS 1, retained where it was."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{DEVICE}-replay")
    client.username_pw_set(DEVICE)
    client.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    client.loop_start()
    try:
        for m in messages:
            client.publish(
                str(m["topic"]), str(m["payload"]), qos=1, retain=bool(m["retain"])
            ).wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def clear_retained(env: Env, topic: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{DEVICE}-cleanup")
    client.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    client.loop_start()
    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def test_firmware_readings_through_an_outage_are_stored_exactly_once(
    env: Env, collector: CollectorProcess, tmp_path: Path
) -> None:
    start = int(time.time()) - 4 * 3600  # the whole run lies in the past, as a replayed outage does
    run = mpy.run(
        "outage",
        tmp_path,
        start=start,
        device=DEVICE,
        online_min=10,
        offline_min=180,
        reboots=[[90, True]],
        after_min=5,
        lose_puback=1,
    )
    done = run.one("done")
    samples = len(done["truth"])
    telemetry = run.delivered("/telemetry")
    payloads = [m["payload"] for m in telemetry]
    assert len(set(payloads)) < len(payloads), (
        "the lost PUBACK should have made the broker see a message twice"
    )

    status_topic = f"cw/v1/{CLINIC}/{DEVICE}/status"
    try:
        forward(env, run.of("delivered"))
        wait_until(
            lambda: (
                env.count("temperature", "celsius") >= 4 * samples
                and env.count("device_health", "mains_on") >= samples
            ),
            60,
            f"{4 * samples} temperatures and {samples} health samples in InfluxDB",
        )
        collector.check_alive()
        assert env.count("temperature", "celsius") == 4 * samples
        assert env.count("device_health", "mains_on") == samples
        assert env.count("device_health", "battery_pct") == samples
        assert count_dead_letters(make_engine(env.settings.sql_url)) == {}
        with env.influx() as client:
            series = client.query(
                "SELECT celsius FROM temperature WHERE device = $d AND probe = 'p1'", {"d": DEVICE}, epoch="s"
            )
            times = [v[0] for v in series[0]["values"]]
            states = client.query("SELECT state FROM device_status WHERE device = $d", {"d": DEVICE})
        assert all(abs(t - true) <= 1 for t, true in zip(times, done["truth"], strict=True))
        assert {v[1] for v in states[0]["values"]} == {"online", "offline"}
    finally:
        clear_retained(env, status_topic)
