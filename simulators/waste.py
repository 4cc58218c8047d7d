"""The medical-waste chain of custody, simulated: waste scanners publishing protocol v1 waste events
(DESIGN §3) for every bag from the ward to the disposal plant, with the anomalies of a scenario and a
ground truth of what the server's waste rules (DESIGN §5) should raise. Pure: no MQTT, no clock.

The flow, per clinic (clinic local time, UTC+8):

- ``generated``: bags are labelled and weighed on the ward between 08:00 and 18:00, per day and
  category a Poisson count (infectious λ 6, sharps 1, pathological 0.2, pharmaceutical 0.3, chemical
  0.1) with a uniform weight (``MIX``); the operator is one of the clinic's nurses.
- ``collected`` and ``stored``: porter rounds at 11:00 and 17:00 take every bag generated before the
  round (``{clinic}-porter``); each later scan re-weighs the bag (±0.5 %, at most ±0.02 kg).
- ``handed_over``: on the clinic's pickup days the transporter takes every stored bag, one manifest
  ``MF-{clinic}-{YYYYMMDD}-{n}`` per visit, between 09:00 and 15:00 and before ``by``; the visit comes
  after the 11:00 round's bags are stored, so no stored bag is left waiting at ``by`` (that is the
  ``late_pickup`` rule). Scanned on the clinic's scanner.
- ``received`` 2–6 h later on the plant's scanner, ``disposed`` 1–20 h after receipt (counterparty
  the plant), both on ``cw/v1/{clinic}/{plant scanner}/waste``.

With a pickup every day no bag waits 24 h on the ward (the longest: 17:00–18:00 to 11:00 the next
day) or 36 h in the store. Bags generated before the simulation start are not simulated at all (the
server would not know them). Bag ids are ``{clinic}-{YYYYMMDD}-{NNNN}`` (local date of generation,
numbered from 0001 each day); event ids are uuid4 strings drawn from the seed. Every random draw
comes from a stream of its own per (seed, clinic, day), so the same seed gives the same events and
ids, whatever the speed, and whatever other clinics are simulated.

Anomalies are the waste kinds of ``simulators.scenario``; each is recorded in the ground truth with
the rule the server should raise and its subject (``EXPECTED_RULE``), and touches nothing else.

``WasteFlow.messages()`` yields ``WasteMessage``s (publication time, topic, payload, ...) in
publication order; the engine drives the same flow through ``next_time``/``publish_next`` to
interleave it with the gateways' telemetry. ``summary(end)`` is the ground truth for the JSON result.
"""

from __future__ import annotations

import heapq
import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from core.protocol import Stage
from core.registry_model import DeviceKind, RegistryFile, WastePickup, Weekday
from simulators.gateway import status_payload, status_topic
from simulators.publisher import DeviceRef, Sink
from simulators.scenario import LOCAL_TZ, Kind, ResolvedEvent, ScenarioError, iso_utc

HOUR = 3600
WORK_START_S = 8 * HOUR  # bags are generated on the ward 08:00–18:00
WORK_END_S = 18 * HOUR
ROUNDS_S = (11 * HOUR, 17 * HOUR)  # porter rounds
PICKUP_EARLIEST_S = 9 * HOUR
PICKUP_LATEST_S = 15 * HOUR
PLANT_AFTER_S = (2 * HOUR, 6 * HOUR)  # handed over -> received
DISPOSE_AFTER_S = (1 * HOUR, int(19.5 * HOUR))  # received -> disposed (the last bag within 20 h)
STORE_WARNING_S = 36 * HOUR  # DESIGN §5 storage overdue (warning)
CLOSED_AGE_H = 72.0  # closed-loop rate: bags generated at least this long before the end
MAX_EVENTS = 500  # per message, as telemetry records
DUPLICATE_EXTRA_KG = 0.4
WEIGHT_NOISE = 0.005  # re-weighing: ±0.5 %, at most ±0.02 kg
WEIGHT_NOISE_MAX_KG = 0.02
LOSS_MIN_KG = 0.15  # a weight_loss bag loses at least this much (tolerance 0.1 kg, plus noise)
BAG_SUFFIX_LEN = len("-20261122-0007")
BAG_ID_MAX = 64  # core.protocol.BAG_RE
_TAG = 0x57A57E  # separates the waste streams from the engine's


