"""Medical-waste scans in SQL: every scan as it came (the bag's full history) and each bag's state.

- ``waste_bag_event``: one row per distinct scan. Idempotent: a scan delivered again with the same
  ``event_id`` and the same content is the same row (``UNIQUE(event_id, fingerprint)``); a scan with a
  known ``event_id`` and other content is kept as a new row with ``conflict`` set — never dropped,
  never overwriting the first.
- ``waste_bag``: what each bag is now, recomputed from its scans whenever one arrives: its stage (the
  furthest reached), the time of the first scan at each stage, the generated and the latest weight, its
  manifest and transporter, the weight the plant refused, and whether its loop is closed (``disposed``,
  or ``refused`` whole at the plant).

The collector writes both in the batch's durability step (``store_waste_events``), before the MQTT
messages are acknowledged; the alerting service rebuilds its waste rules from ``waste_bag_event`` at
start; the web app reads both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Boolean, Double, Engine, Index, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, create_tables
from core.protocol import Stage, WasteEvent

STAGES = (Stage.generated, Stage.collected, Stage.stored, Stage.handed_over, Stage.received, Stage.disposed)
RANK = {s: i for i, s in enumerate(STAGES)}


class WasteBagEventRow(Base):
    __tablename__ = "waste_bag_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint: Mapped[str] = mapped_column(String(40))
    bag_id: Mapped[str] = mapped_column(String(64), index=True)
    clinic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stage: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    weight_kg: Mapped[float] = mapped_column(Double)
    ts: Mapped[float] = mapped_column(Double)
    operator: Mapped[str] = mapped_column(String(200))
    manifest_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    counterparty: Mapped[str | None] = mapped_column(String(200), nullable=True)
    refused_kg: Mapped[float | None] = mapped_column(Double, nullable=True)
    refusal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    vehicle: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[float] = mapped_column(Double, index=True)  # when the server got it
    conflict: Mapped[bool] = mapped_column(Boolean, default=False)  # same event_id, other content

    __table_args__ = (
        UniqueConstraint("event_id", "fingerprint", name="uq_waste_event_content"),
        Index("ix_waste_bag_event_bag_ts", "bag_id", "ts"),
    )

    def event(self) -> WasteEvent:
        from core.protocol import Category

        return WasteEvent(
            self.event_id,
            self.bag_id,
            Stage(self.stage),
            Category(self.category),
            self.weight_kg,
            self.ts,
            self.operator,
            self.manifest_id,
            self.counterparty,
            self.refused_kg,
            self.refusal_reason,
            self.vehicle,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stage": self.stage,
            "category": self.category,
            "weight_kg": self.weight_kg,
            "ts": self.ts,
            "operator": self.operator,
            "manifest_id": self.manifest_id,
            "counterparty": self.counterparty,
            "refused_kg": self.refused_kg,
            "refusal_reason": self.refusal_reason,
            "vehicle": self.vehicle,
            "clinic": self.clinic,
            "device": self.device,
            "received_at": self.received_at,
            "conflict": self.conflict,
        }


class WasteBagRow(Base):
    __tablename__ = "waste_bag"
    bag_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))
    generated_kg: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_kg: Mapped[float] = mapped_column(Double)
    generated_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    collected_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    stored_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    handed_over_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    received_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    disposed_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    manifest_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    transporter: Mapped[str | None] = mapped_column(String(200), nullable=True)
    refused_kg: Mapped[float] = mapped_column(Double, default=0.0)
    closed_as: Mapped[str | None] = mapped_column(String(16), nullable=True)  # disposed / refused
    scans: Mapped[int] = mapped_column(Integer, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        Index("ix_waste_bag_clinic_stage", "clinic", "stage"),
        Index("ix_waste_bag_clinic_generated", "clinic", "generated_at"),
    )

    def as_json(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns}


def fingerprint(ev: WasteEvent) -> str:
    doc = {k: v.value if hasattr(v, "value") else v for k, v in asdict(ev).items()}
    if doc.get("vehicle") is None:  # added to protocol v1 later: scans without it keep their print
        doc.pop("vehicle", None)
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Scan:
    clinic: str | None
    device: str | None
    event: WasteEvent


def init_waste_tables(engine: Engine) -> None:
    names = ("waste_bag_event", "waste_bag", "waste_profile_switch")
    create_tables(engine, [Base.metadata.tables[n] for n in names])


@dataclass(frozen=True, slots=True)
class Stored:
    new: int  # rows added
    conflicts: frozenset[int]  # indices (in the batch) of scans whose event id was kept with other content


def store_waste_events(engine: Engine, scans: Sequence[Scan], now: float) -> Stored:
    """Store the scans of a batch (new ones only) and recompute their bags. One transaction: all of it
    or nothing."""
    if not scans:
        return Stored(0, frozenset())
    new = 0
    conflicts: set[int] = set()
    with Session(engine) as s, s.begin():
        ids = {sc.event.event_id for sc in scans}
        known: dict[str, set[str]] = {}  # event id -> fingerprints stored
        first: dict[str, str] = {}  # event id -> fingerprint of the version kept first
        for event_id, fp, conflict in s.execute(
            select(WasteBagEventRow.event_id, WasteBagEventRow.fingerprint, WasteBagEventRow.conflict).where(
                WasteBagEventRow.event_id.in_(ids)
            )
        ):
            known.setdefault(event_id, set()).add(fp)
            if not conflict:
                first[event_id] = fp
        bags: set[str] = set()
        for i, sc in enumerate(scans):
            ev = sc.event
            fp = fingerprint(ev)
            seen = known.setdefault(ev.event_id, set())
            first.setdefault(ev.event_id, fp)
            if first[ev.event_id] != fp:
                conflicts.add(i)
            if fp in seen:
                continue  # the same scan again (at-least-once delivery)
            s.add(
                WasteBagEventRow(
                    event_id=ev.event_id,
                    fingerprint=fp,
                    bag_id=ev.bag_id,
                    clinic=sc.clinic,
                    device=sc.device,
                    stage=ev.stage.value,
                    category=ev.category.value,
                    weight_kg=ev.weight_kg,
                    ts=ev.ts,
                    operator=ev.operator,
                    manifest_id=ev.manifest_id,
                    counterparty=ev.counterparty,
                    refused_kg=ev.refused_kg,
                    refusal_reason=ev.refusal_reason,
                    vehicle=ev.vehicle,
                    received_at=now,
                    conflict=bool(seen),
                )
            )
            seen.add(fp)
            bags.add(ev.bag_id)
            new += 1
        s.flush()
        for bag_id in bags:
            _update_bag(s, bag_id, now)
    return Stored(new, frozenset(conflicts))


def _update_bag(s: Session, bag_id: str, now: float) -> None:
    rows = list(
        s.scalars(
            select(WasteBagEventRow)
            .where(WasteBagEventRow.bag_id == bag_id)
            .order_by(WasteBagEventRow.ts, WasteBagEventRow.id)
        )
    )
    first = [r for r in rows if not r.conflict]
    facts = bag_facts(first)
    bag = s.get(WasteBagRow, bag_id)
    if bag is None:
        bag = WasteBagRow(bag_id=bag_id)
        s.add(bag)
    bag.clinic = next(
        (r.clinic for r in first if r.stage == Stage.generated.value and r.clinic), None
    ) or next((r.clinic for r in first if r.clinic), None)
    for key, value in facts.items():
        setattr(bag, key, value)
    bag.scans, bag.conflicts, bag.updated_at = len(first), len(rows) - len(first), now


def bag_facts(rows: Iterable[WasteBagEventRow]) -> dict[str, Any]:
    """A bag's state from its scans in time order (pure)."""
    rows = list(rows)
    at = {s: next((r.ts for r in rows if r.stage == s.value), None) for s in STAGES}
    top = max((Stage(r.stage) for r in rows), key=RANK.__getitem__)
    generated = next((r for r in rows if r.stage == Stage.generated.value), None)
    received = next((r for r in rows if r.stage == Stage.received.value), None)
    handed = next((r for r in rows if r.stage == Stage.handed_over.value), None)
    refused = sum(r.refused_kg or 0.0 for r in rows if r.stage == Stage.received.value)
    refused_whole = received is not None and (received.refused_kg or 0.0) >= received.weight_kg - 1e-9
    closed_as = "disposed" if at[Stage.disposed] is not None else ("refused" if refused_whole else None)
    manifest = next((r.manifest_id for r in rows if r.manifest_id), None)
    return {
        "category": rows[0].category,
        "stage": top.value,
        "generated_kg": generated.weight_kg if generated else None,
        "last_kg": rows[-1].weight_kg,
        "generated_at": at[Stage.generated],
        "collected_at": at[Stage.collected],
        "stored_at": at[Stage.stored],
        "handed_over_at": at[Stage.handed_over],
        "received_at": at[Stage.received],
        "disposed_at": at[Stage.disposed],
        "manifest_id": manifest,
        "transporter": handed.counterparty if handed else None,
        "refused_kg": refused,
        "closed_as": closed_as,
    }


