"""The registry in SQL: loading a YAML file into it, and the lookups the services need."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from core.db import (
    ClinicRow,
    DeviceRow,
    DistrictRow,
    EquipmentRow,
    EscalationRow,
    PersonRow,
    ProfileOverrideRow,
    RotaRow,
    TownshipRow,
    WasteProfileDefRow,
    WasteSiteDeviceRow,
    WasteSiteRow,
    init_db,
)
from core.registry_model import DEMO_REGISTRY, Person, RegistryFile, load_registry_file

_TABLES = (
    WasteProfileDefRow,
    WasteSiteDeviceRow,
    WasteSiteRow,
    EscalationRow,
    ProfileOverrideRow,
    RotaRow,
    PersonRow,
    EquipmentRow,
    DeviceRow,
    ClinicRow,
    TownshipRow,
    DistrictRow,
)


def registry_fingerprint(engine: Engine) -> str:
    """A digest of everything the registry holds (every row of its tables, in key order): it changes
    when a load changes anything, and not when the same registry is loaded again. The alerting service
    compares it to know when to load the registry again."""
    digest = hashlib.sha256()
    with Session(engine) as s:
        for table in _TABLES:
            t = table.__table__
            for row in s.execute(select(t).order_by(*t.primary_key.columns)):
                digest.update(repr((t.name, tuple(row))).encode())
    return digest.hexdigest()


def store_registry(engine: Engine, reg: RegistryFile) -> None:
    """Replace the registry with ``reg`` in one transaction (a failed load changes nothing)."""
    init_db(engine)
    d = reg.district
    with Session(engine) as s, s.begin():
        for table in _TABLES:
            s.execute(delete(table))
        s.add(
            DistrictRow(
                id=d.id,
                name=d.name,
                bureau_id=d.bureau.id,
                bureau_name=d.bureau.name,
                waste_profile=reg.waste_profile,
            )
        )
        for tr in d.waste.transporters:
            s.add(
                WasteSiteRow(
                    id=tr.id, kind="transporter", name=tr.name, vehicles=json.dumps(list(tr.vehicles))
                )
            )
        for plant in d.waste.plants:
            s.add(WasteSiteRow(id=plant.id, kind="plant", name=plant.name, vehicles="[]"))
        s.flush()
        for plant in d.waste.plants:
            for dev in plant.devices:
                s.add(WasteSiteDeviceRow(id=dev.id, site_id=plant.id))
        for name, settings in reg.waste_profiles.items():
            s.add(WasteProfileDefRow(name=name, settings=json.dumps(settings, sort_keys=True)))
        s.flush()
        for p in d.bureau.people:
            s.add(_person(p, d.bureau.id))
        for t in d.townships:
            s.add(TownshipRow(id=t.id, district_id=d.id, name=t.name))
            for p in t.people:
                s.add(_person(p, t.id))
        s.flush()
        for t in d.townships:
            for c in t.clinics:
                pickup = c.waste_pickup
                s.add(
                    ClinicRow(
                        id=c.id,
                        township_id=t.id,
                        name=c.name,
                        waste_pickup_days=",".join(d.value for d in pickup.days) if pickup else None,
                        waste_pickup_by=pickup.by if pickup else None,
                    )
                )
                s.flush()
                for dev in c.devices:
                    s.add(
                        DeviceRow(id=dev.id, clinic_id=c.id, kind=dev.kind.value, interval_s=dev.interval_s)
                    )
                s.flush()
                for e in c.equipment:
                    s.add(
                        EquipmentRow(
                            id=e.id,
                            clinic_id=c.id,
                            name=e.name,
                            profile=e.profile.value,
                            device_id=e.device,
                            probe=e.probe,
                        )
                    )
                for p in c.people:
                    s.add(_person(p, c.id))
        s.flush()
        for r in reg.rota:
            s.add(
                RotaRow(
                    site_id=r.site,
                    person_id=r.person,
                    level=r.level,
                    days=",".join(d.value for d in r.days) or None,
                    start=r.start,
                    end=r.end,
                )
            )
        for e in reg.escalation:
            s.add(
                EscalationRow(
                    clinic_id=e.clinic,
                    severity=e.severity.value if e.severity else None,
                    settings=json.dumps(e.given(), sort_keys=True),
                )
            )
        for profile, settings in reg.profiles.items():
            s.add(ProfileOverrideRow(profile=profile.value, settings=json.dumps(settings, sort_keys=True)))


def _person(p: Person, site: str) -> PersonRow:
    return PersonRow(id=p.id, site_id=site, name=p.name, phone=p.phone, role=p.role, language=p.language)


def load_registry(engine: Engine, path: Path) -> RegistryFile:
    reg = load_registry_file(path)
    store_registry(engine, reg)
    return reg


def ensure_registry(engine: Engine, path: Path | None = None) -> bool:
    """Load ``path`` (default: the demo district) when no registry is loaded yet. True if it loaded."""
    init_db(engine)
    with Session(engine) as s:
        if s.scalar(select(func.count()).select_from(DistrictRow)):
            return False
    load_registry(engine, path or DEMO_REGISTRY)
    return True


@dataclass(frozen=True, slots=True)
class DeviceTags:
    """What the collector adds to a device's points: where it is and what each probe measures."""

    district: str
    township: str
    clinic: str
    probes: dict[str, str]  # probe id -> equipment id