@dataclass(frozen=True, slots=True)
class CategoryMix:
    category: str
    per_day: float  # Poisson mean per clinic and day
    min_kg: float
    max_kg: float


MIX = (
    CategoryMix("infectious", 6.0, 0.5, 3.0),
    CategoryMix("sharps", 1.0, 0.3, 1.5),
    CategoryMix("pathological", 0.2, 0.5, 2.0),
    CategoryMix("pharmaceutical", 0.3, 0.2, 1.0),
    CategoryMix("chemical", 0.1, 0.2, 1.0),
)

EXPECTED_RULE: dict[Kind, str | None] = {
    Kind.missed_pickup: "late_pickup",
    Kind.lost_bag: "lost_in_transport",
    Kind.weight_loss: "weight_discrepancy",
    Kind.duplicate_scan: "out_of_sequence",
    Kind.out_of_order_scan: "out_of_sequence",
    Kind.refused_bag: "refused_at_plant",
    Kind.scanner_offline: "device_offline",
    Kind.resend: None,  # at-least-once delivery: no alert at all
}
_BAG_AT_PICKUP = (Kind.lost_bag, Kind.weight_loss, Kind.refused_bag)


def waste_topic(clinic: str, device: str) -> str:
    return f"cw/v1/{clinic}/{device}/waste"


# ------------------------------------------------------------------ who takes part


@dataclass(frozen=True, slots=True)
class WasteClinic:
    clinic: str
    index: int  # position in the registry: picks the clinic's random streams
    scanner: str
    nurses: tuple[str, ...]
    pickup_days: frozenset[int]  # date.weekday()
    by_s: int  # pickup deadline, seconds after local midnight
    scheduled: bool  # False: the registry gives no pickup schedule (simulated daily by 16:00)


@dataclass(frozen=True, slots=True)
class WasteSites:
    clinics: tuple[WasteClinic, ...]
    transporter: str
    plant: str
    plant_scanner: str
    vehicles: tuple[str, ...] = ()  # the transporter's; a clinic's pickups use one of them

    def vehicle(self, clinic_index: int) -> str | None:
        return self.vehicles[clinic_index % len(self.vehicles)] if self.vehicles else None

    def device_refs(self) -> list[DeviceRef]:
        """The scanners as MQTT devices. The plant's scanner publishes on its bags' clinics' topics;
        its own status (and last will) goes under the plant id: ``cw/v1/{plant}/{scanner}/status``."""
        refs = [DeviceRef(c.clinic, c.scanner) for c in self.clinics]
        return [*refs, DeviceRef(self.plant, self.plant_scanner)]


