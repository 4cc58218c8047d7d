"""``chainwatch simulate``: arguments, one-line errors, the JSON result line."""

from __future__ import annotations

import argparse
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import cli as core_cli
from core.settings import Settings
from simulators import cli as sim_cli
from simulators.audit import tally
from simulators.cli import SimulateError, parse_start, plan_simulation
from simulators.publisher import MemorySink

NOW = datetime(2026, 11, 26, 1, 0, 30, tzinfo=UTC).timestamp() + 0.5
NOW_S = NOW - 0.5
SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"


def args(*argv: str) -> argparse.Namespace:
    return core_cli.build_parser().parse_args(["simulate", *argv])


def test_defaults():
    a = args()
    assert (a.clinics, a.speed, a.seed, a.start, a.duration, a.scenario, a.registry) == (
        10,
        1.0,
        1,
        "now",
        None,
        None,
        None,
    )


def test_relative_start_is_a_value_not_an_option():
    # what `chainwatch run` passes: --start -6h as two arguments
    a = args("--clinics", "3", "--speed", "0", "--start", "-6h")
    assert (a.clinics, a.speed, a.start) == (3, 0.0, "-6h")
    assert args("--start", "-90m").start == "-90m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW_S),
        ("-24h", NOW_S - 86400),
        ("-90m", NOW_S - 5400),
        ("2026-11-20T00:00:00Z", datetime(2026, 11, 20, tzinfo=UTC).timestamp()),
        ("2026-11-20T08:00:00+08:00", datetime(2026, 11, 20, tzinfo=UTC).timestamp()),
    ],
)
def test_parse_start(text, expected):
    assert parse_start(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("2026-11-20T00:00:00", "add a time zone"),
        ("2099-01-01T00:00:00Z", "is in the future"),
        ("yesterday", "not a time"),
        ("-6 hours", "after '-' comes a duration"),
        ("-500d", "more than 390 days ago: the collector refuses readings that old"),
    ],
)
def test_bad_start(text, what):
    with pytest.raises(SimulateError, match=what):
        parse_start(text, NOW)


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--duration", "6 hours"], "--duration: '6 hours' is not a duration"),
        (["--speed", "-1"], "--speed -1.0: use 0"),
        (["--clinics", "11"], "--clinics 11: the registry has only 10 clinic(s)"),
        (["--clinics", "0"], "simulate at least 1 clinic"),
        (["--registry", "/nonexistent/r.yaml"], "registry file /nonexistent/r.yaml not found"),
        (
            ["--clinics", "2", "--scenario", str(SCENARIOS / "power-cut.yaml")],
            "power-cut.yaml:events[0].clinic: clinic 3 is not simulated: 2 clinic(s) are",
        ),
        (["--scenario", "/nonexistent/s.yaml"], "/nonexistent/s.yaml: scenario file not found"),
    ],
)
def test_bad_input_is_one_line_that_says_what(argv, what):
    with pytest.raises(SimulateError) as err:
        plan_simulation(args(*argv), Settings(), NOW)
    assert what in str(err.value) and "\n" not in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_says_how_to_start_it(monkeypatch, tmp_path, capsys):
    port = free_port()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHAINWATCH_MQTT_URL", f"mqtt://127.0.0.1:{port}")
    assert core_cli.main(["simulate", "--clinics", "1", "--duration", "1h"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"chainwatch simulate: cannot reach the MQTT broker at 127.0.0.1:{port} (Connection refused) — "
        "start it with `chainwatch services up` or set CHAINWATCH_MQTT_URL"
    ]


class FakePublisher(MemorySink):
    instances: list[FakePublisher] = []  # noqa: RUF012

    def __init__(self, host: str, port: int, **kwargs) -> None:
        super().__init__()
        FakePublisher.instances.append(self)


def test_simulate_prints_the_result_as_one_json_line(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sim_cli, "MqttPublisher", FakePublisher)
    FakePublisher.instances.clear()
    code = core_cli.main(["simulate", "--clinics", "2", "--speed", "0", "--start", "-1h", "--duration", "1h"])
    assert code == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    [sink] = FakePublisher.instances
    tl = tally(((m.topic, m.payload) for m in sink.messages), now=time.time() + 60)
    assert result["messages"] == tl.messages == 2 * 60
    assert result["temperature_readings"] == tl.temperature_readings
    assert result["health_samples"] == tl.health_samples
    assert (result["devices"], result["clinics"], result["seed"]) == (2, 2, 1)
    assert "[simulate] simulated up to" in out.err
    assert sink.connected and sink.closed
