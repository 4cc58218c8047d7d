"""Gateway: protocol v1 messages, buffering during network loss, replay."""

from __future__ import annotations

import json

import pytest

from core.protocol import parse_telemetry
from simulators.gateway import DoorEvent, Gateway, Sample, chunk, encode

T0 = 1_795_046_400
NOW = T0 + 30 * 86400
PROBES = ("p1", "p2", "p3")


def sample(t: float, values=(4.6, 5.1, -19.8), mains=True, battery=100, doors=()) -> Sample:
    return Sample(time=t, probes=PROBES, values=list(values), mains=mains, battery_pct=battery, doors=doors)


def parse(payload: bytes):
    return parse_telemetry("qingshui-thc", "qingshui-gw1", payload, NOW)


def test_one_message_per_sample_in_the_documented_form():
    gw = Gateway("qingshui-thc", "qingshui-gw1")
    [payload] = gw.offer(
        sample(T0, doors=(DoorEvent(T0 - 35, "p1", True), DoorEvent(T0 - 5, "p1", False))), True
    )
    assert json.loads(payload) == [
        {"bn": "urn:dev:qingshui-gw1:", "bt": T0, "n": "p1", "u": "Cel", "v": 4.6},
        {"n": "p2", "u": "Cel", "v": 5.1},
        {"n": "p3", "u": "Cel", "v": -19.8},
        {"n": "mains", "vb": True},
        {"n": "battery", "u": "%EL", "v": 100},
        {"n": "p1.door", "vb": True, "t": -35},
        {"n": "p1.door", "vb": False, "t": -5},
    ]
    tel = parse(payload)
    assert [(r.probe, r.time, r.celsius) for r in tel.temperatures] == [
        ("p1", T0, 4.6),
        ("p2", T0, 5.1),
        ("p3", T0, -19.8),
    ]
    assert [(d.probe, d.time, d.open) for d in tel.doors] == [("p1", T0 - 35, True), ("p1", T0 - 5, False)]
    assert [(h.time, h.mains_on, h.battery_pct) for h in tel.health] == [(T0, True, 100.0)]
    assert gw.topic == "cw/v1/qingshui-thc/qingshui-gw1/telemetry"


def test_network_loss_buffers_then_replays_everything_once_oldest_first():
    gw = Gateway("qingshui-thc", "qingshui-gw1", interval_s=60)
    assert len(gw.offer(sample(T0), True)) == 1
    for k in range(1, 361):  # 6 h without network
        assert gw.offer(sample(T0 + 60 * k), False) == []
    assert gw.buffered_records == 360 * 5
    out = gw.offer(sample(T0 + 60 * 361), True)
    replay, live = out[:-1], out[-1]
    assert len(replay) == 4  # 1800 records, 500 at most per message, samples never split
    times = []
    for payload in replay:
        tel = parse(payload)
        assert tel.record_count <= 500
        times += sorted({r.time for r in tel.temperatures})
    assert times == [T0 + 60 * k for k in range(1, 361)]
    assert [r.time for r in parse(live).temperatures] == [T0 + 60 * 361] * 3
    assert gw.buffered_records == 0
    assert gw.counts.messages == 1 + 4 + 1
    assert gw.counts.temperature_readings == 362 * 3
    assert gw.counts.health_samples == 362


def test_a_replay_message_carries_its_own_base_time_and_relative_times():
    gw = Gateway("qingshui-thc", "qingshui-gw1")
    gw.offer(sample(T0), False)
    gw.offer(sample(T0 + 60, doors=(DoorEvent(T0 + 20, "p2", True),)), False)
    first, _ = gw.offer(sample(T0 + 120), True)
    records = json.loads(first)
    assert records[0]["bt"] == T0 and "t" not in records[0]
    assert records[5] == {"n": "p1", "u": "Cel", "v": 4.6, "t": 60}
    assert {"n": "p2.door", "vb": True, "t": 20} in records


def test_full_buffer_drops_the_oldest_and_counts_them():
    gw = Gateway("qingshui-thc", "qingshui-gw1", interval_s=60, buffer_s=600)  # room for 10 samples
    for k in range(15):
        gw.offer(sample(T0 + 60 * k), False)
    assert gw.counts.buffered_dropped == 5 * 5
    out = gw.offer(sample(T0 + 60 * 15), True)
    kept = sorted({r.time for p in out for r in parse(p).temperatures})
    assert kept == [T0 + 60 * k for k in range(5, 16)]


def test_fault_codes_are_counted_apart_from_temperatures():
    gw = Gateway("qingshui-thc", "qingshui-gw1")
    gw.offer(sample(T0, values=(-127.0, 85.0, 4.0)), True)
    gw.offer(sample(T0 + 60, values=(4.2, 85.0, 4.1), mains=False, battery=99), True)
    c = gw.counts
    assert (c.temperature_readings, c.probe_faults, c.health_samples) == (3, 3, 2)


def test_chunks_hold_at_most_the_limit_and_never_split_a_sample():
    samples = [
        sample(T0 + 60 * k, doors=(DoorEvent(T0 + 60 * k, "p1", k % 2 == 0),) * (k % 3)) for k in range(400)
    ]
    groups = chunk(samples, 500)
    assert [s for g in groups for s in g] == samples
    assert all(sum(s.record_count for s in g) <= 500 for g in groups)
    for g in groups:
        assert parse(encode("qingshui-gw1", g)).record_count == sum(s.record_count for s in g)
    with pytest.raises(ValueError, match="more than 4"):
        chunk(samples[:1], 4)
