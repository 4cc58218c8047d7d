"""Parsed protocol-v1 messages -> InfluxDB line protocol (DESIGN §4), tags enriched from the registry.

All lines use nanosecond precision. Reading times are rounded to the millisecond, so a reading
delivered twice lands on the same point. Waste events add a deterministic sub-millisecond offset
derived from ``event_id``: two bags of the same clinic, stage and category scanned in the same
millisecond would otherwise overwrite each other (their series and timestamp would be equal), while
a redelivered event still lands on its own earlier point.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from functools import lru_cache

from core.lineprotocol import encode_line, format_field, tag_prefix
from core.protocol import Status, Telemetry, WasteEvent
from core.registry_store import DeviceTags

NS_PER_MS = 1_000_000


def time_ns(t: float) -> int:
    return round(t * 1000) * NS_PER_MS


def waste_time_ns(ts: float, event_id: str) -> int:
    return time_ns(ts) + zlib.crc32(event_id.encode()) % NS_PER_MS


@lru_cache(maxsize=1 << 16)
def series_prefix(
    measurement: str,
    district: str | None,
    township: str | None,
    clinic: str,
    device: str,
    equipment: str | None = None,
    probe: str | None = None,
) -> str:
    """The escaped series key of a point. Cached: escaping the same six tags for every reading was
    half of the collector's CPU time per reading (see bench/README.md)."""
    return tag_prefix(
        measurement,
        {
            "district": district,
            "township": township,
            "clinic": clinic,
            "device": device,
            "equipment": equipment,
            "probe": probe,
        },
    )


def _place(clinic: str, device: str, reg: DeviceTags | None) -> dict[str, str | None]:
    if reg is None:
        return {"clinic": clinic, "device": device}
    return {"district": reg.district, "township": reg.township, "clinic": clinic, "device": device}


def telemetry_lines(tm: Telemetry, reg: DeviceTags | None, out: list[str]) -> None:
    """Append the lines of one telemetry message to ``out``.

    temperature (celsius) for good readings; probe_fault (raw, code) for flagged ones, so a
    DS18B20's 85.0 never shows up as a temperature; device_health for mains, battery, rssi, doors.
    """
    district, township = (reg.district, reg.township) if reg else (None, None)
    clinic, device = tm.clinic, tm.device
    probes = reg.probes if reg else {}
    for r in tm.temperatures:
        eq = probes.get(r.probe)
        if r.fault:
            prefix = series_prefix("probe_fault", district, township, clinic, device, eq, r.probe)
            out.append(f'{prefix} raw={r.celsius!r},code="{r.fault}" {time_ns(r.time)}')
        else:
            prefix = series_prefix("temperature", district, township, clinic, device, eq, r.probe)
            out.append(f"{prefix} celsius={r.celsius!r} {time_ns(r.time)}")
    if tm.health:
        prefix = series_prefix("device_health", district, township, clinic, device)
        for h in tm.health:
            fields = []
            if h.battery_pct is not None:
                fields.append(f"battery_pct={h.battery_pct!r}")
            if h.mains_on is not None:
                fields.append(f"mains_on={format_field(h.mains_on)}")
            if h.rssi is not None:
                fields.append(f"rssi={h.rssi!r}")
            out.append(f"{prefix} {','.join(fields)} {time_ns(h.time)}")
    for d in tm.doors:
        eq = probes.get(d.probe)
        prefix = series_prefix("device_health", district, township, clinic, device, eq, d.probe)
        out.append(f"{prefix} door_open={format_field(d.open)} {time_ns(d.time)}")


def waste_line(ev: WasteEvent, clinic: str, device: str, reg: DeviceTags | None) -> str:
    # the scanner is a field, not a tag, of waste_event (DESIGN §4 fixes its tags)
    tags = {
        "district": reg.district if reg else None,
        "township": reg.township if reg else None,
        "clinic": clinic,
        "stage": ev.stage.value,
        "category": ev.category.value,
    }
    fields = {
        "weight_kg": ev.weight_kg,
        "bag_id": ev.bag_id,
        "event_id": ev.event_id,
        "operator": ev.operator,
        "manifest_id": ev.manifest_id,
        "counterparty": ev.counterparty,
        "refused_kg": ev.refused_kg,
        "refusal_reason": ev.refusal_reason,
        "vehicle": ev.vehicle,
        "scanner": device,
    }
    body = ",".join(f"{k}={format_field(v)}" for k, v in fields.items() if v is not None)
    return f"{tag_prefix('waste_event', tags)} {body} {waste_time_ns(ev.ts, ev.event_id)}"


def status_line(st: Status, clinic: str, device: str, reg: DeviceTags | None, received_at: float) -> str:
    fields = {"state": st.state, "fw": st.fw, "buffered": st.buffered, "dropped": st.dropped}
    body = ",".join(f"{k}={format_field(v)}" for k, v in fields.items() if v is not None)
    t = st.ts if st.ts is not None else received_at
    return f"{tag_prefix('device_status', _place(clinic, device, reg))} {body} {time_ns(t)}"


STATS_FIELDS = {"messages": "messages", "readings_written": "readings", "dead_letters": "dead_letters"}


def collector_stats_line(
    collector: str, before: Mapping[str, int], after: Mapping[str, int], spool_segments: int, t: float
) -> str:
    """The ``collector_stats`` point of one collector (docs/schema.md): what it made durable since the
    previous point (messages, readings, dead letters: counts, so a restart does not make a counter go
    backwards) and its spool's depth now. ``t`` is when, by the collector's clock (arrival time, not
    reading time: this is the system's health, not the fridges')."""
    fields: dict[str, int] = {
        name: int(after.get(key, 0)) - int(before.get(key, 0)) for key, name in STATS_FIELDS.items()
    }
    fields["spool_segments"] = spool_segments
    return encode_line("collector_stats", {"collector": collector}, fields, time_ns(t))
