"""The simulation: simulated clinics built from the registry, simulated time stepped and paced against
an injected clock, samples handed to the gateways and their messages to a sink.

What is simulated: every refrigerator and freezer of the first N clinics of a registry and the gateways
whose probes measure them (other equipment, such as cold boxes and waste stores, is left out). Waste
scanners are simulated by ``simulators.waste`` when one is given (``waste``, a ``SideStream``): its
messages are published at their own times, between the gateways' ticks, paced like them.

Time: the model advances in ticks of the greatest common divisor of the gateways' sampling intervals
(sub-stepped to at most 10 s), on a grid of whole multiples of the tick, so a gateway with a 60 s
interval samples at every whole minute. It starts an hour before ``start`` to settle; samples are
taken at times ``start <= T < end``. Pacing: simulated time is ``start + (wall - wall0) * speed`` but
never later than the wall clock; ``speed == 0`` runs as fast as possible up to the wall clock, then
keeps pace with it (a back-fill that turns live). The engine never reads the time itself: it gets a
``Clock`` and a ``sleep`` function. Messages are fixed by seed, scenario, registry, clinics and start:
the speed and the pacing change only when they are published.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import reduce
from typing import Any, Protocol

import numpy as np

from core.clock import Clock
from core.registry_model import DeviceKind, Profile, RegistryFile
from simulators.fridge import MAX_STEP_S, Fault, FridgeModel, apply_faults
from simulators.gateway import (
    Counts,
    DoorEvent,
    Gateway,
    Sample,
    status_payload,
    status_topic,
)
from simulators.publisher import DeviceRef, Sink
from simulators.scenario import FaultKind, Kind, ResolvedEvent, SiteEquipment, iso_utc

SIMULATED_PROFILES = (Profile.refrigerator, Profile.freezer)
WARMUP_S = 3600.0
BATTERY_DRAIN_PCT_PER_H = 6.0  # on battery: about 16 h from full
BATTERY_CHARGE_PCT_PER_H = 20.0
ROOM_OFFSET_SD_C = 1.5  # clinics differ: some rooms are warmer than others
ROOM_OFFSET_MAX_C = 3.0

_FAULT_CODES = {
    FaultKind.disconnected: Fault.disconnected,
    FaultKind.reset: Fault.reset,
    FaultKind.stuck: Fault.stuck,
}


class SideStream(Protocol):
    """Messages scheduled at their own simulated times beside the gateways' (``simulators.waste``)."""

    def next_time(self) -> float: ...  # when the next message is due; math.inf: no more

    def publish_next(self, sink: Sink) -> None: ...  # publish every message due at next_time()

    def summary(self, end: float) -> dict[str, Any]: ...


# ------------------------------------------------------------------ what is simulated


SYNC_EVERY_S = 300.0  # simulated seconds between waits for the broker's acknowledgements


@dataclass(frozen=True, slots=True)
class SimAppliance:
    clinic: str
    equipment: str
    profile: str
    device: int  # index into District.devices
    probe: str


@dataclass(frozen=True, slots=True)
class SimDevice:
    clinic: str
    clinic_index: int
    device: str
    interval_s: int
    appliances: tuple[int, ...]  # indices into District.appliances, in probe order
    probes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class District:
    clinics: tuple[str, ...]
    devices: tuple[SimDevice, ...]
    appliances: tuple[SimAppliance, ...]
    sites: tuple[SiteEquipment, ...]
    registry_clinics: tuple[str, ...] = ()

    def device_refs(self) -> list[DeviceRef]:
        return [DeviceRef(d.clinic, d.device) for d in self.devices]


