"""The rule engine: routes readings to the machines of each piece of equipment and gateway, and makes
the result independent of the order readings arrive in.

Each machine keeps the readings of the last ``horizon_s`` (26 h: the heat alarm looks back 24 h) in
time order, a copy of itself as it was before the oldest of them, and checkpoint copies along the way.
A reading later than all others (the usual case, also for a gateway's buffered upload, which comes
oldest first) is one step. A reading that arrives out of order is inserted, and the machine is rebuilt
from the checkpoint before it; decisions it already emitted are not emitted again. A reading equal in
time to one already seen is a duplicate and ignored; one older than the horizon is counted in
``too_late`` and takes no part (the collector still stores it).

So the same readings give the same decisions (``history``) in whatever order they arrive. What was
emitted before late readings arrived is not withdrawn when they contradict it — an alert that fired is
a fact someone may have acted on — so shuffled input emits every in-order decision, and possibly some
made on partial data; the lifecycle takes a second "fire" on an open alert as a no-op.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from alerting.rules.device import DeviceMachine, offline_tick
from alerting.rules.temperature import TemperatureMachine
from alerting.rules.types import Decision
from core.profiles import ProfileSettings

HORIZON_S = 26 * 3600.0
LIVE_WINDOW_S = 120.0
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class EquipmentRef:
    id: str
    clinic: str | None
    device: str
    probe: str
    settings: ProfileSettings
    interval_s: float = 60.0


class Ordered(Generic[M]):
    """A machine fed in time order whatever order its samples arrive in.

    Keeps the samples of the last ``horizon_s``, a copy of the machine before the oldest of them
    (``base``) and a checkpoint copy every ``CHECKPOINT_EVERY`` samples, so a sample that arrives out of
    order costs a replay from the checkpoint before it, not from the start of the horizon.
    """

    def __init__(self, machine: M, step: Callable[[M, float, Any], list[Decision]], horizon_s: float) -> None:
        self.base = _clone(machine)
        self.live = machine
        self.step = step
        self.horizon_s = horizon_s
        self.times: list[float] = []
        self.values: list[Any] = []
        self.checkpoints: list[tuple[float, M]] = []  # (time of the last sample stepped, machine copy)
        self.too_late = 0
        self.rebuilds = 0
        self.dirty_from: float | None = None  # earliest out-of-order sample not yet stepped
        self.queued = False  # in the engine's list of series to flush

    def add(self, t: float, value: Any) -> list[Decision]:
        """Take a sample. In time order it is stepped at once; out of order it is inserted and the
        machine is rebuilt at the next ``flush`` (so a message full of late samples costs one rebuild)."""
        times = self.times
        if not times or t > times[-1]:
            out = self.flush()
            times.append(t)
            self.values.append(value)
            out += self._advance(self.live, len(times) - 1)
            self._trim()
            return out
        i = bisect.bisect_left(times, t)
        if i < len(times) and times[i] == t:
            return []  # a duplicate
        if i == 0 and times[-1] - t > self.horizon_s:
            self.too_late += 1
            return []
        times.insert(i, t)
        self.values.insert(i, value)
        self.dirty_from = t if self.dirty_from is None else min(self.dirty_from, t)
        return []

    def flush(self) -> list[Decision]:
        if self.dirty_from is None:
            return []
        t, self.dirty_from = self.dirty_from, None
        self.queued = False
        self.rebuilds += 1
        out = self._replay_from(t)
        self._trim()
        return out

    def _advance(self, machine: M, index: int) -> list[Decision]:
        out = self.step(machine, self.times[index], self.values[index])
        if index % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
            self.checkpoints.append((self.times[index], _clone(machine)))
        return out

    def _replay_from(self, t: float) -> list[Decision]:
        """Rebuild the live machine after a sample at ``t`` was inserted."""
        k = bisect.bisect_left(self.checkpoints, t, key=lambda cp: cp[0])
        del self.checkpoints[k:]  # they were taken without the new sample
        if self.checkpoints:
            since, snapshot = self.checkpoints[-1]
            machine = _clone(snapshot)
            first = bisect.bisect_right(self.times, since)
        else:
            machine = _clone(self.base)
            first = 0
        out: list[Decision] = []
        for i in range(first, len(self.times)):
            out.extend(self._advance(machine, i))
        self.live = machine
        return out

    def _trim(self) -> None:
        times = self.times
        dropped = 0
        while times[-1] - times[0] > self.horizon_s:
            self.step(self.base, times.pop(0), self.values.pop(0))
            dropped += 1
        if dropped:
            # checkpoint positions are by index modulo CHECKPOINT_EVERY: keep them valid by time only
            self.checkpoints = [cp for cp in self.checkpoints if cp[0] >= times[0]]

    def history(self) -> list[Decision]:
        """The decisions of the samples now in the horizon, as if they had all arrived in order."""
        self.flush()
        machine = _clone(self.base)
        return [d for t, v in zip(self.times, self.values, strict=True) for d in self.step(machine, t, v)]


CHECKPOINT_EVERY = 30


def _clone(machine: M) -> M:
    clone = getattr(machine, "clone", None)
    return clone() if clone is not None else copy.deepcopy(machine)


def _temp_step(m: TemperatureMachine, t: float, c: Any) -> list[Decision]:
    return m.step(t, float(c))


def _battery_step(m: DeviceMachine, t: float, pct: Any) -> list[Decision]:
    return m.battery(t, float(pct))


@dataclass
class Engine:
    equipment: Iterable[EquipmentRef]
    devices: dict[str, tuple[str | None, float, ProfileSettings]] = field(default_factory=dict)
    horizon_s: float = HORIZON_S

    def __post_init__(self) -> None:
        self.temps: dict[tuple[str, str], Ordered[TemperatureMachine]] = {}
        self.by_device: dict[str, list[Ordered[TemperatureMachine]]] = {}  # for the holdover forecast
        for eq in self.equipment:
            m = TemperatureMachine(eq.id, eq.settings, eq.clinic, eq.interval_s)
            series = Ordered(m, _temp_step, self.horizon_s)
            self.temps[(eq.device, eq.probe)] = series
            self.by_device.setdefault(eq.device, []).append(series)
            self.devices.setdefault(eq.device, (eq.clinic, eq.interval_s, eq.settings))
        self.gateways: dict[str, DeviceMachine] = {}
        self.power: dict[str, Ordered[DeviceMachine]] = {}
        self.batteries: dict[str, Ordered[DeviceMachine]] = {}
        for dev, (clinic, interval, settings) in self.devices.items():
            self.gateways[dev] = DeviceMachine(dev, settings, clinic, interval)
            self.power[dev] = Ordered(
                DeviceMachine(dev, settings, clinic, interval), self._power_step, self.horizon_s
            )
            self.batteries[dev] = Ordered(
                DeviceMachine(dev, settings, clinic, interval), _battery_step, self.horizon_s
            )
        by_clinic: dict[str, list[DeviceMachine]] = {}  # the gateways are fixed: grouped once, not per tick
        for gw in self.gateways.values():
            by_clinic.setdefault(gw.clinic or gw.subject, []).append(gw)
        self.by_clinic = sorted(by_clinic.items())
        self.clinic_offline: dict[str, bool] = {}
        self.watermark = 0.0  # the newest reading time of any device
        self.last_arrival: float | None = None  # the clock when the last message arrived
        self.emitted: dict[tuple[float, str, str, str, str], float] = {}
        self.dirty: list[Ordered[Any]] = []  # series with late samples not yet stepped

    # ------------------------------------------------------------------ inputs

    def temperature(self, device: str, probe: str, t: float, celsius: float) -> list[Decision]:
        series = self.temps.get((device, probe))
        if series is None:
            return []  # a probe no equipment is registered for: stored, noticed by the collector
        return self._add(series, t, celsius)

    def mains(self, device: str, t: float, on: bool) -> list[Decision]:
        series = self.power.get(device)
        return self._add(series, t, on) if series else []

    def battery(self, device: str, t: float, pct: float) -> list[Decision]:
        series = self.batteries.get(device)
        return self._add(series, t, pct) if series else []

    def seen(self, device: str, t: float, now: float) -> list[Decision]:
        """A message from ``device`` with readings up to ``t`` arrived at ``now`` (the clock)."""
        gw = self.gateways.get(device)
        if gw is None:
            return []
        back_at = max(self.watermark, t)  # in reading time: when the device was heard again
        self.watermark = back_at
        self.last_arrival = now
        out: list[Decision] = []
        silent_for = back_at - gw.heard_at if gw.heard_at is not None else 0.0
        grouped = self.clinic_offline.get(gw.clinic or gw.subject, False)
        if silent_for >= gw.offline_after_s and not gw.offline_open and not grouped:
            # silent longer than the limit while the others went on, and no tick fell in that time (an
            # accelerated replay, a back-fill): the alert it would have raised, then its end
            out.append(gw.offline_fire(back_at))
        out.extend(gw.seen(t, back_at))
        return self._emit(out)

    def data_time(self, now: float) -> float:
        """The time offline is judged at. While data flows, the newest reading time of all devices (the
        watermark): a back-fill, a replay or an accelerated simulation then sees a device go silent
        when the others move on without it, as it happened, not when the wall clock says. When no
        message has arrived for ``LIVE_WINDOW_S`` of the clock, the clock itself: a district whose
        every gateway fell silent still raises its alerts."""
        if self.last_arrival is not None and now - self.last_arrival < LIVE_WINDOW_S:
            return self.watermark
        return max(now, self.watermark)

    def flush(self) -> list[Decision]:
        """Step what arrived out of order since the last flush (call after each message). Only the
        series that got late samples are visited: a flush after an in-order message costs nothing."""
        if not self.dirty:
            return []
        out: list[Decision] = []
        dirty, self.dirty = self.dirty, []
        for series in dirty:
            out.extend(series.flush())
        return self._emit(sorted(out, key=lambda d: d.time))

    def _add(self, series: Ordered[Any], t: float, value: Any) -> list[Decision]:
        out = series.add(t, value)
        if series.dirty_from is not None and not series.queued:
            series.queued = True
            self.dirty.append(series)
        return self._emit(out)

    def tick(self, now: float) -> list[Decision]:
        """Time-driven rules at ``now`` (the injected clock): device offline."""
        now = self.data_time(now)
        out: list[Decision] = []
        for clinic, gws in self.by_clinic:
            out.extend(offline_tick(clinic, gws, now, self.clinic_offline))
        return self._emit(out)

    # ------------------------------------------------------------------ internals

    def holdover_min(self, device: str) -> float | None:
        """Minutes until the first appliance on ``device`` passes its upper limit at its current rate."""
        etas = [
            eta
            for series in self.by_device.get(device, [])
            if (eta := series.live.minutes_to_high()) is not None
        ]
        return min(etas) if etas else None

    def _power_step(self, m: DeviceMachine, t: float, on: Any) -> list[Decision]:
        return m.mains(t, bool(on), lambda: self.holdover_min(m.subject))

    def _emit(self, decisions: list[Decision]) -> list[Decision]:
        out = []
        for d in decisions:
            ident = d.identity()
            if ident in self.emitted:
                continue
            self.emitted[ident] = d.time
            out.append(d)
        if len(self.emitted) > 200_000:  # forget what lies beyond every machine's horizon
            newest = max(self.emitted.values())
            self.emitted = {k: v for k, v in self.emitted.items() if v > newest - 2 * self.horizon_s}
        return out

    def history(self) -> list[Decision]:
        """Temperature decisions of everything now in the horizon, as if it had all arrived in order
        (what ``temperature`` emits may also hold decisions made on partial data: see the module doc)."""
        return sorted(
            (d for s in self.temps.values() for d in s.history()), key=lambda d: (d.time, d.rule.value)
        )

    def spikes(self) -> dict[str, int]:
        """Excursions per equipment that ended before alerting (door openings)."""
        return {s.live.subject: s.live.spikes for s in self.temps.values()}

    def too_late(self) -> int:
        return sum(s.too_late for s in self.temps.values())
