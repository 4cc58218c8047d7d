"""Jurisdiction profiles: the waste rules' thresholds, by name.

``national`` is DESIGN §5 (医疗废物管理条例 and 医疗卫生机构医疗废物管理办法: temporary storage at most
48 h, so a warning at 36 h; a bag lost between clinic and plant is illegal dumping or sale). A province
may be stricter: ``epidemic`` is the regime of China's 2020 epidemic notices for medical waste
(collected, stored and handed over within 24 h). The registry may add profiles (``waste_profiles``:
name -> the settings that differ from ``national``) and names the one in force (``waste_profile``);
it can be switched at run time, and every waste alert records the profile and the threshold it was
judged by, so that a past alert is explained under the rule then in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from sqlalchemy import Engine


@dataclass(frozen=True, slots=True)
class WasteProfile:
    name: str = "national"
    not_collected_h: float = 24.0  # generated, not collected from the ward
    storage_warning_h: float = 36.0  # stored, not handed over
    storage_critical_h: float = 48.0
    lost_in_transport_h: float = 24.0  # handed over, not received at the plant (critical)
    weight_warning_pct: float = 5.0  # a later weight differs from the generated one by more than
    weight_warning_min_kg: float = 0.1  # max(5 %, 0.1 kg): warning
    weight_critical_pct: float = 20.0  # more than 20 %: critical
    scan_grace_h: float = 24.0  # a missing stage may still come from a scanner that was offline
    manifest_settle_h: float = 2.0  # a manifest is reconciled this long after its first receipt
    pickup_grace_min: float = 0.0  # late pickup: judged this long after the scheduled time

    def as_values(self) -> dict[str, float | str]:
        return asdict(self)


NATIONAL = WasteProfile()
BUILTIN: dict[str, WasteProfile] = {
    "national": NATIONAL,
    "epidemic": WasteProfile(
        name="epidemic",
        not_collected_h=12.0,
        storage_warning_h=12.0,
        storage_critical_h=24.0,
        lost_in_transport_h=12.0,
    ),
}
SETTINGS = tuple(f.name for f in fields(WasteProfile) if f.name != "name")


class WasteProfileError(ValueError):
    pass


def make_profile(name: str, overrides: Mapping[str, float]) -> WasteProfile:
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise WasteProfileError(
            f"waste profile {name}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(SETTINGS)})"
        )
    bad = [k for k, v in overrides.items() if not isinstance(v, int | float) or v < 0]
    if bad:
        raise WasteProfileError(f"waste profile {name}: {', '.join(bad)} must be numbers >= 0")
    profile = replace(NATIONAL, name=name, **{k: float(v) for k, v in overrides.items()})
    if profile.storage_warning_h > profile.storage_critical_h:
        raise WasteProfileError(f"waste profile {name}: the storage warning comes after the critical limit")
    if profile.weight_warning_pct > profile.weight_critical_pct:
        raise WasteProfileError(f"waste profile {name}: the weight warning is above the critical limit")
    return profile


def profile_now(engine: Engine) -> WasteProfile:
    """The profile in force, read from SQL: the last ``chainwatch waste profile`` switch, else the
    registry's ``waste_profile`` (national by default)."""
    from core.registry_store import waste_registry
    from core.waste_store import profile_in_force

    wreg = waste_registry(engine)
    return all_profiles(wreg.profiles).get(profile_in_force(engine, wreg.profile), NATIONAL)


def all_profiles(extra: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, WasteProfile]:
    """The built-in profiles and the registry's (which may redefine a built-in one)."""
    out = dict(BUILTIN)
    for name, overrides in (extra or {}).items():
        out[name] = make_profile(name, overrides)
    return out
