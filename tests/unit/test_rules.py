"""The cold-chain rules without any server: every rule at its boundaries, order independence, the
replay command. Times are in seconds from an arbitrary start; readings every minute unless stated."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from alerting.replay import read_trace, replay
from alerting.rules.device import DeviceMachine, offline_tick
from alerting.rules.engine import Engine, EquipmentRef
from alerting.rules.temperature import TemperatureMachine
from alerting.rules.types import Action, Decision, Rule, Severity
from core.profiles import ProfileSettings, profile_settings

T0 = 1_795_000_000.0
MIN = 60.0
HOUR = 3600.0
ROOT = Path(__file__).resolve().parents[2]
FRIDGE = profile_settings("refrigerator")


def run(series: list[tuple[float, float]], settings: ProfileSettings = FRIDGE) -> list[Decision]:
    m = TemperatureMachine("fridge", settings, "clinic")
    out: list[Decision] = []
    for t, c in series:
        out.extend(m.step(T0 + t, c))
    return out


def summary(decisions: list[Decision]) -> list[tuple[float, str, str, str]]:
    return [(d.time - T0, d.rule.value, d.severity.value, d.action.value) for d in decisions]


def steady(
    c: float, start: float, end: float, every: float = MIN, jitter: float = 0.0
) -> list[tuple[float, float]]:
    """A reading every ``every`` s from ``start`` to ``end``; ``jitter`` alternates readings by that much
    (towards the range's middle) so a long steady stretch is not a stuck probe."""
    n = int((end - start) // every)
    sign = -1.0 if c > 5 else 1.0
    return [(start + i * every, round(c + sign * jitter * (i % 2), 2)) for i in range(n + 1)]


# ------------------------------------------------------------------ heat


def test_heat_warning_at_30_min_not_at_29_min_59_s() -> None:
    assert run([(0, 8.5), (29 * MIN + 59, 8.5)]) == []
    assert summary(run([(0, 8.5), (30 * MIN, 8.5)])) == [(1800, "heat_warning", "warning", "fire")]


def test_exactly_8_0_is_inside_the_range() -> None:
    assert run(steady(8.0, 0, 12 * HOUR, jitter=0.1)) == []


def test_clear_needs_the_margin_for_10_minutes() -> None:
    warm = steady(9.0, 0, 30 * MIN)
    # 7.8 °C is in range but not by the 0.3 °C margin: the warning stays
    assert summary(run([*warm, *steady(7.8, 31 * MIN, 90 * MIN)])) == [
        (1800, "heat_warning", "warning", "fire")
    ]
    back = steady(7.7, 31 * MIN, 41 * MIN)
    assert summary(run([*warm, *back])) == [
        (1800, "heat_warning", "warning", "fire"),
        (41 * MIN, "heat_warning", "warning", "clear"),
    ]
    # a reading back above the margin restarts the 10 minutes
    bumpy = [*warm, *steady(7.7, 31 * MIN, 38 * MIN), (39 * MIN, 7.9), *steady(7.7, 40 * MIN, 50 * MIN)]
    assert summary(run(bumpy))[-1] == (50 * MIN, "heat_warning", "warning", "clear")
    assert len(summary(run(bumpy[:-1]))) == 1


def test_heat_alarm_escalates_the_warning_after_10_hours_continuous() -> None:
    decisions = run(steady(9.6, 0, 10 * HOUR, jitter=0.1))
    assert summary(decisions) == [
        (1800, "heat_warning", "warning", "fire"),
        (10 * HOUR, "heat_alarm", "critical", "escalate"),
    ]
    assert decisions[1].key == decisions[0].key  # the same alert, more severe


def test_heat_alarm_on_10_hours_cumulative_in_24_hours_of_short_excursions() -> None:
    series = []
    for k in range(24):  # 29 minutes above, 31 below, every hour: never 30 min continuous
        base = k * HOUR
        series += steady(9.0, base, base + 29 * MIN) + steady(5.0, base + 30 * MIN, base + 59 * MIN)
    m = TemperatureMachine("fridge", FRIDGE, "clinic")
    out = [d for t, c in series for d in m.step(T0 + t, c)]
    fired = [s for s in summary(out) if s[3] == "fire"]
    assert fired and fired[0][1:] == ("heat_alarm", "critical", "fire")
    assert 20 * HOUR <= fired[0][0] <= 22 * HOUR  # 10 h of 29-min spikes: during the 21st hour
    assert not [s for s in summary(out) if s[1] == "heat_warning"]
    assert m.spikes >= 20


def test_door_opening_spikes_never_alert_but_are_counted() -> None:
    m = TemperatureMachine("fridge", FRIDGE, "clinic")
    series = []
    for k in range(8):  # eight door openings of 5 minutes at 11 °C
        series += steady(5.0, k * HOUR, k * HOUR + 50 * MIN) + steady(
            11.0, k * HOUR + 51 * MIN, k * HOUR + 56 * MIN
        )
    series += steady(5.0, 8 * HOUR, 8 * HOUR + 10 * MIN)
    out = [d for t, c in series for d in m.step(T0 + t, c)]
    assert out == []
    assert m.spikes == 8


# ------------------------------------------------------------------ cold and freeze


def test_cold_warning_then_freeze_alarm_on_the_same_alert() -> None:
    series = steady(1.5, 0, 30 * MIN) + steady(-0.5, 31 * MIN, 91 * MIN)
    decisions = run(series)
    assert summary(decisions) == [
        (1800, "cold_warning", "warning", "fire"),
        (91 * MIN, "freeze_alarm", "critical", "escalate"),
    ]
    assert decisions[1].values["freeze_sensitive"] is True


def test_freeze_alarm_at_or_below_minus_0_5_for_60_minutes() -> None:
    assert [s for s in summary(run(steady(-0.4, 0, 3 * HOUR))) if s[1] == "freeze_alarm"] == []
    assert summary(run([(0, -0.5), (59 * MIN + 59, -0.5)])) == [
        (1800 + 0, "cold_warning", "warning", "fire")
    ][:0] + [s for s in summary(run([(0, -0.5), (59 * MIN + 59, -0.5)]))]
    out = summary(run([(0, -0.5), (60 * MIN, -0.5)]))
    assert (3600, "freeze_alarm", "critical", "escalate") in out


def test_freeze_alarm_is_a_warning_without_freeze_sensitive_vaccines() -> None:
    settings = FRIDGE.model_copy(update={"freeze_sensitive": False})
    out = summary(run(steady(-2.0, 0, 2 * HOUR), settings))
    assert (3600, "freeze_alarm", "warning", "escalate") in out


def test_freezer_profile_has_its_own_range_and_no_freeze_rule() -> None:
    freezer = profile_settings("freezer")
    assert run(steady(-20.0, 0, 24 * HOUR, jitter=0.1), freezer) == []
    assert summary(run(steady(-14.0, 0, 30 * MIN), freezer)) == [(1800, "heat_warning", "warning", "fire")]
    assert summary(run(steady(-26.0, 0, 30 * MIN), freezer)) == [(1800, "cold_warning", "warning", "fire")]


# ------------------------------------------------------------------ probe


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(85.0, "ds18b20_85"), (-127.0, "ds18b20_minus127"), (70.5, "out_of_range"), (-61.0, "out_of_range")],
)
def test_probe_fault_codes_fire_at_once_and_take_no_part_in_excursions(raw: float, reason: str) -> None:
    decisions = run([(0, 5.0), *[(k * MIN, raw) for k in range(1, 60)], *steady(5.0, 60 * MIN, 75 * MIN)])
    assert summary(decisions) == [
        (60, "probe_fault", "warning", "fire"),
        (70 * MIN, "probe_fault", "warning", "clear"),
    ]
    assert decisions[0].values["reason"] == reason


