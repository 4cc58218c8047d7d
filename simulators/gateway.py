"""A clinic gateway as the server sees it: protocol v1 telemetry messages (SenML, DESIGN §3), built from
the samples the engine hands it. Pure logic, no I/O and no clock.

Every sampling interval the gateway takes one ``Sample``: the reading of each of its probes, the
mains state, the battery level, and the door changes since the previous sample. While the network is
up it sends it at once as one message::

    [{"bn":"urn:dev:qingshui-gw1:","bt":1795046400,"n":"p1","u":"Cel","v":4.6},
     {"n":"p2","u":"Cel","v":5.1},{"n":"p3","u":"Cel","v":-19.8},
     {"n":"mains","vb":true},{"n":"battery","u":"%EL","v":100},
     {"n":"p1.door","vb":true,"t":-35}]

``bt`` is the time of the sample; a door record carries the time of the change relative to it (so
``t`` is zero or negative). While the network is down the samples go to a bounded buffer (7 days by
default; when it is full the oldest samples are dropped and their records counted); when the network
returns the buffer is replayed oldest first, in messages of at most 500 records that never split a
sample, each with its own ``bn``/``bt`` and relative ``t``, and then live sending resumes.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

FAULT_CODES_C = (85.0, -127.0)  # DS18B20 error codes
REAL_MIN_C = -60.0  # outside this a reading is not a real temperature
REAL_MAX_C = 60.0
MAX_RECORDS = 500
DEFAULT_BUFFER_S = 7 * 86400


def telemetry_topic(clinic: str, device: str) -> str:
    return f"cw/v1/{clinic}/{device}/telemetry"


def status_topic(clinic: str, device: str) -> str:
    return f"cw/v1/{clinic}/{device}/status"


def status_payload(
    state: str, ts: float, fw: str = "sim-1.0.0", *, buffered: int | None = None, dropped: int | None = None
) -> bytes:
    """The status document; ``buffered``/``dropped`` as a gateway coming back online reports them."""
    doc: dict[str, object] = {"state": state, "fw": fw, "ts": _number(ts)}
    if buffered is not None:
        doc["buffered"] = buffered
    if dropped:
        doc["dropped"] = dropped
    return json.dumps(doc, separators=(",", ":")).encode()


def _number(x: float) -> int | float:
    """Integral values as JSON integers; others to the millisecond."""
    r = round(float(x), 3)
    return int(r) if r == int(r) else r


@dataclass(frozen=True, slots=True)
class DoorEvent:
    time: float
    probe: str
    open: bool


@dataclass(frozen=True, slots=True)
class Sample:
    """What a gateway measured at ``time``: ``values[i]`` is the reading of ``probes[i]``."""

    time: float
    probes: Sequence[str]
    values: Sequence[float]
    mains: bool
    battery_pct: int
    doors: Sequence[DoorEvent] = ()

    @property
    def record_count(self) -> int:
        return len(self.values) + 2 + len(self.doors)

    def records(self, bt: float) -> list[dict[str, Any]]:
        """The SenML records of this sample relative to base time ``bt`` (without ``bn``/``bt``)."""
        rel = _number(self.time - bt)
        out: list[dict[str, Any]] = []
        for probe, value in zip(self.probes, self.values, strict=True):
            rec: dict[str, Any] = {"n": probe, "u": "Cel", "v": value}
            if rel:
                rec["t"] = rel
            out.append(rec)
        mains: dict[str, Any] = {"n": "mains", "vb": self.mains}
        battery: dict[str, Any] = {"n": "battery", "u": "%EL", "v": self.battery_pct}
        if rel:
            mains["t"] = rel
            battery["t"] = rel
        out.append(mains)
        out.append(battery)
        for door in self.doors:
            rec = {"n": f"{door.probe}.door", "vb": door.open}
            dt = _number(door.time - bt)
            if dt:
                rec["t"] = dt
            out.append(rec)
        return out


def encode(device: str, samples: Sequence[Sample]) -> bytes:
    """One SenML pack holding ``samples`` (in order); ``bt`` is the time of the first."""
    if not samples:
        raise ValueError("a message needs at least one sample")
    bt = samples[0].time
    records: list[dict[str, Any]] = []
    for s in samples:
        records.extend(s.records(bt))
    first = {"bn": f"urn:dev:{device}:", "bt": _number(bt)}
    first.update(records[0])
    records[0] = first
    return json.dumps(records, separators=(",", ":")).encode()


def chunk(samples: Iterable[Sample], max_records: int = MAX_RECORDS) -> list[list[Sample]]:
    """Consecutive samples grouped into messages of at most ``max_records`` records."""
    out: list[list[Sample]] = []
    current: list[Sample] = []
    count = 0
    for s in samples:
        n = s.record_count
        if n > max_records:
            raise ValueError(f"one sample holds {n} records, more than {max_records} fit in a message")
        if current and count + n > max_records:
            out.append(current)
            current, count = [], 0
        current.append(s)
        count += n
    if current:
        out.append(current)
    return out


@dataclass(slots=True)
class Counts:
    """What a gateway has sent (records in published messages) and dropped."""

    messages: int = 0
    temperature_readings: int = 0  # real temperatures: not a fault code, within −60…+60 °C
    probe_faults: int = 0  # 85.0 or −127.0
    health_samples: int = 0  # samples carrying mains + battery (one per sample)
    door_readings: int = 0
    buffered_dropped: int = 0  # records dropped from a full buffer
    samples_dropped: int = 0  # the sampling instants those records belonged to (status "dropped")

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Gateway:
    """One gateway: turns samples into payloads, buffering while the network is down."""

    clinic: str
    device: str
    interval_s: int = 60
    buffer_s: float = DEFAULT_BUFFER_S
    max_records: int = MAX_RECORDS
    counts: Counts = field(default_factory=Counts)
    _buffer: deque[Sample] = field(default_factory=deque, repr=False)
    _buffered_records: int = field(default=0, repr=False)

    @property
    def topic(self) -> str:
        return telemetry_topic(self.clinic, self.device)

    @property
    def buffered_records(self) -> int:
        return self._buffered_records

    @property
    def buffered_samples(self) -> int:
        """Sampling instants waiting in the buffer (the status message's ``buffered``)."""
        return len(self._buffer)

    def buffer_capacity(self, records_per_sample: int) -> int:
        return max(1, int(self.buffer_s // self.interval_s)) * records_per_sample

    def offer(self, sample: Sample, network_up: bool) -> list[bytes]:
        """Take a sample; returns the payloads to publish now (empty while the network is down)."""
        if not network_up:
            self._buffer.append(sample)
            self._buffered_records += sample.record_count
            capacity = self.buffer_capacity(sample.record_count)
            while self._buffered_records > capacity:
                old = self._buffer.popleft()
                self._buffered_records -= old.record_count
                self.counts.buffered_dropped += old.record_count
                self.counts.samples_dropped += 1
            return []
        out = self.replay()
        out.append(self._emit([sample]))
        return out

    def replay(self) -> list[bytes]:
        """The whole buffer as messages, oldest first, and an empty buffer."""
        if not self._buffer:
            return []
        groups = chunk(self._buffer, self.max_records)
        self._buffer.clear()
        self._buffered_records = 0
        return [self._emit(g) for g in groups]

    def _emit(self, samples: Sequence[Sample]) -> bytes:
        c = self.counts
        c.messages += 1
        for s in samples:
            for v in s.values:
                if v in FAULT_CODES_C:
                    c.probe_faults += 1
                elif REAL_MIN_C <= v <= REAL_MAX_C:
                    c.temperature_readings += 1
            c.health_samples += 1
            c.door_readings += len(s.doors)
        return encode(self.device, samples)