def device_tags(engine: Engine) -> dict[tuple[str, str], DeviceTags]:
    """(clinic, device) -> tags, for every registered device."""
    with Session(engine) as s:
        rows = s.execute(
            select(DeviceRow.id, ClinicRow.id, TownshipRow.id, TownshipRow.district_id)
            .join(ClinicRow, DeviceRow.clinic_id == ClinicRow.id)
            .join(TownshipRow, ClinicRow.township_id == TownshipRow.id)
        ).all()
        probes: dict[str, dict[str, str]] = {}
        for dev, probe, eq in s.execute(select(EquipmentRow.device_id, EquipmentRow.probe, EquipmentRow.id)):
            probes.setdefault(dev, {})[probe] = eq
        plant_devices = [(d.id, d.site_id) for d in s.scalars(select(WasteSiteDeviceRow))]
        clinics = s.execute(
            select(ClinicRow.id, TownshipRow.id, TownshipRow.district_id).join(TownshipRow)
        ).all()
    tags = {
        (clinic, dev): DeviceTags(district, township, clinic, probes.get(dev, {}))
        for dev, clinic, township, district in rows
    }
    # a plant's scanners publish scans on the topic of each bag's clinic (known under every clinic),
    # and their status under the plant's own id
    for dev, plant in plant_devices:
        for clinic, township, district in clinics:
            tags.setdefault((clinic, dev), DeviceTags(district, township, clinic, {}))
        tags.setdefault((plant, dev), DeviceTags(clinics[0][2] if clinics else "", "", plant, {}))
    return tags


def profile_overrides(engine: Engine) -> dict[str, dict[str, Any]]:
    """The registry's rule settings per profile that differ from the defaults."""
    with Session(engine) as s:
        return {row.profile: json.loads(row.settings) for row in s.scalars(select(ProfileOverrideRow))}


@dataclass(frozen=True, slots=True)
class EquipmentInfo:
    id: str
    clinic: str
    profile: str
    device: str
    probe: str
    interval_s: int


def equipment_list(engine: Engine) -> tuple[list[EquipmentInfo], dict[str, tuple[str, str, int]]]:
    """Every piece of equipment with its gateway's interval, and every device: id -> (clinic, kind,
    interval_s). What the rule engine is built from."""
    with Session(engine) as s:
        devices = {d.id: (d.clinic_id, d.kind, d.interval_s) for d in s.scalars(select(DeviceRow))}
        equipment = [
            EquipmentInfo(e.id, e.clinic_id, e.profile, e.device_id, e.probe, devices[e.device_id][2])
            for e in s.scalars(select(EquipmentRow).order_by(EquipmentRow.id))
        ]
    return equipment, devices


@dataclass(frozen=True, slots=True)
class WasteRegistry:
    """What the waste rules need of the registry."""

    pickups: dict[str, tuple[tuple[str, ...], str]]  # clinic -> (days, "HH:MM")
    profile: str  # in force at start
    profiles: dict[str, dict[str, float]]  # the registry's own profiles


def waste_registry(engine: Engine) -> WasteRegistry:
    with Session(engine) as s:
        pickups = {
            c.id: (tuple(c.waste_pickup_days.split(",")) if c.waste_pickup_days else (), c.waste_pickup_by)
            for c in s.scalars(select(ClinicRow))
            if c.waste_pickup_by
        }
        district = s.scalars(select(DistrictRow)).first()
        profiles = {r.name: json.loads(r.settings) for r in s.scalars(select(WasteProfileDefRow))}
    return WasteRegistry(pickups, (district.waste_profile if district else None) or "national", profiles)


def waste_scanners(engine: Engine) -> list[tuple[str, str | None]]:
    """Every waste scanner: (device id, its clinic), a plant's with no clinic."""
    with Session(engine) as s:
        clinic = [
            (d.id, d.clinic_id) for d in s.scalars(select(DeviceRow).where(DeviceRow.kind == "waste_scanner"))
        ]
        plant: list[tuple[str, str | None]] = [(d, None) for d in s.scalars(select(WasteSiteDeviceRow.id))]
    return clinic + plant
