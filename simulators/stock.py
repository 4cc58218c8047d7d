"""Vaccine stock, simulated (issue 9, item 7): deliveries, vaccination sessions, wastage and moves for
the simulated clinics, written straight to SQL through ``core.stock.record`` at their simulated times
(stock is not MQTT), so the demo and the tests have realistic books to reconcile. Used by
``chainwatch simulate --stock`` (and so by ``chainwatch run``).

The flow (clinic local time, UTC+8), recorded as docs/stock.md says issues are recorded:

- The district store (site = the registry's bureau id, appliance ``{bureau}-store``) delivers on the
  simulation's first day and on the first weekday of each month: at 08:00 it receives from the
  manufacturer (``received`` with a ``source``), at 09:00 it issues to each clinic (``moved`` to the
  clinic's ``alerting.reconcile.TRANSIT``), and at 14:00 the clinic checks the delivery in (``moved``
  from TRANSIT into its first refrigerator). A delivery tops a product up to two months of use, in
  boxes of 10 single-dose vials or in whole multi-dose vials; one lot per product and month, lot
  number ``{PRODUCT}{YYMM}`` expiring on the last day of the 18th month after.
- Sessions on weekdays from 09:00 (``SCHEDULE``; none on the first day, whose delivery is checked in
  after it): per product a Poisson number of doses, given from the lots in expiry order
  (first-expiry-first-out, expired lots never), as far as stock allows (what is missing is a stock-out
  in the summary). A multi-dose vial opened at a session and not used up is wasted at 12:00
  (``opened_vial_expiry``), as BCG is once reconstituted.
- Now and then (``BREAK_P`` per clinic and weekday) a single-dose vial breaks (``wasted``, ``broken``),
  and (``MOVE_P``) part of a lot is moved from one refrigerator to the other.

``mismatch=CLINIC`` (``--stock-mismatch``): that clinic checks in one box (10 doses) of its first
delivery's first product fewer than were issued: the demo's stock-reconciliation flag; the summary
says which.

Every random draw comes from a stream of its own per (seed, clinic, day): the same seed gives the same
movements (and idents ``sim-{seed}-{start}-{n}``, so a run repeated over the same database stores
nothing twice), whatever the speed. The flow keeps its own books and never asks ``record`` for what it
would refuse; a refusal (someone else's movement on the same lot) is counted in the summary, not raised.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerting.reconcile import TRANSIT
from core.clinic_time import CLINIC_TZ, day_number, day_start
from core.registry_model import Profile, RegistryFile
from core.stock import CATALOGUE, Kind, Movement, StockError, ensure_products, load_catalogue, lot, record

MIN = 60.0
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    weekdays: frozenset[int]  # 0 = Monday
    mean: float  # doses per session (Poisson)


# a township clinic's week: hepatitis B and DTaP every weekday, MMR on Tuesdays and Thursdays, BCG on
# Wednesdays (one BCG day a week keeps the opened 10-dose vials' wastage down)
SCHEDULE = (
    Product("hepb", frozenset(range(5)), 3.0),
    Product("dtap", frozenset(range(5)), 3.0),
    Product("mmr", frozenset({1, 3}), 2.0),
    Product("bcg", frozenset({2}), 9.0),
)
SOURCE = "疫苗生产企业"  # where the district store's deliveries come from
RECEIVE_S, ISSUE_S, CHECK_IN_S = 8 * HOUR, 9 * HOUR, 14 * HOUR
SESSION_S, SESSION_END_S, BREAK_S, MOVE_S = 9 * HOUR, 12 * HOUR, 15 * HOUR, 16.5 * HOUR
BREAK_P = 0.01
MOVE_P = 0.05
MONTHS_OF_STOCK = 2.0
BOX = 10  # single-dose vials come in boxes of 10
SHELF_MONTHS = 18
MISMATCH_SHORT = 10


# ------------------------------------------------------------------ who takes part


@dataclass(frozen=True, slots=True)
class StockClinic:
    clinic: str
    index: int  # position in the registry: picks the clinic's random streams
    fridges: tuple[str, ...]  # its refrigerators (vaccines are kept there), the first is the main one
    nurses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StockSites:
    store: str  # the district store's site id (the bureau's id)
    store_equipment: str
    keeper: str  # who records the store's movements
    clinics: tuple[StockClinic, ...]


def build_stock_sites(registry: RegistryFile, clinic_ids: Sequence[str]) -> StockSites:
    """The simulated clinics that have a refrigerator, and the district store; ``ValueError`` (one line)
    when none has one."""
    index = {c.id: i for i, c in enumerate(registry.clinics())}
    by_id = {c.id: c for c in registry.clinics()}
    out = []
    for cid in clinic_ids:
        clinic = by_id[cid]
        fridges = tuple(e.id for e in clinic.equipment if e.profile == Profile.refrigerator)
        if not fridges:
            continue
        nurses = tuple(p.id for p in clinic.people if p.role == "nurse") or tuple(p.id for p in clinic.people)
        out.append(StockClinic(cid, index[cid], fridges, nurses or (f"{cid}-nurse",)))
    if not out:
        raise ValueError("--stock: none of the simulated clinics has a refrigerator to keep vaccines in")
    bureau = registry.district.bureau
    keeper = bureau.people[0].id if bureau.people else f"{bureau.id}-store"
    return StockSites(bureau.id, f"{bureau.id}-store", keeper, tuple(out))


# ------------------------------------------------------------------ the flow


@dataclass(frozen=True, slots=True)
class _Op:
    t: float
    n: int  # planning order: ties at one time keep it, and it makes the ident
    product: str
    lot_number: str
    expiry: str
    kind: Kind
    clinic: str
    equipment: str
    doses: int
    person: str
    to_clinic: str | None = None
    to_equipment: str | None = None
    reason: str | None = None
    source: str | None = None


@dataclass(slots=True)
class _Lot:
    product: str
    number: str
    expiry: str
    doses_per_vial: int


@dataclass(slots=True)
class _Books:
    """The flow's own books: (lot number, site, appliance) -> doses."""

    doses: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, key: tuple[str, str, str], n: int) -> None:
        self.doses[key] += n
        if self.doses[key] < 0:
            raise AssertionError(f"the simulated stock of {key} went negative")