def build_district(registry: RegistryFile, clinics: int) -> District:
    """The first ``clinics`` clinics of the registry, their refrigerators and freezers and gateways."""
    all_clinics = registry.clinics()
    if clinics < 1:
        raise ValueError(f"--clinics {clinics}: simulate at least 1 clinic")
    if clinics > len(all_clinics):
        raise ValueError(
            f"--clinics {clinics}: the registry has only {len(all_clinics)} clinic(s); use --clinics "
            f"{len(all_clinics)} or a bigger registry (--registry FILE)"
        )
    chosen = all_clinics[:clinics]
    appliances: list[SimAppliance] = []
    devices: list[SimDevice] = []
    sites: list[SiteEquipment] = []
    for ci, clinic in enumerate(chosen):
        gateways = {d.id: d for d in clinic.devices if d.kind == DeviceKind.gateway}
        simulated = [e for e in clinic.equipment if e.profile in SIMULATED_PROFILES and e.device in gateways]
        for dev in clinic.devices:
            mine = sorted((e for e in simulated if e.device == dev.id), key=lambda e: e.probe)
            if not mine:
                continue
            first = len(appliances)
            for e in mine:
                appliances.append(SimAppliance(clinic.id, e.id, str(e.profile), len(devices), e.probe))
            devices.append(
                SimDevice(
                    clinic=clinic.id,
                    clinic_index=ci,
                    device=dev.id,
                    interval_s=dev.interval_s,
                    appliances=tuple(range(first, len(appliances))),
                    probes=tuple(e.probe for e in mine),
                )
            )
        sim_ids = {e.id for e in simulated}
        sites.append(
            SiteEquipment(
                clinic.id,
                tuple(e.id for e in simulated),
                tuple(e.id for e in clinic.equipment if e.id not in sim_ids),
            )
        )
    if not devices:
        raise ValueError(
            "the chosen clinics have no refrigerator or freezer on a gateway: nothing to simulate"
        )
    return District(
        clinics=tuple(c.id for c in chosen),
        devices=tuple(devices),
        appliances=tuple(appliances),
        sites=tuple(sites),
        registry_clinics=tuple(c.id for c in all_clinics),
    )


# ------------------------------------------------------------------ scenario conditions over time


@dataclass(slots=True)
class Conditions:
    powered: np.ndarray  # per appliance
    room_override: np.ndarray | None  # per appliance, NaN = the daily curve
    faults: np.ndarray  # per appliance, Fault codes
    mains: np.ndarray  # per device
    network: np.ndarray  # per device
    doors: list[tuple[int, float, float]]  # forced door openings that may overlap the step


class Timeline:
    """The scenario's conditions as a function of time, piecewise constant between event edges."""

    def __init__(self, district: District, events: Sequence[ResolvedEvent], step_s: float) -> None:
        self.n_app = len(district.appliances)
        self.n_dev = len(district.devices)
        self.events = list(events)
        clinic_apps: dict[str, list[int]] = {}
        equipment_index: dict[str, int] = {}
        for i, a in enumerate(district.appliances):
            clinic_apps.setdefault(a.clinic, []).append(i)
            equipment_index[a.equipment] = i
        clinic_devs: dict[str, list[int]] = {}
        for i, d in enumerate(district.devices):
            clinic_devs.setdefault(d.clinic, []).append(i)
        self._apps: list[list[int]] = []
        self._devs: list[list[int]] = []
        edges: set[float] = set()
        for ev in self.events:
            if ev.equipment:
                apps = [equipment_index[e] for e in ev.equipment]
            else:
                apps = [i for c in ev.clinics for i in clinic_apps.get(c, [])]
            self._apps.append(apps)
            self._devs.append([i for c in ev.clinics for i in clinic_devs.get(c, [])])
            # a forced door matters to every step that overlaps it
            edges.add(ev.start - step_s if ev.kind == Kind.door_open else ev.start)
            edges.add(ev.end)
        self._edges = sorted(edges)
        self._segment = -2
        self._cached: Conditions | None = None
        self._step_s = step_s

    def at(self, t: float) -> Conditions:
        seg = bisect.bisect_right(self._edges, t)
        if seg != self._segment or self._cached is None:
            self._cached = self._compute(t)
            self._segment = seg
        return self._cached

    def _compute(self, t: float) -> Conditions:
        powered = np.ones(self.n_app, dtype=np.bool_)
        faults = np.zeros(self.n_app, dtype=np.int8)
        mains = np.ones(self.n_dev, dtype=np.bool_)
        network = np.ones(self.n_dev, dtype=np.bool_)
        room: np.ndarray | None = None
        doors: list[tuple[int, float, float]] = []
        for ev, apps, devs in zip(self.events, self._apps, self._devs, strict=True):
            if ev.kind == Kind.door_open:
                if ev.start - self._step_s <= t < ev.end:
                    doors.extend((i, ev.start, ev.end) for i in apps)
                continue
            if not ev.active(t):
                continue
            if ev.kind == Kind.power_cut:
                powered[apps] = False
                mains[devs] = False
            elif ev.kind == Kind.unplugged:
                powered[apps] = False
            elif ev.kind == Kind.network_loss:
                network[devs] = False
            elif ev.kind == Kind.probe_fault:
                assert ev.fault is not None
                faults[apps] = _FAULT_CODES[ev.fault]
            elif ev.kind == Kind.ambient:
                if room is None:
                    room = np.full(self.n_app, np.nan)
                room[apps] = ev.ambient_c
        return Conditions(powered, room, faults, mains, network, doors)