def test_a_probe_that_does_not_change_for_6_hours_is_faulty() -> None:
    assert run([(0, 4.4), (6 * HOUR - 1, 4.4)]) == []
    decisions = run([(0, 4.4), (6 * HOUR, 4.4), (6 * HOUR + 60, 4.5)])
    assert summary(decisions) == [
        (6 * HOUR, "probe_fault", "warning", "fire"),
        (6 * HOUR + 60, "probe_fault", "warning", "clear"),
    ]
    assert decisions[0].values["reason"] == "stuck"


# ------------------------------------------------------------------ early warning


def test_early_warning_comes_before_the_excursion_and_gives_way_to_it() -> None:
    # a fridge warming 0.05 °C a minute from 5 °C (a failed compressor) crosses 8 °C after 60 minutes
    series = [(k * MIN, round(5.0 + 0.05 * k, 2)) for k in range(0, 120)]
    out = summary(run(series))
    early = [s for s in out if s[1] == "early_warning"]
    assert early[0][3] == "fire" and early[0][0] < 60 * MIN  # before +8.0 °C is reached
    assert early[0][0] >= 60 * MIN - 30 * MIN  # within the 30-minute horizon
    heat = [s for s in out if s[1] == "heat_warning"]
    assert heat == [(61 * MIN + 30 * MIN, "heat_warning", "warning", "fire")]
    assert (heat[0][0], "early_warning", "warning", "clear") in out