def scans_to_rebuild(
    engine: Engine, now: float, keep_closed_s: float = 7 * 86400.0
) -> list[tuple[float, Scan]]:
    """Every scan of the bags still open, and of those closed in the last ``keep_closed_s``, in the
    order the server received them: what the waste rules need to rebuild their state at start."""
    with Session(engine) as s:
        live = select(WasteBagRow.bag_id).where(
            (WasteBagRow.closed_as.is_(None)) | (WasteBagRow.updated_at >= now - keep_closed_s)
        )
        rows = s.scalars(
            select(WasteBagEventRow)
            .where(WasteBagEventRow.bag_id.in_(live))
            .order_by(WasteBagEventRow.received_at, WasteBagEventRow.id)
        )
        return [(r.received_at, Scan(r.clinic, r.device, r.event())) for r in rows]


class WasteProfileSwitchRow(Base):
    """The waste profile in force from ``at`` on, and who switched it (``chainwatch waste profile``)."""

    __tablename__ = "waste_profile_switch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double)
    name: Mapped[str] = mapped_column(String(64))
    by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


def init_profile_switch_table(engine: Engine) -> None:
    create_tables(engine, [Base.metadata.tables["waste_profile_switch"]])


def switch_profile(engine: Engine, name: str, by: str, at: float, note: str | None = None) -> None:
    init_profile_switch_table(engine)
    with Session(engine) as s, s.begin():
        s.add(WasteProfileSwitchRow(at=at, name=name, by=by, note=note))


def profile_switches(engine: Engine) -> list[WasteProfileSwitchRow]:
    init_profile_switch_table(engine)
    with Session(engine) as s:
        rows = list(s.scalars(select(WasteProfileSwitchRow).order_by(WasteProfileSwitchRow.id)))
        s.expunge_all()
        return rows


def profile_in_force(engine: Engine, default: str) -> str:
    """The last switch's profile, or the registry's when nobody switched."""
    with Session(engine) as s:
        name = s.scalar(select(WasteProfileSwitchRow.name).order_by(WasteProfileSwitchRow.id.desc()).limit(1))
    return name or default