# ------------------------------------------------------------------ results and progress


@dataclass(slots=True)
class SimulationResult:
    messages: int  # telemetry messages published
    temperature_readings: int  # real temperatures (not 85.0 / −127.0, within −60…+60 °C)
    probe_faults: int  # readings with a DS18B20 error code
    health_samples: int  # distinct (device, time) pairs with mains + battery records
    door_readings: int
    buffered_dropped: int  # records dropped from full gateway buffers
    buffered_pending: int  # records still in gateway buffers at the end (not published)
    status_messages: int  # retained status messages published for offline/online changes
    devices: int
    clinics: int
    start: str  # readings have start <= time < end (ISO 8601 UTC)
    end: str
    seed: int
    scenario: str | None = None
    waste: dict[str, Any] | None = None  # simulators.waste summary; left out of the JSON when None

    def to_json(self) -> str:
        doc = asdict(self)
        if doc["waste"] is None:
            del doc["waste"]
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Progress:
    sim_time: float
    messages: int
    wall_elapsed_s: float
    sim_elapsed_s: float


# ------------------------------------------------------------------ the simulation


@dataclass
class _DeviceState:
    battery: float = 100.0
    connected: bool = True  # as the broker sees it (alive and network up)
    last_door_time: float = -math.inf
    doors: list[DoorEvent] = field(default_factory=list)