def _hhmm_s(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * HOUR + int(minutes) * 60


def build_sites(registry: RegistryFile, clinic_ids: Sequence[str]) -> WasteSites:
    """The simulated clinics that have a waste scanner, the transporter and the plant; ``ValueError``
    (one line) when the registry lacks what the flow needs."""
    transporters = registry.district.waste.transporters
    if not transporters:
        raise ValueError("--waste: the registry has no waste transporter (district.waste.transporters)")
    plants = [
        (p, d)
        for p in registry.district.waste.plants
        for d in p.devices
        if d.kind == DeviceKind.waste_scanner
    ]
    if not plants:
        raise ValueError("--waste: the registry has no disposal plant with a waste_scanner device")
    plant, plant_scanner = plants[0]
    weekdays = list(Weekday)
    index = {c.id: i for i, c in enumerate(registry.clinics())}
    by_id = {c.id: c for c in registry.clinics()}
    out: list[WasteClinic] = []
    for cid in clinic_ids:
        clinic = by_id[cid]
        scanners = [d.id for d in clinic.devices if d.kind == DeviceKind.waste_scanner]
        if not scanners:
            continue
        if len(cid) + BAG_SUFFIX_LEN > BAG_ID_MAX:
            raise ValueError(
                f"--waste: clinic id {cid} is too long for bag ids {cid}-YYYYMMDD-NNNN "
                f"(at most {BAG_ID_MAX} characters)"
            )
        nurses = tuple(p.id for p in clinic.people if p.role == "nurse") or tuple(p.id for p in clinic.people)
        pickup = clinic.waste_pickup or WastePickup()
        out.append(
            WasteClinic(
                clinic=cid,
                index=index[cid],
                scanner=scanners[0],
                nurses=nurses or (f"{cid}-nurse",),
                pickup_days=frozenset(weekdays.index(d) for d in pickup.days),
                by_s=_hhmm_s(pickup.by),
                scheduled=clinic.waste_pickup is not None,
            )
        )
    if not out:
        raise ValueError("--waste: none of the simulated clinics has a waste_scanner device")
    return WasteSites(tuple(out), transporters[0].id, plant.id, plant_scanner.id, transporters[0].vehicles)


# ------------------------------------------------------------------ messages


class WasteMessage(NamedTuple):
    time: float  # when it is published (simulated time)
    topic: str
    payload: bytes
    retain: bool = False
    clinic: str = ""
    events: tuple[dict[str, Any], ...] = ()  # the waste events in it (none for a status)
    marks: tuple[int, ...] = ()  # anomalies whose trouble this message carries


def jsonl_lines(message: WasteMessage) -> list[str]:
    """One JSON line per waste event of a published message, with the bag's ``clinic`` added (the
    input of ``chainwatch waste replay``)."""
    return [
        json.dumps({**ev, "clinic": message.clinic}, ensure_ascii=False, separators=(",", ":"))
        for ev in message.events
    ]


def _encode(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(slots=True)
class _Scan:
    clinic: str
    device: str
    event: dict[str, Any]
    marks: tuple[int, ...] = ()
    original: bool = True  # False for a resent or duplicated copy


@dataclass(slots=True)
class _Status:
    clinic: str
    device: str
    state: str
    marks: tuple[int, ...] = ()


@dataclass(slots=True)
class _Release:
    clinic: str
    device: str


# ------------------------------------------------------------------ the flow


@dataclass(slots=True)
class _Bag:
    id: str
    category: str
    weight: float
    generated: int
    stored: int = 0


@dataclass(slots=True)
class _ClinicState:
    site: WasteClinic
    ward: list[_Bag] = field(default_factory=list)
    store: list[_Bag] = field(default_factory=list)
    manifests: dict[date, int] = field(default_factory=dict)  # visits per local date


@dataclass(slots=True)
class _Anomaly:
    index: int
    event: ResolvedEvent
    clinic: str
    rng: np.random.Generator
    subject: str | None = None
    manifest: str | None = None
    done: bool = False  # its bag (or day) is chosen
    reached: bool = False  # its trouble was published
    due: float | None = None  # missed_pickup: the deadline the bags were waiting at
    remaining: int = 0  # resend: events still to send twice

    @property
    def kind(self) -> Kind:
        return self.event.kind

    @property
    def at(self) -> float:
        return self.event.start


def _midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).timestamp())


def _local_date(t: float) -> date:
    return datetime.fromtimestamp(t, LOCAL_TZ).date()


def _seed(seed: int) -> int:
    return seed % (1 << 64)


