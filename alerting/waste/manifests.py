"""Electronic transfer manifests (转移联单): the bags one transporter took from one clinic in one visit,
reconciled against what the plant received under the same manifest.

A manifest is made from the ``handed_over`` scans that carry its id (transporter = their
``counterparty``, time = the first of them, bags with weights and categories) and the ``received`` scans
that carry it; the vehicle is the optional ``vehicle`` of the handover scans.

Reconciliation lists missing bags (handed over, not received under this manifest), extra bags
(received under it, not handed over under it) and weight differences per bag beyond the weight
tolerance. ``manifest_mismatch`` is raised for extra bags: a missing bag already has its own
``lost_in_transport`` alert and a lighter bag its ``weight_discrepancy`` one, and the same fact is not
told twice; the reconciliation shows all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alerting.waste.profiles import WasteProfile
from core.protocol import WasteEvent


@dataclass(frozen=True, slots=True)
class BagLine:
    bag_id: str
    category: str
    handed_kg: float | None
    received_kg: float | None
    refused_kg: float = 0.0


@dataclass(frozen=True, slots=True)
class Reconciliation:
    manifest_id: str
    clinic: str | None
    transporter: str | None
    handed_over_at: float | None
    received_at: float | None
    lines: tuple[BagLine, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    weight_differences: tuple[str, ...]  # bag ids whose received weight is off beyond the tolerance
    handed_kg_by_category: dict[str, float]
    received_kg_by_category: dict[str, float]
    vehicle: str | None = None

    @property
    def matches(self) -> bool:
        return not (self.missing or self.extra or self.weight_differences)

    def as_json(self) -> dict[str, Any]:
        return {
            "manifest_id": self.manifest_id,
            "clinic": self.clinic,
            "transporter": self.transporter,
            "vehicle": self.vehicle,
            "handed_over_at": self.handed_over_at,
            "received_at": self.received_at,
            "bags": [
                {
                    "bag_id": b.bag_id,
                    "category": b.category,
                    "handed_kg": b.handed_kg,
                    "received_kg": b.received_kg,
                    "refused_kg": b.refused_kg,
                }
                for b in self.lines
            ],
            "missing": list(self.missing),
            "extra": list(self.extra),
            "weight_differences": list(self.weight_differences),
            "handed_kg_by_category": self.handed_kg_by_category,
            "received_kg_by_category": self.received_kg_by_category,
            "matches": self.matches,
        }


@dataclass
class Manifest:
    manifest_id: str
    clinic: str | None = None
    transporter: str | None = None
    vehicle: str | None = None
    handed: dict[str, WasteEvent] = field(default_factory=dict)  # bag -> its handed_over scan
    received: dict[str, WasteEvent] = field(default_factory=dict)  # bag -> its received scan
    judged: bool = False
    mismatch_open: bool = False

    @property
    def handed_over_at(self) -> float | None:
        return min((e.ts for e in self.handed.values()), default=None)

    @property
    def first_received_at(self) -> float | None:
        return min((e.ts for e in self.received.values()), default=None)

    def add(self, clinic: str | None, ev: WasteEvent) -> None:
        if ev.stage.value == "handed_over":
            self.handed.setdefault(ev.bag_id, ev)
            self.clinic = self.clinic or clinic
            self.transporter = self.transporter or ev.counterparty
            self.vehicle = self.vehicle or ev.vehicle
        elif ev.stage.value == "received":
            self.received.setdefault(ev.bag_id, ev)


def reconcile(m: Manifest, p: WasteProfile) -> Reconciliation:
    bags = sorted(set(m.handed) | set(m.received))
    lines: list[BagLine] = []
    off: list[str] = []
    handed_by: dict[str, float] = {}
    received_by: dict[str, float] = {}
    for bag in bags:
        h, r = m.handed.get(bag), m.received.get(bag)
        category = (h or r).category.value  # type: ignore[union-attr]
        lines.append(
            BagLine(
                bag,
                category,
                h.weight_kg if h else None,
                r.weight_kg if r else None,
                (r.refused_kg or 0.0) if r else 0.0,
            )
        )
        if h:
            handed_by[category] = round(handed_by.get(category, 0.0) + h.weight_kg, 3)
        if r:
            received_by[category] = round(received_by.get(category, 0.0) + r.weight_kg, 3)
        if h and r:
            tol = max(h.weight_kg * p.weight_warning_pct / 100.0, p.weight_warning_min_kg)
            if round(abs(r.weight_kg - h.weight_kg), 6) > round(tol, 6):
                off.append(bag)
    return Reconciliation(
        m.manifest_id,
        m.clinic,
        m.transporter,
        m.handed_over_at,
        m.first_received_at,
        tuple(lines),
        tuple(b for b in bags if b in m.handed and b not in m.received),
        tuple(b for b in bags if b in m.received and b not in m.handed),
        tuple(off),
        handed_by,
        received_by,
        m.vehicle,
    )
