"""The gateway rules: power outage, battery low, device offline (per device, grouped per clinic).

Power and battery are stepped with the gateway's own samples in reading-time order. Offline is driven
by time: ``silent_since(now)`` is asked at every tick of the injected clock, so it fires while the
device sends nothing at all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from alerting.rules.types import Action, Decision, Rule, Severity
from core.profiles import ProfileSettings


@dataclass
class DeviceMachine:
    subject: str  # device id
    settings: ProfileSettings
    clinic: str | None = None
    interval_s: float = 60.0
    mains_off_since: float | None = None
    power_open: bool = False
    last_forecast: int | None = None
    last_update_at: float | None = None
    battery_open: bool = False
    last_seen: float | None = None  # latest reading time from this device
    heard_at: float | None = None  # when it was last heard from, in reading time (see Engine.seen)
    offline_open: bool = False

    def _decide(
        self, t: float, rule: Rule, severity: Severity, action: Action, family: str, **values: object
    ) -> Decision:
        return Decision(t, rule, severity, action, self.subject, family, self.clinic, values)

    def clone(self) -> DeviceMachine:
        return copy.copy(self)  # every field is a scalar or the immutable settings

    @property
    def offline_after_s(self) -> float:
        s = self.settings
        return max(s.offline_intervals * self.interval_s, s.offline_min_min * 60)

    # ------------------------------------------------------------------ power and battery

    def mains(self, t: float, on: bool, forecast: Callable[[], float | None]) -> list[Decision]:
        """A mains sample. ``forecast`` gives the holdover: minutes until the warmest appliance on this
        gateway passes its upper limit at its current warming rate (None: not warming)."""
        out: list[Decision] = []
        if on:
            self.mains_off_since = None
            if self.power_open:
                self.power_open = False
                out.append(self._decide(t, Rule.power_outage, Severity.warning, Action.clear, "power"))
            return out
        if self.mains_off_since is None:
            self.mains_off_since = t
        minutes_off = (t - self.mains_off_since) / 60
        if not self.power_open and minutes_off >= self.settings.power_after_min:
            self.power_open = True
            holdover = _rounded(forecast())
            self.last_forecast, self.last_update_at = holdover, t
            out.append(
                self._decide(
                    t,
                    Rule.power_outage,
                    Severity.warning,
                    Action.fire,
                    "power",
                    minutes=round(minutes_off),
                    forecast_min=holdover,
                )
            )
        elif self.power_open:
            holdover = _rounded(forecast())
            due = self.last_update_at is None or t - self.last_update_at >= UPDATE_EVERY_S
            if holdover != self.last_forecast and due:
                self.last_forecast, self.last_update_at = holdover, t
                out.append(
                    self._decide(
                        t,
                        Rule.power_outage,
                        Severity.warning,
                        Action.update,
                        "power",
                        minutes=round(minutes_off),
                        forecast_min=holdover,
                    )
                )
        return out

    def battery(self, t: float, pct: float) -> list[Decision]:
        s = self.settings
        if not self.battery_open and pct < s.battery_low_pct:
            self.battery_open = True
            return [
                self._decide(t, Rule.battery_low, Severity.warning, Action.fire, "battery", battery_pct=pct)
            ]
        if self.battery_open and pct >= s.battery_clear_pct:
            self.battery_open = False
            return [
                self._decide(t, Rule.battery_low, Severity.warning, Action.clear, "battery", battery_pct=pct)
            ]
        return []

    # ------------------------------------------------------------------ offline

    def seen(self, t: float, now: float) -> list[Decision]:
        """A message with readings up to ``t`` was heard at ``now`` (reading time: the engine's
        watermark). A buffered upload carries old readings but is heard now."""
        if self.last_seen is None or t > self.last_seen:
            self.last_seen = t
        if self.heard_at is None or now > self.heard_at:
            self.heard_at = now
        if self.offline_open:
            self.offline_open = False
            return [self._decide(now, Rule.device_offline, Severity.warning, Action.clear, "offline")]
        return []

    def silent(self, now: float) -> bool:
        return self.heard_at is not None and now - self.heard_at >= self.offline_after_s

    def offline_fire(self, now: float) -> Decision:
        assert self.heard_at is not None
        self.offline_open = True
        t = self.heard_at + self.offline_after_s
        return self._decide(
            t,
            Rule.device_offline,
            Severity.warning,
            Action.fire,
            "offline",
            silent_min=round((now - self.heard_at) / 60),
        )


def offline_tick(
    clinic: str, devices: Iterable[DeviceMachine], now: float, state: dict[str, bool]
) -> list[Decision]:
    """Offline decisions of one clinic at ``now``. When every device of the clinic (two or more that
    have ever reported) is silent, one alert
    for the clinic (subject = clinic id) stands for all of them, and no per-device alert fires (an
    inhibition, as Alertmanager's); otherwise one alert per silent device. ``state`` keeps whether the
    clinic-wide alert is open (clinic id -> bool)."""
    devs = [d for d in devices if d.heard_at is not None]
    out: list[Decision] = []
    if not devs:
        return out
    silent = [d for d in devs if d.silent(now)]
    everyone = len(silent) == len(devs) >= 2  # a clinic with one device: that device's own alert
    if everyone and not state.get(clinic):
        state[clinic] = True
        since = max(d.heard_at or 0.0 for d in devs)
        t = max(d.heard_at + d.offline_after_s for d in devs if d.heard_at is not None)
        out.append(
            Decision(
                t,
                Rule.device_offline,
                Severity.warning,
                Action.fire,
                clinic,
                "offline",
                clinic,
                {"devices": len(devs), "silent_min": round((now - since) / 60)},
            )
        )
    elif not everyone and state.get(clinic):
        state[clinic] = False
        out.append(
            Decision(
                now,
                Rule.device_offline,
                Severity.warning,
                Action.clear,
                clinic,
                "offline",
                clinic,
                {"devices": len(devs)},
            )
        )
    if not state.get(clinic):
        out.extend(d.offline_fire(now) for d in silent if not d.offline_open)
    return out


def _rounded(minutes: float | None) -> int | None:
    """Holdover in whole 5-minute steps, so an update means the forecast really moved."""
    if minutes is None:
        return None
    return int(5 * round(minutes / 5))


UPDATE_EVERY_S = 300.0
