"""The registry as it is written in YAML: district -> townships -> clinics -> equipment and devices,
people and the on-call rota. ``chainwatch registry load FILE`` validates a file against these models
and stores it in SQL (see ``core.registry_store``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.ids import ID_PATTERN

Id = str


class Profile(StrEnum):
    refrigerator = "refrigerator"
    freezer = "freezer"
    cold_box = "cold_box"
    waste_store = "waste_store"


class DeviceKind(StrEnum):
    gateway = "gateway"
    waste_scanner = "waste_scanner"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class WastePickup(_Model):
    """When the licensed transporter collects the clinic's stored waste: on ``days`` (clinic time),
    by ``by``. Stored bags still waiting then make a ``late_pickup`` alert."""

    days: tuple[Weekday, ...] = tuple(Weekday)
    by: str = Field(default="16:00", pattern=_HHMM)


class Person(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    phone: str = Field(pattern=r"^\+?[0-9 -]{5,20}$")
    role: str  # nurse, clinic_head, duty_officer, technician ...
    language: str = "zh-CN"


class Equipment(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    profile: Profile
    device: Id  # the gateway whose probe measures it
    probe: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class Device(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    kind: DeviceKind
    interval_s: int = Field(default=60, ge=5, le=3600)


class Clinic(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    equipment: tuple[Equipment, ...] = ()
    devices: tuple[Device, ...] = ()
    people: tuple[Person, ...] = ()
    waste_pickup: WastePickup | None = None  # None: no pickup schedule, no late_pickup rule

    @model_validator(mode="after")
    def _equipment_on_own_devices(self) -> Clinic:
        device_ids = {d.id for d in self.devices}
        seen: set[tuple[str, str]] = set()
        for eq in self.equipment:
            if eq.device not in device_ids:
                raise ValueError(f"equipment {eq.id}: device {eq.device} is not a device of clinic {self.id}")
            if (eq.device, eq.probe) in seen:
                raise ValueError(f"equipment {eq.id}: probe {eq.device}/{eq.probe} is used twice")
            seen.add((eq.device, eq.probe))
        return self


class Township(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    clinics: tuple[Clinic, ...] = ()
    people: tuple[Person, ...] = ()  # e.g. the township hospital's public-health officer


class Bureau(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    people: tuple[Person, ...] = ()


class Transporter(_Model):
    """A licensed medical-waste transporter serving the district."""

    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    vehicles: tuple[str, ...] = ()  # number plates


class Plant(_Model):
    """A disposal plant. Its waste scanners publish a bag's ``received`` and ``disposed`` scans on the
    topic of the bag's clinic: ``cw/v1/{clinic}/{plant device}/waste`` (the bag label names the clinic)."""

    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    devices: tuple[Device, ...] = ()


class WasteSites(_Model):
    transporters: tuple[Transporter, ...] = ()
    plants: tuple[Plant, ...] = ()


class District(_Model):
    id: Id = Field(pattern=rf"^{ID_PATTERN}$")
    name: str
    bureau: Bureau
    townships: tuple[Township, ...] = ()
    waste: WasteSites = WasteSites()


class RotaEntry(_Model):
    """Who is told at which escalation level, for a clinic, a township (all its clinics) or the bureau
    (every clinic), and when: ``days`` (empty: every day) and ``start``-``end`` in clinic time
    (Asia/Shanghai; both empty: all day; ``end`` before ``start`` runs past midnight, and the night
    belongs to the day it started on)."""

    site: Id  # clinic, township or bureau id
    person: Id
    level: int = Field(ge=0, le=2)
    days: tuple[Weekday, ...] = ()
    start: str | None = Field(default=None, pattern=_HHMM)
    end: str | None = Field(default=None, pattern=_HHMM)

    @model_validator(mode="after")
    def _both_or_neither(self) -> RotaEntry:
        if (self.start is None) != (self.end is None):
            raise ValueError(f"rota entry for {self.person}: give both start and end, or neither")
        if self.start is not None and self.start == self.end:
            raise ValueError(f"rota entry for {self.person}: start and end are the same time")
        return self


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class EscalationEntry(_Model):
    """Escalation settings for one clinic and/or one severity (neither: the district's defaults).
    Only the settings written down count; the others come from less specific entries, then from the
    defaults of DESIGN §6. A time of ``null`` switches that step off."""

    clinic: Id | None = None
    severity: Severity | None = None
    notify: bool | None = None  # send SMS at all (default: warning and critical yes, info no)
    level1_after_min: float | None = Field(default=None, gt=0)
    level2_after_min: float | None = Field(default=None, gt=0)
    reminder_every_min: float | None = Field(default=None, ge=5)

    def given(self) -> dict[str, object]:
        """The settings this entry sets (explicit nulls included), without its selectors."""
        return {k: getattr(self, k) for k in sorted(self.model_fields_set) if k not in ("clinic", "severity")}