def test_no_early_warning_for_normal_compressor_cycles() -> None:
    # 4 -> 6 °C in 15 min, 6 -> 4 °C in 10 min, all day
    series = []
    t = 0.0
    while t < 24 * HOUR:
        phase = t % (25 * MIN)
        c = (
            4.0 + 2.0 * phase / (15 * MIN)
            if phase < 15 * MIN
            else 6.0 - 2.0 * (phase - 15 * MIN) / (10 * MIN)
        )
        series.append((t, round(c, 1)))
        t += MIN
    assert run(series) == []


# ------------------------------------------------------------------ gateway


def test_power_outage_after_5_minutes_with_a_holdover_forecast() -> None:
    m = DeviceMachine("gw", FRIDGE, "clinic")
    assert m.mains(T0, False, lambda: 120.0) == []
    assert m.mains(T0 + 4 * MIN + 59, False, lambda: 118.0) == []
    (fire,) = m.mains(T0 + 5 * MIN, False, lambda: 117.0)
    assert (fire.rule, fire.action, fire.values["forecast_min"]) == (Rule.power_outage, Action.fire, 115)
    (update,) = m.mains(T0 + 10 * MIN, False, lambda: 100.0)
    assert update.action is Action.update and update.values["forecast_min"] == 100
    (clear,) = m.mains(T0 + 11 * MIN, True, lambda: None)
    assert clear.action is Action.clear


def test_battery_low_below_20_percent_clears_at_25() -> None:
    m = DeviceMachine("gw", FRIDGE, "clinic")
    assert m.battery(T0, 20.0) == []
    assert [d.action for d in m.battery(T0 + 60, 19.9)] == [Action.fire]
    assert m.battery(T0 + 120, 24.0) == []
    assert [d.action for d in m.battery(T0 + 180, 25.0)] == [Action.clear]


def test_device_offline_fires_while_nothing_arrives_and_groups_per_clinic() -> None:
    a, b = DeviceMachine("gw1", FRIDGE, "c1"), DeviceMachine("scan1", FRIDGE, "c1")
    a.seen(T0, T0)
    b.seen(T0 + 10 * MIN, T0 + 10 * MIN)
    state: dict[str, bool] = {}
    assert offline_tick("c1", [a, b], T0 + 15 * MIN - 1, state) == []
    (one,) = offline_tick("c1", [a, b], T0 + 15 * MIN, state)  # only gw1 is silent: one device alert
    assert (one.subject, one.time, one.action) == ("gw1", T0 + 15 * MIN, Action.fire)
    (clinic,) = offline_tick("c1", [a, b], T0 + 25 * MIN, state)  # now both: one alert for the clinic
    assert (clinic.subject, clinic.action) == ("c1", Action.fire)
    assert offline_tick("c1", [a, b], T0 + 60 * MIN, state) == []  # once
    assert b.seen(T0 + 61 * MIN, T0 + 61 * MIN) == []  # its own alert was inhibited by the clinic's
    (clinic_clear,) = offline_tick("c1", [a, b], T0 + 62 * MIN, state)
    assert (clinic_clear.subject, clinic_clear.action) == ("c1", Action.clear)


# ------------------------------------------------------------------ order independence


def engine() -> Engine:
    return Engine([EquipmentRef("fridge", "clinic", "gw", "p1", FRIDGE)])


def excursion_day() -> list[tuple[float, float]]:
    series = steady(5.0, 0, 2 * HOUR)
    series += [(2 * HOUR + k * MIN, round(5.0 + 0.05 * k, 2)) for k in range(1, 100)]
    series += steady(9.9, 2 * HOUR + 100 * MIN, 14 * HOUR)
    series += steady(5.0, 14 * HOUR + MIN, 16 * HOUR)
    series += [(16 * HOUR + k * MIN, 85.0 if k == 3 else 5.0) for k in range(1, 30)]
    series += steady(-1.0, 17 * HOUR, 19 * HOUR) + steady(5.0, 19 * HOUR + MIN, 20 * HOUR)
    return series


