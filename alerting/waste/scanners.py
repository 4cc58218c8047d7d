"""Waste scanners going offline (pure; times passed in).

A gateway's silence is judged from its readings (``alerting.rules.device``); a waste scanner sends
scans only when a bag is scanned, so silence says nothing. It does send its status: ``online`` when it
connects, and ``offline`` as its MQTT last will when the link drops (DESIGN §3). A scanner whose last
status has been ``offline`` for ``OFFLINE_AFTER_S`` (15 min, the DESIGN §5 offline minimum) raises
``device_offline`` for it; ``online`` clears it. While a scanner is offline its scans wait in its
buffer and arrive late: the bag rules wait for them (``scan_grace_h``), this alert says why.

The time given is the caller's judging time: the newest scan's time while scans flow (so a back-filled
outage is judged where it happened in the data), the clock's otherwise. A last will carries the time
the device connected, not the time it went away, so the message's own ``ts`` is not used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from alerting.rules.types import Action, Decision, Rule, Severity

OFFLINE_AFTER_S = 900.0


@dataclass
class _Scanner:
    clinic: str | None
    offline_since: float | None = None
    open_at: float | None = None  # when the open alert fired


@dataclass
class ScannerWatch:
    scanners: dict[str, _Scanner] = field(default_factory=dict)

    @classmethod
    def of(cls, devices: Iterable[tuple[str, str | None]]) -> ScannerWatch:
        """``devices``: (scanner id, its clinic, or None for a plant's)."""
        return cls({d: _Scanner(c) for d, c in devices})

    def status(self, device: str, online: bool, at: float) -> list[Decision]:
        sc = self.scanners.get(device)
        if sc is None:
            return []  # not a waste scanner (gateways are judged from their readings)
        if not online:
            if sc.offline_since is None:
                sc.offline_since = at
            return []
        sc.offline_since = None
        if sc.open_at is None:
            return []
        t, sc.open_at = max(at, sc.open_at), None
        return [self._decide(device, sc, t, Action.clear)]

    def offline(self) -> set[str]:
        """Scanners whose last status is offline."""
        return {d for d, sc in self.scanners.items() if sc.offline_since is not None}

    def tick(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        for device, sc in self.scanners.items():
            if sc.offline_since is None or sc.open_at is not None:
                continue
            due = sc.offline_since + OFFLINE_AFTER_S
            if now >= due:
                sc.open_at = due
                out.append(
                    self._decide(
                        device, sc, due, Action.fire, silent_min=round((now - sc.offline_since) / 60)
                    )
                )
        return out

    @staticmethod
    def _decide(device: str, sc: _Scanner, t: float, action: Action, **values: object) -> Decision:
        return Decision(
            t,
            Rule.device_offline,
            Severity.warning,
            action,
            device,
            "offline",
            sc.clinic,
            {"scanner": True, **values},
        )
