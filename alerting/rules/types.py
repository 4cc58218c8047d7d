"""What the rules decide. A ``Decision`` is a fact about an alert at a reading's time: fire, escalate
(the same alert becomes more severe, e.g. heat warning -> heat alarm), update (new numbers in its
text, e.g. the holdover forecast during a power cut) or clear (the condition is over). What happens to
the alert then (stored, acknowledged, resolved) is the lifecycle's job, not the rules'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Action(StrEnum):
    fire = "fire"
    escalate = "escalate"
    update = "update"
    clear = "clear"


class Rule(StrEnum):
    heat_warning = "heat_warning"
    heat_alarm = "heat_alarm"
    cold_warning = "cold_warning"
    freeze_alarm = "freeze_alarm"
    early_warning = "early_warning"
    probe_fault = "probe_fault"
    device_offline = "device_offline"
    power_outage = "power_outage"
    battery_low = "battery_low"
    twice_daily_check = "twice_daily_check"
    # medical waste (alerting/waste)
    not_collected = "not_collected"
    storage_overdue = "storage_overdue"
    lost_in_transport = "lost_in_transport"
    weight_discrepancy = "weight_discrepancy"
    out_of_sequence = "out_of_sequence"
    late_pickup = "late_pickup"
    manifest_mismatch = "manifest_mismatch"
    refused_at_plant = "refused_at_plant"


WASTE_RULES = frozenset(
    {
        Rule.not_collected,
        Rule.storage_overdue,
        Rule.lost_in_transport,
        Rule.weight_discrepancy,
        Rule.out_of_sequence,
        Rule.late_pickup,
        Rule.manifest_mismatch,
        Rule.refused_at_plant,
    }
)

# rules whose alerts belong to the cold chain: a critical one is closed by a person, not by the data
COLD_CHAIN_RULES = frozenset({Rule.heat_alarm, Rule.freeze_alarm, Rule.heat_warning, Rule.cold_warning})


@dataclass(frozen=True, slots=True)
class Decision:
    time: float  # the reading time (or the clock time for time-driven rules) the decision is about
    rule: Rule
    severity: Severity
    action: Action
    subject: str  # equipment, device or clinic id
    family: str  # one open alert per (family, subject): "heat" covers heat_warning and heat_alarm
    clinic: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        """The open alert this decision belongs to."""
        return (self.family, self.subject)

    def identity(self) -> tuple[float, str, str, str, str]:
        """Equal for the same decision reached twice (a replay, a re-evaluation after late data)."""
        return (round(self.time, 3), self.rule.value, self.action.value, self.family, self.subject)

    def as_json(self, *, verbose: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": iso(self.time),
            "rule": self.rule.value,
            "severity": self.severity.value,
            "action": self.action.value,
        }
        if verbose:
            out["subject"] = self.subject
            out.update({k: v for k, v in sorted(self.values.items())})
        return out


def iso(t: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