class RegistryFile(_Model):
    district: District
    rota: tuple[RotaEntry, ...] = ()
    escalation: tuple[EscalationEntry, ...] = ()
    # medical-waste thresholds: the profile in force at start, and named profiles beyond the built-in
    # ones (alerting/waste/profiles.py), each giving the settings that differ from the national one
    waste_profile: str = "national"
    waste_profiles: dict[str, dict[str, float]] = {}
    # rule thresholds per equipment profile that differ from the defaults (core/profiles.py), e.g.
    # {"refrigerator": {"heat_warning_after_min": 20}}
    profiles: dict[Profile, dict[str, float | bool | None]] = {}

    @field_validator("profiles")
    @classmethod
    def _known_settings(cls, profiles: dict[Profile, dict[str, float | bool | None]]) -> dict:
        from core.profiles import profile_settings

        for profile in profiles:
            profile_settings(profile.value, {k.value: v for k, v in profiles.items()})  # raises if invalid
        return profiles

    @model_validator(mode="after")
    def _waste_profiles_known(self) -> RegistryFile:
        from alerting.waste.profiles import all_profiles  # the thresholds live with the waste rules

        profiles = all_profiles(self.waste_profiles)  # raises on an unknown setting
        if self.waste_profile not in profiles:
            raise ValueError(
                f"waste_profile {self.waste_profile!r} is not a profile "
                f"(known: {', '.join(sorted(profiles))})"
            )
        return self

    @field_validator("district")
    @classmethod
    def _unique_ids(cls, district: District) -> District:
        def check(kind: str, ids: list[str]) -> None:
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate {kind} id(s): {', '.join(dup)}")

        clinics = [c for t in district.townships for c in t.clinics]
        check("township", [t.id for t in district.townships])
        check("clinic", [c.id for c in clinics])
        check("equipment", [e.id for c in clinics for e in c.equipment])
        check(
            "device",
            [d.id for c in clinics for d in c.devices]
            + [d.id for p in district.waste.plants for d in p.devices],
        )
        check("waste site", [s.id for s in (*district.waste.transporters, *district.waste.plants)])
        check(
            "person",
            [p.id for c in clinics for p in c.people]
            + [p.id for t in district.townships for p in t.people]
            + [p.id for p in district.bureau.people],
        )
        return district

    @model_validator(mode="after")
    def _rota_refers_to_known(self) -> RegistryFile:
        clinics = {c.id for c in self.clinics()}
        sites = {self.district.bureau.id} | {t.id for t in self.district.townships} | clinics
        people = {p.id for p in self.people()}
        for entry in self.rota:
            if entry.site not in sites:
                raise ValueError(f"rota: unknown site {entry.site}")
            if entry.person not in people:
                raise ValueError(f"rota: unknown person {entry.person}")
        for esc in self.escalation:
            if esc.clinic is not None and esc.clinic not in clinics:
                raise ValueError(f"escalation: unknown clinic {esc.clinic}")
        keys = [(e.clinic, e.severity) for e in self.escalation]
        if len(set(keys)) != len(keys):
            raise ValueError("escalation: two entries for the same clinic and severity")
        return self

    def clinics(self) -> list[Clinic]:
        return [c for t in self.district.townships for c in t.clinics]

    def clinic_townships(self) -> list[tuple[Township, Clinic]]:
        return [(t, c) for t in self.district.townships for c in t.clinics]

    def people(self) -> list[Person]:
        return (
            [p for c in self.clinics() for p in c.people]
            + [p for t in self.district.townships for p in t.people]
            + list(self.district.bureau.people)
        )


DEMO_REGISTRY = Path(__file__).with_name("demo_district.yaml")


def load_registry_file(path: Path) -> RegistryFile:
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    return RegistryFile.model_validate(raw)


def registry_from_text(text: str) -> RegistryFile:
    """A registry written as YAML text (the admin page's upload), validated as ``load_registry_file``
    validates a file: ``yaml.YAMLError`` or pydantic's ``ValidationError`` if it is not one."""
    return RegistryFile.model_validate(yaml.safe_load(text))
