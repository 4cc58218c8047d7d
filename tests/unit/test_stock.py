"""Vaccine stock (``core.stock``): the catalogue, lots, movements and the books they make — what a
nurse may and may not record, and where a lot was (what its exposure is computed over)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine
from core.stock import (
    Balance,
    Kind,
    Movement,
    StockError,
    ensure_products,
    intervals,
    load_catalogue,
    lot,
    lots_in,
    record,
    replay,
    stock,
)

T0 = 1_795_633_920.0
H = 3600.0
CLINIC, F1, F2 = "qingshui-thc", "qingshui-fridge1", "qingshui-fridge2"


@pytest.fixture
def session(tmp_path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'stock.sqlite'}")
    assert ensure_products(engine) == len(load_catalogue())
    assert ensure_products(engine) == 0  # idempotent
    with Session(engine) as s:
        yield s
    engine.dispose()


def mv(lot_id: int, kind: Kind, doses: int, at: float, equipment: str = F1, **kw: object) -> Movement:
    return Movement(lot_id, kind, CLINIC, equipment, doses, at, "qingshui-nurse1", **kw)  # type: ignore[arg-type]


def test_the_catalogue_has_the_programmes_vaccines_with_vvm_and_freeze_sensitivity():
    products = {p["id"]: p for p in load_catalogue()}
    assert products["hepb"]["freeze_sensitive"] and products["hepb"]["vvm_type"] == 30
    assert products["bopv"]["vvm_type"] == 2 and not products["bopv"]["freeze_sensitive"]
    assert products["bcg"]["doses_per_vial"] == 10


def test_a_lot_is_added_once_and_keeps_its_expiry(session: Session):
    a = lot(session, "hepb", "hb2026-0117", "2027-06-30", "华兰生物")
    assert a.lot_number == "HB2026-0117"  # typed on a phone in any case: stored as printed
    assert lot(session, "hepb", " HB2026-0117 ").id == a.id
    with pytest.raises(StockError, match="expires 2027-06-30, not 2027-07-31"):
        lot(session, "hepb", "HB2026-0117", "2027-07-31")
    with pytest.raises(StockError, match="is new: give its expiry date"):
        lot(session, "hepb", "HB2026-9999")
    with pytest.raises(StockError, match="no vaccine product"):
        lot(session, "no-such", "X1", "2027-01-01")
    with pytest.raises(StockError, match="not valid"):
        lot(session, "hepb", "<script>", "2027-01-01")


def test_the_books_receive_move_administer_quarantine_release_discard(session: Session):
    n = lot(session, "hepb", "HB1", "2027-06-30").id
    for m in (
        mv(n, Kind.received, 100, T0, source="县疾控中心"),
        mv(n, Kind.moved, 40, T0 + H, to_equipment_id=F2),
        mv(n, Kind.administered, 10, T0 + 2 * H),
        mv(n, Kind.quarantined, 50, T0 + 3 * H, reason="excursion", alert_id="A-1"),
        mv(n, Kind.released, 30, T0 + 4 * H),
        mv(n, Kind.discarded, 20, T0 + 5 * H, quarantined=True, reason="excursion"),
    ):
        assert record(session, m, T0 + 6 * H)[1]
    assert stock(session) == {(n, CLINIC, F1): Balance(30, 0), (n, CLINIC, F2): Balance(40, 0)}
    assert stock(session, until=T0 + 3.5 * H)[(n, CLINIC, F1)] == Balance(0, 50)
    assert lots_in(session, F1, T0 + 3.5 * H) == {n: Balance(0, 50)}


def test_quarantined_doses_cannot_be_administered(session: Session):
    n = lot(session, "dtap", "DT1", "2027-01-31").id
    record(session, mv(n, Kind.received, 20, T0), T0)
    record(session, mv(n, Kind.quarantined, 20, T0 + H, reason="excursion"), T0 + H)
    with pytest.raises(StockError, match=r"administered of 1 dose\(s\) .*only 0 available"):
        record(session, mv(n, Kind.administered, 1, T0 + 2 * H), T0 + 2 * H)


def test_a_late_paper_record_that_would_break_later_books_is_refused(session: Session):
    """Typing in yesterday's doses after today's move emptied the fridge: refused, nothing stored."""
    n = lot(session, "mmr", "M1", "2027-03-31").id
    record(session, mv(n, Kind.received, 10, T0), T0 + 10 * H)
    record(session, mv(n, Kind.moved, 10, T0 + 5 * H, to_equipment_id=F2), T0 + 10 * H)
    with pytest.raises(StockError, match="moved of 10 dose"):
        record(session, mv(n, Kind.administered, 3, T0 + H), T0 + 10 * H)
    assert stock(session) == {(n, CLINIC, F2): Balance(10, 0)}


def test_the_same_movement_twice_is_stored_once(session: Session):
    n = lot(session, "bcg", "B1", "2027-03-31").id
    first, new = record(session, mv(n, Kind.received, 10, T0, ident="tap-1"), T0)
    again, new_again = record(session, mv(n, Kind.received, 10, T0, ident="tap-1"), T0 + 5)
    assert new and not new_again and again.id == first.id
    with pytest.raises(StockError, match="recorded before with other content"):
        record(session, mv(n, Kind.received, 11, T0, ident="tap-1"), T0 + 5)


@pytest.mark.parametrize(
    ("movement", "why"),
    [
        (dict(kind=Kind.wasted, doses=1), "needs a reason"),
        (dict(kind=Kind.moved, doses=1), "needs the appliance the doses go to"),
        (dict(kind=Kind.moved, doses=1, to_equipment_id=F1), "another appliance"),
        (dict(kind=Kind.administered, doses=0), "whole number from 1"),
        (dict(kind=Kind.administered, doses=1, at=T0 + 2 * H), "in the future"),
        (dict(kind=Kind.administered, doses=1, to_equipment_id=F2), "only a move has a destination"),
        (dict(kind=Kind.administered, doses=1, quarantined=True), "applies to moved and discarded"),
    ],
)
def test_what_cannot_be_recorded_says_why(session: Session, movement: dict, why: str):
    n = lot(session, "hepb", "HB9", "2027-06-30").id
    record(session, mv(n, Kind.received, 5, T0), T0)
    fields = {"at": T0 + 60} | movement
    with pytest.raises(StockError, match=why):
        record(session, mv(n, **fields), T0 + H)  # type: ignore[arg-type]


def test_where_a_lot_was_across_moves():
    n = 7
    moves = [
        mv(n, Kind.received, 10, T0),
        mv(n, Kind.moved, 4, T0 + H, to_equipment_id=F2),
        mv(n, Kind.moved, 6, T0 + 2 * H, to_equipment_id=F2),  # F1 empty from here
        mv(n, Kind.administered, 10, T0 + 5 * H, equipment=F2),
    ]
    assert intervals(moves, n) == [(CLINIC, F1, T0, T0 + 2 * H), (CLINIC, F2, T0 + H, T0 + 5 * H)]
    assert intervals(moves[:2], n) == [(CLINIC, F1, T0, math.inf), (CLINIC, F2, T0 + H, math.inf)]
    assert replay(moves) == {}


def test_a_clinics_stock_reads_only_the_lots_that_touched_it_but_all_of_their_books(session: Session):
    """A lot issued from the district store to the clinic counts there; another clinic's lot is not read."""
    issued = lot(session, "hepb", "HB-ISSUED", "2027-06-30").id
    elsewhere = lot(session, "hepb", "HB-BAIHE", "2027-06-30").id
    store = ("demo-bureau", "demo-bureau-store")
    for m in (
        Movement(issued, Kind.received, *store, 30, T0, "keeper"),
        Movement(issued, Kind.moved, *store, 20, T0 + H, "keeper", to_clinic_id=CLINIC, to_equipment_id=F1),
        Movement(elsewhere, Kind.received, "baihe-thc", "baihe-fridge1", 50, T0, "baihe-nurse1"),
    ):
        record(session, m, T0 + 2 * H)
    assert stock(session, [CLINIC]) == {(issued, CLINIC, F1): Balance(20, 0)}
    assert lots_in(session, F1, T0 + 2 * H) == {issued: Balance(20, 0)}
    assert lots_in(session, F1, T0 + 0.5 * H) == {}  # not there yet
    assert stock(session)[(elsewhere, "baihe-thc", "baihe-fridge1")] == Balance(50, 0)
