"""The waste rules over every bag, manifest and clinic store (pure; the clock is passed in).

``add(clinic, event)`` takes one scan as it arrives (in any order); ``tick(now)`` runs the time-driven
rules. Decisions are ``alerting.rules.types.Decision`` like the cold chain's, so the alert lifecycle,
the texts and the notifications treat them alike. Subjects: the bag id (bag rules), the manifest id
(``manifest_mismatch``), the clinic id (``late_pickup``).

``late_pickup`` (warning): a clinic with a pickup schedule (``waste_pickup``: days, by) had bags in its
store at a scheduled time and no ``handed_over`` scan that day before it; it clears when the
transporter's scan comes. The profile in force can change at run time (``set_profile``): decisions
from then on are judged, and labelled, under the new one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from alerting.rules.types import Action, Decision, Rule, Severity, iso
from alerting.waste.bags import BagMachine, H
from alerting.waste.manifests import Manifest, Reconciliation, reconcile
from alerting.waste.profiles import NATIONAL, WasteProfile
from core.clinic_time import (
    CLINIC_UTC_OFFSET_S,
    DAY_S,
    WEEKDAYS,
    day_number,
    day_start,
    hhmm_minutes,
    weekday,
)
from core.protocol import Stage, WasteEvent

DAY = float(DAY_S)
KEEP_CLOSED_S = 7 * DAY  # a closed bag is kept this long for late scans and reports


@dataclass(frozen=True, slots=True)
class PickupSchedule:
    weekdays: frozenset[int]  # 0 = Monday, clinic time
    by_min: int  # minutes after local midnight

    def next_after(self, t: float) -> float | None:
        found = self.deadlines(t, t + 8 * DAY)
        return found[0] if found else None

    def deadlines(self, start: float, end: float) -> list[float]:
        """Scheduled times in (start, end]."""
        out: list[float] = []
        day = day_number(start)
        while True:
            t = day_start(day) + self.by_min * 60.0
            if t > end:
                return out
            if t > start and weekday(day) in self.weekdays:
                out.append(t)
            day += 1


@dataclass
class _Clinic:
    schedule: PickupSchedule | None
    judged_until: float | None = None  # deadlines up to here have been judged
    handed_over: list[float] = field(default_factory=list)  # times of handed_over scans
    late_open: float | None = None  # the deadline of the open late_pickup alert


class WasteEngine:
    def __init__(
        self, schedules: Mapping[str, PickupSchedule] | None = None, profile: WasteProfile = NATIONAL
    ) -> None:
        self.profile = profile
        self.bags: dict[str, BagMachine] = {}
        self.by_clinic: dict[str | None, set[str]] = {}
        self.manifests: dict[str, Manifest] = {}
        self.clinics: dict[str, _Clinic] = {c: _Clinic(s) for c, s in (schedules or {}).items()}
        # bags by the time a timer of theirs may fall due (a heap; stale entries are harmless), and the
        # manifests received but not reconciled yet: a tick looks at these only
        self._due: list[tuple[float, str]] = []
        self._unjudged: set[str] = set()
        self._forgot_at = float("-inf")
        self._pickups_due = float("-inf")  # no scheduled pickup time to judge before this
        self._last_tick = float("-inf")

    def set_profile(self, profile: WasteProfile) -> None:
        self.profile = profile
        self._due = []
        for bag in self.bags.values():
            self._schedule(bag, float("-inf"))

    def _schedule(self, bag: BagMachine, after: float) -> None:
        due = bag.next_due(self.profile)
        if due is not None and due > after:
            heapq.heappush(self._due, (due, bag.bag_id))

    # ------------------------------------------------------------------ scans

    def add(self, clinic: str | None, ev: WasteEvent) -> list[Decision]:
        bag = self.bags.get(ev.bag_id)
        if bag is None:
            bag = self.bags[ev.bag_id] = BagMachine(ev.bag_id, clinic)
            self.by_clinic.setdefault(clinic, set()).add(ev.bag_id)
            c = self.clinics.get(clinic) if clinic is not None else None
            if c is not None and c.schedule is not None and c.judged_until is None:
                first = c.schedule.next_after(ev.ts)  # its schedule starts at this scan
                if first is not None:
                    self._pickups_due = min(self._pickups_due, first)
        out = bag.add(ev, self.profile)
        self._schedule(bag, float("-inf"))
        if ev.manifest_id and ev.stage in (Stage.handed_over, Stage.received):
            m = self.manifests.get(ev.manifest_id)
            if m is None:
                m = self.manifests[ev.manifest_id] = Manifest(ev.manifest_id)
            m.add(bag.clinic, ev)
            if m.judged:
                out.extend(self._judge(m, ev.ts))
            elif ev.stage is Stage.received:
                self._unjudged.add(m.manifest_id)
        if ev.stage is Stage.handed_over and bag.clinic is not None:
            c = self._clinic(bag.clinic)
            c.handed_over.append(ev.ts)
            if c.late_open is not None and ev.ts >= c.late_open - DAY:
                out.append(self._late(bag.clinic, max(ev.ts, c.late_open), Action.clear, due=c.late_open))
                c.late_open = None
        return out

    def add_all(self, scans: Iterable[tuple[str | None, WasteEvent]]) -> list[Decision]:
        return [d for clinic, ev in scans for d in self.add(clinic, ev)]

    def _clinic(self, clinic: str) -> _Clinic:
        c = self.clinics.get(clinic)
        if c is None:
            c = self.clinics[clinic] = _Clinic(None)
        return c

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Decision]:
        p = self.profile
        out: list[Decision] = []
        looked: set[str] = set()
        while self._due and self._due[0][0] <= now:
            _, bag_id = heapq.heappop(self._due)
            bag = self.bags.get(bag_id)
            if bag is None or bag_id in looked:
                continue
            looked.add(bag_id)
            out.extend(bag.tick(now, p))
            self._schedule(bag, now)
        for manifest_id in list(self._unjudged):
            m = self.manifests[manifest_id]
            first = m.first_received_at
            if first is not None and now >= first + p.manifest_settle_h * H:
                m.judged = True
                self._unjudged.discard(manifest_id)
                out.extend(self._judge(m, first + p.manifest_settle_h * H))
        if now < self._last_tick:
            self._pickups_due = float("-inf")  # judged time went back (a backlog): look again
        self._last_tick = now
        if now - p.pickup_grace_min * 60.0 >= self._pickups_due:
            nxt: list[float] = []
            for clinic, c in self.clinics.items():
                out.extend(self._pickups(clinic, c, now))
                if c.schedule is not None:
                    after = c.judged_until if c.judged_until is not None else now
                    if (d := c.schedule.next_after(after)) is not None:
                        nxt.append(d)
            self._pickups_due = min(nxt, default=float("inf"))
        self._forget(now)
        return sorted(out, key=lambda d: d.time)

    def _judge(self, m: Manifest, t: float) -> list[Decision]:
        """Extra bags handed over on another manifest. (A bag with no handover scan at all has its own
        out_of_sequence alert, a missing one its lost_in_transport, a lighter one its weight alert.)"""
        r = reconcile(m, self.profile)
        wrong = [b for b in r.extra if (bag := self.bags.get(b)) and bag.first(Stage.handed_over)]
        if not wrong or m.mismatch_open:
            return []
        m.mismatch_open = True
        return [
            Decision(
                t,
                Rule.manifest_mismatch,
                Severity.warning,
                Action.fire,
                m.manifest_id,
                "manifest",
                m.clinic,
                {
                    "profile": self.profile.name,
                    "extra_bags": len(wrong),
                    "extra": ", ".join(wrong),
                    "missing_bags": len(r.missing),
                    "transporter": m.transporter or "",
                },
            )
        ]

    def _pickups(self, clinic: str, c: _Clinic, now: float) -> list[Decision]:
        if c.schedule is None:
            return []
        judge_to = now - self.profile.pickup_grace_min * 60.0
        start = c.judged_until
        if start is None:  # from the first scan of this clinic on
            start = min(
                (b.ordered[0].ts for b in self._bags_of(clinic) if b.ordered),
                default=None,
            )
            if start is None:
                return []
        out: list[Decision] = []
        for deadline in c.schedule.deadlines(start, judge_to):
            day_start = deadline - (deadline + CLINIC_UTC_OFFSET_S) % DAY
            came = any(day_start <= t <= deadline for t in c.handed_over)
            waiting = [b for b in self._bags_of(clinic) if _in_store_at(b, deadline)]
            if came or not waiting or c.late_open is not None:
                continue
            c.late_open = deadline
            oldest = min(b.first(Stage.stored).ts for b in waiting)  # type: ignore[union-attr]
            out.append(
                self._late(
                    clinic,
                    deadline,
                    Action.fire,
                    due=deadline,
                    bags=len(waiting),
                    oldest_h=round((deadline - oldest) / H, 1),
                )
            )
        c.judged_until = max(start, judge_to)
        c.handed_over = [t for t in c.handed_over if t > c.judged_until - 2 * DAY]
        return out

    def _bags_of(self, clinic: str) -> list[BagMachine]:
        return [self.bags[b] for b in self.by_clinic.get(clinic, ()) if b in self.bags]

    def _late(self, clinic: str, t: float, action: Action, *, due: float, **values: object) -> Decision:
        local = iso(due + CLINIC_UTC_OFFSET_S).replace("T", " ").replace("Z", "")[:16]
        return Decision(
            t,
            Rule.late_pickup,
            Severity.warning,
            action,
            clinic,
            "pickup",
            clinic,
            {"profile": self.profile.name, "due": local, **values},
        )

    def _forget(self, now: float) -> None:
        """Closed bags are kept a week for late scans; looked at once an hour of judged time."""
        if now - self._forgot_at < H:
            return
        self._forgot_at = now
        for bag_id, bag in list(self.bags.items()):
            closed_at = bag.closed_at
            if closed_at is not None and not bag.open and now - closed_at > KEEP_CLOSED_S:
                del self.bags[bag_id]
                self.by_clinic.get(bag.clinic, set()).discard(bag_id)

    # ------------------------------------------------------------------ questions

    def reconciliation(self, manifest_id: str) -> Reconciliation | None:
        m = self.manifests.get(manifest_id)
        return reconcile(m, self.profile) if m else None


def _in_store_at(bag: BagMachine, t: float) -> bool:
    stored = bag.first(Stage.stored)
    if stored is None or stored.ts > t:
        return False
    return not any(
        e.ts <= t and e.stage in (Stage.handed_over, Stage.received, Stage.disposed) for e in bag.ordered
    )


def schedule_from(days: Iterable[str], by: str) -> PickupSchedule:
    return PickupSchedule(frozenset(WEEKDAYS.index(d) for d in days), hhmm_minutes(by))
