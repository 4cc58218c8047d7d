"""Fridge thermal model: what a nurse looking at the readings would notice."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simulators.fridge import (
    DISCONNECTED_C,
    RESET_C,
    Fault,
    FridgeModel,
    apply_faults,
    local_hour,
)

LOCAL_MIDNIGHT = datetime(2026, 11, 20, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-21 00:00 UTC+8
DT = 10.0


def make(profiles: list[str], seed: int = 3, offsets: np.ndarray | None = None) -> FridgeModel:
    rng = np.random.Generator(np.random.PCG64(seed))
    if offsets is None:
        # clinics of three appliances sharing a room offset, as the engine builds them
        clinic_offsets = rng.normal(0.0, 1.5, size=len(profiles)).clip(-3, 3)
        offsets = clinic_offsets[np.arange(len(profiles)) // 3]
    return FridgeModel(profiles, offsets, rng)


def run(model: FridgeModel, start: float, hours: float, powered=None, room=None, sample_s: float = 60.0):
    """Readings, compressor states and door changes, sampled every ``sample_s``."""
    powered = np.ones(model.n, dtype=bool) if powered is None else powered
    per_sample = round(sample_s / DT)
    t = start
    times, readings, compressor, doors = [], [], [], []
    for k in range(round(hours * 3600 / DT)):
        p = powered(t) if callable(powered) else powered
        doors += model.step(t, DT, p, room)
        t += DT
        if (k + 1) % per_sample == 0:
            times.append(t)
            readings.append(model.read())
            compressor.append(model.compressor.copy())
    return np.array(times), np.array(readings), np.array(compressor), doors


@pytest.fixture(scope="module")
def normal_day():
    profiles = ["refrigerator", "refrigerator", "freezer"] * 10
    model = make(profiles)
    run(model, LOCAL_MIDNIGHT - 3600, 1.0)  # settle
    return profiles, *run(model, LOCAL_MIDNIGHT, 24.0)


def cycles(on: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(on.astype(int)) == 1))


def test_refrigerators_stay_within_2_to_8_and_cycle_around_5(normal_day):
    profiles, _, readings, compressor, _ = normal_day
    fridges = [i for i, p in enumerate(profiles) if p == "refrigerator"]
    r = readings[:, fridges]
    assert r.min() >= 2.0 and r.max() <= 8.0, (r.min(), r.max())
    means = r.mean(axis=0)
    assert np.all(np.abs(means - 5.0) < 0.5), means
    n_cycles = np.array([cycles(compressor[:, i]) for i in fridges])
    periods_min = 24 * 60 / n_cycles
    assert np.all((periods_min > 20) & (periods_min < 45)), periods_min
    # the thermostat shows in the readings: each fridge swings by about 2 °C, not flat
    assert np.all(np.percentile(r, 95, axis=0) - np.percentile(r, 5, axis=0) > 1.0)


def test_freezers_cycle_around_minus_20(normal_day):
    profiles, _, readings, compressor, _ = normal_day
    freezers = [i for i, p in enumerate(profiles) if p == "freezer"]
    r = readings[:, freezers]
    assert r.min() >= -25.0 and r.max() <= -15.0, (r.min(), r.max())
    assert np.all(np.abs(r.mean(axis=0) + 20.0) < 1.0)
    assert np.all(np.percentile(r, 10, axis=0) < -20.5) and np.all(np.percentile(r, 90, axis=0) > -19.5)
    assert all(cycles(compressor[:, i]) >= 10 for i in freezers)


def test_readings_are_rounded_to_a_tenth(normal_day):
    _, _, readings, _, _ = normal_day
    assert np.all(np.abs(readings * 10 - np.round(readings * 10)) < 1e-9)
    assert not np.any(np.signbit(readings) & (readings == 0.0))  # no -0.0 in the JSON


def test_doors_open_only_in_clinic_hours_and_warm_the_probe_briefly(normal_day):
    profiles, times, readings, _, doors = normal_day
    opens = [d for d in doors if d.open]
    closes = [d for d in doors if not d.open]
    assert opens and len(closes) >= len(opens) - len(profiles)
    assert all(8.0 <= local_hour(d.time) < 17.0 for d in opens)
    fridges = [i for i, p in enumerate(profiles) if p == "refrigerator"]
    per_fridge = np.array([sum(1 for d in opens if d.index == i) for i in fridges])
    assert 4.0 <= per_fridge.mean() <= 9.0, per_fridge
    # every opening lasts 20–90 s
    open_at = {}
    for d in sorted(doors):
        if d.open:
            open_at[d.index] = d.time
        else:
            assert 20.0 <= d.time - open_at.pop(d.index) <= 90.0
    # the probe warms up by about a degree within minutes, then cools back
    rises, recovered = [], []
    for d in opens:
        if profiles[d.index] != "refrigerator":
            continue
        k = int(np.searchsorted(times, d.time))
        if k < 1 or k + 20 > len(times):
            continue
        before = readings[k - 1, d.index]
        rises.append(readings[k : k + 6, d.index].max() - before)
        recovered.append(readings[k + 10 : k + 20, d.index].min() <= before + 0.5)
    assert np.mean(rises) > 0.6, np.mean(rises)
    assert np.mean(recovered) > 0.8


def test_power_cut_warms_a_refrigerator_slowly_and_it_recovers():
    n = 20
    model = make(["refrigerator"] * n, seed=5, offsets=np.zeros(n))
    room = np.full(n, 25.0)
    start = LOCAL_MIDNIGHT - 6 * 3600  # night: no door openings to blur the picture
    run(model, start - 2 * 3600, 2.0, room=room)
    cut_end = start + 6 * 3600

    def powered(t: float) -> np.ndarray:
        return np.full(n, t >= cut_end)

    times, readings, compressor, _ = run(model, start, 10.0, powered=powered, room=room)
    during = times <= cut_end
    assert not compressor[times < cut_end].any()
    hours_to_8 = np.array([(times[np.argmax(readings[:, i] > 8.0)] - start) / 3600 for i in range(n)])
    assert np.all(readings[during].max(axis=0) > 8.0)
    assert np.all((hours_to_8 > 1.0) & (hours_to_8 < 4.0)), hours_to_8
    # recovery: below +8 within the hour, back in the normal cycle after 3 h
    after = times > cut_end
    back_min = np.array(
        [(times[after][np.argmax(readings[after, i] <= 8.0)] - cut_end) / 60 for i in range(n)]
    )
    assert np.all(back_min < 60), back_min
    late = times > cut_end + 3 * 3600
    assert readings[late].min() >= 2.0 and readings[late].max() <= 8.0


def test_hot_room_beats_the_compressor_but_a_warm_one_does_not():
    n = 10
    model = make(["refrigerator"] * n, seed=2, offsets=np.zeros(n))
    night = LOCAL_MIDNIGHT - 6 * 3600
    _, warm, _, _ = run(model, night, 6.0, room=np.full(n, 36.0))[:4]
    _, hot, compressor, _ = run(model, night + 6 * 3600, 10.0, room=np.full(n, 45.0))
    assert warm.max() <= 8.0
    assert compressor[-120:].mean() > 0.95  # running flat out ...
    assert np.all(hot[-60:].mean(axis=0) > 8.0)  # ... and still too warm


def test_faulty_probes_read_ds18b20_codes_or_stick():
    readings = np.array([4.5, 5.0, -20.1, 6.2])
    faults = np.array([Fault.none, Fault.disconnected, Fault.reset, Fault.stuck], dtype=np.int8)
    out = apply_faults(readings, faults, np.array([0.0, 0.0, 0.0, 4.4]))
    assert out.tolist() == [4.5, DISCONNECTED_C, RESET_C, 4.4]
    assert readings.tolist() == [4.5, 5.0, -20.1, 6.2]  # the true readings are not touched


def test_same_seed_same_temperatures_other_seed_others():
    a, b, c = (make(["refrigerator", "freezer"] * 3, seed=s) for s in (7, 7, 8))
    ra = run(a, LOCAL_MIDNIGHT, 12.0)[1]
    rb = run(b, LOCAL_MIDNIGHT, 12.0)[1]
    rc = run(c, LOCAL_MIDNIGHT, 12.0)[1]
    assert np.array_equal(ra, rb)
    assert not np.array_equal(ra, rc)