def feed(
    e: Engine, series: list[tuple[float, float]], message: int = 10
) -> list[tuple[float, str, str, str]]:
    """Readings in messages of ``message`` readings: the engine settles late ones after each message."""
    out: list[Decision] = []
    for k, (t, c) in enumerate(series, start=1):
        out.extend(e.temperature("gw", "p1", T0 + t, c))
        if k % message == 0:
            out.extend(e.flush())
    out.extend(e.flush())
    return sorted(summary(out))


def test_shuffled_and_duplicated_input_gives_the_same_decisions() -> None:
    series = excursion_day()
    in_order = feed(engine(), series)
    assert {s[1] for s in in_order} >= {
        "heat_warning",
        "heat_alarm",
        "probe_fault",
        "cold_warning",
        "freeze_alarm",
        "early_warning",
    }
    rnd = random.Random(7)
    messy = series + rnd.sample(series, 200)
    rnd.shuffle(messy)
    e = engine()
    emitted = feed(e, messy)
    assert sorted(summary(e.history())) == in_order  # the same decisions from the same readings
    assert set(in_order) <= set(emitted)  # and every one of them was emitted


def test_a_buffered_upload_hours_late_gives_exactly_the_same_decisions() -> None:
    """A gateway silent for 6 hours sends its buffer, oldest first, then goes on live."""
    series = excursion_day()
    e = engine()
    in_order = feed(engine(), series)
    first = feed(e, [r for r in series if r[0] < 3 * HOUR])
    rest = feed(e, [r for r in series if r[0] >= 3 * HOUR])  # arriving at 9 h, with their own times
    assert sorted(first + rest) == in_order


def test_live_readings_before_the_backlog_give_the_same_history() -> None:
    series = excursion_day()
    late = [r for r in series if 3 * HOUR <= r[0] < 9 * HOUR]  # the backlog comes after the live data
    rest = [r for r in series if not 3 * HOUR <= r[0] < 9 * HOUR]
    e = engine()
    emitted = feed(e, rest + late)
    in_order = feed(engine(), series)
    assert sorted(summary(e.history())) == in_order
    assert set(in_order) <= set(emitted)


def test_readings_older_than_the_horizon_are_counted_not_used() -> None:
    e = engine()
    feed(e, steady(5.0, 27 * HOUR, 28 * HOUR))
    assert feed(e, [(0.0, 20.0)]) == []
    assert e.too_late() == 1


# ------------------------------------------------------------------ replay


def write_trace(path: Path) -> None:
    lines = ["time,celsius,mains"]
    for k in range(0, 8 * 60):
        t = T0 + k * MIN
        off = 60 <= k < 300
        c = (
            5.0 + (0.03 * (k - 60) if off else 0.0)
            if k < 300
            else max(5.0, 5.0 + 0.03 * 240 - 0.1 * (k - 300))
        )
        lines.append(f"{int(t)},{c:.2f},{0 if off else 1}")
    path.write_text("\n".join(lines) + "\n")


def test_replay_is_byte_identical_and_uses_the_documented_names(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    write_trace(trace)
    cmd = [sys.executable, "-m", "core.cli", "rules", "replay", str(trace), "--profile", "refrigerator"]
    first = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=True).stdout
    second = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=True).stdout
    assert first == second
    lines = [json.loads(x) for x in first.decode().splitlines()]
    assert [(x["rule"], x["action"]) for x in lines][:1] == [("power_outage", "fire")]
    assert all(list(x) == ["time", "rule", "severity", "action"] for x in lines)
    assert {x["rule"] for x in lines} >= {"power_outage", "early_warning", "heat_warning"}


def test_replay_reads_iso_times_without_header(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("".join(f"2026-11-20T{h:02d}:{m:02d}:00Z,9.0\n" for h in range(2) for m in range(60)))
    with trace.open() as fh:
        rows = read_trace(fh)
    out = [d.as_json() for d in replay(rows)]
    assert out[0] == {
        "time": "2026-11-20T00:30:00Z",
        "rule": "heat_warning",
        "severity": "warning",
        "action": "fire",
    }


def test_replay_reports_a_bad_line_in_one_line(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("time,celsius\n2026-11-20T00:00:00Z,5.0\nyesterday,5.1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "rules", "replay", str(trace)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and f"{trace}:3" in proc.stderr


def test_severity_order() -> None:
    assert Severity.critical.rank > Severity.warning.rank > Severity.info.rank