class WasteFlow:
    """The waste events of ``sites`` from ``start`` on (until ``end``, or for ever), with the waste
    anomalies among ``events`` (other kinds are ignored). Raises ``ScenarioError`` for an anomaly
    that does not fit the registry."""

    def __init__(
        self,
        sites: WasteSites,
        *,
        seed: int,
        start: float,
        end: float | None = None,
        events: Sequence[ResolvedEvent] = (),
        on_publish: Callable[[WasteMessage], None] | None = None,
    ) -> None:
        self.sites = sites
        self.seed = seed
        self.start = math.ceil(start)
        self.end = end
        self.on_publish = on_publish
        self._states = [_ClinicState(c) for c in sites.clinics]
        self._site = {c.clinic: c for c in sites.clinics}
        self._first_day = _local_date(self.start)
        self._heap: list[tuple[float, int, int, _Scan | _Status | _Release]] = []
        self._seq = 0
        self._claimed: set[str] = set()
        self._offline: dict[str, list[tuple[float, float]]] = {}
        self._buffers: dict[str, list[_Scan]] = {}
        self.anomalies = self._check([e for e in events if e.waste])
        self._missed = {
            (a.clinic, _local_date(a.at)): a for a in self.anomalies if a.kind == Kind.missed_pickup
        }
        for a in self.anomalies:
            if a.kind == Kind.scanner_offline:
                self._schedule_offline(a)
            elif a.kind == Kind.resend:
                a.remaining = a.event.count or 0
        # the ground truth: what was published
        self.n_events = 0
        self.n_messages = 0
        self.n_status = 0
        self._generated: dict[str, tuple[str, float]] = {}  # bag -> (clinic, generated ts)
        self._disposed: set[str] = set()
        self._refused: set[str] = set()
        self._gen = self._generate()
        self._peek: WasteMessage | None = None

    # -------------------------------------------------------------- anomalies against the registry

    def _check(self, events: list[ResolvedEvent]) -> list[_Anomaly]:
        out: list[_Anomaly] = []
        missed: dict[tuple[str, date], str] = {}
        offline: dict[str, list[tuple[float, float, str]]] = {}
        for i, ev in enumerate(events):
            where = ev.where or ev.label
            clinic = ev.clinics[0]
            site = self._site.get(clinic)
            if site is None:
                raise ScenarioError(
                    f"{where}.clinic: clinic {clinic} has no waste_scanner device in the registry"
                )
            if ev.kind == Kind.missed_pickup:
                self._check_missed(ev, site, where, missed)
            elif ev.kind == Kind.scanner_offline:
                for begin, end, other in offline.get(clinic, []):
                    if ev.start < end and begin < ev.end:
                        raise ScenarioError(f"{where}: overlaps {other} (one outage at a time per scanner)")
                offline.setdefault(clinic, []).append((ev.start, ev.end, where))
            stream = np.random.SeedSequence([_seed(self.seed), _TAG, 1 << 20, i])
            out.append(_Anomaly(i, ev, clinic, np.random.Generator(np.random.PCG64(stream))))
        return out

    def _check_missed(
        self, ev: ResolvedEvent, site: WasteClinic, where: str, missed: dict[tuple[str, date], str]
    ) -> None:
        day = _local_date(ev.start)
        names = [d.value for d in Weekday]
        if not site.scheduled:
            raise ScenarioError(
                f"{where}.clinic: clinic {site.clinic} has no waste_pickup schedule in the registry: "
                "no pickup to miss"
            )
        if day.weekday() not in site.pickup_days:
            days = ", ".join(names[d] for d in sorted(site.pickup_days))
            raise ScenarioError(
                f"{where}.at: {day} is a {names[day.weekday()]}, not a pickup day of {site.clinic} ({days})"
            )
        late_h = ev.late_h or 0.0
        if site.by_s + late_h * HOUR > 28 * HOUR:
            by = f"{site.by_s // HOUR:02d}:{site.by_s % HOUR // 60:02d}"
            raise ScenarioError(
                f"{where}.late_h: a visit {late_h:g} h after {by} is after 04:00 the next day: bags "
                "stored the evening before would wait 36 h or more"
            )
        before = day - timedelta(days=1)
        if before >= self._first_day and before.weekday() not in site.pickup_days:
            raise ScenarioError(
                f"{where}.at: {site.clinic} has no pickup on {before} either: bags would wait 36 h or more"
            )
        for other_day in (day, before, day + timedelta(days=1)):
            other = missed.get((site.clinic, other_day))
            if other is not None:
                raise ScenarioError(
                    f"{where}.at: {other} misses the pickup of {site.clinic} on {other_day}: two missed "
                    "pickups in a row (or on one day) would leave bags 36 h or more in the store"
                )
        missed[(site.clinic, day)] = where

    def _schedule_offline(self, a: _Anomaly) -> None:
        begin, end = max(a.at, self.start), a.event.end
        if end <= begin:
            return
        scanner = self._site[a.clinic].scanner
        self._offline.setdefault(scanner, []).append((begin, end))
        self._push(begin, _Status(a.clinic, scanner, "offline", (a.index,)), prio=0)
        self._push(end, _Status(a.clinic, scanner, "online"), prio=0)
        self._push(end, _Release(a.clinic, scanner), prio=0)

    # -------------------------------------------------------------- planning, a day at a time

    def _push(self, t: float, item: _Scan | _Status | _Release, prio: int = 1) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, prio, self._seq, item))

    def _rng(self, site: WasteClinic, day: date) -> np.random.Generator:
        stream = np.random.SeedSequence([_seed(self.seed), _TAG, site.index, day.toordinal()])
        return np.random.Generator(np.random.PCG64(stream))

    @staticmethod
    def _uniform_s(rng: np.random.Generator, lo: float, hi: float) -> int:
        return int(rng.integers(int(lo), int(hi) + 1))

    @staticmethod
    def _reweigh(rng: np.random.Generator, kg: float) -> float:
        noise = min(WEIGHT_NOISE * kg, WEIGHT_NOISE_MAX_KG)
        return max(0.01, round(kg + float(rng.uniform(-noise, noise)), 2))

    def _event(
        self,
        rng: np.random.Generator,
        bag: _Bag,
        stage: Stage,
        ts: int,
        weight: float,
        operator: str,
        manifest: str | None = None,
        counterparty: str | None = None,
        vehicle: str | None = None,
    ) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "event_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            "bag_id": bag.id,
            "stage": stage.value,
            "category": bag.category,
            "weight_kg": weight,
            "ts": ts,
            "operator": operator,
        }
        if manifest is not None:
            ev["manifest_id"] = manifest
            ev["counterparty"] = counterparty
        if vehicle is not None and stage in (Stage.handed_over, Stage.received):
            ev["vehicle"] = vehicle
        return ev

    def _clinic_scan(self, st: _ClinicState, ev: dict[str, Any], marks: tuple[int, ...] = ()) -> None:
        self._push(ev["ts"], _Scan(st.site.clinic, st.site.scanner, ev, marks))

    def _plant_scan(self, st: _ClinicState, ev: dict[str, Any], marks: tuple[int, ...] = ()) -> None:
        self._push(ev["ts"], _Scan(st.site.clinic, self.sites.plant_scanner, ev, marks))

    def _pending(self, clinic: str, *kinds: Kind) -> list[_Anomaly]:
        return [a for a in self.anomalies if a.clinic == clinic and a.kind in kinds and not a.done]

    def _plan_day(self, st: _ClinicState, day: date) -> None:
        site = st.site
        rng = self._rng(site, day)
        midnight = _midnight(day)
        drawn: list[tuple[int, str, float, str]] = []
        for mix in MIX:
            for _ in range(int(rng.poisson(mix.per_day))):
                t = midnight + int(rng.integers(WORK_START_S, WORK_END_S))
                kg = round(float(rng.uniform(mix.min_kg, mix.max_kg)), 2)
                drawn.append((t, mix.category, kg, site.nurses[int(rng.integers(len(site.nurses)))]))
        missed = self._missed.get((site.clinic, day))
        if missed is not None:
            # late_pickup needs stored bags waiting at the deadline: make sure there is one
            first_round = midnight + ROUNDS_S[0]
            waiting = st.store or [b for b in st.ward if b.generated < first_round]
            morning = [t for t, *_ in drawn if self.start <= t < first_round]
            lo = max(midnight + WORK_START_S, self.start)
            if not waiting and not morning and lo < first_round - 1800:
                t = self._uniform_s(rng, lo, first_round - 1800)
                drawn.append((t, "infectious", round(float(rng.uniform(0.5, 3.0)), 2), site.nurses[0]))
        drawn.sort(key=lambda d: d[0])
        stamp = day.strftime("%Y%m%d")
        for k, (t, category, kg, nurse) in enumerate(drawn, start=1):
            if t < self.start:
                continue  # the bag belongs to the time before the simulation: not simulated
            bag = _Bag(f"{site.clinic}-{stamp}-{k:04d}", category, kg, t)
            st.ward.append(bag)
            self._clinic_scan(st, self._event(rng, bag, Stage.generated, t, kg, nurse))

        self._round(st, rng, midnight + ROUNDS_S[0])
        pickup_day = day.weekday() in site.pickup_days
        actions: list[tuple[int, str]] = [(midnight + ROUNDS_S[1], "round")]
        deadline = midnight + site.by_s
        if pickup_day and missed is None:
            actions.append((self._pickup_time(st, rng, midnight), "pickup"))
        elif missed is not None:
            actions.append((deadline, "deadline"))
            actions.append((deadline + round((missed.event.late_h or 0.0) * HOUR), "pickup"))
        for t, what in sorted(actions, key=lambda a: (a[0], a[1] != "deadline")):
            if what == "round":
                self._round(st, rng, t)
            elif what == "pickup":
                self._pickup(st, rng, t)
            elif missed is not None and any(b.stored < t for b in st.store):
                missed.done = True
                missed.subject = site.clinic
                missed.due = t

    def _pickup_time(self, st: _ClinicState, rng: np.random.Generator, midnight: int) -> int:
        """Between 09:00 and 15:00 and before ``by``, but after the bags stored before ``by``."""
        by = midnight + st.site.by_s
        lo = midnight + PICKUP_EARLIEST_S
        stored = [b.stored for b in st.store if b.stored < by]
        if stored:
            lo = max(lo, max(stored) + 300)
        hi = min(midnight + PICKUP_LATEST_S, by - 600)
        return self._uniform_s(rng, lo, max(lo, hi))

    def _round(self, st: _ClinicState, rng: np.random.Generator, t: int) -> None:
        taken = [b for b in st.ward if b.generated < t]
        if not taken:
            return
        st.ward = [b for b in st.ward if b.generated >= t]
        porter = f"{st.site.clinic}-porter"
        when = t + self._uniform_s(rng, 60, 300)
        for bag in taken:
            ev = self._event(rng, bag, Stage.collected, when, self._reweigh(rng, bag.weight), porter)
            self._clinic_scan(st, ev)
            when += self._uniform_s(rng, 15, 45)
        when += self._uniform_s(rng, 300, 1200)
        for bag in taken:
            bag.stored = when
            ev = self._event(rng, bag, Stage.stored, when, self._reweigh(rng, bag.weight), porter)
            self._clinic_scan(st, ev)
            self._duplicate(st, bag, ev)
            when += self._uniform_s(rng, 10, 30)
        st.store.extend(taken)

    def _duplicate(self, st: _ClinicState, bag: _Bag, stored: dict[str, Any]) -> None:
        for a in self._pending(st.site.clinic, Kind.duplicate_scan):
            if a.at <= stored["ts"] and bag.id not in self._claimed:
                a.done, a.subject = True, bag.id
                self._claimed.add(bag.id)
                copy = {**stored, "weight_kg": round(stored["weight_kg"] + DUPLICATE_EXTRA_KG, 2)}
                when = stored["ts"] + self._uniform_s(a.rng, 30, 120)  # before the bag's next scan
                self._push(when, _Scan(st.site.clinic, st.site.scanner, copy, (a.index,), original=False))
                return

    def _choose(self, a: _Anomaly, bags: list[_Bag], special: dict[str, _Anomaly]) -> _Bag | None:
        free = [b for b in bags if b.id not in self._claimed]
        if a.kind == Kind.lost_bag:
            arriving = [b for b in bags if b.id not in special or special[b.id].kind != Kind.lost_bag]
            if len(arriving) < 2:
                return None  # the rest of the manifest must arrive, so the loss shows on it
        if a.kind == Kind.weight_loss:
            share = (a.event.loss_pct or 0.0) / 100.0
            free = [b for b in free if b.weight * share >= LOSS_MIN_KG]
        if not free:
            return None
        return free[int(a.rng.integers(len(free)))]

    def _pickup(self, st: _ClinicState, rng: np.random.Generator, p: int) -> None:
        bags = [b for b in st.store if b.stored < p]
        if not bags:
            return
        st.store = [b for b in st.store if b.stored >= p]
        site, sites = st.site, self.sites
        day = _local_date(p)
        n = st.manifests[day] = st.manifests.get(day, 0) + 1
        manifest = f"MF-{site.clinic}-{day.strftime('%Y%m%d')}-{n}"
        special: dict[str, _Anomaly] = {}
        for a in self._pending(site.clinic, *_BAG_AT_PICKUP):
            if a.at <= p:
                bag = self._choose(a, bags, special)
                if bag is not None:
                    a.done, a.subject, a.manifest = True, bag.id, manifest
                    self._claimed.add(bag.id)
                    special[bag.id] = a
        driver = f"{sites.transporter}-driver1"
        when = p
        handed: list[tuple[_Bag, int]] = []
        for bag in bags:
            ev = self._event(
                rng,
                bag,
                Stage.handed_over,
                when,
                self._reweigh(rng, bag.weight),
                driver,
                manifest,
                sites.transporter,
                sites.vehicle(site.index),
            )
            a = special.get(bag.id)
            self._clinic_scan(st, ev, (a.index,) if a is not None and a.kind == Kind.lost_bag else ())
            handed.append((bag, when))
            when += self._uniform_s(rng, 10, 30)
        for a in self._pending(site.clinic, Kind.out_of_order_scan):
            chosen = next(((b, t) for b, t in handed if t >= a.at and b.id not in self._claimed), None)
            if chosen is not None:
                bag, t = chosen
                a.done, a.subject = True, bag.id
                self._claimed.add(bag.id)
                late = t + self._uniform_s(a.rng, 300, 900)  # still long before the plant
                ev = self._event(
                    a.rng, bag, Stage.stored, late, self._reweigh(a.rng, bag.weight), f"{site.clinic}-porter"
                )
                self._clinic_scan(st, ev, (a.index,))
        self._plant(st, rng, bags, when, manifest, special)

    def _plant(
        self,
        st: _ClinicState,
        rng: np.random.Generator,
        bags: list[_Bag],
        left: int,
        manifest: str,
        special: dict[str, _Anomaly],
    ) -> None:
        sites = self.sites
        operator = f"{sites.plant}-op1"
        when = left + self._uniform_s(rng, *PLANT_AFTER_S)
        burn: list[tuple[_Bag, float]] = []
        for bag in bags:
            a = special.get(bag.id)
            if a is not None and a.kind == Kind.lost_bag:
                continue
            weight = bag.weight
            if a is not None and a.kind == Kind.weight_loss:
                weight = round(bag.weight * (1.0 - (a.event.loss_pct or 0.0) / 100.0), 2)
            kg = self._reweigh(rng, weight)
            vehicle = sites.vehicle(st.site.index)
            ev = self._event(
                rng, bag, Stage.received, when, kg, operator, manifest, sites.transporter, vehicle
            )
            if a is not None and a.kind == Kind.refused_bag:
                ev["refused_kg"] = kg
                ev["refusal_reason"] = a.event.refusal_reason
            else:
                burn.append((bag, weight))
            self._plant_scan(st, ev, (a.index,) if a is not None else ())
            when += self._uniform_s(rng, 5, 20)
        when += self._uniform_s(rng, *DISPOSE_AFTER_S)
        for bag, weight in burn:
            kg = self._reweigh(rng, weight)
            self._plant_scan(
                st, self._event(rng, bag, Stage.disposed, when, kg, operator, manifest, sites.plant)
            )
            when += self._uniform_s(rng, 5, 20)

    # -------------------------------------------------------------- publication, in time order

    def _generate(self) -> Iterator[WasteMessage]:
        day = self._first_day
        while True:
            for st in self._states:
                self._plan_day(st, day)
            # every later day's scans come after its midnight
            horizon = float(_midnight(day + timedelta(days=1)))
            limit = horizon if self.end is None else min(horizon, self.end)
            while self._heap and self._heap[0][0] < limit:
                t, _, _, item = heapq.heappop(self._heap)
                yield from self._emit(t, item)
            if self.end is not None and horizon >= self.end:
                return
            day += timedelta(days=1)

    def _is_offline(self, device: str, t: float) -> bool:
        return any(b <= t < e for b, e in self._offline.get(device, ()))

    def _emit(self, t: float, item: _Scan | _Status | _Release) -> Iterator[WasteMessage]:
        if isinstance(item, _Status):
            topic = status_topic(item.clinic, item.device)
            yield WasteMessage(t, topic, status_payload(item.state, t), True, item.clinic, (), item.marks)
            return
        if isinstance(item, _Release):
            held = self._buffers.pop(item.device, [])
            topic = waste_topic(item.clinic, item.device)
            for i in range(0, len(held), MAX_EVENTS):
                part = held[i : i + MAX_EVENTS]
                events = tuple(s.event for s in part)
                marks = tuple(m for s in part for m in s.marks)
                yield WasteMessage(t, topic, _encode(list(events)), False, item.clinic, events, marks)
            return
        if item.original:
            for a in self.anomalies:
                if a.kind == Kind.resend and a.clinic == item.clinic and a.remaining > 0 and a.at <= t:
                    a.remaining -= 1
                    a.done = True
                    # before the bag's next scan (at least a minute away)
                    again = _Scan(item.clinic, item.device, item.event, (a.index,), original=False)
                    self._push(t + self._uniform_s(a.rng, 5, 30), again)
        if self._is_offline(item.device, t):
            self._buffers.setdefault(item.device, []).append(item)
            return
        topic = waste_topic(item.clinic, item.device)
        yield WasteMessage(t, topic, _encode(item.event), False, item.clinic, (item.event,), item.marks)

    # -------------------------------------------------------------- consumers

    def messages(self) -> Iterator[WasteMessage]:
        """Every message in publication order (each counts as published when it is yielded)."""
        for m in self._gen:
            self._record(m)
            yield m

    def next_time(self) -> float:
        """When the next message is due (``math.inf``: no more)."""
        if self._peek is None:
            self._peek = next(self._gen, None)
        return math.inf if self._peek is None else self._peek.time

    def publish_next(self, sink: Sink) -> None:
        """Publish every message due at ``next_time()``."""
        t = self.next_time()
        while self._peek is not None and self._peek.time == t:
            m, self._peek = self._peek, None
            sink.publish(m.topic, m.payload, retain=m.retain)
            self._record(m)
            self.next_time()

    def _record(self, m: WasteMessage) -> None:
        if not m.events:
            self.n_status += 1
        else:
            self.n_messages += 1
            self.n_events += len(m.events)
            for ev in m.events:
                stage, bag = ev["stage"], ev["bag_id"]
                if stage == Stage.generated and bag not in self._generated:
                    self._generated[bag] = (m.clinic, float(ev["ts"]))
                elif stage == Stage.disposed:
                    self._disposed.add(bag)
                elif stage == Stage.received and ev.get("refused_kg") is not None:
                    self._refused.add(bag)
        for i in m.marks:
            self.anomalies[i].reached = True
        if self.on_publish is not None:
            self.on_publish(m)

    # -------------------------------------------------------------- the ground truth

    def summary(self, end: float) -> dict[str, Any]:
        """What was published up to ``end`` and what the server's waste rules should raise."""
        cutoff = end - CLOSED_AGE_H * HOUR
        clinics: dict[str, dict[str, Any]] = {}
        for site in self.sites.clinics:
            bags = [b for b, (c, _) in self._generated.items() if c == site.clinic]
            old = [b for b in bags if self._generated[b][1] <= cutoff]
            closed = sum(1 for b in old if b in self._disposed or b in self._refused)
            clinics[site.clinic] = {
                "generated": len(bags),
                "disposed": sum(1 for b in bags if b in self._disposed),
                "refused": sum(1 for b in bags if b in self._refused),
                "closed_loop_rate": round(closed / len(old), 4) if old else None,
            }
        return {
            "events": self.n_events,
            "messages": self.n_messages,
            "status_messages": self.n_status,
            "pending_events": sum(len(b) for b in self._buffers.values()),
            "bags_generated": len(self._generated),
            "bags_disposed": len(self._disposed),
            "bags_refused": len(self._refused),
            "closed_age_h": CLOSED_AGE_H,
            "clinics": clinics,
            "anomalies": [self._truth(a, end) for a in self.anomalies],
        }

    def _truth(self, a: _Anomaly, end: float) -> dict[str, Any]:
        if a.kind == Kind.missed_pickup:
            reached = a.due is not None and a.due < end
        else:
            reached = a.reached
        subject = a.subject
        if a.kind == Kind.scanner_offline:
            subject = self._site[a.clinic].scanner
        also: list[dict[str, str]] = []
        if reached and a.kind == Kind.lost_bag and a.manifest is not None:
            # DESIGN §5 manifest mismatch: the bags received on the manifest differ from those handed over
            also.append({"rule": "manifest_mismatch", "subject": a.manifest})
        return {
            "kind": a.kind.value,
            "clinic": a.clinic,
            "at": iso_utc(a.at),
            "expected_rule": EXPECTED_RULE[a.kind] if reached else None,
            "subject": subject if reached and a.kind != Kind.resend else None,
            "reached": reached,
            "manifest_id": a.manifest,
            "also": also,
        }
