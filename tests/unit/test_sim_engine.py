"""The simulation end to end into an in-memory sink: messages the collector accepts, counts that match
what it will find, scenarios that show, determinism and pacing against a manual clock."""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.protocol import parse_status, parse_telemetry, parse_topic
from core.registry_model import DEMO_REGISTRY, load_registry_file
from simulators.audit import tally
from simulators.engine import District, Simulation, build_district
from simulators.publisher import MemorySink
from simulators.scenario import load_scenario, resolve_events

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"
START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-21 00:00 clinic local time
HOUR = 3600.0
DAY = 86400.0


@pytest.fixture(scope="module")
def demo():
    return load_registry_file(DEMO_REGISTRY)


def district(demo, clinics: int) -> District:
    return build_district(demo, clinics)


def simulate(
    demo,
    clinics: int = 3,
    hours: float = 6.0,
    seed: int = 1,
    scenario: str | None = None,
    start: float = START,
    speed: float = 0.0,
    clock: ManualClock | None = None,
    sleep=None,
    stop: threading.Event | None = None,
):
    """Run unpaced (the clock far ahead) unless a clock is given; returns (result, sink, sim)."""
    d = district(demo, clinics)
    events = []
    name = None
    if scenario:
        sc = load_scenario(SCENARIOS / scenario)
        events = resolve_events(sc, list(d.sites), start, d.registry_clinics)
        name = sc.name
    clock = clock or ManualClock(start + 30 * DAY)
    sink = MemorySink(clock=clock)
    sim = Simulation(
        d,
        seed=seed,
        start=start,
        duration=hours * HOUR,
        speed=speed,
        events=events,
        sink=sink,
        clock=clock,
        sleep=sleep or clock.advance,
        stop=stop,
        scenario_name=name,
    )
    return sim.run(), sink, sim


def parse(m):
    topic = parse_topic(m.topic)
    return parse_telemetry(topic.clinic, topic.device, m.payload, now=m.at)


def audit(sink: MemorySink, now: float = START + 30 * DAY):
    return tally(((m.topic, m.payload) for m in sink.messages), now)


@pytest.fixture(scope="module")
def full_day(demo):
    t = time.perf_counter()
    result, sink, _ = simulate(demo, clinics=10, hours=24.0)
    elapsed = time.perf_counter() - t
    return result, sink, audit(sink), elapsed


def test_ten_clinics_for_a_day_compute_in_seconds(full_day):
    result, _, _, elapsed = full_day
    assert result.devices == 10 and result.clinics == 10
    assert result.messages == 10 * 1440
    assert elapsed < 8.0, f"10 clinics x 24 h took {elapsed:.1f} s"


def test_every_message_is_accepted_by_the_protocol_parser(full_day):
    _, sink, tl, _ = full_day
    assert tl.messages == len(sink.telemetry())  # tally() raises on any message the parser refuses
    assert 0 < tl.max_records <= 500
    for m in sink.telemetry()[:50]:
        assert m.payload.startswith(b'[{"bn":"urn:dev:')


def test_counts_in_the_result_equal_what_the_parser_extracts(full_day):
    result, _, tl, _ = full_day
    assert result.messages == tl.messages
    assert result.temperature_readings == tl.temperature_readings == 10 * 3 * 1440
    assert result.probe_faults == tl.probe_faults == 0
    assert result.health_samples == tl.health_samples == 10 * 1440
    assert result.door_readings == tl.door_readings > 0
    assert result.buffered_dropped == 0 and result.buffered_pending == 0
    assert (result.start, result.end) == ("2026-11-20T16:00:00Z", "2026-11-21T16:00:00Z")


def test_every_probe_reports_every_minute_exactly_once(full_day):
    _, _, tl, _ = full_day
    expected = [START + 60 * k for k in range(1440)]
    assert len(tl.probe_times) == 30
    for times in tl.probe_times.values():
        assert times == expected