def _lot_number(product: str, month: date) -> str:
    return f"{product.upper()}{month:%y%m}"


def _expiry(month: date) -> str:
    y, m = divmod(month.month - 1 + SHELF_MONTHS + 1, 12)
    return (date(month.year + y, m + 1, 1) - timedelta(days=1)).isoformat()


class StockFlow:
    """The stock movements of ``sites`` from ``start`` (until ``end``, or for ever), recorded into
    ``sql`` through ``core.stock.record``. Drive it with ``next_time``/``publish_next`` (the engine's
    side stream: the sink is not used) or ``run_until``."""

    def __init__(
        self,
        sites: StockSites,
        sql: Engine,
        *,
        seed: int,
        start: float,
        end: float | None = None,
        mismatch: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if mismatch is not None and mismatch not in {c.clinic for c in sites.clinics}:
            known = ", ".join(c.clinic for c in sites.clinics)
            raise ValueError(
                f"--stock-mismatch {mismatch}: not a simulated clinic with a refrigerator ({known})"
            )
        self.sites = sites
        self.sql = sql
        self.seed = seed
        self.start = float(start)
        self.end = end
        self.mismatch = mismatch
        self.progress = progress
        ensure_products(sql)
        self.per_vial = {p["id"]: int(p["doses_per_vial"]) for p in load_catalogue(CATALOGUE)}
        self.books = _Books()
        self.lots: dict[str, _Lot] = {}
        self.lot_ids: dict[str, int] = {}
        self.pending: list[_Op] = []
        self.day = day_number(self.start)
        self.delivered: set[tuple[int, int]] = set()
        self.n = 0
        self.counts: dict[str, int] = defaultdict(int)
        self.doses: dict[str, int] = defaultdict(int)
        self.stockouts = 0
        self.refused: list[str] = []
        self.truth: dict[str, Any] | None = None
        self.last_time = -math.inf
        self._reported_day: int | None = None

    # -------------------------------------------------------------- driving

    def next_time(self) -> float:
        """When the next movement is due (``math.inf``: no more before ``end``)."""
        while not self.pending:
            if self.end is not None and day_start(self.day) >= self.end:
                return math.inf
            self._plan_day(self.day)
            self.day += 1
        return self.pending[0].t

    def publish_next(self, sink: object = None) -> None:
        """Record every movement due at ``next_time()`` (``sink``: unused, stock is not MQTT)."""
        t = self.next_time()
        if t == math.inf:
            return
        due = []
        while self.pending and self.pending[0].t == t:
            due.append(self.pending.pop(0))
        with Session(self.sql) as s:
            for op in due:
                self._record(s, op)
            s.commit()
        self.last_time = t
        if self.progress is not None and day_number(t) != self._reported_day:
            self._reported_day = day_number(t)
            self.progress(self._progress_line(t))

    def run_until(self, end: float) -> None:
        while self.next_time() < end:
            self.publish_next()

    def _record(self, s: Session, op: _Op) -> None:
        info = self.lots[op.lot_number]
        lot_id = self.lot_ids.get(op.lot_number)
        if lot_id is None:
            lot_id = lot(s, info.product, info.number, info.expiry, "示范疫苗厂（虚构）").id
            self.lot_ids[op.lot_number] = lot_id
        m = Movement(
            lot_id,
            op.kind,
            op.clinic,
            op.equipment,
            op.doses,
            op.t,
            op.person,
            to_clinic_id=op.to_clinic,
            to_equipment_id=op.to_equipment,
            reason=op.reason,
            source=op.source,
            ident=f"sim-{self.seed}-{int(self.start)}-{op.n}",
        )
        try:
            record(s, m, op.t)  # a refusal stores nothing
        except StockError as exc:
            self.refused.append(f"{op.kind.value} {op.doses} {op.lot_number} at {op.clinic}: {exc}")
            return
        self.counts[op.kind.value] += 1
        self.doses[op.kind.value] += op.doses

    # -------------------------------------------------------------- planning

    def _push(self, t: float, lot_: _Lot, kind: Kind, clinic: str, equipment: str, doses: int, person: str,
              **kw: Any) -> None:  # fmt: skip
        t = max(t, self.start)
        self.n += 1
        self.pending.append(
            _Op(
                t,
                self.n,
                lot_.product,
                lot_.number,
                lot_.expiry,
                kind,
                clinic,
                equipment,
                doses,
                person,
                **kw,
            )
        )
        self._apply(self.pending[-1])

    def _apply(self, op: _Op) -> None:
        b = self.books
        key = (op.lot_number, op.clinic, op.equipment)
        if op.kind is Kind.received:
            b.add(key, op.doses)
        elif op.kind is Kind.moved:
            b.add(key, -op.doses)
            b.add((op.lot_number, op.to_clinic or op.clinic, op.to_equipment or ""), op.doses)
        else:
            b.add(key, -op.doses)

    def _rng(self, clinic: StockClinic | None, day: int) -> np.random.Generator:
        who = -1 if clinic is None else clinic.index
        return np.random.Generator(np.random.PCG64([self.seed % (1 << 32), who + 1, day]))

    def _plan_day(self, day: int) -> None:
        before = len(self.pending)
        midnight = day_start(day)
        d = datetime.fromtimestamp(midnight, CLINIC_TZ).date()
        weekday = d.weekday()
        first_day = day == day_number(self.start)
        month_key = (d.year, d.month)
        if month_key not in self.delivered and (first_day or weekday < 5):
            self.delivered.add(month_key)
            # on the first day, from the start on (the check-in is then before the next day's session)
            late = max(0.0, math.ceil((self.start - midnight - RECEIVE_S) / MIN) * MIN) if first_day else 0.0
            self._deliver(d, midnight + late)
        if weekday < 5 and not first_day:  # nothing checked in yet on the first day
            for c in self.sites.clinics:
                self._session(c, self._rng(c, day), d, midnight)
        self.pending[before:] = sorted(self.pending[before:], key=lambda o: (o.t, o.n))
        self.pending = [o for o in self.pending if self.end is None or o.t < self.end]

    def _stock(self, clinic: str, product: str) -> int:
        return sum(
            n
            for (num, c, _e), n in self.books.doses.items()
            if c == clinic and self.lots[num].product == product
        )

    def _deliver(self, d: date, midnight: float) -> None:
        month = d.replace(day=1)
        store, eq, keeper = self.sites.store, self.sites.store_equipment, self.sites.keeper
        for p in SCHEDULE:
            per_vial = self.per_vial[p.id]
            unit = BOX if per_vial == 1 else per_vial
            number = _lot_number(p.id, month)
            lot_ = self.lots.setdefault(number, _Lot(p.id, number, _expiry(month), per_vial))
            use = p.mean * len(p.weekdays) * 52 / 12  # doses a month
            if per_vial > 1:
                use *= 1.5  # the opened vials' remainders
            target = math.ceil(use * MONTHS_OF_STOCK / unit) * unit
            wants = []
            for i, c in enumerate(self.sites.clinics):
                need = target - self._stock(c.clinic, p.id)
                if need > 0:
                    wants.append((i, c, math.ceil(need / unit) * unit))
            total = sum(n for _, _, n in wants)
            if not total:
                continue
            self._push(midnight + RECEIVE_S, lot_, Kind.received, store, eq, total, keeper, source=SOURCE)
            for i, c, n in wants:
                at = midnight + ISSUE_S + i * MIN
                self._push(
                    at, lot_, Kind.moved, store, eq, n, keeper, to_clinic=c.clinic, to_equipment=TRANSIT
                )
                got = n
                if self.mismatch == c.clinic and self.truth is None:
                    got = n - MISMATCH_SHORT
                    self.truth = {
                        "clinic": c.clinic,
                        "product": p.id,
                        "lot": number,
                        "issued": n,
                        "checked_in": got,
                        "short": MISMATCH_SHORT,
                    }
                nurse = c.nurses[0]
                at = midnight + CHECK_IN_S + i * MIN
                self._push(at, lot_, Kind.moved, c.clinic, TRANSIT, got, nurse, to_equipment=c.fridges[0])

    def _session(self, c: StockClinic, rng: np.random.Generator, d: date, midnight: float) -> None:
        nurse = c.nurses[int(rng.integers(len(c.nurses)))]
        today = d.isoformat()
        for k, p in enumerate(SCHEDULE):
            n = int(rng.poisson(p.mean))  # drawn every day, so one product's day never shifts another's
            if d.weekday() not in p.weekdays or n == 0:
                continue
            per_vial = self.per_vial[p.id]
            need = n
            for key in self._fefo(c, p.id, today):
                if need == 0:
                    break
                have = self.books.doses[key]
                lot_ = self.lots[key[0]]
                vials = min(have // per_vial, math.ceil(need / per_vial))
                if vials == 0:
                    continue
                used = min(need, vials * per_vial)
                at = midnight + SESSION_S + k * 20 * MIN
                self._push(at, lot_, Kind.administered, c.clinic, key[2], used, nurse)
                left = vials * per_vial - used
                if per_vial > 1 and left:
                    end = midnight + SESSION_END_S + k * MIN
                    self._push(
                        end, lot_, Kind.wasted, c.clinic, key[2], left, nurse, reason="opened_vial_expiry"
                    )
                need -= used
            self.stockouts += need
        if rng.random() < BREAK_P:
            singles = [
                key for p in SCHEDULE if self.per_vial[p.id] == 1 for key in self._fefo(c, p.id, today)
            ]
            if singles:
                key = singles[int(rng.integers(len(singles)))]
                lot_ = self.lots[key[0]]
                self._push(midnight + BREAK_S, lot_, Kind.wasted, c.clinic, key[2], 1, nurse, reason="broken")
        if len(c.fridges) > 1 and rng.random() < MOVE_P:
            held = [
                (n, key) for key, n in self.books.doses.items() if key[1] == c.clinic and key[2] in c.fridges
            ]
            held = [(n, key) for n, key in held if n >= 2 * self.lots[key[0]].doses_per_vial]
            if held:
                n, key = max(held)
                per_vial = self.lots[key[0]].doses_per_vial
                doses = (n // per_vial // 2) * per_vial
                to = next(f for f in c.fridges if f != key[2])
                at = midnight + MOVE_S
                self._push(at, self.lots[key[0]], Kind.moved, c.clinic, key[2], doses, nurse, to_equipment=to)

    def _fefo(self, c: StockClinic, product: str, today: str) -> list[tuple[str, str, str]]:
        """The clinic's places holding ``product`` in its refrigerators, first expiry first, main one
        first; expired lots left out."""
        keys = [
            key
            for key, n in self.books.doses.items()
            if n > 0
            and key[1] == c.clinic
            and key[2] in c.fridges
            and self.lots[key[0]].product == product
            and self.lots[key[0]].expiry >= today
        ]
        return sorted(keys, key=lambda k: (self.lots[k[0]].expiry, k[0], c.fridges.index(k[2])))

    # -------------------------------------------------------------- results

    def _progress_line(self, t: float) -> str:
        local = datetime.fromtimestamp(t, CLINIC_TZ).strftime("%Y-%m-%d")
        total = sum(self.counts.values())
        return f"[simulate] stock: up to {local}: {total} movements, {self.doses['administered']} doses given"

    def summary(self, end: float) -> dict[str, Any]:
        """What was recorded up to ``end``, and the deliberate mismatch (None without one)."""
        return {
            "clinics": len(self.sites.clinics),
            "store": self.sites.store,
            "movements": sum(self.counts.values()),
            "by_kind": dict(sorted(self.counts.items())),
            "doses": dict(sorted(self.doses.items())),
            "lots": len(self.lot_ids),
            "stockout_doses": self.stockouts,
            "refused": len(self.refused),
            "refusals": self.refused[:10],
            "mismatch": self.truth,
            "recorded_until": None if self.last_time == -math.inf else self.last_time,
            "end": end,
        }


class SideStreams:
    """Several side streams (``simulators.engine.SideStream``) as one, for the engine: each publishes
    at its own times; the summary is the first one's (the waste flow's, in the ``waste`` field)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def next_time(self) -> float:
        return min(s.next_time() for s in self.streams)

    def publish_next(self, sink: Any) -> None:
        t = self.next_time()
        for s in self.streams:
            if s.next_time() == t:
                s.publish_next(sink)
                return

    def summary(self, end: float) -> dict[str, Any]:
        return self.streams[0].summary(end)
