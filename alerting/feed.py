"""From the registry and parsed protocol-v1 messages to the rule engine (no I/O)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine as SqlEngine

from alerting.rules.engine import Engine, EquipmentRef
from alerting.rules.types import Decision
from core.profiles import profile_settings
from core.protocol import Telemetry
from core.registry_model import DeviceKind, RegistryFile
from core.registry_store import EquipmentInfo, equipment_list, profile_overrides


def build_engine(reg: RegistryFile, overrides: dict[str, dict[str, Any]] | None = None) -> Engine:
    """An engine for every piece of equipment with temperature rules and every gateway in ``reg``."""
    equipment: list[EquipmentInfo] = []
    devices: dict[str, tuple[str, str, int]] = {}
    for clinic in reg.clinics():
        intervals = {d.id: d.interval_s for d in clinic.devices}
        equipment += [
            EquipmentInfo(e.id, clinic.id, e.profile.value, e.device, e.probe, intervals[e.device])
            for e in clinic.equipment
        ]
        devices.update({d.id: (clinic.id, d.kind.value, d.interval_s) for d in clinic.devices})
    if overrides is None:
        overrides = {k.value: dict(v) for k, v in reg.profiles.items()}
    return _engine(equipment, devices, overrides)


def build_engine_from_sql(sql: SqlEngine) -> Engine:
    """The same as ``build_engine``, from the registry stored in SQL (what the service runs on)."""
    equipment, devices = equipment_list(sql)
    return _engine(equipment, devices, profile_overrides(sql))


def _engine(
    equipment: list[EquipmentInfo],
    devices: dict[str, tuple[str, str, int]],
    overrides: dict[str, dict[str, Any]],
) -> Engine:
    """Gateways take the refrigerator profile's settings (power, battery, offline)."""
    refs = [
        EquipmentRef(
            e.id, e.clinic, e.device, e.probe, profile_settings(e.profile, overrides), float(e.interval_s)
        )
        for e in equipment
    ]
    gateway_settings = profile_settings("refrigerator", overrides)
    gateways = {
        dev: (clinic, float(interval), gateway_settings)
        for dev, (clinic, kind, interval) in sorted(devices.items())
        if kind == DeviceKind.gateway.value
    }
    return Engine(refs, gateways)


def feed_telemetry(engine: Engine, tm: Telemetry, now: float) -> list[Decision]:
    """One parsed telemetry message that arrived at ``now``."""
    out: list[Decision] = []
    times = [r.time for r in tm.temperatures] + [h.time for h in tm.health]
    if times:
        out.extend(engine.seen(tm.device, max(times), now))
    for h in sorted(tm.health, key=lambda h: h.time):
        if h.mains_on is not None:
            out.extend(engine.mains(tm.device, h.time, h.mains_on))
        if h.battery_pct is not None:
            out.extend(engine.battery(tm.device, h.time, h.battery_pct))
    for r in sorted(tm.temperatures, key=lambda r: r.time):
        out.extend(engine.temperature(tm.device, r.probe, r.time, r.celsius))
    out.extend(engine.flush())
    return out
