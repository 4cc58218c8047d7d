"""The local alarm: buzzer and LED for the people in the room, even when the server cannot reach them.

Per probe, the server's temperature rules with their defaults (DESIGN §5), timed between reading times
on the monotonic clock (so it works before NTP):
- heat warning: above ``high_c`` for 30 min; heat alarm: above for 10 h continuous, or 10 h
  cumulative in a rolling 24 h;
- freeze alarm: at or below ``freeze_c`` for 60 min (the server's milder cold warning, below ``low_c``
  for 30 min, stays on the server's side: it does not sound in the room);
- clear: back inside the range by 0.3 °C for 10 min; a reading back in range breaks a run;
- probe-fault readings (read errors, 85.0, outside -60…+70 °C) take no part.
A critical alert the server publishes on ``cw/v1/{clinic}/alerts`` (state ``firing``) sounds too,
until it is acknowledged or resolved.

Outputs: LED on while anything is firing; buzzer too, unless silenced. The button silences the buzzer
for 30 min; a condition that starts firing after the press sounds again at once.
"""

from gateway_firmware.senml import ERR

DAY_S = 86400


def _fault(c):
    return c == ERR or c == 8500 or c == -12700 or c < -6000 or c > 7000


class ProbeRules:
    def __init__(self, s):
        self.s = s
        self.heat_since = None
        self.freeze_since = None
        self.clear_since = None
        self.heat_runs = []  # [start, end] of runs above high in the last 24 h (cumulative rule)
        self.firing = set()

    def _cumulative_heat(self, t):
        lo = t - DAY_S
        self.heat_runs = [r for r in self.heat_runs if r[1] > lo]
        return sum(r[1] - max(r[0], lo) for r in self.heat_runs)

    def reading(self, t, c):
        """Step with a reading ``c`` (hundredths) at ``t`` (s); return the rules that started firing."""
        s = self.s
        new = []
        if _fault(c):
            return new
        if c > s["high"]:
            if self.heat_since is None:
                self.heat_since = t
                self.heat_runs.append([t, t])
            self.heat_runs[-1][1] = t
            run = t - self.heat_since
            if run >= s["warn_s"]:
                new.append("heat_warning")
            if run >= s["heat_alarm_s"] or self._cumulative_heat(t) >= s["heat_alarm_s"]:
                new.append("heat_alarm")
        else:
            self.heat_since = None
        if c <= s["freeze"]:
            if self.freeze_since is None:
                self.freeze_since = t
            if t - self.freeze_since >= s["freeze_s"]:
                new.append("freeze_alarm")
        else:
            self.freeze_since = None
        started = [r for r in new if r not in self.firing]
        for r in new:
            self.firing.add(r)
        if self.firing and s["low"] + s["margin"] <= c <= s["high"] - s["margin"]:
            if self.clear_since is None:
                self.clear_since = t
            if t - self.clear_since >= s["clear_s"]:
                self.firing = set()
                self.clear_since = None
        else:
            self.clear_since = None
        return started


def settings(cfg):
    """The alarm's settings (hundredths, seconds) from the gateway configuration."""
    return {
        "high": int(round(cfg["high_c"] * 100)),
        "low": int(round(cfg["low_c"] * 100)),
        "freeze": int(round(cfg["freeze_c"] * 100)),
        "margin": int(round(cfg["clear_margin_c"] * 100)),
        "warn_s": cfg["warning_min"] * 60,
        "heat_alarm_s": cfg["heat_alarm_h"] * 3600,
        "freeze_s": cfg["freeze_min"] * 60,
        "clear_s": cfg["clear_min"] * 60,
        "silence_s": cfg["silence_min"] * 60,
    }


class LocalAlarm:
    def __init__(self, cfg):
        self.clinic = cfg["clinic"]
        self.s = settings(cfg)
        self.probes = {}
        self.server = set()  # ids of firing critical alerts for this clinic
        self.silenced_until = None

    def reconfigure(self, cfg):
        self.s = settings(cfg)
        for p in self.probes.values():
            p.s = self.s

    def reading(self, probe, t, c):
        rules = self.probes.get(probe)
        if rules is None:
            rules = self.probes[probe] = ProbeRules(self.s)
        if rules.reading(t, c):
            self.silenced_until = None  # something new: sound again even if silenced

    def server_alert(self, event):
        """An event from ``cw/v1/{clinic}/alerts`` (``alerting.sinks.alert_event``)."""
        if not isinstance(event, dict) or event.get("clinic") != self.clinic:
            return
        aid = event.get("id")
        if event.get("severity") == "critical" and event.get("state") == "firing":
            if aid not in self.server:
                self.server.add(aid)
                self.silenced_until = None
        else:
            self.server.discard(aid)

    def firing(self):
        out = sorted(self.server)
        for name in sorted(self.probes):
            for r in sorted(self.probes[name].firing):
                out.append("%s:%s" % (name, r))
        return out

    def silence(self, t):
        if self.firing():
            self.silenced_until = t + self.s["silence_s"]

    def outputs(self, t):
        """(buzzer, led) at ``t`` (s)."""
        active = bool(self.server) or any(p.firing for p in self.probes.values())
        if not active:
            self.silenced_until = None
            return False, False
        silenced = self.silenced_until is not None and t < self.silenced_until
        return not silenced, True
