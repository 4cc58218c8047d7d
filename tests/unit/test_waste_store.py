"""Waste scans in SQL: idempotent by (event_id, content), conflicts kept and flagged, each bag's state
recomputed from its scans in time order whatever order they came in."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.protocol import Category, Stage, WasteEvent
from core.waste_store import (
    Scan,
    WasteBagEventRow,
    WasteBagRow,
    init_waste_tables,
    scans_to_rebuild,
    store_waste_events,
)

T0 = 1_795_392_000.0
H = 3600.0


def ev(
    stage: str, hours: float, kg: float = 2.0, event_id: str | None = None, bag: str = "b1", **kw
) -> WasteEvent:
    needs = stage in ("handed_over", "received", "disposed")
    return WasteEvent(
        event_id or f"{bag}-{stage}",
        bag,
        Stage(stage),
        Category.infectious,
        kg,
        T0 + hours * H,
        "op",
        "MF-1" if needs else None,
        "demo-transport" if needs else None,
        kw.get("refused"),
        "leaking" if kw.get("refused") else None,
    )


def scans(*events: WasteEvent, device: str = "qingshui-scan1") -> list[Scan]:
    return [Scan("qingshui-thc", device, e) for e in events]


def engine(tmp_path: Path) -> Engine:
    e = make_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    init_waste_tables(e)
    return e


def bag(e: Engine, bag_id: str = "b1") -> WasteBagRow:
    with Session(e) as s:
        row = s.get(WasteBagRow, bag_id)
        assert row is not None
        s.expunge(row)
        return row


def test_a_bag_through_its_stages_in_any_arrival_order(tmp_path: Path) -> None:
    e = engine(tmp_path)
    store_waste_events(e, scans(ev("stored", 3.2), ev("received", 9, 1.98)), T0 + 10 * H)
    assert bag(e).stage == "received" and bag(e).generated_kg is None  # the ward's scans are late
    store_waste_events(e, scans(ev("generated", 0), ev("collected", 3), ev("handed_over", 5)), T0 + 11 * H)
    store_waste_events(e, scans(ev("disposed", 20, 1.97), device="plant-scan1"), T0 + 21 * H)
    b = bag(e)
    assert (b.stage, b.generated_kg, b.last_kg, b.closed_as, b.scans) == (
        "disposed",
        2.0,
        1.97,
        "disposed",
        6,
    )
    assert (b.stored_at, b.transporter, b.manifest_id, b.clinic) == (
        T0 + 3.2 * H,
        "demo-transport",
        "MF-1",
        "qingshui-thc",
    )


def test_the_same_scan_twice_is_one_row_and_other_content_is_kept_as_a_conflict(tmp_path: Path) -> None:
    e = engine(tmp_path)
    assert store_waste_events(e, scans(ev("generated", 0), ev("generated", 0)), T0).new == 1
    assert store_waste_events(e, scans(ev("generated", 0)), T0 + 60).new == 0
    other = store_waste_events(e, scans(ev("collected", 1), ev("generated", 0, 2.4)), T0 + 120)
    assert (other.new, other.conflicts) == (2, frozenset({1}))  # same id, other weight: index 1
    again = store_waste_events(e, scans(ev("generated", 0, 2.4), ev("generated", 0)), T0 + 180)
    assert (again.new, again.conflicts) == (0, frozenset({0}))  # the conflict again, the first again
    with Session(e) as s:
        rows = list(s.scalars(select(WasteBagEventRow).order_by(WasteBagEventRow.id)))
    assert [(r.stage, r.weight_kg, r.conflict) for r in rows] == [
        ("generated", 2.0, False),
        ("collected", 2.0, False),
        ("generated", 2.4, True),
    ]
    b = bag(e)
    assert (b.generated_kg, b.scans, b.conflicts) == (2.0, 2, 1)  # the first version stands


def test_a_bag_refused_whole_closes_as_refused(tmp_path: Path) -> None:
    e = engine(tmp_path)
    store_waste_events(e, scans(ev("generated", 0), ev("handed_over", 5), ev("received", 9, refused=2.0)), T0)
    b = bag(e)
    assert (b.closed_as, b.refused_kg, b.stage) == ("refused", 2.0, "received")


def test_what_the_rules_rebuild_from(tmp_path: Path) -> None:
    e = engine(tmp_path)
    store_waste_events(e, scans(ev("generated", 0, bag="old"), ev("disposed", 20, bag="old")), T0)
    store_waste_events(e, scans(ev("generated", 0, bag="open")), T0 + H)
    store_waste_events(e, scans(ev("generated", 0, 2.5, event_id="open-generated", bag="open")), T0 + 2 * H)
    got = scans_to_rebuild(e, T0 + 30 * 86400)  # a month later: the closed bag is no longer needed
    assert [(sc.event.bag_id, sc.event.weight_kg, at) for at, sc in got] == [
        ("open", 2.0, T0 + H),
        ("open", 2.5, T0 + 2 * H),
    ]
    assert len(scans_to_rebuild(e, T0 + 3 * 86400)) == 4
