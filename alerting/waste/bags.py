"""One bag of medical waste: its scans and the rules about it (pure; time passed in).

A bag goes generated -> collected -> stored -> handed_over -> received -> disposed. Scans may arrive
late (a scanner that was offline replays its buffer) and out of order; the bag keeps every scan, in
the order of their own times, and the rules judge that history:

- ``not_collected`` (warning): generated, nothing later after ``not_collected_h``;
- ``storage_overdue``: stored, nothing later after ``storage_warning_h`` (warning), then
  ``storage_critical_h`` (critical);
- ``lost_in_transport`` (critical): handed over, not received after ``lost_in_transport_h``;
- ``weight_discrepancy``: a later weight differs from the generated one by more than
  max(``weight_warning_pct``, ``weight_warning_min_kg``) (warning) or ``weight_critical_pct`` (critical);
- ``out_of_sequence`` (warning): a stage going backwards in time (beyond a clock tolerance), a duplicate
  ``event_id`` with different content (the first is kept, the other stored and flagged, never dropped);
  and, once ``scan_grace_h`` has passed without the missing scan arriving, an unknown bag (its first scan
  is not ``generated``) or a skipped stage;
- ``refused_at_plant`` (warning): the plant refused all or part of the bag (``refused_kg``); a bag refused
  whole closes its loop as refused.

The timer rules clear when the missing scan arrives, even late (the alert is resolved: the bag moved
in time and only its scan was late); the others stay until a person closes them. Each decision carries
the profile and the threshold it was judged by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alerting.rules.types import Action, Decision, Rule, Severity, iso
from alerting.waste.profiles import WasteProfile
from core.protocol import Stage, WasteEvent
from core.waste_store import RANK, STAGES

CLOCK_TOLERANCE_S = 300.0  # two scanners' clocks may disagree by this much without a stage "going back"
H = 3600.0

FAMILY = {
    Rule.not_collected: "ward",
    Rule.storage_overdue: "store",
    Rule.lost_in_transport: "transport",
    Rule.weight_discrepancy: "weight",
    Rule.out_of_sequence: "sequence",
    Rule.refused_at_plant: "refusal",
}


@dataclass
class BagMachine:
    bag_id: str
    clinic: str | None
    scans: dict[str, WasteEvent] = field(default_factory=dict)  # event_id -> the first version
    conflicts: list[WasteEvent] = field(default_factory=list)  # same event_id, other content
    ordered: list[WasteEvent] = field(default_factory=list)  # by (ts, stage)
    open: dict[str, tuple[Rule, Severity, float]] = field(default_factory=dict)  # family -> fired
    reasons: list[str] = field(default_factory=list)  # out of sequence, in the order found

    # ------------------------------------------------------------------ state

    def first(self, stage: Stage) -> WasteEvent | None:
        return next((e for e in self.ordered if e.stage is stage), None)

    def reached(self, stage: Stage) -> bool:
        """Some scan at this stage or a later one."""
        return any(RANK[e.stage] >= RANK[stage] for e in self.ordered)

    @property
    def stage(self) -> Stage | None:
        return max((e.stage for e in self.ordered), key=RANK.__getitem__, default=None)

    @property
    def generated_kg(self) -> float | None:
        g = self.first(Stage.generated)
        return g.weight_kg if g else None

    @property
    def category(self) -> str | None:
        return self.ordered[0].category.value if self.ordered else None

    @property
    def refused_kg(self) -> float:
        return sum(e.refused_kg or 0.0 for e in self.ordered if e.stage is Stage.received)

    @property
    def refused_whole(self) -> bool:
        r = self.first(Stage.received)
        return r is not None and r.refused_kg is not None and r.refused_kg >= r.weight_kg - 1e-9

    @property
    def closed(self) -> bool:
        """The loop is closed: disposed, or refused whole at the plant."""
        return self.reached(Stage.disposed) or self.refused_whole

    @property
    def closed_at(self) -> float | None:
        d = self.first(Stage.disposed)
        if d is not None:
            return d.ts
        r = self.first(Stage.received)
        return r.ts if r is not None and self.refused_whole else None

    # ------------------------------------------------------------------ decisions

    def _decide(
        self, t: float, rule: Rule, severity: Severity, action: Action, p: WasteProfile, **values: Any
    ) -> Decision:
        return Decision(
            t,
            rule,
            severity,
            action,
            self.bag_id,
            FAMILY[rule],
            self.clinic,
            {"profile": p.name, "category": self.category, **values},
        )

    def _fire(
        self, t: float, rule: Rule, severity: Severity, p: WasteProfile, out: list[Decision], **values: Any
    ) -> None:
        family = FAMILY[rule]
        current = self.open.get(family)
        if current is not None and current[1].rank >= severity.rank:
            return
        action = Action.fire if current is None else Action.escalate
        self.open[family] = (rule, severity, t)
        out.append(self._decide(t, rule, severity, action, p, **values))

    def _clear(self, rule: Rule, t: float, p: WasteProfile, out: list[Decision], **values: Any) -> None:
        family = FAMILY[rule]
        current = self.open.pop(family, None)
        if current is None:
            return
        out.append(self._decide(max(t, current[2]), current[0], current[1], Action.clear, p, **values))

    def _flag(self, t: float, reason: str, p: WasteProfile, out: list[Decision]) -> None:
        if reason in self.reasons:
            return
        self.reasons.append(reason)
        family = FAMILY[Rule.out_of_sequence]
        if family in self.open:
            out.append(
                self._decide(
                    max(t, self.open[family][2]),
                    Rule.out_of_sequence,
                    Severity.warning,
                    Action.update,
                    p,
                    reason="; ".join(self.reasons),
                )
            )
            return
        self._fire(t, Rule.out_of_sequence, Severity.warning, p, out, reason="; ".join(self.reasons))

    # ------------------------------------------------------------------ a scan arrives

    def add(self, ev: WasteEvent, p: WasteProfile) -> list[Decision]:
        out: list[Decision] = []
        known = self.scans.get(ev.event_id)
        if known is not None:
            if known != ev:
                self.conflicts.append(ev)
                self._flag(ev.ts, f"duplicate event {ev.event_id} with different content", p, out)
            return out  # an exact duplicate (at-least-once delivery) changes nothing
        self.scans[ev.event_id] = ev
        self.ordered.append(ev)
        self.ordered.sort(key=lambda e: (e.ts, RANK[e.stage]))
        self._backwards(ev, p, out)
        self._weights(ev, p, out)
        if ev.stage is Stage.received and ev.refused_kg:
            severity = Severity.critical if self.refused_whole else Severity.warning
            self._fire(
                ev.ts,
                Rule.refused_at_plant,
                severity,
                p,
                out,
                refused_kg=ev.refused_kg,
                weight_kg=ev.weight_kg,
                reason=ev.refusal_reason or "",
                manifest_id=ev.manifest_id or "",
            )
        # a timer's missing scan has come (even late): that alert is over
        if self.reached(Stage.collected):
            self._clear(Rule.not_collected, ev.ts, p, out)
        if self.reached(Stage.handed_over):
            self._clear(Rule.storage_overdue, ev.ts, p, out)
        if self.reached(Stage.received):
            self._clear(Rule.lost_in_transport, ev.ts, p, out)
        return out

    def _backwards(self, ev: WasteEvent, p: WasteProfile, out: list[Decision]) -> None:
        r = RANK[ev.stage]
        for other in self.ordered:
            if other is ev:
                continue
            later_but_lower = other.ts > ev.ts + CLOCK_TOLERANCE_S and RANK[other.stage] < r
            earlier_but_higher = other.ts < ev.ts - CLOCK_TOLERANCE_S and RANK[other.stage] > r
            if later_but_lower or earlier_but_higher:
                first, second = (ev, other) if later_but_lower else (other, ev)
                reason = (
                    f"{second.stage.value} at {iso(second.ts)} after {first.stage.value} at {iso(first.ts)}"
                )
                self._flag(max(ev.ts, other.ts), f"stage went backwards: {reason}", p, out)
                return

    def _weights(self, ev: WasteEvent, p: WasteProfile, out: list[Decision]) -> None:
        gen = self.generated_kg
        if gen is None:
            return
        later = [e for e in self.ordered if e.stage is not Stage.generated]
        if ev.stage is not Stage.generated:
            later = [ev]
        for e in later:
            diff = e.weight_kg - gen
            tol = max(gen * p.weight_warning_pct / 100.0, p.weight_warning_min_kg)
            if round(abs(diff), 6) <= round(tol, 6):  # 4.0 - 3.8 is 0.2000000000000002
                continue
            pct = round(abs(diff) / gen * 100.0, 6)
            severity = Severity.critical if pct > p.weight_critical_pct else Severity.warning
            self._fire(
                e.ts,
                Rule.weight_discrepancy,
                severity,
                p,
                out,
                stage=e.stage.value,
                weight_kg=e.weight_kg,
                generated_kg=gen,
                diff_kg=round(diff, 3),
                diff_pct=round(pct, 1),
                limit_pct=p.weight_critical_pct if severity is Severity.critical else p.weight_warning_pct,
            )

    # ------------------------------------------------------------------ time passes

    def tick(self, now: float, p: WasteProfile) -> list[Decision]:
        out: list[Decision] = []
        if not self.ordered:
            return out
        g = self.first(Stage.generated)
        if g is not None and not self.reached(Stage.collected):
            due = g.ts + p.not_collected_h * H
            if now >= due:
                self._fire(due, Rule.not_collected, Severity.warning, p, out, limit_h=p.not_collected_h,
                           generated_at=iso(g.ts), weight_kg=g.weight_kg)  # fmt: skip
        s = self.first(Stage.stored)
        if s is not None and not self.reached(Stage.handed_over):
            for hours, severity in (
                (p.storage_warning_h, Severity.warning),
                (p.storage_critical_h, Severity.critical),
            ):
                due = s.ts + hours * H
                if now >= due:
                    values = {"limit_h": hours, "stored_at": iso(s.ts), "weight_kg": s.weight_kg}
                    self._fire(due, Rule.storage_overdue, severity, p, out, **values)
        h = self.first(Stage.handed_over)
        if h is not None and not self.reached(Stage.received):
            due = h.ts + p.lost_in_transport_h * H
            if now >= due:
                values = {
                    "limit_h": p.lost_in_transport_h,
                    "handed_over_at": iso(h.ts),
                    "manifest_id": h.manifest_id or "",
                    "transporter": h.counterparty or "",
                    "weight_kg": h.weight_kg,
                }
                self._fire(due, Rule.lost_in_transport, Severity.critical, p, out, **values)
        self._missing_scans(now, p, out)
        return out

    def _missing(self, p: WasteProfile) -> tuple[float, str] | None:
        """(when it is judged, what) for an unknown bag or a skipped stage, if the bag has one."""
        grace = p.scan_grace_h * H
        first = self.ordered[0]
        if first.stage is not Stage.generated and self.first(Stage.generated) is None:
            return first.ts + grace, f"unknown bag: first scan is {first.stage.value} at {iso(first.ts)}"
        present = {e.stage for e in self.ordered}
        top = self.stage
        assert top is not None
        missing = [s for s in STAGES[: RANK[top]] if s not in present]
        if not missing:
            return None
        after = min((e for e in self.ordered if RANK[e.stage] > RANK[missing[0]]), key=lambda e: e.ts)
        names = ", ".join(s.value for s in missing)
        return after.ts + grace, f"skipped stage(s): {names} (next scan {after.stage.value})"

    def _missing_scans(self, now: float, p: WasteProfile, out: list[Decision]) -> None:
        """Unknown bag and skipped stages: judged once the grace for late scans has passed."""
        found = self._missing(p)
        if found is not None and now >= found[0]:
            self._flag(found[0], found[1], p, out)

    def next_due(self, p: WasteProfile) -> float | None:
        """The earliest time ``tick`` may decide something for this bag (None: nothing pending)."""
        due: list[float] = []
        g = self.first(Stage.generated)
        if g is not None and not self.reached(Stage.collected) and "ward" not in self.open:
            due.append(g.ts + p.not_collected_h * H)
        s = self.first(Stage.stored)
        if s is not None and not self.reached(Stage.handed_over):
            sev = self.open.get("store")
            if sev is None:
                due.append(s.ts + p.storage_warning_h * H)
            elif sev[1] is not Severity.critical:
                due.append(s.ts + p.storage_critical_h * H)
        h = self.first(Stage.handed_over)
        if h is not None and not self.reached(Stage.received) and "transport" not in self.open:
            due.append(h.ts + p.lost_in_transport_h * H)
        if self.ordered:
            found = self._missing(p)
            if found is not None and found[1] not in self.reasons:
                due.append(found[0])
        return min(due) if due else None
