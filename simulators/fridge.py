"""Thermal model of the cold-chain appliances of many clinics, vectorised with numpy: one array entry per
piece of equipment, every appliance advanced by the same call.

Each appliance has three temperatures:

- ``air``: the cabinet air (with the liner and shelves), the node the thermostat senses. It gains heat
  from the room through the walls, much faster while the door is open, and loses it to the evaporator
  while the compressor runs;
- ``load``: the vaccines, diluent and water packs. Heavy and slow, coupled to the air only, it is what
  keeps a refrigerator cold for a while when the power is cut;
- ``probe``: the temperature probe hanging in the air, a first-order lag (time constant about a minute).

The thermostat switches the compressor on at the cut-in temperature and off at the cut-out temperature
(a refrigerator: on at +6.0 °C, off at +4.0 °C, so the air cycles around +5 °C with a period of about
half an hour; a freezer: on at −18 °C, off at −22 °C). Without power the compressor stays off whatever
the thermostat wants; in a room above 32 °C it loses 4 % of its capacity per °C (a refrigerator holds
+2…+8 °C up to a room of about 40 °C, not at 45 °C). The room temperature follows a daily sinusoid
(18…30 °C, warmest at 15:00 clinic local time, UTC+8) shifted by a per-clinic offset, unless a
scenario sets it. Doors open at random (Poisson) in clinic hours only (08:00–17:00 local), 20–90 s
each: warm room air comes in (the air spikes 2–4 °C), the cabinet cools it back within minutes.

Probe readings add Gaussian noise (σ 0.05 °C) and are rounded to 0.1 °C. A faulty probe (scenario
driven) reads what a DS18B20 reads: −127.0 when disconnected, 85.0 after a power-on reset, or the same
value over and over when stuck.

Integration: explicit Euler in steps of at most ``MAX_STEP_S`` (10 s); rates are per second. All
randomness comes from the ``numpy.random.Generator`` given by the caller, drawn in a fixed order, so a
seed and the sequence of calls fix every number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

MAX_STEP_S = 10.0
LOCAL_UTC_OFFSET_S = 8 * 3600  # clinic local time: UTC+8
CLINIC_OPENS_H = 8.0
CLINIC_CLOSES_H = 17.0
AMBIENT_MEAN_C = 24.0
AMBIENT_AMPLITUDE_C = 6.0  # 18…30 °C
AMBIENT_PEAK_H = 15.0  # warmest at 15:00 local
DERATE_ABOVE_C = 32.0  # a compressor loses capacity in a hot room (condenser too warm) ...
DERATE_PER_C = 0.04  # ... 4 % per °C above 32 °C: about half at 45 °C
PROBE_NOISE_C = 0.05
PROBE_STEPS_PER_C = 10  # resolution 0.1 °C
DOOR_MIN_S = 20
DOOR_MAX_S = 90

DISCONNECTED_C = -127.0  # DS18B20 error codes
RESET_C = 85.0

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class Fault(IntEnum):
    """Probe faults, as codes in an int8 array (0 = healthy)."""

    none = 0
    disconnected = 1
    reset = 2
    stuck = 3


@dataclass(frozen=True, slots=True)
class ThermalProfile:
    """Parameters of one kind of appliance. Rates are per hour here, converted to per second in use."""

    cut_in_c: float  # thermostat switches the compressor on at or above this air temperature
    cut_out_c: float  # ... and off at or below this one
    wall_per_h: float  # air <- room through the walls: dT/dt = wall_per_h * (room - air)
    air_load_per_h: float  # air <- load coupling, seen from the air
    load_to_air_mass: float  # heat capacity of the load over that of the air node
    cooling_c_per_h: float  # how fast the running compressor cools the air
    door_in_per_h: float  # while the door is open: warm room air comes in, dx/dt = door_in * (room - air - x)
    door_out_per_h: float  # the warm air is cooled back by the cabinet: dx/dt = -door_out * x
    door_to_air: float  # part of that heat the air node keeps (its share of the heat capacity)
    doors_per_day: float  # mean door openings per day (all in clinic hours)
    probe_tau_s: float  # probe time constant


PROFILES: dict[str, ThermalProfile] = {
    "refrigerator": ThermalProfile(
        cut_in_c=6.0,
        cut_out_c=4.0,
        wall_per_h=0.40,
        air_load_per_h=6.0,
        load_to_air_mass=8.0,
        cooling_c_per_h=20.0,
        door_in_per_h=12.0,
        door_out_per_h=30.0,
        door_to_air=0.15,
        doors_per_day=6.5,
        probe_tau_s=300.0,
    ),
    "freezer": ThermalProfile(
        cut_in_c=-18.0,
        cut_out_c=-22.0,
        wall_per_h=0.25,
        air_load_per_h=3.0,
        load_to_air_mass=8.0,
        cooling_c_per_h=24.0,
        door_in_per_h=6.0,  # a chest freezer: the cold air stays in
        door_out_per_h=30.0,
        door_to_air=0.15,
        doors_per_day=2.5,
        probe_tau_s=300.0,
    ),
}


class DoorChange(NamedTuple):
    time: float
    index: int  # appliance
    open: bool


def local_hour(t: float) -> float:
    """Clinic local time of day (UTC+8) in hours, 0 <= h < 24."""
    return ((t + LOCAL_UTC_OFFSET_S) % 86400.0) / 3600.0


def in_clinic_hours(t: float) -> bool:
    return CLINIC_OPENS_H <= local_hour(t) < CLINIC_CLOSES_H


def daily_ambient_c(t: float) -> float:
    """The district's room temperature at ``t`` before the per-clinic offset."""
    phase = 2.0 * math.pi * (local_hour(t) - (AMBIENT_PEAK_H - 6.0)) / 24.0
    return AMBIENT_MEAN_C + AMBIENT_AMPLITUDE_C * math.sin(phase)