class Simulation:
    def __init__(
        self,
        district: District,
        *,
        seed: int,
        start: float,
        sink: Sink,
        clock: Clock,
        sleep: Callable[[float], object],
        duration: float | None = None,
        speed: float = 1.0,
        events: Sequence[ResolvedEvent] = (),
        stop: threading.Event | None = None,
        progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 5.0,
        buffer_s: float | None = None,
        scenario_name: str | None = None,
        waste: SideStream | None = None,
    ) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed {speed} must be 0 (as fast as possible) or positive")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration {duration} s must be positive")
        self.district = district
        self.seed = seed
        self.start = float(start)
        self.end = None if duration is None else self.start + duration
        self.sink = sink
        self.clock = clock
        self.sleep = sleep
        self.speed = speed
        self.stop = stop or threading.Event()
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.scenario_name = scenario_name
        self.waste = waste
        self._side_last = -math.inf  # the time of the last side message published

        self.tick = float(reduce(math.gcd, (d.interval_s for d in district.devices)))
        self.substeps = max(1, math.ceil(self.tick / MAX_STEP_S - 1e-9))
        self.dt = self.tick / self.substeps
        self.timeline = Timeline(district, events, self.dt)

        rng = np.random.Generator(np.random.PCG64(seed))
        n_clinics = len(district.clinics)
        offsets = rng.normal(0.0, ROOM_OFFSET_SD_C, size=n_clinics).clip(
            -ROOM_OFFSET_MAX_C, ROOM_OFFSET_MAX_C
        )
        clinic_index = {c: i for i, c in enumerate(district.clinics)}
        app_offsets = np.array([offsets[clinic_index[a.clinic]] for a in district.appliances])
        self.model = FridgeModel([a.profile for a in district.appliances], app_offsets, rng)
        self.rng = rng

        kwargs = {} if buffer_s is None else {"buffer_s": buffer_s}
        self.gateways = [Gateway(d.clinic, d.device, d.interval_s, **kwargs) for d in district.devices]
        self._dev = [_DeviceState() for _ in district.devices]
        self._app_device = np.array([a.device for a in district.appliances], dtype=np.int64)
        self._app_probe = [a.probe for a in district.appliances]
        self._last_good = np.full(len(district.appliances), np.nan)
        self.status_messages = 0

        # the model's clock: on the tick grid, an hour before the start
        self.t = math.floor((self.start - WARMUP_S) / self.tick) * self.tick
        self.ticks = 0

    # -------------------------------------------------------------- stepping

    @property
    def next_tick(self) -> float:
        return self.t + self.tick

    def _tick(self) -> None:
        t0 = self.t
        model = self.model
        dev_state = self._dev
        for k in range(self.substeps):
            t = t0 + k * self.dt
            c = self.timeline.at(t)
            changes = model.step(t, self.dt, c.powered, c.room_override, c.doors)
            for ch in changes:
                if ch.time < self.start:
                    continue
                st = dev_state[int(self._app_device[ch.index])]
                # InfluxDB keeps one door_open per device and time (no probe tag): two doors of one
                # gateway changing in the same second are reported a second apart
                when = max(ch.time, st.last_door_time + 1.0)
                st.last_door_time = when
                st.doors.append(DoorEvent(when, self._app_probe[ch.index], ch.open))
        c_during = self.timeline.at(t0)  # mains during the tick
        T = t0 + self.tick
        self.t = T
        self.ticks += 1
        hours = self.tick / 3600.0
        for i, st in enumerate(dev_state):
            if c_during.mains[i]:
                st.battery = min(100.0, st.battery + BATTERY_CHARGE_PCT_PER_H * hours)
            else:
                st.battery = max(0.0, st.battery - BATTERY_DRAIN_PCT_PER_H * hours)
        if T < self.start or (self.end is not None and T >= self.end):
            for st in dev_state:
                st.doors.clear()
            return
        c = self.timeline.at(T)
        due = [i for i, d in enumerate(self.district.devices) if T % d.interval_s == 0]
        readings: list[float] = []
        if due:
            raw = model.read()
            values = raw
            if c.faults.any():
                stuck_at = np.where(np.isnan(self._last_good), raw, self._last_good)
                values = apply_faults(raw, c.faults, stuck_at)
                healthy = c.faults == Fault.none
                self._last_good[healthy] = raw[healthy]
            else:
                self._last_good = raw
            readings = values.tolist()
        for i in due:
            d = self.district.devices[i]
            st = dev_state[i]
            mains = bool(c.mains[i])
            alive = mains or st.battery > 0.0
            connected = alive and bool(c.network[i])
            if connected != st.connected:
                st.connected = connected
                gw = self.gateways[i]
                if connected:  # back online: what it buffered meanwhile, and what it had to drop
                    self._status(d, "online", T, gw.buffered_samples, gw.counts.samples_dropped)
                else:
                    self._status(d, "offline", T)
            if not alive:  # flat battery, no mains: the gateway is off and sees nothing
                st.doors.clear()
                continue
            sample = Sample(
                time=int(T) if T == int(T) else T,
                probes=d.probes,
                values=[readings[a] for a in d.appliances],
                mains=mains,
                battery_pct=round(st.battery),
                doors=tuple(st.doors),
            )
            st.doors.clear()
            gw = self.gateways[i]
            for payload in gw.offer(sample, bool(c.network[i])):
                self.sink.publish(gw.topic, payload)

    def _status(
        self, d: SimDevice, state: str, t: float, buffered: int | None = None, dropped: int | None = None
    ) -> None:
        payload = status_payload(state, t, buffered=buffered, dropped=dropped)
        self.sink.publish(status_topic(d.clinic, d.device), payload, retain=True)
        self.status_messages += 1

    def _side_time(self) -> float:
        if self.waste is None:
            return math.inf
        t = self.waste.next_time()
        return t if self.end is None or t < self.end else math.inf

    @property
    def finished(self) -> bool:
        return self.end is not None and self.next_tick >= self.end and self._side_time() == math.inf

    # -------------------------------------------------------------- pacing

    def run(self) -> SimulationResult:
        """Run paced by the clock until ``start + duration`` or until ``stop`` is set."""
        # settle the model before the start, unpaced and unpublished
        while self.next_tick < self.start:
            self._tick()
        wall0 = self.clock.now()
        sim0 = self.t
        self.last_sync = self.t
        last_progress = wall0
        while not self.stop.is_set() and not self.finished:
            now = self.clock.now()
            if self.progress is not None and now - last_progress >= self.progress_every_s:
                last_progress = now
                self.progress(self._progress(now - wall0, sim0))
            target = now if self.speed == 0 else min(self.start + (now - wall0) * self.speed, now)
            T = self.next_tick
            side = self._side_time()
            if side < T and side <= target:
                assert self.waste is not None
                self.waste.publish_next(self.sink)
                self._side_last = side
                continue
            if T <= target:
                self._tick()
                if self.t - self.last_sync >= SYNC_EVERY_S:
                    # keep the devices' streams together: each device publishes on its own connection,
                    # and without this one could run hours of simulated time ahead of another at full
                    # speed, which a subscriber would take for a silent gateway
                    self.sink.flush()
                    self.last_sync = self.t
                continue
            T = min(T, side)
            wake = T if self.speed == 0 else max(wall0 + (T - self.start) / self.speed, T)
            self.sleep(min(max(wake - now, 0.001), self.progress_every_s))
        if self.progress is not None:
            self.progress(self._progress(self.clock.now() - wall0, sim0))
        return self.result()

    def _progress(self, wall_elapsed: float, sim0: float) -> Progress:
        return Progress(self.t, self.counts().messages, wall_elapsed, self.t - max(sim0, self.start))

    # -------------------------------------------------------------- results

    def counts(self) -> Counts:
        total = Counts()
        for gw in self.gateways:
            total.add(gw.counts)
        return total

    def result(self) -> SimulationResult:
        c = self.counts()
        end = self._end_time()
        return SimulationResult(
            messages=c.messages,
            temperature_readings=c.temperature_readings,
            probe_faults=c.probe_faults,
            health_samples=c.health_samples,
            door_readings=c.door_readings,
            buffered_dropped=c.buffered_dropped,
            buffered_pending=sum(gw.buffered_records for gw in self.gateways),
            status_messages=self.status_messages,
            devices=len(self.district.devices),
            clinics=len(self.district.clinics),
            start=iso_utc(self.start),
            end=iso_utc(end),
            seed=self.seed,
            scenario=self.scenario_name,
            waste=None if self.waste is None else self.waste.summary(end),
        )

    def _end_time(self) -> float:
        """The end of what was simulated: ``start + duration`` when finished, else just after the last
        tick."""
        if self.finished and self.end is not None:
            return self.end
        last = max(self.t, self._side_last)
        return max(self.start, last + 1.0) if last >= self.start else self.start