def test_doors_open_and_close_in_pairs_within_clinic_hours(full_day):
    _, _, tl, _ = full_day
    # one door record per gateway and time: InfluxDB keeps one door_open per device and timestamp
    per_device: dict[str, list[float]] = {}
    for (device, _), changes in tl.doors.items():
        per_device.setdefault(device, []).extend(t for t, _ in changes)
    assert all(len(times) == len(set(times)) for times in per_device.values())
    for changes in tl.doors.values():
        states = [o for _, o in changes]
        assert states[0] is True
        assert all(a != b for a, b in itertools.pairwise(states))  # open, close, open, ...
        for t, is_open in changes:
            local_h = ((t - START) / HOUR) % 24
            assert 8.0 <= local_h < 17.0 + (0.0 if is_open else 0.05)


def test_same_seed_same_bytes_whatever_the_speed_other_seed_other_bytes(demo):
    _, a, _ = simulate(demo, clinics=2, hours=3.0, seed=11)
    _, b, _ = simulate(demo, clinics=2, hours=3.0, seed=11)
    wall = ManualClock(START + 5 * HOUR)  # speed 60: 3 simulated hours in 3 wall minutes
    _, c, _ = simulate(demo, clinics=2, hours=3.0, seed=11, speed=60.0, clock=wall)
    _, d, _ = simulate(demo, clinics=2, hours=3.0, seed=12)

    def payloads(sink):
        return [(m.topic, m.payload) for m in sink.telemetry()]

    assert payloads(a) == payloads(b) == payloads(c)
    assert payloads(a) != payloads(d)
    assert len(payloads(a)) == 2 * 180


def test_network_loss_6h_buffers_then_replays_without_gap_or_duplicate(demo):
    # paced: speed 0 from the start means live, so publication times show what arrived when
    clock = ManualClock(START)
    result, sink, _ = simulate(demo, clinics=3, hours=12.0, scenario="network-loss-6h.yaml", clock=clock)
    loss_start, loss_end = START + 1 * HOUR, START + 7 * HOUR
    gw2 = "cw/v1/baihe-thc/baihe-gw1/telemetry"
    published_at = [m.at for m in sink.messages if m.topic == gw2]
    assert not [t for t in published_at if loss_start <= t < loss_end]
    replay = [m for m in sink.messages if m.topic == gw2 and m.at == loss_end]
    replayed = tally(((m.topic, m.payload) for m in replay), loss_end)
    assert replayed.messages >= 4 and replayed.max_records <= 500  # 360 samples of 5+ records
    assert sorted(set(replayed.probe_times[("baihe-gw1", "p1")])) == [
        loss_start + 60 * k for k in range(361)
    ]  # the 360 buffered samples and the live one taken as the network returned
    tl = audit(sink)
    every_minute = [START + 60 * k for k in range(720)]
    for (device, _), times in tl.probe_times.items():
        assert sorted(times) == every_minute, device  # no gap, no duplicate
    # the other clinics were not affected
    qingshui = [m.at for m in sink.messages if m.topic == "cw/v1/qingshui-thc/qingshui-gw1/telemetry"]
    assert len([t for t in qingshui if loss_start <= t < loss_end]) == 360
    # the broker saw the gateway go offline and come back
    statuses = [json.loads(m.payload) for m in sink.messages if m.topic == "cw/v1/baihe-thc/baihe-gw1/status"]
    assert [(s["state"], s["ts"]) for s in statuses] == [("offline", loss_start), ("online", loss_end)]
    assert result.messages == tl.messages and result.health_samples == tl.health_samples == 3 * 720