class FridgeModel:
    """The appliances of all simulated clinics.

    ``profiles[i]`` is the profile name of appliance ``i`` and ``room_offset_c[i]`` how much warmer its
    room is than the district's daily curve (appliances of one clinic share one offset).
    """

    def __init__(
        self,
        profiles: Sequence[str],
        room_offset_c: Sequence[float] | FloatArray,
        rng: np.random.Generator,
    ) -> None:
        unknown = sorted({p for p in profiles if p not in PROFILES})
        if unknown:
            raise ValueError(f"no thermal profile for {', '.join(unknown)} (known: {', '.join(PROFILES)})")
        n = len(profiles)
        self.n = n
        self.rng = rng
        self.profiles = tuple(profiles)
        self.room_offset_c = np.asarray(room_offset_c, dtype=np.float64)
        if self.room_offset_c.shape != (n,):
            raise ValueError("room_offset_c needs one entry per appliance")

        def param(name: str) -> FloatArray:
            return np.array([getattr(PROFILES[p], name) for p in profiles], dtype=np.float64)

        # each appliance a little different from the next: insulation, compressor, thermostat
        spread = rng.uniform(0.9, 1.1, size=(3, n))
        per_h = 1.0 / 3600.0
        self.wall = param("wall_per_h") * spread[0] * per_h
        self.cooling = param("cooling_c_per_h") * spread[1] * per_h
        self.air_load = param("air_load_per_h") * per_h
        self.load_air = self.air_load / (param("load_to_air_mass") * spread[2])
        self.door_in = param("door_in_per_h") * per_h
        self.door_out = param("door_out_per_h") * per_h
        self.door_to_air = param("door_to_air")
        self.door_rate = param("doors_per_day") / ((CLINIC_CLOSES_H - CLINIC_OPENS_H) * 3600.0)
        jitter = rng.normal(0.0, 0.1, size=(2, n)).clip(-0.25, 0.25)
        self.cut_in = param("cut_in_c") + jitter[0]
        self.cut_out = param("cut_out_c") + jitter[1]
        self.probe_tau = param("probe_tau_s")

        # start somewhere in a normal cycle
        setpoint = (self.cut_in + self.cut_out) / 2.0
        self.air = rng.uniform(self.cut_out, self.cut_in)
        self.load = setpoint + rng.normal(0.0, 0.2, size=n)
        self.excess = np.zeros(n)  # warm air let in by the door, above the air node
        self.probe = self.air.copy()
        self.demand = rng.random(n) < 0.5  # the thermostat asks for cooling
        self.compressor = self.demand.copy()  # ... and the compressor runs (it has power)
        self.door_open = np.zeros(n, dtype=np.bool_)
        self.door_from = np.full(n, -np.inf)
        self.door_until = np.full(n, -np.inf)

    def room_c(self, t: float, override_c: FloatArray | None = None) -> FloatArray:
        """Room temperature around each appliance; ``override_c`` (NaN = none) replaces it."""
        room = daily_ambient_c(t) + self.room_offset_c
        if override_c is not None:
            room = np.where(np.isnan(override_c), room, override_c)
        return room

    def step(
        self,
        t: float,
        dt: float,
        powered: BoolArray,
        room_override_c: FloatArray | None = None,
        forced_doors: Sequence[tuple[int, float, float]] = (),
    ) -> list[DoorChange]:
        """Advance from ``t`` to ``t + dt``; returns the door changes in that step, in time order.

        ``powered[i]`` false: appliance ``i`` has no power. ``forced_doors`` holds (appliance, from, until)
        door openings a scenario asks for that overlap the step.
        """
        if not 0.0 < dt <= MAX_STEP_S + 1e-9:
            raise ValueError(f"step {dt} s is not within 0…{MAX_STEP_S} s")
        end = t + dt
        changes: list[DoorChange] = []

        # doors: random openings in clinic hours, then the scenario's, then closings
        draw = self.rng.random(self.n)
        if in_clinic_hours(t):
            new = ~self.door_open & (draw < self.door_rate * dt)
            if new.any():
                idx = np.flatnonzero(new)
                lengths = self.rng.integers(DOOR_MIN_S, DOOR_MAX_S + 1, size=idx.size)
                self.door_open[idx] = True
                self.door_from[idx] = t
                self.door_until[idx] = t + lengths
                changes.extend(DoorChange(t, int(i), True) for i in idx)
        for i, start, until in forced_doors:
            if until <= t or start >= end:
                continue
            if not self.door_open[i]:
                self.door_open[i] = True
                self.door_from[i] = max(start, t)
                changes.append(DoorChange(max(start, t), i, True))
            self.door_until[i] = max(self.door_until[i], until)
        open_fraction = np.zeros(self.n)
        if self.door_open.any():
            span = np.minimum(self.door_until, end) - np.maximum(self.door_from, t)
            open_fraction = np.where(self.door_open, np.clip(span / dt, 0.0, 1.0), 0.0)
            closing = self.door_open & (self.door_until <= end)
            for i in np.flatnonzero(closing):
                changes.append(DoorChange(float(self.door_until[i]), int(i), False))
            self.door_open[closing] = False

        # thermostat with hysteresis; no power, no cooling
        air = self.air
        self.demand = np.where(air >= self.cut_in, True, np.where(air <= self.cut_out, False, self.demand))
        self.compressor = self.demand & powered

        room = self.room_c(t, room_override_c)
        excess = self.excess
        released = self.door_out * excess
        d_excess = self.door_in * open_fraction * (room - air - excess) - released
        d_air = (
            self.wall * (room - air)
            + self.air_load * (self.load - air)
            + self.door_to_air * released
            - self.cooling * self.compressor * np.clip(1.0 - DERATE_PER_C * (room - DERATE_ABOVE_C), 0.0, 1.0)
        )
        d_load = self.load_air * (air - self.load)
        self.air = air + d_air * dt
        self.load = self.load + d_load * dt
        self.excess = excess + d_excess * dt
        seen = self.air + self.excess
        self.probe = self.probe + (seen - self.probe) * (1.0 - np.exp(-dt / self.probe_tau))
        changes.sort()
        return changes

    def read(self) -> FloatArray:
        """One noisy reading of every probe, rounded to the probe's resolution."""
        noisy = self.probe + self.rng.normal(0.0, PROBE_NOISE_C, size=self.n)
        return np.round(noisy * PROBE_STEPS_PER_C) / PROBE_STEPS_PER_C + 0.0  # no -0.0


def apply_faults(readings: FloatArray, faults: npt.NDArray[np.int8], stuck_c: FloatArray) -> FloatArray:
    """What faulty probes report instead of ``readings``: DS18B20 codes, or ``stuck_c`` when stuck."""
    if not faults.any():
        return readings
    out = readings.copy()
    out[faults == Fault.disconnected] = DISCONNECTED_C
    out[faults == Fault.reset] = RESET_C
    stuck = faults == Fault.stuck
    out[stuck] = stuck_c[stuck]
    return out
