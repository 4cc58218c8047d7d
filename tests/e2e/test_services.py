"""``chainwatch services``: idempotent start, status, stopping only what it started, and a Mosquitto
configuration that holds a burst of 100k QoS 1 messages for a slow consumer."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core import services as local_services
from core.settings import Settings
from tests.e2e.conftest import _free_port, wait_until

pytestmark = pytest.mark.e2e


def test_up_is_idempotent_and_status_reports_our_servers(services: Settings) -> None:
    before = {s.name: s.pid for s in local_services.status(services)}
    assert all(before.values()), before
    again = local_services.up(services)
    assert {s.name: s.pid for s in again} == before  # nothing restarted, nothing doubled
    assert all(s.running for s in again)
    assert (services.data_dir / "mosquitto" / "mosquitto.conf").is_file()
    assert (services.data_dir / "influxdb" / "data" / "meta").is_dir()  # our files, not /var/lib


def test_down_stops_only_what_chainwatch_started(tmp_path: Path, services: Settings) -> None:
    # a foreign program holds the port: `up` must refuse with a clear message, `down` must not touch it
    port = _free_port({services.mqtt_port, services.influx_port})
    foreign = subprocess.Popen(["/usr/sbin/mosquitto", "-p", str(port)], stderr=subprocess.DEVNULL)
    try:
        settings = services.model_copy(update={"data_dir": tmp_path, "mqtt_url": f"mqtt://127.0.0.1:{port}"})
        wait_until(lambda: local_services._port_open("127.0.0.1", port), 10, "the foreign broker")
        state = local_services.status(settings)[0]
        assert state.running and not state.managed
        assert local_services.down(settings) == []
        assert foreign.poll() is None, "services down stopped a broker it did not start"
        # our own servers on the shared settings are untouched by this
        assert all(s.running for s in local_services.status(services))
    finally:
        foreign.terminate()
        foreign.wait(10)


def test_up_and_down_on_an_empty_data_dir(tmp_path: Path, services: Settings) -> None:
    port = _free_port({services.mqtt_port, services.influx_port})
    settings = services.model_copy(update={"data_dir": tmp_path, "mqtt_url": f"mqtt://127.0.0.1:{port}"})
    state = local_services.start_service(settings, "mosquitto")
    assert state.running and state.managed
    assert local_services.stop_service(settings, "mosquitto")
    assert not local_services.status(settings)[0].running
    assert not local_services.stop_service(settings, "mosquitto")  # a second down is harmless


def _burst(port: int, n: int, client_id: str) -> set[int]:
    """A persistent-session subscriber goes away (the slowest consumer there is), ``n`` QoS 1 messages
    are published, the subscriber comes back: return the sequence numbers it receives."""
    received: set[int] = set()
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            received.add(int(msg.payload))

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_connect = lambda c, *_a: c.subscribe("burst/#", qos=1)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    assert subscribed.wait(10), "the subscriber could not subscribe"
    sub.disconnect()
    sub.loop_stop()

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{client_id}-pub")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    acked = 0
    all_acked = threading.Event()
    # paho numbers messages with 16-bit ids: more than 65,535 unacknowledged at once would reuse ids
    # and overwrite messages in paho's own queue, so the publisher keeps at most 10,000 pending
    window = threading.BoundedSemaphore(10_000)

    def on_publish(*_a: object) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked == n:
            all_acked.set()

    pub.on_publish = on_publish
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(n):
        assert window.acquire(timeout=60), f"the broker stopped acknowledging after {acked} publishes"
        pub.publish("burst/x", str(i).encode(), qos=1)
    assert all_acked.wait(300), f"the broker acknowledged only {acked} of {n} publishes"
    pub.disconnect()
    pub.loop_stop()

    sub.on_subscribe = None
    sub.on_connect = None
    sub.reconnect()
    sub.loop_start()
    # wait until every message has arrived, or until none has arrived for 3 s (the broker dropped them)
    last, still_since = -1, time.monotonic()
    while True:
        with lock:
            now = len(received)
        if now == n:
            break
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > 3:
            break
        time.sleep(0.05)
    sub.disconnect()
    sub.loop_stop()
    return received


def test_a_burst_of_100k_qos1_messages_reaches_a_slow_consumer(services: Settings) -> None:
    n = 100_000
    received = _burst(services.mqtt_port, n, "slow-consumer")
    assert len(received) == n, f"{n - len(received)} of {n} QoS 1 messages were dropped by the broker"


def test_mosquitto_defaults_would_drop_that_burst(tmp_path: Path, services: Settings) -> None:
    """The control: with Mosquitto's default limits the same kind of burst loses messages, so the
    test above can fail, and the settings in deploy/local/mosquitto.conf.template are what saves it."""
    port = _free_port({services.mqtt_port, services.influx_port})
    conf = tmp_path / "default.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: local_services._port_open("127.0.0.1", port), 10, "the default broker")
        n = 5_000
        received = _burst(port, n, "slow-consumer-defaults")
        assert len(received) < n
    finally:
        broker.terminate()
        broker.wait(10)