def test_power_cut_shows_in_mains_battery_and_temperature(demo):
    result, sink, _ = simulate(demo, clinics=3, hours=24.0, scenario="power-cut.yaml")
    tl = audit(sink)
    cut, back = START + 14 * HOUR, START + 20 * HOUR
    health = sorted(tl.health["shiqiao-gw1"])
    off = [t for t, mains, _ in health if mains is False]
    assert off == [cut + 60 * k for k in range(360)]
    during = [b for t, _, b in health if cut <= t < back]
    assert during[0] == 100 and during[-1] < 70
    assert all(b2 <= b1 for b1, b2 in itertools.pairwise(during))
    after = [b for t, _, b in health if t >= back]
    assert after[-1] == 100  # recharged
    assert all(mains for _, mains, _ in tl.health["qingshui-gw1"])  # another clinic: no cut
    for probe in ("p1", "p2"):
        readings = sorted(tl.readings[("shiqiao-gw1", probe)])
        first_warm = next(t for t, v in readings if t >= cut and v > 8.0)
        assert 0.75 <= (first_warm - cut) / HOUR <= 4.0, (
            probe,
            (first_warm - cut) / HOUR,
        )  # warm afternoon, doors
        cooled = next(t for t, v in readings if t >= back and v <= 8.0)
        assert (cooled - back) / HOUR < 1.5
        assert max(v for t, v in readings if t >= back + 3 * HOUR) <= 8.0
    assert result.temperature_readings == tl.temperature_readings


def test_flat_battery_silences_the_gateway_until_the_power_returns(demo, tmp_path):
    scenario = tmp_path / "long-cut.yaml"
    scenario.write_text("name: long cut\nevents:\n- {kind: power_cut, clinic: 1, at: '+1h', duration: 20h}\n")
    d = district(demo, 1)
    events = resolve_events(load_scenario(scenario), list(d.sites), START, d.registry_clinics)
    clock = ManualClock(START + 30 * DAY)
    sink = MemorySink(clock=clock)
    result = Simulation(
        d,
        seed=1,
        start=START,
        duration=24 * HOUR,
        speed=0,
        events=events,
        sink=sink,
        clock=clock,
        sleep=clock.advance,
    ).run()
    tl = audit(sink)
    times = sorted(t for t, _, _ in tl.health["qingshui-gw1"])
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a > 60]
    [(last_heard, back)] = gaps
    assert 16.0 <= (last_heard - (START + HOUR)) / HOUR <= 17.5  # about 16 h on the battery
    assert back == START + 21 * HOUR
    statuses = [json.loads(m.payload)["state"] for m in sink.messages if m.topic.endswith("/status")]
    assert statuses == ["offline", "online"]
    assert result.health_samples == tl.health_samples == len(times)


def test_probe_faults_read_ds18b20_codes_and_are_counted_apart(demo):
    result, sink, _ = simulate(demo, clinics=2, hours=10.0, scenario="probe-faults.yaml")
    tl = audit(sink)
    fridge1 = dict(tl.readings[("qingshui-gw1", "p1")])
    fridge2 = dict(tl.readings[("qingshui-gw1", "p2")])
    minus127 = sorted(t for t, v in fridge1.items() if v == -127.0)
    assert minus127 == [START + 30 * 60 + 60 * k for k in range(60)]
    assert sorted(t for t, v in fridge2.items() if v == 85.0) == [
        START + 2 * HOUR + 60 * k for k in range(10)
    ]
    freezer = sorted(tl.readings[("baihe-gw1", "p3")])
    stuck = {v for t, v in freezer if START + HOUR <= t < START + 8 * HOUR}
    assert len(stuck) == 1 and -25.0 < stuck.pop() < -15.0
    assert len({v for t, v in freezer if t >= START + 8 * HOUR}) > 3  # alive again
    assert result.probe_faults == tl.probe_faults == 70
    assert result.temperature_readings == tl.temperature_readings == 2 * 3 * 600 - 70


def test_speed_0_never_publishes_a_reading_later_than_the_clock_then_goes_live(demo):
    wall0 = START + 2 * HOUR  # --start -2h
    clock = ManualClock(wall0)
    _, sink, _ = simulate(demo, clinics=2, hours=3.0, clock=clock)
    latest_before = []
    for m in sink.telemetry():
        tel = parse(m)
        newest = max(r.time for r in tel.temperatures)
        assert newest <= m.at
        latest_before.append((m.at, newest))
    backfill = [newest for at, newest in latest_before if at == wall0]
    assert len(backfill) == 2 * 121  # 00:00 … 02:00 at once, no waiting
    live = [(at, newest) for at, newest in latest_before if at > wall0]
    assert live and all(at == newest for at, newest in live)  # then each minute as it happens
    assert clock.now() == pytest.approx(START + 3 * HOUR, abs=60)


