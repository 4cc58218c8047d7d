"""The time the waste timers are judged at (pure).

Scans carry their own time. Live, they arrive as they happen and the clock's time is right. But a
back-filled week, or a scanner's replayed buffer, arrives in seconds; judged at the clock's time, every
bag whose next scan is still on its way would look overdue. So while scans flow, the timers are judged
at the scans' time: the oldest "latest scan time" among the scanners heard in the last ``idle_s`` (each
scanner publishes over its own connection, and one may lag behind another by hours of scan time while
both are seconds apart on the wire). A scanner known to be offline (its status) is left out: its scans
will arrive late, and the time must go on for the others (and for its own offline alert). With no
scanner heard for ``idle_s``, the clock's time. The judged time never goes past the clock; it may go
back, when a backlog starts to arrive after a quiet spell: its bags are judged at their own time, not
found overdue at the clock's before their next scans have come.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

IDLE_S = 900.0


@dataclass
class WasteClock:
    idle_s: float = IDLE_S
    sources: dict[str, tuple[float, float]] = field(default_factory=dict)  # scanner -> (latest ts, heard at)
    judged: float = float("-inf")

    def heard(self, source: str, ts: float, now: float) -> None:
        latest = self.sources.get(source, (ts, now))[0]
        self.sources[source] = (max(latest, ts), now)

    def time(self, now: float, offline: Container[str] = ()) -> float:
        active = [
            ts for s, (ts, heard) in self.sources.items() if now - heard < self.idle_s and s not in offline
        ]
        self.judged = min(min(active) if active else now, now)
        return self.judged
