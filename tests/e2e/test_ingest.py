"""The whole ingest loop on real servers: simulated clinics -> Mosquitto -> collector -> InfluxDB.

Every test counts exactly: what the simulator says it published (its JSON summary) must be what
InfluxDB holds, no more (no duplicates: a point is a series and a time) and no less (no loss), also
when the collector is killed, when InfluxDB goes away for 20 s, and when a gateway was offline for
six hours and replays its buffer.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.deadletters import count_dead_letters
from collector.notices import list_notices
from core import services as local_services
from core.db import make_engine
from tests.e2e.conftest import ROOT, CollectorProcess, Env, _free_port, wait_until

pytestmark = pytest.mark.e2e

DAY = 86400


def _day_start(days_back: int = 2) -> str:
    """Midnight UTC ``days_back`` days ago: a whole simulated day that is already in the past."""
    t = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_back)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def stored(env: Env) -> dict[str, int]:
    return {
        "temperature_readings": env.count("temperature", "celsius"),
        "probe_faults": env.count("probe_fault", "raw"),
        "health_samples": env.count("device_health", "mains_on"),
        "door_readings": env.count("device_health", "door_open"),
    }


def expect_exactly(env: Env, collector: CollectorProcess, published: dict[str, Any], timeout: float) -> None:
    want = {
        k: published[k] for k in ("temperature_readings", "probe_faults", "health_samples", "door_readings")
    }
    assert want["temperature_readings"] > 0

    deadline = time.monotonic() + timeout
    got = stored(env)
    while time.monotonic() < deadline and got != want:
        if any(got[k] > want[k] for k in want):
            break  # more than published: cannot get better by waiting
        time.sleep(0.5)
        collector.check_alive()
        got = stored(env)
    assert got == want, f"InfluxDB holds {got}, the simulator published {want}"


class Simulation:
    """``chainwatch simulate`` running in the background."""

    def __init__(self, env: Env, *args: str) -> None:
        self.log = env.settings.data_dir / "simulate.err"
        self._err = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "simulate", *args],
            env=env.environ,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        env.children.append(self.proc)

    def result(self, timeout: float = 300) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=timeout)
        self._err.close()
        assert self.proc.returncode == 0, self.log.read_text(errors="replace")[-2000:]
        return json.loads(out.decode().strip().splitlines()[-1])

    def running(self) -> bool:
        return self.proc.poll() is None


def test_ten_clinics_for_one_simulated_day_land_exactly_once(env: Env, collector: CollectorProcess) -> None:
    result = env.simulate(
        "--clinics", "10", "--speed", "0", "--seed", "11", "--start", _day_start(), "--duration", "24h"
    )
    # 10 gateways x 3 probes x one reading a minute for a day
    assert result["temperature_readings"] + result["probe_faults"] == 10 * 3 * 1440
    expect_exactly(env, collector, result, timeout=120)
    assert count_dead_letters(make_engine(env.settings.sql_url)) == {}
    with env.influx() as client:
        series = client.query(
            "SELECT count(celsius) FROM temperature WHERE equipment = $eq", {"eq": "qingshui-fridge1"}
        )
    assert series[0]["values"][0][1] == 1440  # registry tags on every reading


def test_collector_killed_mid_run_loses_nothing_and_doubles_nothing(
    env: Env, collector: CollectorProcess
) -> None:
    sim = Simulation(
        env,
        "--clinics",
        "10",
        "--speed",
        "3600",
        "--seed",
        "12",
        "--start",
        _day_start(),
        "--duration",
        "24h",
    )
    wait_until(lambda: env.count("temperature", "celsius") > 5000, 60, "the first readings in InfluxDB")
    assert sim.running(), "the simulation ended before the collector could be killed mid-run"
    collector.kill()
    collector.start()
    result = sim.result()
    expect_exactly(env, collector, result, timeout=120)


def test_influxdb_stopped_for_20_s_mid_run(env: Env, collector: CollectorProcess) -> None:
    sim = Simulation(
        env,
        "--clinics",
        "10",
        "--speed",
        "1800",
        "--seed",
        "13",
        "--start",
        _day_start(),
        "--duration",
        "24h",
    )
    wait_until(lambda: env.count("temperature", "celsius") > 3000, 60, "the first readings in InfluxDB")
    assert sim.running()
    local_services.stop_service(env.services, "influxdb")
    try:
        stopped_at = time.monotonic()
        wait_until(lambda: collector.stats().get("batches_spooled", 0) > 0, 30, "a batch spooled to disk")
        wait_until(lambda: time.monotonic() - stopped_at >= 20, 30, "20 s of InfluxDB down", interval=0.5)
        collector.check_alive()
    finally:
        local_services.start_service(env.services, "influxdb")
    result = sim.result()
    expect_exactly(env, collector, result, timeout=180)
    wait_until(lambda: collector.stats().get("spool_segments", 1) == 0, 60, "the spool to drain")


def _malformed(i: int, now: int) -> tuple[str, bytes, str]:
    """Message ``i`` of a mix of broken messages: (topic, payload, expected reason)."""
    gw = "qingshui-gw1"
    base = f"cw/v1/qingshui-thc/{gw}"
    bn = f"urn:dev:{gw}:"
    kinds = [
        (f"{base}/telemetry", b"{not json", "bad_json"),
        (
            f"{base}/telemetry",
            json.dumps([{"bn": bn, "bt": now, "n": "p1", "u": "degF", "v": 40}]),
            "unknown_unit",
        ),
        (f"{base}/telemetry", f'[{{"bn":"{bn}","bt":{now},"n":"p1","u":"Cel","v":NaN}}]', "not_a_number"),
        (
            f"{base}/telemetry",
            json.dumps([{"bn": bn, "bt": now, "n": "p1", "u": "Cel", "v": "4.5"}]),
            "not_a_number",
        ),
        (
            f"{base}/telemetry",
            json.dumps([{"bn": "urn:dev:other-gw:", "bt": now, "n": "p1", "u": "Cel", "v": 4}]),
            "device_mismatch",
        ),
        (
            f"{base}/telemetry",
            json.dumps([{"bn": bn, "bt": now + 7200, "n": "p1", "u": "Cel", "v": 4}]),
            "future_timestamp",
        ),
        (
            f"{base}/telemetry",
            json.dumps([{"bn": bn, "bt": now, "n": "p1", "u": "Cel", "v": 4, "t": -k} for k in range(501)]),
            "too_many_records",
        ),
        (
            "cw/v1/Bad_Clinic/gw/telemetry",
            json.dumps([{"bn": bn, "bt": now, "n": "p1", "u": "Cel", "v": 4}]),
            "bad_topic",
        ),
        (
            "cw/v1/qingshui-thc/qingshui-scan1/waste",
            json.dumps({"event_id": "x", "stage": "generated"}),
            "missing_field",
        ),
        (f"{base}/status", json.dumps({"state": "sleeping"}), "bad_value"),
    ]
    topic, payload, reason = kinds[i % len(kinds)]
    return topic, payload.encode() if isinstance(payload, str) else payload, reason


def test_a_thousand_malformed_messages_go_to_dead_letters(env: Env, collector: CollectorProcess) -> None:
    sim = Simulation(
        env,
        "--clinics",
        "10",
        "--speed",
        "7200",
        "--seed",
        "14",
        "--start",
        _day_start(),
        "--duration",
        "12h",
    )
    now = int(time.time())
    expected: dict[str, int] = {}
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="malformed")
    pub.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    pub.loop_start()
    infos = []
    for i in range(1000):
        topic, payload, reason = _malformed(i, now)
        expected[reason] = expected.get(reason, 0) + 1
        infos.append(pub.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()
    result = sim.result()
    expect_exactly(env, collector, result, timeout=120)
    engine = make_engine(env.settings.sql_url)
    wait_until(lambda: sum(count_dead_letters(engine).values()) >= 1000, 60, "1,000 dead letters")
    assert count_dead_letters(engine) == expected
    assert collector.proc is not None and collector.proc.poll() is None


def test_gateway_offline_for_six_hours_replays_without_gap_or_duplicate(
    env: Env, collector: CollectorProcess, tmp_path: Path
) -> None:
    scenario = tmp_path / "offline.yaml"
    scenario.write_text(
        "name: clinic 1 loses its network for 6 h\n"
        "events:\n"
        "  - kind: network_loss\n"
        "    clinic: 1\n"
        '    at: "+8h"\n'
        "    duration: 6h\n"
    )
    result = env.simulate(
        "--clinics",
        "2",
        "--speed",
        "0",
        "--seed",
        "15",
        "--start",
        _day_start(),
        "--duration",
        "24h",
        "--scenario",
        str(scenario),
    )
    expect_exactly(env, collector, result, timeout=120)
    with env.influx() as client:
        for probe in ("p1", "p2", "p3"):
            series = client.query(
                "SELECT celsius FROM temperature WHERE device = $d AND probe = $p",
                {"d": "qingshui-gw1", "p": probe},
                epoch="s",
            )
            faults = client.query(
                "SELECT raw FROM probe_fault WHERE device = $d AND probe = $p",
                {"d": "qingshui-gw1", "p": probe},
                epoch="s",
            )
            times = sorted([v[0] for v in series[0]["values"]] + [v[0] for s in faults for v in s["values"]])
            assert len(times) == 1440, f"{probe}: {len(times)} readings for a day at one a minute"
            gaps = {b - a for a, b in itertools.pairwise(times)}
            assert gaps == {60}, f"{probe}: spacing {sorted(gaps)[:5]} (a gap or a duplicate)"


def test_unregistered_device_is_stored_and_noticed(env: Env, collector: CollectorProcess) -> None:
    now = int(time.time())
    payload = json.dumps(
        [{"bn": "urn:dev:new-gw9:", "bt": now, "n": "p1", "u": "Cel", "v": 5.5}, {"n": "mains", "vb": True}]
    )
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="newcomer")
    pub.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    pub.loop_start()
    pub.publish("cw/v1/qingshui-thc/new-gw9/telemetry", payload, qos=1).wait_for_publish(10)
    pub.publish(
        "cw/v1/qingshui-thc/new-gw9/status",
        json.dumps({"state": "online", "fw": "1.0.0", "ts": now}),
        qos=1,
        retain=True,
    ).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    wait_until(lambda: env.count("temperature", "celsius") == 1, 30, "the reading in InfluxDB")
    with env.influx() as client:
        wait_until(
            lambda: client.query("SELECT state FROM device_status WHERE device = 'new-gw9'"),
            30,
            "the status in InfluxDB",
        )
    notices = wait_until(lambda: list_notices(make_engine(env.settings.sql_url)), 30, "a notice")
    assert [(n.clinic_id, n.device_id) for n in notices] == [("qingshui-thc", "new-gw9")]
    with env.influx() as client:
        tags = client.query("SHOW TAG VALUES FROM temperature WITH KEY = equipment")
    assert tags == []  # stored without an equipment: nobody registered it yet


def _clear_retained_status(env: Env) -> None:
    topics: list[str] = []
    marker = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == "test/marker":
            marker.set()
        elif msg.retain and msg.payload:
            topics.append(msg.topic)

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-cleaner")
    c.on_message = on_message
    c.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    c.loop_start()
    c.subscribe([("cw/v1/+/+/status", 1), ("test/marker", 1)])
    # the broker sends retained messages while handling the SUBSCRIBE, so they all arrive before a
    # message published after it
    c.publish("test/marker", b"x", qos=1)
    assert marker.wait(10)
    for topic in topics:
        c.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_sigterm_flushes_what_was_received(env: Env, services: Any) -> None:
    """A batch that would wait five minutes is written and acknowledged when the collector is told to
    stop: nothing received is left behind, and the collector exits cleanly."""
    env.settings = env.settings.model_copy(update={"collector_batch_seconds": 300.0})
    _clear_retained_status(env)  # earlier tests' devices: the collector would count them as received
    collector = CollectorProcess(env)
    collector.start()
    now = int(time.time())
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sigterm-test")
    pub.connect(env.settings.mqtt_host, env.settings.mqtt_port)
    pub.loop_start()
    for i in range(100):
        payload = json.dumps(
            [{"bn": "urn:dev:qingshui-gw1:", "bt": now - 6000 + i * 60, "n": "p1", "u": "Cel", "v": 5.0}]
        )
        pub.publish("cw/v1/qingshui-thc/qingshui-gw1/telemetry", payload, qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    wait_until(lambda: collector.stats().get("received") == 100, 30, "the collector to receive 100 messages")
    assert env.count("temperature", "celsius") == 0  # still in the batch, not written yet
    assert collector.stop() == 0
    assert env.count("temperature", "celsius") == 100


def _get(url: str) -> Any:
    try:
        return httpx.get(url, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


def _processes_of(env: Env) -> list[str]:
    """Processes running with this test's data directory (the collector, the simulator...)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("CHAINWATCH_DATA_DIR") == str(env.settings.data_dir):
                found.append(" ".join(proc.info["cmdline"] or []))
        except psutil.Error:
            continue
    return found


def test_chainwatch_run_shows_readings_within_a_minute_and_ctrl_c_stops_it(env: Env) -> None:
    """What `make run` does, on the test's servers: the back-filled hour and then live readings land
    in InfluxDB, Ctrl-C stops the collector and the simulator (and leaves alone the servers it did not
    start)."""
    log = env.settings.data_dir / "run.log"
    web_port = _free_port(set())
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "run", "--backfill", "1h"],
            env={**env.environ, "CHAINWATCH_WEB_PORT": str(web_port)},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    env.children.append(proc)
    wait_until(
        lambda: len(_processes_of(env)) == 5, 60, "the supervisor, collector, alerting, web app and simulator"
    )
    # 10 gateways x 3 probes x 60 minutes
    wait_until(lambda: env.count("temperature", "celsius") >= 10 * 3 * 60, 60, "the back-filled hour")
    health = wait_until(lambda: _get(f"http://127.0.0.1:{web_port}/api/health"), 60, "the web app")
    assert health == {"status": "ok"}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    text = log.read_text(errors="replace")
    assert "curl -s -G" in text and "[chainwatch] stopped" in text
    assert _processes_of(env) == [], "a child of chainwatch run outlived it"
    assert all(s.running for s in local_services.status(env.services))