def test_speed_60_runs_a_simulated_minute_per_wall_second(demo):
    wall0 = START + 10 * DAY  # a past start: the clock does not hold it back
    clock = ManualClock(wall0)
    result, sink, _ = simulate(demo, clinics=1, hours=2.0, speed=60.0, clock=clock)
    assert clock.now() - wall0 == pytest.approx(2 * HOUR / 60, abs=1.0)
    for m in sink.telemetry():
        tel = parse(m)
        t = max(r.time for r in tel.temperatures)
        sim_now = START + (m.at - wall0) * 60
        assert sim_now - 60 <= t <= sim_now + 1e-6
    assert result.messages == 120


def test_speed_60_holds_at_the_wall_clock_once_it_catches_up(demo):
    wall0 = START + 30 * 60  # --start -30m --speed 60: caught up after 30 wall seconds
    clock = ManualClock(wall0)
    _, sink, _ = simulate(demo, clinics=1, hours=1.0, speed=60.0, clock=clock)
    for m in sink.telemetry():
        tel = parse(m)
        assert max(r.time for r in tel.temperatures) <= m.at
    assert clock.now() == pytest.approx(START + HOUR - 60, abs=60)


def test_stop_event_ends_the_run_cleanly_with_exact_counts(demo):
    clock = ManualClock(START)
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if clock.now() >= START + 30 * 60:
            stop.set()

    result, sink, sim = simulate(demo, clinics=2, hours=24.0, clock=clock, sleep=sleep, stop=stop)
    tl = audit(sink)
    assert result.messages == tl.messages == 2 * 30  # 16:00 … 16:29, then the stop
    assert result.end == "2026-11-20T16:29:01Z"  # readings up to 16:29:00 inclusive
    assert not sim.finished


def test_status_messages_are_valid_protocol(demo):
    clock = ManualClock(START)
    _, sink, _ = simulate(demo, clinics=3, hours=8.0, scenario="network-loss-6h.yaml", clock=clock)
    sink.connect(district(demo, 3).device_refs())
    statuses = [m for m in sink.messages if m.topic.endswith("/status")]
    assert len(statuses) == 2 + 3
    for m in statuses:
        assert m.retain
        parse_status(m.payload, now=clock.now())


def test_no_clinic_time_runs_ahead_for_long_runs(demo):
    # the tick grid is whole minutes: every reading time is a whole minute, even from an odd start
    odd_start = START + 17.0
    result, sink, _ = simulate(demo, clinics=1, hours=1.0, start=odd_start)
    tl = audit(sink)
    times = tl.probe_times[("qingshui-gw1", "p1")]
    assert times[0] == START + 60 and all(math.isclose(t % 60, 0) for t in times)
    assert result.start == "2026-11-20T16:00:17Z"


def test_doors_of_one_gateway_changing_together_get_distinct_times(demo, tmp_path):
    # InfluxDB keeps one door_open per device and timestamp: simultaneous changes must not collapse
    scenario = tmp_path / "doors.yaml"
    scenario.write_text(
        "name: all doors\nevents:\n- {kind: door_open, clinic: 1, at: '02:00', duration: 5m}\n"
    )
    d = district(demo, 1)
    events = resolve_events(load_scenario(scenario), list(d.sites), START, d.registry_clinics)
    clock = ManualClock(START + DAY)
    sink = MemorySink(clock=clock)
    result = Simulation(
        d,
        seed=1,
        start=START,
        duration=4 * HOUR,
        speed=0,
        events=events,
        sink=sink,
        clock=clock,
        sleep=clock.advance,
    ).run()
    tl = audit(sink)
    changes = sorted((t, probe, is_open) for (_, probe), ch in tl.doors.items() for t, is_open in ch)
    at = START + 2 * HOUR
    assert changes == [
        (at, "p1", True),
        (at + 1, "p2", True),
        (at + 2, "p3", True),
        (at + 300, "p1", False),
        (at + 301, "p2", False),
        (at + 302, "p3", False),
    ]
    assert result.door_readings == 6
