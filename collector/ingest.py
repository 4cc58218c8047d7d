"""The collector's pure core: one MQTT message -> InfluxDB lines, or a dead letter. No I/O.

Messages accumulate in a ``Batch`` together with what must happen when the batch is durable:
the MQTT acknowledgements, the dead letters to store, the device notices to record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from collector.deadletters import DeadLetter
from collector.points import status_line, telemetry_lines, waste_line
from core.clock import Clock
from core.protocol import (
    Kind,
    Limits,
    ProtocolError,
    parse_status,
    parse_telemetry,
    parse_topic,
    parse_waste,
)
from core.registry_store import DeviceTags
from core.waste_store import Scan


@dataclass(slots=True)
class Notice:
    messages: int = 0
    last_reading_at: float | None = None


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[Hashable] = field(default_factory=list)
    notices: dict[tuple[str, str, str], Notice] = field(default_factory=dict)
    # waste scans and their InfluxDB lines: the lines join ``lines`` once SQL has said which scans are
    # conflicts (an event id seen before with other content: kept in SQL, not written over the first)
    waste: list[Scan] = field(default_factory=list)
    waste_lines: list[str] = field(default_factory=list)
    readings: int = 0  # temperature readings (incl. flagged ones) in lines
    messages: int = 0
    started: float = field(default_factory=time.monotonic)

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode() if self.lines else b""


class Ingestor:
    """Validates and converts messages. ``tags`` is the registry lookup ((clinic, device) -> tags),
    swapped atomically when the registry is reloaded."""

    def __init__(self, tags: dict[tuple[str, str], DeviceTags], limits: Limits, clock: Clock) -> None:
        self.tags = tags
        self.limits = limits
        self.clock = clock

    def add(self, topic: str, payload: bytes, batch: Batch) -> None:
        now = self.clock.now()
        batch.messages += 1
        try:
            self._convert(topic, payload, now, batch)
        except ProtocolError as exc:
            batch.dead.append(DeadLetter(topic, payload, exc.reason, exc.detail, now))

    def _convert(self, topic: str, payload: bytes, now: float, batch: Batch) -> None:
        t = parse_topic(topic)
        reg = self.tags.get((t.clinic, t.device))
        if t.kind is Kind.telemetry:
            tm = parse_telemetry(t.clinic, t.device, payload, now, self.limits)
            telemetry_lines(tm, reg, batch.lines)
            batch.readings += len(tm.temperatures)
            if reg is None:
                self._notice(batch, t.clinic, t.device, "unregistered_device", tm)
            elif any(r.probe not in reg.probes for r in tm.temperatures):
                self._notice(batch, t.clinic, t.device, "unregistered_probe", tm)
        elif t.kind is Kind.waste:
            for ev in parse_waste(payload, now, self.limits):
                batch.waste_lines.append(waste_line(ev, t.clinic, t.device, reg))
                batch.waste.append(Scan(t.clinic, t.device, ev))
            if reg is None:
                self._notice(batch, t.clinic, t.device, "unregistered_device", None)
        elif t.kind is Kind.status:
            st = parse_status(payload, now, self.limits)
            batch.lines.append(status_line(st, t.clinic, t.device, reg, now))
        else:
            raise ProtocolError("wrong_direction", f"{t.kind} messages go from the server to devices")

    @staticmethod
    def _notice(batch: Batch, clinic: str, device: str, kind: str, tm: object) -> None:
        n = batch.notices.setdefault((clinic, device, kind), Notice())
        n.messages += 1
        temps = getattr(tm, "temperatures", None)
        if temps:
            latest = max(r.time for r in temps)
            n.last_reading_at = max(latest, n.last_reading_at or latest)


class Batcher:
    """Thread-safe accumulation of messages into batches of at most ``max_lines`` lines (a message is
    never split) or ``max_age_s`` seconds, whichever comes first."""

    def __init__(
        self,
        ingestor: Ingestor,
        max_lines: int,
        max_age_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        import threading

        self.ingestor = ingestor
        self.max_lines = max_lines
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._batch = Batch(started=monotonic())

    def add(self, ack: Hashable, topic: str, payload: bytes) -> Batch | None:
        """Add a message; returns a full batch to write, or None."""
        with self._lock:
            b = self._batch
            if not b.acks:
                b.started = self._monotonic()
            self.ingestor.add(topic, payload, b)
            b.acks.append(ack)
            if len(b.lines) + len(b.waste_lines) + len(b.dead) >= self.max_lines:
                return self._swap()
            return None

    def take_due(self, force: bool = False) -> Batch | None:
        """The current batch if it is old enough (or ``force``) and not empty."""
        with self._lock:
            b = self._batch
            if not b.acks:
                return None
            if force or self._monotonic() - b.started >= self.max_age_s:
                return self._swap()
            return None

    def _swap(self) -> Batch:
        b = self._batch
        self._batch = Batch(started=self._monotonic())
        return b
