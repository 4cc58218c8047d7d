"""The rules over the simulator's clinics, in process: a normal day raises nothing; each scenario raises
exactly the alerts a person would expect, each once. (The same over real Mosquitto is an e2e test.)"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerting.feed import build_engine, feed_telemetry
from alerting.rules.types import Decision
from core.clock import ManualClock
from core.protocol import parse_telemetry, parse_topic
from core.registry_model import DEMO_REGISTRY, load_registry_file
from simulators.engine import Simulation, build_district
from simulators.publisher import MemorySink
from simulators.scenario import load_scenario, resolve_events

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"
START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-21 00:00 clinic local time


@pytest.fixture(scope="module")
def demo():
    return load_registry_file(DEMO_REGISTRY)


def decisions_for(
    demo,
    clinics: int,
    hours: float,
    scenario: str | None = None,
    seed: int = 3,
    tick_s: float | None = 60.0,
    start: float = START,
    scenarios: Path = SCENARIOS,
) -> list[Decision]:
    d = build_district(demo, clinics)
    events = []
    if scenario:
        events = resolve_events(load_scenario(scenarios / scenario), list(d.sites), start, d.registry_clinics)
    clock = ManualClock(start + 30 * 86400)
    sink = MemorySink(clock=clock)
    Simulation(
        d,
        seed=seed,
        start=start,
        duration=hours * 3600,
        speed=0.0,
        events=events,
        sink=sink,
        clock=clock,
        sleep=clock.advance,
    ).run()
    engine = build_engine(demo)
    out: list[Decision] = []
    arrivals = []
    for m in sink.telemetry():
        topic = parse_topic(m.topic)
        tm = parse_telemetry(topic.clinic, topic.device, m.payload, now=start + 30 * 86400)
        arrival = max([r.time for r in tm.temperatures] + [h.time for h in tm.health])
        arrivals.append((arrival, tm))
    # messages in the order they were sent (a buffered upload arrives after the live data before it)
    now = start
    for arrival, tm in arrivals:
        while tick_s is not None and now + tick_s <= arrival:  # the service's clock ticks
            now += tick_s
            out.extend(engine.tick(now))
        out.extend(feed_telemetry(engine, tm, max(now, arrival)))
    return out


def table(decisions: list[Decision]) -> Counter[tuple[str, str, str]]:
    return Counter((d.rule.value, d.action.value, d.subject) for d in decisions if d.action.value != "update")


def test_a_normal_day_in_ten_clinics_raises_nothing(demo) -> None:
    assert decisions_for(demo, clinics=10, hours=24) == []


def test_power_cut_raises_power_and_heat_alerts_once_and_clears_them(demo) -> None:
    got = table(decisions_for(demo, clinics=3, hours=24, scenario="power-cut.yaml"))
    gw = next(s for (_, _, s) in got if s.endswith("-gw1"))
    assert got[("power_outage", "fire", gw)] == 1 and got[("power_outage", "clear", gw)] == 1
    fridges = {s for (rule, action, s) in got if rule == "heat_warning" and action == "fire"}
    assert any("fridge" in f for f in fridges)  # the freezer may pass -15 °C too
    assert all(got[("heat_warning", "fire", f)] == 1 for f in fridges)
    assert all(s.startswith(gw.removesuffix("-gw1")) for (_, _, s) in got)  # only clinic 3
    assert not [k for k in got if k[0] in ("freeze_alarm", "probe_fault", "device_offline")]


def test_probe_faults_are_each_reported_once(demo) -> None:
    got = table(decisions_for(demo, clinics=2, hours=12, scenario="probe-faults.yaml"))
    faults = {(a, s) for (r, a, s) in got if r == "probe_fault"}
    assert {s for (a, s) in faults if a == "fire"} == {
        "qingshui-fridge1",
        "qingshui-fridge2",
        "baihe-freezer1",
    }
    assert all(n == 1 for (r, _, _), n in got.items() if r == "probe_fault")
    assert not [k for k in got if k[0] in ("heat_warning", "cold_warning", "freeze_alarm")]


@pytest.mark.parametrize("tick_s", [60.0, None], ids=["ticking", "no-tick-in-the-gap"])
def test_network_loss_is_an_offline_alert_and_the_backlog_raises_nothing_else(demo, tick_s) -> None:
    """Also when no tick of the clock fell into the silence (an accelerated replay): the alert is
    raised when the device is heard again, as it would have been."""
    got = table(decisions_for(demo, clinics=2, hours=12, scenario="network-loss-6h.yaml", tick_s=tick_s))
    assert got == Counter(
        {("device_offline", "fire", "baihe-gw1"): 1, ("device_offline", "clear", "baihe-gw1"): 1}
    )
