"""Store and forward under a real MicroPython: a day without network, a reboot in the middle, and
every reading still reaches the broker once, in order, with the time it was taken; a full buffer drops
the oldest readings only, and says how many."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.protocol import parse_status, parse_telemetry
from tests.firmware import mpy

CLINIC = "qingshui-thc"
DEVICE = "qingshui-gw1"
START = 1795670000  # 2026-11-25: the parser only needs readings near the delivery time


def readings(run: mpy.Run) -> list[tuple[str, float, float]]:
    """(probe, time, °C) of every temperature the broker accepted, in delivery order."""
    out = []
    for msg in run.delivered("/telemetry"):
        tm = parse_telemetry(CLINIC, DEVICE, msg["payload"], now=msg["t"])
        assert tm.record_count <= 500
        out.extend((r.probe, r.time, r.celsius) for r in tm.temperatures)
    return out


@pytest.mark.parametrize("power_cut", [False, True], ids=["watchdog-reset", "power-cut"])
def test_a_day_offline_with_a_reboot_publishes_every_reading_once_in_order(
    tmp_path: Path, power_cut: bool
) -> None:
    run = mpy.run(
        "outage",
        tmp_path,
        start=START,
        online_min=10,
        offline_min=24 * 60,
        reboots=[[12 * 60, power_cut]],
        after_min=5,
    )
    done = run.one("done")
    truth = done["truth"]  # true time of every sample
    assert len(truth) >= 24 * 60 + 10
    assert done["buffered_at_reboot"][0] > 700  # the reboot happened with half a day in the buffer
    got = readings(run)
    assert len(got) == 4 * len(truth)
    for probe_index, probe in enumerate(["p1", "p2", "p3", "p4"]):
        series = [(t, c) for p, t, c in got if p == probe]
        times = [t for t, _ in series]
        assert times == sorted(times) and len(set(times)) == len(times), f"{probe}: out of order or twice"
        assert len(series) == len(truth)
        for i, ((t, c), true_t) in enumerate(zip(series, truth, strict=True)):
            assert abs(t - true_t) <= 1, f"{probe} sample {i}: sent as {t}, taken at {true_t}"
            assert c == pytest.approx(4.0 + probe_index + ((i + 1) % 100) / 100)
    assert len(run.delivered("/telemetry")) < 40  # the backlog went in 500-record messages
    assert (done["buffered"], done["dropped"], done["undated"], done["wdt_expired"]) == (0, 0, 0, 0)
    online = [json.loads(m["payload"]) for m in run.delivered("/status")]
    assert online[-1]["state"] == "online" and "dropped" not in online[-1]


def test_a_full_buffer_drops_the_oldest_readings_and_reports_how_many(tmp_path: Path) -> None:
    run = mpy.run(
        "outage",
        tmp_path,
        start=START,
        slots=100,
        online_min=10,
        offline_min=200,
        reboots=[[150, False]],  # after the buffer overflowed: the count survives the reboot
        after_min=3,
    )
    done = run.one("done")
    truth = [int(t) for t in done["truth"]]
    sent = [int(t) for p, t, _ in readings(run) if p == "p1"]
    dropped = done["dropped"]
    assert dropped > 0 and len(sent) + dropped == len(truth)
    # what is missing is one block of the oldest buffered readings: those taken just after the link broke
    first_missing = next(i for i, (a, b) in enumerate(zip(sent, truth, strict=False)) if a != b)
    assert truth[first_missing] - START < 11 * 60
    assert sent == truth[:first_missing] + truth[first_missing + dropped :]
    status = run.delivered("/status")[-1]
    assert json.loads(status["payload"]) == {
        "state": "online",
        "fw": "1.0.0",
        "ts": pytest.approx(status["t"], abs=1),
        "buffered": 100,  # coming back with a full ring: 100 sampling instants to send
        "dropped": dropped,
    }
    assert status["retain"]
    st = parse_status(status["payload"], now=status["t"])  # the server takes it, numbers and all
    assert (st.state, st.buffered, st.dropped) == ("online", 100, dropped)


def test_readings_before_the_clock_is_set_get_their_true_time_or_are_counted_never_sent_as_1970(
    tmp_path: Path,
) -> None:
    # two power cuts while offline: the boot from minute 60 to 120 never learns the time (no network,
    # no RTC), the boot from 120 learns it when the link returns at minute 190
    run = mpy.run(
        "outage",
        tmp_path,
        start=START,
        online_min=10,
        offline_min=180,
        reboots=[[60, True], [120, True]],
        after_min=5,
    )
    done = run.one("done")
    truth = [int(t) for t in done["truth"]]
    unknowable = [t for t in truth if START + 60 * 60 <= t < START + 120 * 60]
    sent = [(int(t), c) for p, t, c in readings(run) if p == "p1"]
    assert all(t >= START for t, _ in sent)  # nothing dated 1970, nothing dated before the run
    assert len(sent) + len(unknowable) == len(truth)
    assert done["undated"] == len(unknowable) and done["dropped"] == 0
    expected = [(t, 4.0 + ((i + 1) % 100) / 100) for i, t in enumerate(truth) if t not in unknowable]
    assert [t for t, _ in sent] == pytest.approx([t for t, _ in expected], abs=1)
    assert [c for _, c in sent] == pytest.approx([c for _, c in expected])
