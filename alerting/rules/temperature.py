"""The temperature rules of one piece of equipment, as a state machine stepped in reading-time order.

Rules (defaults in ``core.profiles``, sources in docs/rules.md):
- heat: above ``high_c`` for 30 min -> ``heat_warning``; for 10 h continuous, or 10 h cumulative in a
  rolling 24 h -> ``heat_alarm`` (critical; the warning escalates, or it fires on its own);
- cold: below ``low_c`` for 30 min -> ``cold_warning``; at or below ``freeze_c`` for 60 min ->
  ``freeze_alarm`` (critical when the equipment holds freeze-sensitive vaccines, else a warning);
- clear: back inside the range by ``clear_margin_c`` for ``clear_after_min`` (hysteresis);
- an excursion that ends before its warning duration (a door opening) never alerts; it is counted;
- probe fault: a DS18B20 error code (85.0, -127.0), a reading outside the probe's physical range, or no
  change at all for 6 h; faulty readings take no part in the other rules;
- early warning: a least-squares line through the last 15-30 min of readings that crosses ``high_c``
  (or ``freeze_c``) within 30 min, while the reading is already close to it and the trend is steady.

Durations are measured between reading times: a run "above for 30 min" is from the first reading
above to a reading at least 30 min later with none in range in between. Gaps (a silent gateway) do not
break a run: no evidence of a return to range is no evidence.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from alerting.rules.types import Action, Decision, Rule, Severity
from core.profiles import ProfileSettings

DS18B20_CODES = {85.0: "ds18b20_85", -127.0: "ds18b20_minus127"}
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Reading:
    time: float
    celsius: float


@dataclass
class _Excursion:
    """One direction of excursion (heat, or cold with freeze) of one piece of equipment."""

    since: float | None = None  # first reading of the current run outside the range
    deep_since: float | None = None  # first reading of the current run at or below freeze_c (cold only)
    open: Rule | None = None  # the rule of the open alert (its severity follows from it)
    severity: Severity | None = None
    clear_since: float | None = None  # first reading of the current run back inside by the margin
    peak: float | None = None


@dataclass
class TemperatureMachine:
    subject: str
    settings: ProfileSettings
    clinic: str | None = None
    interval_s: float = 60.0
    heat: _Excursion = field(default_factory=_Excursion)
    cold: _Excursion = field(default_factory=_Excursion)
    spikes: int = 0  # excursions that ended before their warning duration (door openings)
    last: Reading | None = None  # last valid reading
    above: deque[tuple[float, float]] = field(default_factory=deque)  # (start, end) above high_c
    cumulative_fired: bool = False
    fault_open: str | None = None  # reason of the open probe fault
    fault_clear_since: float | None = None
    stuck_since: float | None = None
    window: deque[Reading] = field(default_factory=deque)  # for the trend
    early_open: bool = False
    early_clear_since: float | None = None
    early_since: float | None = None  # first reading of the current run with a forecast

    # ------------------------------------------------------------------ helpers

    def clone(self) -> TemperatureMachine:
        """A copy that shares the (immutable) settings: the engine takes one per checkpoint."""
        c = copy.copy(self)
        c.heat = copy.copy(self.heat)
        c.cold = copy.copy(self.cold)
        c.above = deque(self.above)
        c.window = deque(self.window)
        return c

    def _decide(
        self, t: float, rule: Rule, severity: Severity, action: Action, family: str, **values: object
    ) -> Decision:
        return Decision(t, rule, severity, action, self.subject, family, self.clinic, values)

    @property
    def max_gap_s(self) -> float:
        return max(3 * self.interval_s, 900.0)

    def fault_of(self, celsius: float) -> str | None:
        code = DS18B20_CODES.get(celsius)
        if code:
            return code
        s = self.settings
        if celsius < s.probe_min_c or celsius > s.probe_max_c:
            return "out_of_range"
        return None

    # ------------------------------------------------------------------ step

    def step(self, t: float, celsius: float) -> list[Decision]:
        """One reading, later than every reading stepped before (the engine sees to the order)."""
        out: list[Decision] = []
        fault = self.fault_of(celsius)
        if fault is not None:
            self._fault(t, fault, celsius, out)
            return out
        if self.fault_open and self.fault_open != "stuck":
            self.fault_clear_since = self.fault_clear_since or t
            if t - self.fault_clear_since >= self.settings.clear_after_min * 60:
                out.append(
                    self._decide(
                        t,
                        Rule.probe_fault,
                        Severity.warning,
                        Action.clear,
                        "probe",
                        reason=self.fault_open,
                        celsius=celsius,
                    )
                )
                self.fault_open = None
                self.fault_clear_since = None
        self._stuck(t, celsius, out)
        prev = self.last
        self.last = Reading(t, celsius)
        s = self.settings
        if s.high_c is not None:
            self._heat(t, celsius, prev, out)
        if s.low_c is not None:
            self._cold(t, celsius, out)
        self._early(t, celsius, out)
        return out

    def _fault(self, t: float, reason: str, raw: float, out: list[Decision]) -> None:
        self.fault_clear_since = None
        if self.fault_open is None:
            self.fault_open = reason
            out.append(
                self._decide(
                    t, Rule.probe_fault, Severity.warning, Action.fire, "probe", reason=reason, raw=raw
                )
            )

    def _stuck(self, t: float, celsius: float, out: list[Decision]) -> None:
        if self.last is not None and celsius == self.last.celsius and self.stuck_since is not None:
            if self.fault_open is None and t - self.stuck_since >= self.settings.stuck_after_min * 60:
                self.fault_open = "stuck"
                out.append(
                    self._decide(
                        t,
                        Rule.probe_fault,
                        Severity.warning,
                        Action.fire,
                        "probe",
                        reason="stuck",
                        celsius=celsius,
                        minutes=round((t - self.stuck_since) / 60),
                    )
                )
            return
        self.stuck_since = t
        if self.fault_open == "stuck":
            out.append(
                self._decide(
                    t,
                    Rule.probe_fault,
                    Severity.warning,
                    Action.clear,
                    "probe",
                    reason="stuck",
                    celsius=celsius,
                )
            )
            self.fault_open = None

    def _heat(self, t: float, c: float, prev: Reading | None, out: list[Decision]) -> None:
        s = self.settings
        assert s.high_c is not None
        x = self.heat
        if prev is not None and prev.celsius > s.high_c:  # the time since the previous reading was above
            start = max(prev.time, t - self.max_gap_s)
            if self.above and self.above[-1][1] == start:
                self.above[-1] = (self.above[-1][0], t)  # one segment per run: cheap to sum and to copy
            else:
                self.above.append((start, t))
        while self.above and self.above[0][1] <= t - DAY_S:
            self.above.popleft()
        cumulative = sum(e - max(b, t - DAY_S) for b, e in self.above)
        if c > s.high_c:
            if x.since is None:
                x.since = t
                x.peak = c
            x.peak = max(x.peak or c, c)
            x.clear_since = None
            minutes = round((t - x.since) / 60)
            values = {"celsius": c, "threshold_c": s.high_c, "minutes": minutes, "peak_c": x.peak}
            if x.open is None and t - x.since >= s.heat_warning_after_min * 60:
                self._supersede_early(t, out)
                x.open, x.severity = Rule.heat_warning, Severity.warning
                out.append(
                    self._decide(t, Rule.heat_warning, Severity.warning, Action.fire, "heat", **values)
                )
            if x.open is not Rule.heat_alarm and t - x.since >= s.heat_alarm_after_min * 60:
                self._heat_alarm(t, out, values)
            if cumulative >= s.heat_alarm_cumulative_min * 60 and not self.cumulative_fired:
                self.cumulative_fired = True
                if x.open is not Rule.heat_alarm:
                    self._heat_alarm(t, out, {**values, "cumulative_minutes": round(cumulative / 60)})
            return
        if cumulative < s.heat_alarm_cumulative_min * 60:
            self.cumulative_fired = False
        self._back_inside(x, t, c, c <= s.high_c - s.clear_margin_c, "heat", out)

    def _back_inside(
        self, x: _Excursion, t: float, c: float, inside_by_margin: bool, family: str, out: list[Decision]
    ) -> None:
        """A reading inside the range: ends a run too short to alert (a door opening, counted), or
        counts towards clearing the open alert once inside by the margin for ``clear_after_min``."""
        if x.since is not None and x.open is None:
            self.spikes += 1
        x.since = None
        if x.open is None:
            return
        if not inside_by_margin:
            x.clear_since = None
            return
        x.clear_since = x.clear_since if x.clear_since is not None else t
        if t - x.clear_since >= self.settings.clear_after_min * 60:
            severity = x.severity or Severity.warning
            out.append(self._decide(t, x.open, severity, Action.clear, family, celsius=c, peak_c=x.peak))
            x.open = x.severity = x.clear_since = x.peak = None

    def _heat_alarm(self, t: float, out: list[Decision], values: dict[str, object]) -> None:
        x = self.heat
        action = Action.fire if x.open is None else Action.escalate
        if x.open is None:
            self._supersede_early(t, out)
        x.open, x.severity = Rule.heat_alarm, Severity.critical
        out.append(self._decide(t, Rule.heat_alarm, Severity.critical, action, "heat", **values))

    def _cold(self, t: float, c: float, out: list[Decision]) -> None:
        s = self.settings
        assert s.low_c is not None
        x = self.cold
        if c < s.low_c:
            if x.since is None:
                x.since = t
                x.peak = c
            x.peak = min(x.peak if x.peak is not None else c, c)
            x.clear_since = None
            frozen = s.freeze_c is not None and c <= s.freeze_c
            if frozen:
                x.deep_since = x.deep_since if x.deep_since is not None else t
            else:
                x.deep_since = None
            values = {
                "celsius": c,
                "threshold_c": s.low_c,
                "minutes": round((t - x.since) / 60),
                "peak_c": x.peak,
            }
            if x.open is None and t - x.since >= s.cold_warning_after_min * 60:
                self._supersede_early(t, out)
                x.open, x.severity = Rule.cold_warning, Severity.warning
                out.append(
                    self._decide(t, Rule.cold_warning, Severity.warning, Action.fire, "cold", **values)
                )
            if (
                x.deep_since is not None
                and x.open is not Rule.freeze_alarm
                and t - x.deep_since >= s.freeze_after_min * 60
            ):
                severity = Severity.critical if s.freeze_sensitive else Severity.warning
                action = Action.fire if x.open is None else Action.escalate
                if x.open is None:
                    self._supersede_early(t, out)
                x.open, x.severity = Rule.freeze_alarm, severity
                out.append(
                    self._decide(
                        t,
                        Rule.freeze_alarm,
                        severity,
                        action,
                        "cold",
                        **{
                            **values,
                            "threshold_c": s.freeze_c,
                            "minutes": round((t - x.deep_since) / 60),
                            "freeze_sensitive": s.freeze_sensitive,
                        },
                    )
                )
            return
        x.deep_since = None
        self._back_inside(x, t, c, c >= s.low_c + s.clear_margin_c, "cold", out)

    # ------------------------------------------------------------------ trend

    def trend(self) -> tuple[float, float, float] | None:
        """(slope °C/s, fitted value at the last reading, r²) of the last ``early_window_min``, or None
        when the readings span less than ``early_min_span_min`` or are fewer than 3."""
        w = self.window
        s = self.settings
        if len(w) < 3 or w[-1].time - w[0].time < s.early_min_span_min * 60:
            return None
        t = np.fromiter((r.time for r in w), float, len(w)) - w[-1].time
        y = np.fromiter((r.celsius for r in w), float, len(w))
        a = np.vstack([t, np.ones_like(t)]).T
        (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
        ss_tot = float(((y - y.mean()) ** 2).sum())
        residual = y - (slope * t + intercept)
        r2 = 1.0 - float((residual**2).sum()) / ss_tot if ss_tot > 0 else 0.0
        return float(slope), float(intercept), r2

    def minutes_to_high(self) -> float | None:
        """At the current warming rate, minutes until ``high_c`` (None: not warming, or no trend yet)."""
        s = self.settings
        tr = self.trend()
        if tr is None or s.high_c is None or self.last is None:
            return None
        slope, now_c, _ = tr
        if now_c >= s.high_c:
            return 0.0
        if slope <= 1e-6:
            return None
        return (s.high_c - now_c) / slope / 60

    def _early(self, t: float, c: float, out: list[Decision]) -> None:
        s = self.settings
        self.window.append(Reading(t, c))
        while self.window and self.window[0].time < t - s.early_window_min * 60:
            self.window.popleft()
        busy = self.heat.open is not None or self.cold.open is not None
        near = (s.high_c is not None and c >= s.high_c - s.early_band_c) or (
            s.freeze_c is not None and s.freeze_sensitive and c <= s.freeze_c + s.early_band_c
        )
        forecast = None if busy or not near else self._forecast()  # the fit only where it can matter
        if forecast is not None:
            self.early_clear_since = None
            self.early_since = self.early_since if self.early_since is not None else t
            if not self.early_open and t - self.early_since >= s.early_confirm_min * 60:
                self.early_open = True
                direction, threshold, minutes = forecast
                out.append(
                    self._decide(
                        t,
                        Rule.early_warning,
                        Severity.warning,
                        Action.fire,
                        "early",
                        celsius=c,
                        direction=direction,
                        threshold_c=threshold,
                        forecast_min=round(minutes),
                    )
                )
            return
        self.early_since = None
        s_high, s_freeze = s.high_c, s.freeze_c
        crossed = (s_high is not None and c > s_high) or (s_freeze is not None and c <= s_freeze)
        if self.early_open and (crossed or near):
            # it came true (the excursion rule takes over when it fires), or the reading is still close
            # to the limit: a trend that wavers during a power cut must not clear and re-fire the warning
            self.early_clear_since = None
            return
        if self.early_open and not busy:
            self.early_clear_since = self.early_clear_since if self.early_clear_since is not None else t
            if t - self.early_clear_since >= s.clear_after_min * 60:
                self.early_open = False
                self.early_clear_since = None
                out.append(
                    self._decide(t, Rule.early_warning, Severity.warning, Action.clear, "early", celsius=c)
                )

    def _forecast(self) -> tuple[str, float, float] | None:
        """("heat"|"freeze", threshold, minutes) when the steady trend crosses a threshold soon."""
        s = self.settings
        tr = self.trend()
        if tr is None:
            return None
        slope, now_c, r2 = tr
        if r2 < s.early_min_r2:
            return None
        horizon = s.early_horizon_min * 60
        if s.high_c is not None and slope > 0 and s.high_c - s.early_band_c <= now_c < s.high_c:
            eta = (s.high_c - now_c) / slope
            if eta <= horizon:
                return "heat", s.high_c, eta / 60
        if (
            s.freeze_c is not None
            and s.freeze_sensitive
            and slope < 0
            and s.freeze_c < now_c <= s.freeze_c + s.early_band_c
        ):
            eta = (now_c - s.freeze_c) / -slope
            if eta <= horizon:
                return "freeze", s.freeze_c, eta / 60
        return None

    def _supersede_early(self, t: float, out: list[Decision]) -> None:
        """The excursion it warned of has begun: the early warning has done its job."""
        if self.early_open:
            self.early_open = False
            self.early_clear_since = None
            out.append(
                self._decide(t, Rule.early_warning, Severity.warning, Action.clear, "early", superseded=True)
            )


# An early warning needs a steady trend (``early_min_r2``: a door opening is a spike, not a line), a
# reading already within ``early_band_c`` of the threshold (a fridge warming from 4 to 6 °C between
# compressor cycles would otherwise "forecast" 8 °C every half hour) and a forecast that holds
# ``early_confirm_min``.
