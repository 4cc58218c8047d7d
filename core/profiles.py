"""Rule thresholds per equipment profile (DESIGN §5), overridable in the registry YAML:

```yaml
profiles:
  refrigerator:
    heat_warning_after_min: 20
  freezer:
    high_c: -18
```
Every threshold and duration the rules use is here; the defaults are the regulations' (see
docs/rules.md for each one's source).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ProfileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # range (None: no temperature rules, e.g. a waste store at ambient)
    low_c: float | None = 2.0
    high_c: float | None = 8.0
    # excursions
    heat_warning_after_min: float = Field(30.0, gt=0)
    heat_alarm_after_min: float = Field(600.0, gt=0)  # 10 h continuous
    heat_alarm_cumulative_min: float = Field(600.0, gt=0)  # or 10 h in a rolling 24 h
    cold_warning_after_min: float = Field(30.0, gt=0)
    freeze_c: float | None = -0.5  # at or below; None: no freeze rule (freezers)
    freeze_after_min: float = Field(60.0, gt=0)
    freeze_sensitive: bool = True  # holds vaccines that freezing destroys: freeze alarm is critical
    clear_margin_c: float = Field(0.3, ge=0)
    clear_after_min: float = Field(10.0, ge=0)
    # probe
    probe_min_c: float = -60.0
    probe_max_c: float = 70.0
    stuck_after_min: float = Field(360.0, gt=0)  # no change at all for 6 h
    # early warning: least-squares slope of the last readings
    early_window_min: float = Field(30.0, gt=0)
    early_min_span_min: float = Field(15.0, gt=0)
    early_horizon_min: float = Field(30.0, gt=0)
    early_band_c: float = Field(1.0, gt=0)  # only this close to a threshold (normal cycles stay below)
    early_confirm_min: float = Field(5.0, ge=0)  # the forecast must hold this long (not a door opening)
    early_min_r2: float = Field(0.8, ge=0, le=1)  # a steady trend: a door opening is a spike, not a line
    # gateway
    power_after_min: float = Field(5.0, ge=0)
    battery_low_pct: float = Field(20.0, ge=0, le=100)
    battery_clear_pct: float = Field(25.0, ge=0, le=100)
    offline_min_min: float = Field(15.0, gt=0)
    offline_intervals: float = Field(3.0, gt=0)
    # twice-daily check (疫苗储存和运输管理规范 art. 11): local clock times "HH:MM"
    check_enabled: bool = True
    check_morning_due: str = Field("10:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    check_afternoon_due: str = Field("16:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    check_min_gap_h: float = Field(6.0, ge=0, le=12)

    @model_validator(mode="after")
    def _consistent(self) -> ProfileSettings:
        if self.low_c is not None and self.high_c is not None and self.low_c >= self.high_c:
            raise ValueError(f"low_c {self.low_c} must be below high_c {self.high_c}")
        if self.battery_clear_pct < self.battery_low_pct:
            raise ValueError("battery_clear_pct must not be below battery_low_pct")
        return self


DEFAULTS: dict[str, ProfileSettings] = {
    "refrigerator": ProfileSettings(),
    "cold_box": ProfileSettings(),
    "freezer": ProfileSettings(low_c=-25.0, high_c=-15.0, freeze_c=None, freeze_sensitive=False),
    "waste_store": ProfileSettings(
        low_c=None, high_c=None, freeze_c=None, freeze_sensitive=False, check_enabled=False
    ),
}


def profile_settings(profile: str, overrides: dict[str, dict[str, Any]] | None = None) -> ProfileSettings:
    """The settings of ``profile``: its defaults with the registry's overrides applied."""
    base = DEFAULTS.get(profile)
    if base is None:
        raise ValueError(f"unknown equipment profile {profile!r}; known: {', '.join(sorted(DEFAULTS))}")
    changes = (overrides or {}).get(profile)
    if not changes:
        return base
    return ProfileSettings.model_validate({**base.model_dump(), **changes})
