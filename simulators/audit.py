"""Re-read published telemetry with the production parser (``core.protocol``) and count what it holds,
the way the collector will: to check a ``SimulationResult`` against what was really sent (unit tests
here, InfluxDB contents in end-to-end tests).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.protocol import DS18B20_CODES, Kind, parse_telemetry, parse_topic


def _lists() -> defaultdict[Any, list[Any]]:
    return defaultdict(list)


@dataclass
class Tally:
    messages: int = 0
    temperature_readings: int = 0  # the parser found no fault
    probe_faults: int = 0  # DS18B20 codes 85.0 / −127.0
    other_faults: int = 0  # out of range
    health_samples: int = 0  # distinct (device, time)
    door_readings: int = 0
    max_records: int = 0
    # (device, probe) -> reading times, in the order they were published
    probe_times: dict[tuple[str, str], list[float]] = field(default_factory=_lists)
    # device -> (time, mains_on, battery_pct), in publication order
    health: dict[str, list[tuple[float, bool | None, float | None]]] = field(default_factory=_lists)
    # (device, probe) -> (time, celsius)
    readings: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=_lists)
    # (device, probe) -> (time, open)
    doors: dict[tuple[str, str], list[tuple[float, bool]]] = field(default_factory=_lists)


def tally(messages: Iterable[tuple[str, bytes]], now: float) -> Tally:
    """Parse every telemetry message (other topics are skipped); ``ProtocolError`` propagates."""
    out = Tally()
    seen_health: set[tuple[str, float]] = set()
    for topic, payload in messages:
        t = parse_topic(topic)
        if t.kind != Kind.telemetry:
            continue
        tel = parse_telemetry(t.clinic, t.device, payload, now)
        out.messages += 1
        out.max_records = max(out.max_records, tel.record_count)
        for r in tel.temperatures:
            if r.fault is None:
                out.temperature_readings += 1
            elif r.fault in DS18B20_CODES.values():
                out.probe_faults += 1
            else:
                out.other_faults += 1
            out.probe_times[(t.device, r.probe)].append(r.time)
            out.readings[(t.device, r.probe)].append((r.time, r.celsius))
        for h in tel.health:
            key = (t.device, h.time)
            if (h.mains_on is not None or h.battery_pct is not None) and key not in seen_health:
                seen_health.add(key)
                out.health_samples += 1
            out.health[t.device].append((h.time, h.mains_on, h.battery_pct))
        for d in tel.doors:
            out.door_readings += 1
            out.doors[(t.device, d.probe)].append((d.time, d.open))
    return out
